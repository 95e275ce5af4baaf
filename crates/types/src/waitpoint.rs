//! A waitpoint token and its state machine.
//!
//! ```text
//!             complete (secret key, public access token, callback URL, dashboard, approval page)
//!   WAITING ───────────────────────────────────────────────────────────────────────────▶ COMPLETED
//!      │ │
//!      │ └───── timeout_at reached, a heartbeat missed, or forced from the dashboard ───▶ TIMED_OUT
//!      │
//!      └──────────── reject (secret key, public access token, reject URL, dashboard) ───▶ REJECTED
//! ```
//! A waitpoint leaves `WAITING` at most once: whichever comes first wins and the others are
//! no-ops. A token with a heartbeat also times out when no heartbeat came for its interval;
//! heartbeats never move `timeout_at`, an extend does. In Trigger.dev-shaped answers a rejected token reads as any error outcome does there
//! (`TIMED_OUT`, with its error as the output); waitpoint's own `outcome` field says `REJECTED`.

use std::fmt;

use crate::approval::Approval;
use crate::environment::Environment;
use crate::id::{EnvironmentId, WaitpointId};
use crate::time::Timestamp;
use crate::verifier::CallbackVerifier;
use crate::wait::WaitpointResult;

/// The `outputType` of outputs that came from JSON: superjson's envelope `{"json": …}`,
/// byte-compatible with what Trigger.dev stores.
pub const SUPERJSON: &str = "application/super+json";
/// The `outputType` of outputs completed with a JSON string, and of non-JSON callback bodies.
pub const TEXT_PLAIN: &str = "text/plain";
/// The `outputType` of the timeout error.
pub const APPLICATION_JSON: &str = "application/json";
/// The error `code` a timed-out token reports, as Trigger.dev's SDK expects.
pub const TIMEOUT_ERROR_CODE: &str = "TRIGGER_WAITPOINT_TIMEOUT";
/// The error `code` a token that missed its heartbeat reports.
pub const HEARTBEAT_TIMEOUT_ERROR_CODE: &str = "WAITPOINT_HEARTBEAT_TIMEOUT";
/// The error `code` a rejected token reports when its rejection gave none.
pub const REJECTED_ERROR_CODE: &str = "WAITPOINT_REJECTED";

/// A waitpoint's status as the API reports it (`WAITING`, … on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WaitpointStatus {
    /// Not completed yet and not timed out.
    Waiting,
    /// Completed with an output.
    Completed,
    /// Its timeout passed before anyone completed it.
    TimedOut,
    /// Someone rejected it, with an error.
    Rejected,
}

impl WaitpointStatus {
    /// All statuses, in the order the API documents them.
    pub const ALL: [WaitpointStatus; 4] = [Self::Waiting, Self::Completed, Self::TimedOut, Self::Rejected];

    /// `WAITING`, `COMPLETED`, `TIMED_OUT` or `REJECTED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Completed => "COMPLETED",
            Self::TimedOut => "TIMED_OUT",
            Self::Rejected => "REJECTED",
        }
    }

    /// The status Trigger.dev's API would report: it knows no rejection, and reads every error
    /// outcome as `TIMED_OUT`.
    pub const fn trigger_shaped(self) -> Self {
        match self {
            Self::Rejected => Self::TimedOut,
            other => other,
        }
    }

    /// The inverse of [`as_str`](Self::as_str); case-sensitive, as in Trigger.dev.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for WaitpointStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a completed waitpoint was completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompletedVia {
    /// `POST …/complete` authenticated with the environment's secret key.
    SecretKey,
    /// `POST …/complete` authenticated with the token's public access token.
    PublicAccessToken,
    /// `POST` to the token's callback `url`.
    CallbackUrl,
    /// A datetime waitpoint's time came.
    Datetime,
    /// A person signed in to the dashboard (a completion, a forced timeout, a skipped wait).
    Dashboard,
    /// A person answered the token's hosted approval page.
    ApprovalPage,
    /// No heartbeat came within the token's heartbeat interval (a timeout, never a completion).
    MissedHeartbeat,
}

impl CompletedVia {
    /// All ways, for parsing.
    pub const ALL: [CompletedVia; 7] = [
        Self::SecretKey,
        Self::PublicAccessToken,
        Self::CallbackUrl,
        Self::Datetime,
        Self::Dashboard,
        Self::ApprovalPage,
        Self::MissedHeartbeat,
    ];

    /// `SECRET_KEY`, `PUBLIC_ACCESS_TOKEN`, `CALLBACK_URL`, `DATETIME`, `DASHBOARD`,
    /// `APPROVAL_PAGE` or `HEARTBEAT_TIMEOUT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SecretKey => "SECRET_KEY",
            Self::PublicAccessToken => "PUBLIC_ACCESS_TOKEN",
            Self::CallbackUrl => "CALLBACK_URL",
            Self::Datetime => "DATETIME",
            Self::Dashboard => "DASHBOARD",
            Self::ApprovalPage => "APPROVAL_PAGE",
            Self::MissedHeartbeat => "HEARTBEAT_TIMEOUT",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

/// A completion's output, encoded as the API serves it: `data` is a string whose meaning
/// `data_type` gives (see [`SUPERJSON`], [`TEXT_PLAIN`], [`APPLICATION_JSON`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The encoded output.
    pub data: String,
    /// How to decode `data`.
    pub data_type: String,
}

impl Output {
    /// Wraps a JSON text (already validated as JSON) the way Trigger.dev's SDK encodes
    /// non-string values: `{"json": <value>}` as `application/super+json`. Whitespace between
    /// tokens is removed, as `JSON.stringify` would; everything else is kept byte for byte, so
    /// large numbers and key order survive.
    pub fn from_json_text(json: &str) -> Self {
        Self { data: format!("{{\"json\":{}}}", minify(json)), data_type: SUPERJSON.to_owned() }
    }

    /// A string output, `text/plain`, as Trigger.dev's SDK encodes string values. A string
    /// holding a NUL character, which not every database can store as text, is encoded as a
    /// superjson string instead; it decodes to the same value.
    pub fn from_text(text: String) -> Self {
        if text.contains('\0') {
            return Self::from_json_text(&serde_json::Value::String(text).to_string());
        }
        Self { data: text, data_type: TEXT_PLAIN.to_owned() }
    }

    /// Decodes the output to a JSON value: `{"json": v}` super+json gives `v`, JSON gives the
    /// value, text (and any other type) gives a JSON string.
    pub fn decode(&self) -> serde_json::Value {
        match self.data_type.as_str() {
            SUPERJSON => serde_json::from_str::<serde_json::Value>(&self.data)
                .ok()
                .and_then(|mut v| v.get_mut("json").map(serde_json::Value::take))
                .unwrap_or_else(|| serde_json::Value::String(self.data.clone())),
            APPLICATION_JSON => {
                serde_json::from_str(&self.data).unwrap_or_else(|_| serde_json::Value::String(self.data.clone()))
            }
            _ => serde_json::Value::String(self.data.clone()),
        }
    }
}

/// `json` (JSON text) without the whitespace between its tokens, as `JSON.stringify` writes it;
/// whitespace inside strings, numbers and key order are kept.
pub fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        out.push(c);
    }
    out
}

/// What a waitpoint waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitpointKind {
    /// A token: completed by a caller, or timed out at `timeout_at`.
    Manual,
    /// A point in time (a run's `wait.for` / `wait.until`): completes at `timeout_at`.
    Datetime,
}

impl WaitpointKind {
    /// `MANUAL` or `DATETIME`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "MANUAL",
            Self::Datetime => "DATETIME",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Manual, Self::Datetime].into_iter().find(|k| k.as_str() == text)
    }
}

/// Where a waitpoint is in its life. Completion data exists only in the states that have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitpointState {
    /// Not yet completed.
    Waiting,
    /// Completed by a caller.
    Completed {
        /// When the completion was accepted.
        at: Timestamp,
        /// Which route completed it.
        via: CompletedVia,
        /// The output; `None` when completed without one (`{}` on `…/complete`).
        output: Option<Output>,
    },
    /// The timeout passed first, or someone timed it out.
    TimedOut {
        /// When the timeout was applied (at or shortly after `timeout_at` or the heartbeat
        /// deadline, or when forced).
        at: Timestamp,
        /// `None`: its deadline passed. [`CompletedVia::MissedHeartbeat`]: its heartbeat
        /// deadline passed. Any other: timed out before its deadline, this way (the
        /// dashboard). As a requested state ([`Waitpoint::deadline_state`]), `None` applies
        /// only once the deadline is due, `Some` at once.
        via: Option<CompletedVia>,
    },
    /// Rejected by a caller, with an error.
    Rejected {
        /// When the rejection was accepted.
        at: Timestamp,
        /// Which way.
        via: CompletedVia,
        /// The error.
        error: Rejection,
    },
}

/// Why a token was rejected: what a run waiting on it gets as its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What happened, for people.
    pub message: String,
    /// For programs; [`REJECTED_ERROR_CODE`] when the rejection gave none.
    pub code: String,
    /// Anything else, as JSON text (kept byte for byte).
    pub data: Option<String>,
}

impl Rejection {
    /// The error as JSON text: `{"code", "message", "data"?}`, `data` as given.
    pub fn to_json(&self) -> String {
        let text = |value: &str| serde_json::Value::String(value.to_owned()).to_string();
        let data = self.data.as_deref().map(|data| format!(r#","data":{data}"#)).unwrap_or_default();
        format!(r#"{{"code":{},"message":{}{data}}}"#, text(&self.code), text(&self.message))
    }

    /// The inverse of [`to_json`](Self::to_json); `None` for text that is not such an error.
    pub fn from_json(text: &str) -> Option<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Stored<'a> {
            code: String,
            message: String,
            #[serde(borrow)]
            data: Option<&'a serde_json::value::RawValue>,
        }
        let stored: Stored<'_> = serde_json::from_str(text).ok()?;
        Some(Self { message: stored.message, code: stored.code, data: stored.data.map(|data| data.get().to_owned()) })
    }
}

/// A token's heartbeat: whoever works on it must send one at least `every` so often, or the
/// token times out ([`CompletedVia::MissedHeartbeat`]). Heartbeats never move `timeout_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The longest time allowed between two heartbeats (and from create to the first).
    pub every: std::time::Duration,
    /// When the token times out unless a heartbeat comes first: the last heartbeat (or the
    /// create) plus `every`.
    pub deadline: Timestamp,
}

/// A waitpoint token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waitpoint {
    /// Its id.
    pub id: WaitpointId,
    /// A token, or a point in time.
    pub kind: WaitpointKind,
    /// The environment it belongs to; other environments cannot see it.
    pub environment_id: EnvironmentId,
    /// Waiting, completed or timed out.
    pub state: WaitpointState,
    /// The caller's idempotency key while it is active (unexpired and not superseded).
    pub idempotency_key: Option<String>,
    /// The caller's idempotency key after it expired and a new token took it over.
    pub inactive_idempotency_key: Option<String>,
    /// When the idempotency key stops returning this token.
    pub idempotency_key_expires_at: Option<Timestamp>,
    /// When the token times out if nobody completes it; `None` waits forever.
    pub timeout_at: Option<Timestamp>,
    /// Its heartbeat, when created with a `heartbeatTimeout` (tokens only).
    pub heartbeat: Option<Heartbeat>,
    /// How its callback URL checks who sent a delivery, when created with a
    /// `callbackVerifier`; `None` takes any POST to the URL.
    pub callback_verifier: Option<CallbackVerifier>,
    /// Tags exactly as given (order and duplicates kept).
    pub tags: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// What its approval page asks, as given at create; `None` for the default page.
    pub approval: Option<Approval>,
    /// The JSON Schema (draft 2020-12) every completion's output must fit, as JSON text, as
    /// given at create; `None` takes any output.
    pub output_schema: Option<String>,
}

impl Waitpoint {
    /// The status the API reports.
    pub fn status(&self) -> WaitpointStatus {
        match self.state {
            WaitpointState::Waiting => WaitpointStatus::Waiting,
            WaitpointState::Completed { .. } => WaitpointStatus::Completed,
            WaitpointState::TimedOut { .. } => WaitpointStatus::TimedOut,
            WaitpointState::Rejected { .. } => WaitpointStatus::Rejected,
        }
    }

    /// The earliest moment it times out unless something happens first: its `timeout_at` or
    /// its heartbeat deadline, whichever comes first; `None` waits forever.
    pub fn due_at(&self) -> Option<Timestamp> {
        let heartbeat = self.heartbeat.map(|heartbeat| heartbeat.deadline);
        match (self.timeout_at, heartbeat) {
            (Some(timeout), Some(heartbeat)) => Some(timeout.min(heartbeat)),
            (timeout, heartbeat) => timeout.or(heartbeat),
        }
    }

    /// When it was completed, timed out or rejected.
    pub fn completed_at(&self) -> Option<Timestamp> {
        match self.state {
            WaitpointState::Waiting => None,
            WaitpointState::Completed { at, .. }
            | WaitpointState::TimedOut { at, .. }
            | WaitpointState::Rejected { at, .. } => Some(at),
        }
    }

    /// The idempotency key the caller gave, active or not.
    pub fn user_idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref().or(self.inactive_idempotency_key.as_deref())
    }

    /// How it finished, when it did: a completion's way, a forced timeout's, or `None` for a
    /// deadline that passed.
    pub fn completed_via(&self) -> Option<CompletedVia> {
        match self.state {
            WaitpointState::Waiting => None,
            WaitpointState::Completed { via, .. } | WaitpointState::Rejected { via, .. } => Some(via),
            WaitpointState::TimedOut { via, .. } => via,
        }
    }

    /// How it finished, as the API writes it (`completedVia`): a way's name
    /// ([`CompletedVia::as_str`]), or `TIMEOUT` when its deadline passed; `None` while it waits.
    pub fn completed_via_name(&self) -> Option<&'static str> {
        match self.state {
            WaitpointState::Waiting => None,
            WaitpointState::TimedOut { via: None, .. } => Some("TIMEOUT"),
            _ => self.completed_via().map(CompletedVia::as_str),
        }
    }

    /// The output as the API serves it: the completion's output; for a timed-out token the
    /// timeout error `{"code":"TRIGGER_WAITPOINT_TIMEOUT","message":"Waitpoint timed out at …"}`
    /// (its deadline, or the moment it was forced); for a rejected one its error.
    pub fn output(&self) -> Option<Output> {
        match &self.state {
            WaitpointState::Waiting => None,
            WaitpointState::Completed { output, .. } => output.clone(),
            WaitpointState::TimedOut { at, via: Some(CompletedVia::MissedHeartbeat) } => {
                let (deadline, every) = self.heartbeat.map_or((*at, 0), |h| (h.deadline, h.every.as_secs()));
                let error = serde_json::json!({
                    "code": HEARTBEAT_TIMEOUT_ERROR_CODE,
                    "message": format!("Waitpoint timed out at {deadline}: no heartbeat for {every}s"),
                });
                Some(Output { data: error.to_string(), data_type: APPLICATION_JSON.to_owned() })
            }
            WaitpointState::TimedOut { at, via } => {
                let deadline = if via.is_some() { *at } else { self.timeout_at.unwrap_or(*at) };
                let error = serde_json::json!({
                    "code": TIMEOUT_ERROR_CODE,
                    "message": format!("Waitpoint timed out at {deadline}"),
                });
                Some(Output { data: error.to_string(), data_type: APPLICATION_JSON.to_owned() })
            }
            WaitpointState::Rejected { error, .. } => {
                Some(Output { data: error.to_json(), data_type: APPLICATION_JSON.to_owned() })
            }
        }
    }

    /// The state this waitpoint takes when its deadline (`timeout_at`) is reached at `at`, or
    /// when someone forces it then (`via`): a token times out, a datetime waitpoint completes
    /// (a skipped wait).
    pub fn deadline_state(&self, at: Timestamp, via: Option<CompletedVia>) -> WaitpointState {
        match self.kind {
            WaitpointKind::Manual => WaitpointState::TimedOut { at, via },
            WaitpointKind::Datetime => {
                WaitpointState::Completed { at, via: via.unwrap_or(CompletedVia::Datetime), output: None }
            }
        }
    }

    /// What a run waiting on this finished waitpoint gets (its output, or the error of a
    /// timeout or a rejection); `None` while it waits.
    pub fn wait_result(&self) -> Option<WaitpointResult> {
        let error = || self.output().map_or(serde_json::Value::Null, |o| o.decode());
        match &self.state {
            WaitpointState::Waiting => None,
            WaitpointState::Completed { output, .. } => Some(WaitpointResult::Completed {
                output: output.as_ref().map_or(serde_json::Value::Null, Output::decode),
            }),
            WaitpointState::TimedOut { .. } => Some(WaitpointResult::TimedOut { error: error() }),
            WaitpointState::Rejected { .. } => Some(WaitpointResult::Rejected { error: error() }),
        }
    }

    /// Whether `environment` owns this waitpoint.
    pub fn belongs_to(&self, environment: &Environment) -> bool {
        self.environment_id == environment.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waitpoint(state: WaitpointState) -> Waitpoint {
        Waitpoint {
            id: WaitpointId::parse("waitpoint_c1").unwrap(),
            kind: WaitpointKind::Manual,
            environment_id: EnvironmentId::parse("env_c1").unwrap(),
            state,
            idempotency_key: None,
            inactive_idempotency_key: Some("k".into()),
            idempotency_key_expires_at: None,
            timeout_at: Some(Timestamp::from_millis(1_743_501_600_000)),
            heartbeat: None,
            callback_verifier: None,
            tags: vec![],
            created_at: Timestamp::from_millis(1_743_501_000_000),
            approval: None,
            output_schema: None,
        }
    }

    #[test]
    fn a_rejection_reads_back_from_its_json_with_its_data_as_sent() {
        let rejection = Rejection {
            message: "card \"declined\"".into(),
            code: "CARD".into(),
            data: Some(r#"{"big":12345678901234567890}"#.into()),
        };
        let json = rejection.to_json();
        assert_eq!(json, r#"{"code":"CARD","message":"card \"declined\"","data":{"big":12345678901234567890}}"#);
        assert_eq!(Rejection::from_json(&json), Some(rejection));
        let bare = Rejection { message: "no".into(), code: REJECTED_ERROR_CODE.into(), data: None };
        assert_eq!(Rejection::from_json(&bare.to_json()), Some(bare.clone()));
        let token = waitpoint(WaitpointState::Rejected {
            at: Timestamp::from_millis(1),
            via: CompletedVia::Dashboard,
            error: bare,
        });
        assert_eq!(
            (token.status(), token.status().trigger_shaped()),
            (WaitpointStatus::Rejected, WaitpointStatus::TimedOut)
        );
        assert_eq!(
            token.wait_result(),
            Some(WaitpointResult::Rejected {
                error: serde_json::json!({ "code": "WAITPOINT_REJECTED", "message": "no" })
            })
        );
        assert_eq!(Rejection::from_json(r#"{"message":"no"}"#), None, "not such an error");
    }

    #[test]
    fn timed_out_tokens_report_the_error_the_sdk_expects() {
        let w = waitpoint(WaitpointState::TimedOut { at: Timestamp::from_millis(1_743_501_600_400), via: None });
        assert_eq!(w.status().as_str(), "TIMED_OUT");
        let output = w.output().unwrap();
        assert_eq!(output.data_type, "application/json");
        assert_eq!(
            output.data,
            r#"{"code":"TRIGGER_WAITPOINT_TIMEOUT","message":"Waitpoint timed out at 2025-04-01T10:00:00.000Z"}"#
        );
        assert_eq!(w.user_idempotency_key(), Some("k"));
        let Some(WaitpointResult::TimedOut { error }) = w.wait_result() else { panic!("not a timeout") };
        assert_eq!(error["code"], "TRIGGER_WAITPOINT_TIMEOUT");
        assert_eq!(w.completed_via(), None);

        let forced = Timestamp::from_millis(1_743_501_500_000);
        let w = waitpoint(WaitpointState::TimedOut { at: forced, via: Some(CompletedVia::Dashboard) });
        assert!(w.output().unwrap().data.contains("timed out at 2025-04-01T09:58:20.000Z"), "the forced moment");
        assert_eq!(w.completed_via(), Some(CompletedVia::Dashboard));
    }

    #[test]
    fn a_token_that_missed_its_heartbeat_says_so_and_is_due_at_the_earlier_deadline() {
        let mut w = waitpoint(WaitpointState::Waiting);
        assert_eq!(w.due_at(), w.timeout_at);
        let deadline = Timestamp::from_millis(1_743_501_030_000);
        w.heartbeat = Some(Heartbeat { every: std::time::Duration::from_secs(30), deadline });
        assert_eq!(w.due_at(), Some(deadline), "the heartbeat deadline comes first");
        w.timeout_at = None;
        assert_eq!(w.due_at(), Some(deadline));
        w.state = WaitpointState::TimedOut {
            at: deadline.saturating_add(std::time::Duration::from_millis(7)),
            via: Some(CompletedVia::MissedHeartbeat),
        };
        assert_eq!(w.status(), WaitpointStatus::TimedOut);
        assert_eq!(
            w.output().unwrap().data,
            r#"{"code":"WAITPOINT_HEARTBEAT_TIMEOUT","message":"Waitpoint timed out at 2025-04-01T09:50:30.000Z: no heartbeat for 30s"}"#
        );
        assert_eq!(w.completed_via().map(CompletedVia::as_str), Some("HEARTBEAT_TIMEOUT"));
    }

    #[test]
    fn a_datetime_waitpoint_completes_at_its_deadline() {
        let mut w = waitpoint(WaitpointState::Waiting);
        assert_eq!(w.wait_result(), None);
        w.kind = WaitpointKind::Datetime;
        let at = Timestamp::from_millis(1_743_501_600_001);
        w.state = w.deadline_state(at, None);
        assert_eq!(w.state, WaitpointState::Completed { at, via: CompletedVia::Datetime, output: None });
        assert_eq!(w.wait_result(), Some(WaitpointResult::Completed { output: serde_json::Value::Null }));
        let skipped = w.deadline_state(at, Some(CompletedVia::Dashboard));
        assert_eq!(skipped, WaitpointState::Completed { at, via: CompletedVia::Dashboard, output: None });
    }

    #[test]
    fn outputs_encode_like_the_official_sdk_and_decode_back() {
        let json = Output::from_json_text(" {\"status\" : \"approved \\\" \\\\\",\n \"n\":12345678901234567890} ");
        assert_eq!(json.data, r#"{"json":{"status":"approved \" \\","n":12345678901234567890}}"#);
        assert_eq!(json.data_type, "application/super+json");
        assert_eq!(json.decode()["status"], "approved \" \\");
        let text = Output::from_text("hi".into());
        assert_eq!(text.decode(), serde_json::json!("hi"));
        assert_eq!(Output::from_json_text("null").decode(), serde_json::Value::Null);
        let nul = Output::from_text("a\0b".into());
        assert!(!nul.data.contains('\0'));
        assert_eq!(nul.decode(), serde_json::json!("a\0b"));
    }

    #[test]
    fn statuses_parse_case_sensitively() {
        assert_eq!(WaitpointStatus::parse("TIMED_OUT"), Some(WaitpointStatus::TimedOut));
        assert_eq!(WaitpointStatus::parse("waiting"), None);
        assert_eq!(CompletedVia::parse("CALLBACK_URL"), Some(CompletedVia::CallbackUrl));
        assert_eq!(CompletedVia::parse("APPROVAL_PAGE"), Some(CompletedVia::ApprovalPage));
    }
}
