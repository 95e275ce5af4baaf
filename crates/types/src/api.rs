//! The JSON bodies of the HTTP API, field for field as Trigger.dev's waitpoint token API
//! sends them: camelCase names, ISO 8601 dates, optional fields omitted (never `null`, which
//! the official SDK rejects or misreads).
//!
//! The server serializes these; the Rust client deserializes them.

use serde::{Deserialize, Serialize};

use crate::approval::Approval;
use crate::run::RunStatus;
use crate::time::Timestamp;
use crate::waitpoint::WaitpointStatus;

/// The body of `POST /api/v1/waitpoints/tokens` as a client sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTokenRequest {
    /// A duration (`"10m"`), an ISO 8601 date, or `"none"`; the server's default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, examples("10m", "2030-01-01T00:00:00Z", "none")))]
    pub timeout: Option<String>,
    /// Returns the same token for the same key while it is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, min_length = 1, max_length = 2048))]
    pub idempotency_key: Option<String>,
    /// How long the key stays active (`"1h"`); the server's default when absent.
    #[serde(rename = "idempotencyKeyTTL", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, examples("1h", "none")))]
    pub idempotency_key_ttl: Option<String>,
    /// Up to 10 tags, each shorter than 128 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::tags))]
    pub tags: Option<Vec<String>>,
    /// What the token's hosted approval page asks (waitpoint's own field); the default page
    /// (approve or reject, with a comment) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub approval: Option<Approval>,
    /// A JSON Schema (draft 2020-12) every completion's output must fit (waitpoint's own
    /// field): a completion that does not is refused (422) and the token keeps waiting. It must
    /// stand alone: a `$ref` to a URL or a file is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, value_type = Object))]
    pub output_schema: Option<serde_json::Value>,
    /// Whoever works on the token must send a heartbeat at least this often (a duration,
    /// `"30s"`), or it times out with `WAITPOINT_HEARTBEAT_TIMEOUT` (waitpoint's own field).
    /// Heartbeats never move the `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, examples("30s", "5m")))]
    pub heartbeat_timeout: Option<String>,
    /// How the callback URL checks that a delivery comes from the service that holds the
    /// secret (waitpoint's own field): a delivery whose signature does not verify is refused
    /// (401) and changes nothing. The secret is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub callback_verifier: Option<CallbackVerifierRequest>,
}

/// A token's `callbackVerifier`, as given at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallbackVerifierRequest {
    /// `standard-webhooks`, `stripe`, `github` or `hmac-sha256`.
    pub scheme: crate::verifier::VerifierScheme,
    /// The secret the sender signs with: a `whsec_…` base64 secret for Standard Webhooks, the
    /// endpoint's signing secret for Stripe, the webhook's secret for GitHub (1 to 1,024
    /// characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub secret: String,
    /// `hmac-sha256` only: the header carrying the hex signature (`X-Signature` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub header: Option<String>,
}

/// A token's callback verifier as retrieve shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallbackVerifierInfo {
    /// The scheme deliveries are checked with.
    pub scheme: crate::verifier::VerifierScheme,
    /// The signature's header (`hmac-sha256` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub header: Option<String>,
}

impl CreateTokenRequest {
    /// A request with every option left to the server's defaults (`{}`); add options with the
    /// methods below, as the spec writes `{ timeout: "30s", tags }`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use waitpoint_types::api::CreateTokenRequest;
    ///
    /// let request = CreateTokenRequest::new().timeout("30s").tags(["a", "b"]).idempotency_key("k");
    /// assert_eq!(request.timeout.as_deref(), Some("30s"));
    /// assert_eq!(CreateTokenRequest::new().timeout(Duration::from_millis(1_500)).timeout.as_deref(), Some("2s"));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Times out after a duration (`"10m"`, or a [`std::time::Duration`]), at a date (an ISO
    /// 8601 string, or a [`Timestamp`]), or never (`"none"`).
    pub fn timeout(mut self, timeout: impl Into<TimeText>) -> Self {
        self.timeout = Some(timeout.into().0);
        self
    }

    /// Returns the same token for the same key while the key is active.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// How long the key stays active: a duration (`"1h"`, or a [`std::time::Duration`]) or
    /// `"none"` (dates are not accepted here).
    pub fn idempotency_key_ttl(mut self, ttl: impl Into<TimeText>) -> Self {
        self.idempotency_key_ttl = Some(ttl.into().0);
        self
    }

    /// The token's tags (up to 10), replacing any given before.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// What the token's hosted approval page asks (its title, description and form fields).
    pub fn approval(mut self, approval: Approval) -> Self {
        self.approval = Some(approval);
        self
    }

    /// Every completion's output must fit this JSON Schema (draft 2020-12).
    pub fn output_schema(mut self, schema: serde_json::Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Deliveries to the callback URL must be signed with `secret` as `scheme` signs them.
    pub fn callback_verifier(mut self, scheme: crate::verifier::VerifierScheme, secret: impl Into<String>) -> Self {
        self.callback_verifier = Some(CallbackVerifierRequest { scheme, secret: secret.into(), header: None });
        self
    }

    /// Times out unless a heartbeat comes at least this often (`"30s"`, or a
    /// [`std::time::Duration`]).
    pub fn heartbeat_timeout(mut self, every: impl Into<TimeText>) -> Self {
        self.heartbeat_timeout = Some(every.into().0);
        self
    }
}

/// `POST /api/v1/waitpoints/tokens/{id}/extend`: moves a waiting token's timeout later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtendTokenRequest {
    /// The new timeout: a duration from now (`"1h"`) or an ISO 8601 date; it must be later
    /// than the token's current `timeoutAt`.
    #[cfg_attr(feature = "openapi", schema(examples("1h", "2030-01-01T00:00:00Z")))]
    pub timeout: String,
}

/// `POST /api/v1/webhooks`: subscribe a URL to the environment's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where to deliver: an `http` or `https` URL.
    #[cfg_attr(feature = "openapi", schema(examples("https://example.com/hooks/waitpoint"), max_length = 2048))]
    pub url: String,
    /// Only these event kinds (`waitpoint.completed`, …); all when absent or empty.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only events whose subject has any of these tags; all when absent or empty.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookDetail {
    /// `webhook_…`.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// The kinds delivered (all when empty).
    pub kinds: Vec<String>,
    /// The tags filtered on (all when empty).
    pub tags: Vec<String>,
    /// The Standard Webhooks secret deliveries are signed with: in the answer to the create
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub secret: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// Every event up to this position of the log is delivered (or filtered out).
    pub delivered_through: u64,
    /// Failed attempts at the next event since the last success.
    pub attempts: u32,
    /// When the next attempt is due, after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub retry_at: Option<Timestamp>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub last_error: Option<String>,
}

/// The answer to a heartbeat or an extend: the token still waits, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ProlongResponse {
    /// Always true on a 2xx.
    pub success: bool,
    /// When the token times out unless completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub timeout_at: Option<Timestamp>,
    /// When the token times out unless another heartbeat comes first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub heartbeat_deadline: Option<Timestamp>,
}

/// A time as the API writes it: a duration (`"30s"`), an ISO 8601 date or `"none"`. Made from
/// a `&str` or a `String` as given, from a [`std::time::Duration`] (in whole seconds, rounded
/// up: the API's durations count seconds at the finest) or from a [`Timestamp`] (its date).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeText(String);

impl TimeText {
    /// The text as the API takes it.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<&str> for TimeText {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl From<&String> for TimeText {
    fn from(text: &String) -> Self {
        Self(text.clone())
    }
}

impl From<String> for TimeText {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<std::time::Duration> for TimeText {
    fn from(duration: std::time::Duration) -> Self {
        let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        Self(format!("{seconds}s"))
    }
}

impl From<Timestamp> for TimeText {
    fn from(at: Timestamp) -> Self {
        Self(at.to_string())
    }
}

/// `POST /api/v1/waitpoints/tokens/{id}/reject`: the error a run waiting on the token gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectTokenRequest {
    /// The error.
    pub error: RejectTokenError,
}

/// Why a token is rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectTokenError {
    /// What happened, for people (1 to 10,000 characters).
    pub message: String,
    /// For programs, such as `PAYMENT_DECLINED` (`WAITPOINT_REJECTED` when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl RejectTokenRequest {
    /// A rejection with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { error: RejectTokenError { message: message.into(), code: None, data: None } }
    }

    /// With this code.
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.error.code = Some(code.into());
        self
    }

    /// With this data.
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.error.data = Some(data);
        self
    }
}

/// The answer to a create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateTokenResponse {
    /// `waitpoint_…`.
    pub id: String,
    /// True when an active idempotency key returned an existing token.
    pub is_cached: bool,
    /// The callback URL: POST any JSON to it to complete the token, no credentials needed.
    pub url: String,
    /// A JWT that may complete this one token (also sent in the `x-trigger-jwt` header).
    pub public_access_token: String,
    /// The token's hosted approval page: a person opens it, with no sign-in, to approve or
    /// reject (waitpoint's own field; Trigger.dev's SDK ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub approval_url: Option<String>,
    /// The token's reject URL: POST to it, with no credentials, to reject the token (any body
    /// becomes the error's data; waitpoint's own field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub reject_url: Option<String>,
    /// The token's heartbeat URL, for a token created with `heartbeatTimeout`: POST to it,
    /// with no credentials, to send a heartbeat (waitpoint's own field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub heartbeat_url: Option<String>,
}

/// A token as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenItem {
    /// `waitpoint_…`.
    pub id: String,
    /// The callback URL.
    pub url: String,
    /// `WAITING`, `COMPLETED` or `TIMED_OUT`, as Trigger.dev reports them: a rejected token
    /// reads `TIMED_OUT` (see `outcome`).
    pub status: WaitpointStatus,
    /// How it finished, once it did: `COMPLETED`, `TIMED_OUT` or `REJECTED` (waitpoint's own
    /// field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub outcome: Option<WaitpointStatus>,
    /// When it was completed or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub completed_at: Option<Timestamp>,
    /// When it times out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub timeout_at: Option<Timestamp>,
    /// The same as `timeoutAt` (Trigger.dev's internal name, kept for compatibility).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub completed_after: Option<Timestamp>,
    /// The idempotency key the caller gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub idempotency_key: Option<String>,
    /// When the idempotency key expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub idempotency_key_expires_at: Option<Timestamp>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A token as retrieved: the listed fields plus its output and how it was completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenDetail {
    /// `waitpoint_…`.
    pub id: String,
    /// Always `MANUAL` for tokens.
    #[serde(rename = "type")]
    pub kind: String,
    /// The callback URL.
    pub url: String,
    /// `WAITING`, `COMPLETED` or `TIMED_OUT`, as Trigger.dev reports them: a rejected token
    /// reads `TIMED_OUT` (see `outcome`).
    pub status: WaitpointStatus,
    /// How it finished, once it did: `COMPLETED`, `TIMED_OUT` or `REJECTED` (waitpoint's own
    /// field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub outcome: Option<WaitpointStatus>,
    /// The idempotency key the caller gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub idempotency_key: Option<String>,
    /// When the idempotency key expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub idempotency_key_expires_at: Option<Timestamp>,
    /// The encoded output; decode it according to `outputType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub output: Option<String>,
    /// `application/super+json` (`{"json": value}`), `text/plain` or `application/json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub output_type: Option<String>,
    /// True when `output` is an error: the timeout's, or the rejection's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub output_is_error: Option<bool>,
    /// When it times out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub timeout_at: Option<Timestamp>,
    /// The same as `timeoutAt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub completed_after: Option<Timestamp>,
    /// When it was completed or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub completed_at: Option<Timestamp>,
    /// How it finished: `SECRET_KEY`, `PUBLIC_ACCESS_TOKEN`, `CALLBACK_URL` (its URL, or its
    /// reject URL), `DASHBOARD`, `APPROVAL_PAGE`, `TIMEOUT` (its deadline passed), or
    /// `HEARTBEAT_TIMEOUT` (no heartbeat came in time).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub completed_via: Option<String>,
    /// The JSON Schema its completions' output must fit, as given at create (waitpoint's own
    /// field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, value_type = Object))]
    pub output_schema: Option<serde_json::Value>,
    /// The longest time allowed between heartbeats, as given at create (`"30s"`; waitpoint's
    /// own field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub heartbeat_timeout: Option<String>,
    /// When it times out unless a heartbeat comes first (waitpoint's own field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub heartbeat_deadline: Option<Timestamp>,
    /// How its callback URL checks deliveries, without the secret (waitpoint's own field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub callback_verifier: Option<CallbackVerifierInfo>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Tags in the order given.
    pub tags: Vec<String>,
}

/// One page of a list, and the cursors around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items, newest first.
    pub data: Vec<T>,
    /// Cursors for `page[after]` (next) and `page[before]` (previous).
    pub pagination: Pagination,
}

/// Cursors of a page; each present only when there is such a page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pagination {
    /// Pass as `page[after]` for the next (older) page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub next: Option<String>,
    /// Pass as `page[before]` for the previous (newer) page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub previous: Option<String>,
}

/// The answer to a completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompleteResponse {
    /// Always true on a 2xx.
    pub success: bool,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong and how to fix it.
    pub error: String,
    /// A machine-readable kind, on some errors (`run_moved_on`, `journal_mismatch`, `unauthorized`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub code: Option<String>,
}

/// Options of `POST /api/v1/tasks/{taskId}/trigger`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TriggerOptions {
    /// Returns the same run for the same key (per task) while it is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, min_length = 1, max_length = 2048))]
    pub idempotency_key: Option<String>,
    /// How long the key stays active (`"1h"`); the server's default when absent.
    #[serde(rename = "idempotencyKeyTTL", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, examples("1h", "none")))]
    pub idempotency_key_ttl: Option<String>,
    /// Up to 10 tags, each shorter than 128 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::tags))]
    pub tags: Option<Vec<String>>,
    /// Attempts before the run fails (1 to 100); the server's default (3) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, minimum = 1, maximum = 100))]
    pub max_attempts: Option<u32>,
    /// Start no earlier than after this duration (`"10m"`) or at this ISO 8601 date.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false, examples("10m", "2030-01-01T00:00:00Z")))]
    pub delay: Option<String>,
}

/// The body of `POST /api/v1/tasks/{taskId}/trigger`, as Trigger.dev shapes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// The run's input: any JSON value.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub payload: serde_json::Value,
    /// Options.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub options: Option<TriggerOptions>,
}

/// The answer to a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TriggerResponse {
    /// `run_…`.
    pub id: String,
    /// True when an active idempotency key returned an existing run.
    pub is_cached: bool,
    /// Something the caller should know about the run, such as that no worker serves its task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub hint: Option<String>,
}

/// A waitpoint a run waits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WaitingOn {
    /// `waitpoint_…`.
    pub id: String,
    /// `MANUAL` (a token) or `DATETIME`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `WAITING`, `COMPLETED` or `TIMED_OUT`: in a set, some may have finished already.
    pub status: WaitpointStatus,
    /// When it times out (a token) or completes (a datetime waitpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub timeout_at: Option<Timestamp>,
}

/// A run's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunErrorBody {
    /// `TaskError`, `Panic`, `NonDeterminism`, `TaskNotFound`, ….
    pub name: String,
    /// What happened.
    pub message: String,
}

/// A run as retrieved (and, without `payload` and `output`, as listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    /// `run_…`.
    pub id: String,
    /// The task.
    pub task_id: String,
    /// `QUEUED`, `DELAYED`, `EXECUTING`, `WAITING`, `COMPLETED`, `FAILED` or `CANCELED`.
    pub status: RunStatus,
    /// The input.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub payload: Option<serde_json::Value>,
    /// The output, once `COMPLETED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub output: Option<serde_json::Value>,
    /// The error, once `FAILED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub error: Option<RunErrorBody>,
    /// The current attempt (0 before the first).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Tags in the order given.
    pub tags: Vec<String>,
    /// The idempotency key the caller gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub idempotency_key: Option<String>,
    /// When the idempotency key expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub idempotency_key_expires_at: Option<Timestamp>,
    /// While `DELAYED` (or queued): when a worker may take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub delayed_until: Option<Timestamp>,
    /// While `WAITING`: what it waits on, in the wait's order.
    pub waiting_on: Vec<WaitingOn>,
    /// While `WAITING`: how many of `waitingOn` must complete (1 for a wait on one).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub waiting_needed: Option<u32>,
    /// When it was triggered.
    pub created_at: Timestamp,
    /// When a worker first took it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub started_at: Option<Timestamp>,
    /// When its state last changed.
    pub updated_at: Timestamp,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub finished_at: Option<Timestamp>,
    /// While `EXECUTING`: the worker that holds it, and when that worker last polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub worker: Option<RunWorker>,
    /// Something the caller should know about the run, such as that no worker serves its task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub hint: Option<String>,
}

/// The worker that holds a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunWorker {
    /// `worker_…`.
    pub id: String,
    /// When it last polled (this is how the server knows it is alive); absent if it never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub last_seen_at: Option<Timestamp>,
}

/// The worker protocol: how a worker takes runs and records what they do.
pub mod worker {
    use serde::{Deserialize, Serialize};

    use super::{CreateTokenRequest, CreateTokenResponse, RunErrorBody};
    use crate::json::RawJson;
    use crate::time::Timestamp;

    /// A task a worker runs, and how many more runs of it it takes now.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct TaskSlots {
        /// The task id.
        pub id: String,
        /// Free slots (0 still counts as a heartbeat).
        pub slots: u32,
    }

    /// `POST /api/v1/workers/{workerId}/poll`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct PollRequest {
        /// The tasks and their free slots.
        pub tasks: Vec<TaskSlots>,
        /// How long the server may hold the request when there is nothing to take (at most 30 s).
        pub wait_ms: u64,
        /// The runs the worker is executing now, each as its id or, better, as its id and the
        /// epoch it executes it under. Any other run the server counts as held by this worker (a
        /// claim whose answer was lost, a run the worker gave up) is given back; so is one listed
        /// under an older epoch than it now has (it was handed to the worker again after the
        /// worker made this list), which the same poll can take again. The server compares at
        /// most every 250 ms per worker and node, and at once when the list leaves out a run the
        /// previous answer carried.
        pub holding: Vec<HeldRun>,
        /// The worker is stopping: this is its last poll. It takes nothing, and runs it
        /// suspended resume on other workers from now on.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub leaving: bool,
        /// The worker process's session: an id made when it started that sorts after the
        /// sessions of earlier starts (such as a time-ordered id). A poll with a newer session
        /// than the worker id's last takes the worker over: the runs the older session held
        /// move on at once, and its polls are refused (409 `worker_replaced`). Absent: the id
        /// is the whole identity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        pub session: Option<String>,
    }

    /// A run a poll says the worker executes.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(untagged)]
    pub enum HeldRun {
        /// `run_…`, under whatever epoch it has.
        Id(String),
        /// `{"id": "run_…", "epoch": 3}`.
        Leased(Lease),
    }

    /// A run and the epoch a worker executes it under.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct Lease {
        /// `run_…`.
        pub id: String,
        /// The epoch of the claim the worker executes it under.
        pub epoch: u64,
    }

    /// One journal entry on the wire.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct JournalEntryBody {
        /// Position.
        pub seq: u32,
        /// A [`JournalKind`](crate::JournalKind) name: `STEP`, `CREATE_TOKEN`, `WAIT_TOKEN`, ….
        #[cfg_attr(feature = "openapi", schema(value_type = crate::run::JournalKind))]
        pub kind: String,
        /// A step's name, a token's id, a datetime wait's target.
        pub name: String,
        /// The result (`null` is a result); absent for a wait that has not finished.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        pub result: Option<RawJson>,
    }

    /// A field that is present is `Some`, even when it is `null`; an absent one is `None`
    /// (through `#[serde(default)]`).
    fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<RawJson>, D::Error> {
        RawJson::deserialize(deserializer).map(Some)
    }

    /// A run handed to a worker.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "camelCase")]
    pub struct ClaimedRun {
        /// `run_…`.
        pub id: String,
        /// The task.
        pub task_id: String,
        /// The input.
        pub payload: RawJson,
        /// The lease: every call about the run carries it.
        pub epoch: u64,
        /// The attempt.
        pub attempt: u32,
        /// Attempts allowed.
        pub max_attempts: u32,
        /// Entries in the journal; 0 for a fresh run.
        pub journal_length: u32,
        /// When the run resumes from a wait: that wait's entry, with its result.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        pub resumed: Option<JournalEntryBody>,
    }

    /// The answer to a poll.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct PollResponse {
        /// The runs now held by the worker.
        pub runs: Vec<ClaimedRun>,
    }

    /// `GET /api/v1/runs/{id}/journal`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct JournalResponse {
        /// Every entry, in order.
        pub entries: Vec<JournalEntryBody>,
    }

    /// `POST /api/v1/runs/{id}/journal`: record an operation's result.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct RecordRequest {
        /// The lease.
        pub epoch: u64,
        /// The entry.
        pub entry: JournalEntryBody,
    }

    /// The answer to a recorded entry.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct RecordResponse {
        /// The entry as recorded.
        pub entry: JournalEntryBody,
    }

    /// `POST /api/v1/runs/{id}/tokens`: create a token for the run.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct RunTokenRequest {
        /// The lease.
        pub epoch: u64,
        /// The journal position.
        pub seq: u32,
        /// The token's options.
        pub options: CreateTokenRequest,
    }

    /// What to wait for.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields, rename_all = "camelCase", tag = "type")]
    pub enum WaitFor {
        /// A token.
        #[serde(rename = "TOKEN")]
        Token {
            /// `waitpoint_…`.
            id: String,
        },
        /// A point in time.
        #[serde(rename = "DATETIME")]
        Datetime {
            /// When.
            until: Timestamp,
            /// How the code asked (`"until 2030-01-01T00:00:00.000Z"`), compared on replay.
            name: String,
        },
        /// A span of time, from when the server records the wait (by the server's clock, not
        /// the worker's).
        #[serde(rename = "DURATION")]
        Duration {
            /// How long, in milliseconds.
            ms: u64,
            /// How the code asked (`"for 300000ms"`), compared on replay.
            name: String,
        },
        /// Several of the above (not sets): the wait is decided once `needed` of them
        /// completed (`1`: any, their number: all), or once so many timed out that `needed`
        /// no longer can. Its entry is named by [`wait_set_name`](crate::run::wait_set_name).
        #[serde(rename = "SET")]
        Set {
            /// How many must complete.
            needed: u32,
            /// What to wait for, in order: at most [`MAX_SET_WAITS`].
            #[cfg_attr(feature = "openapi", schema(no_recursion))]
            of: Vec<WaitFor>,
        },
    }

    /// The most waitpoints one set wait may wait for.
    pub const MAX_SET_WAITS: usize = 100;

    /// `POST /api/v1/runs/{id}/wait`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct WaitRequest {
        /// The lease.
        pub epoch: u64,
        /// The journal position.
        pub seq: u32,
        /// What to wait for.
        #[serde(rename = "for")]
        pub wait_for: WaitFor,
    }

    /// The answer to a wait: the result at once, or `suspended`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct WaitResponse {
        /// The wait's entry; its `result` is absent when the run suspended.
        pub entry: JournalEntryBody,
        /// True when the run now waits (and holds no slot): it resumes through a later poll.
        pub suspended: bool,
    }

    /// The answer to a token created for a run.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct RunTokenResponse {
        /// The recorded entry.
        pub entry: JournalEntryBody,
        /// The token.
        pub token: CreateTokenResponse,
    }

    /// `POST /api/v1/runs/{id}/attempt/complete`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct CompleteAttemptRequest {
        /// The lease.
        pub epoch: u64,
        /// The output: any JSON value.
        pub output: RawJson,
    }

    /// `POST /api/v1/runs/{id}/attempt/fail`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct FailAttemptRequest {
        /// The lease.
        pub epoch: u64,
        /// Why.
        pub error: RunErrorBody,
        /// Retry after this long if attempts remain; absent for an error retrying cannot fix.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(nullable = false))]
        pub retry_after_ms: Option<u64>,
    }

    /// The most operations one batch may carry.
    pub const MAX_BATCH_OPERATIONS: usize = 1_000;

    /// `POST /api/v1/workers/batch`: the operations of many runs in one request.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct BatchRequest {
        /// At most [`MAX_BATCH_OPERATIONS`]. Operations on one run are applied in this order,
        /// one after the other; operations on different runs are applied concurrently.
        pub operations: Vec<Operation>,
    }

    /// One operation of a batch: what the route of the same name takes, with the run it is
    /// about (the route's path) beside its body's fields.
    ///
    /// Read with [`OperationFields`] rather than serde's tagged enums, which cannot hold the
    /// [`RawJson`] of an output or a recorded result.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(tag = "op", rename_all_fields = "camelCase")]
    pub enum Operation {
        /// `GET /api/v1/runs/{id}/journal`: the journal, to replay.
        #[serde(rename = "journal")]
        Journal {
            /// `run_…`.
            run: String,
        },
        /// `POST /api/v1/runs/{id}/journal`: record an operation's result.
        #[serde(rename = "record")]
        Record {
            /// `run_…`.
            run: String,
            /// The lease.
            epoch: u64,
            /// The entry.
            entry: JournalEntryBody,
        },
        /// `POST /api/v1/runs/{id}/tokens`: create a token for the run.
        #[serde(rename = "createToken")]
        CreateToken {
            /// `run_…`.
            run: String,
            /// The lease.
            epoch: u64,
            /// The journal position.
            seq: u32,
            /// The token's options.
            options: Box<CreateTokenRequest>,
        },
        /// `POST /api/v1/runs/{id}/wait`: wait.
        #[serde(rename = "wait")]
        Wait {
            /// `run_…`.
            run: String,
            /// The lease.
            epoch: u64,
            /// The journal position.
            seq: u32,
            /// What to wait for.
            #[serde(rename = "for")]
            wait_for: WaitFor,
        },
        /// `POST /api/v1/runs/{id}/attempt/complete`: the task returned its output.
        #[serde(rename = "complete")]
        Complete {
            /// `run_…`.
            run: String,
            /// The lease.
            epoch: u64,
            /// The output: any JSON value.
            output: RawJson,
        },
        /// `POST /api/v1/runs/{id}/attempt/fail`: the attempt failed.
        #[serde(rename = "fail")]
        Fail {
            /// `run_…`.
            run: String,
            /// The lease.
            epoch: u64,
            /// Why.
            error: RunErrorBody,
            /// Retry after this long if attempts remain; absent for an error retrying cannot fix.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[cfg_attr(feature = "openapi", schema(nullable = false))]
            retry_after_ms: Option<u64>,
        },
    }

    /// Every field any operation has: what a batch's operation is read as before it is checked
    /// against its `op`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct OperationFields {
        op: String,
        run: String,
        epoch: Option<u64>,
        entry: Option<JournalEntryBody>,
        seq: Option<u32>,
        options: Option<CreateTokenRequest>,
        #[serde(rename = "for")]
        wait_for: Option<WaitFor>,
        #[serde(default, deserialize_with = "present")]
        output: Option<RawJson>,
        error: Option<RunErrorBody>,
        retry_after_ms: Option<u64>,
    }

    /// The names of the `op`s, in the order the documentation lists them.
    const OPS: [&str; 6] = ["journal", "record", "createToken", "wait", "complete", "fail"];

    impl OperationFields {
        /// The operation its `op` names, refusing a field it lacks or one it does not take.
        fn into_operation(self) -> Result<Operation, String> {
            let op = self.op.as_str();
            let takes: &[&str] = match op {
                "journal" => &[],
                "record" => &["epoch", "entry"],
                "createToken" => &["epoch", "seq", "options"],
                "wait" => &["epoch", "seq", "for"],
                "complete" => &["epoch", "output"],
                "fail" => &["epoch", "error", "retryAfterMs"],
                other => return Err(format!("unknown op `{other}`: use one of {}", OPS.join(", "))),
            };
            let given = [
                ("epoch", self.epoch.is_some()),
                ("entry", self.entry.is_some()),
                ("seq", self.seq.is_some()),
                ("options", self.options.is_some()),
                ("for", self.wait_for.is_some()),
                ("output", self.output.is_some()),
                ("error", self.error.is_some()),
                ("retryAfterMs", self.retry_after_ms.is_some()),
            ];
            if let Some((field, _)) = given.iter().find(|(field, present)| *present && !takes.contains(field)) {
                return Err(format!("a `{op}` operation takes no field `{field}`"));
            }
            let needs = |field: &str| format!("a `{op}` operation needs the field `{field}`");
            let run = self.run;
            let epoch = || self.epoch.ok_or_else(|| needs("epoch"));
            let seq = || self.seq.ok_or_else(|| needs("seq"));
            Ok(match op {
                "journal" => Operation::Journal { run },
                "record" => {
                    Operation::Record { run, epoch: epoch()?, entry: self.entry.ok_or_else(|| needs("entry"))? }
                }
                "createToken" => Operation::CreateToken {
                    run,
                    epoch: epoch()?,
                    seq: seq()?,
                    options: Box::new(self.options.ok_or_else(|| needs("options"))?),
                },
                "wait" => Operation::Wait {
                    run,
                    epoch: epoch()?,
                    seq: seq()?,
                    wait_for: self.wait_for.ok_or_else(|| needs("for"))?,
                },
                "complete" => {
                    Operation::Complete { run, epoch: epoch()?, output: self.output.ok_or_else(|| needs("output"))? }
                }
                _ => Operation::Fail {
                    run,
                    epoch: epoch()?,
                    error: self.error.ok_or_else(|| needs("error"))?,
                    retry_after_ms: self.retry_after_ms,
                },
            })
        }
    }

    impl<'de> Deserialize<'de> for Operation {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            OperationFields::deserialize(deserializer)?.into_operation().map_err(serde::de::Error::custom)
        }
    }

    impl Operation {
        /// The run the operation is about.
        pub fn run(&self) -> &str {
            match self {
                Self::Journal { run }
                | Self::Record { run, .. }
                | Self::CreateToken { run, .. }
                | Self::Wait { run, .. }
                | Self::Complete { run, .. }
                | Self::Fail { run, .. } => run,
            }
        }
    }

    /// The answer to a batch: one per operation, in the operations' order.
    #[derive(Debug, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct BatchResponse {
        /// The answers.
        pub answers: Vec<Answer>,
    }

    /// What the operation's own route would have answered: its status and its body (the
    /// route's answer, or `{"error", "code"?}`).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct Answer {
        /// The HTTP status the route would have answered with.
        pub status: u16,
        /// The body it would have answered with.
        pub body: RawJson,
    }
}

#[cfg(test)]
mod tests {
    use super::worker::JournalEntryBody;
    use super::*;

    #[test]
    fn a_null_result_is_a_result_and_an_absent_one_is_not() {
        let null: JournalEntryBody =
            serde_json::from_str(r#"{"seq":0,"kind":"STEP","name":"s","result":null}"#).unwrap();
        assert_eq!(null.result, Some(crate::RawJson::null()));
        assert_eq!(serde_json::to_string(&null).unwrap(), r#"{"seq":0,"kind":"STEP","name":"s","result":null}"#);
        let pending: JournalEntryBody = serde_json::from_str(r#"{"seq":1,"kind":"WAIT_TOKEN","name":"w"}"#).unwrap();
        assert_eq!(pending.result, None);
    }

    /// Regression: worker protocol bodies ignored fields they did not know.
    #[test]
    fn protocol_requests_refuse_fields_they_do_not_know() {
        use super::worker::{PollRequest, RecordRequest, WaitRequest};
        let poll = serde_json::from_str::<PollRequest>(r#"{"tasks":[],"waitMs":0,"holding":[],"leave":true}"#);
        assert!(poll.unwrap_err().to_string().contains("unknown field `leave`"));
        let slots =
            serde_json::from_str::<PollRequest>(r#"{"tasks":[{"id":"t","slots":1,"max":2}],"waitMs":0,"holding":[]}"#);
        assert!(slots.unwrap_err().to_string().contains("unknown field `max`"));
        let entry = r#"{"epoch":1,"entry":{"seq":0,"kind":"STEP","name":"s","result":1,"extra":0}}"#;
        assert!(
            serde_json::from_str::<RecordRequest>(entry).unwrap_err().to_string().contains("unknown field `extra`")
        );
        let wait = r#"{"epoch":1,"seq":0,"for":{"type":"TOKEN","id":"waitpoint_c1","until":"2030-01-01"}}"#;
        assert!(serde_json::from_str::<WaitRequest>(wait).unwrap_err().to_string().contains("unknown field `until`"));
        let fine = r#"{"epoch":1,"seq":0,"for":{"type":"DURATION","ms":5,"name":"for 5ms"}}"#;
        serde_json::from_str::<WaitRequest>(fine).unwrap();
    }

    #[test]
    fn a_batch_operation_takes_exactly_the_fields_of_its_op() {
        use super::worker::Operation;
        let read = |json: &str| serde_json::from_str::<Operation>(json).map_err(|e| e.to_string());
        let complete = read(r#"{"op":"complete","run":"run_a","epoch":2,"output":{"b":1,"a":[1.50]}}"#).unwrap();
        let Operation::Complete { output, .. } = &complete else { panic!("{complete:?}") };
        assert_eq!(output.get(), r#"{"b":1,"a":[1.50]}"#, "an output is kept as sent");
        let null = read(r#"{"op":"complete","run":"run_a","epoch":2,"output":null}"#).unwrap();
        assert!(matches!(null, Operation::Complete { output, .. } if output.get() == "null"), "null is an output");
        let record =
            r#"{"op":"record","run":"run_a","epoch":1,"entry":{"seq":0,"kind":"STEP","name":"s","result":[1]}}"#;
        let Operation::Record { entry, .. } = read(record).unwrap() else { panic!() };
        assert_eq!(entry.result.unwrap().get(), "[1]");
        let fail = read(r#"{"op":"fail","run":"run_a","epoch":1,"error":{"name":"E","message":"m"}}"#).unwrap();
        assert!(matches!(fail, Operation::Fail { retry_after_ms: None, .. }));
        assert_eq!(
            serde_json::to_string(&complete).unwrap(),
            r#"{"op":"complete","run":"run_a","epoch":2,"output":{"b":1,"a":[1.50]}}"#
        );

        assert!(read(r#"{"op":"complete","run":"run_a","epoch":2}"#).unwrap_err().contains("needs the field `output`"));
        assert!(read(r#"{"op":"journal","run":"run_a","epoch":2}"#).unwrap_err().contains("takes no field `epoch`"));
        assert!(read(r#"{"op":"erase","run":"run_a"}"#).unwrap_err().contains("unknown op `erase`"));
        assert!(read(r#"{"op":"journal","run":"run_a","extra":1}"#).unwrap_err().contains("unknown field `extra`"));
        assert!(read(r#"{"op":"journal"}"#).unwrap_err().contains("missing field `run`"));
    }

    #[test]
    fn optional_fields_are_omitted_never_null() {
        let item = TokenItem {
            id: "waitpoint_c1".into(),
            url: "http://x/cb".into(),
            status: WaitpointStatus::Waiting,
            outcome: None,
            completed_at: None,
            timeout_at: None,
            completed_after: None,
            idempotency_key: None,
            idempotency_key_expires_at: None,
            tags: vec![],
            created_at: Timestamp::from_millis(0),
        };
        let page = Page { data: vec![item], pagination: Pagination::default() };
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"data":[{"id":"waitpoint_c1","url":"http://x/cb","status":"WAITING","tags":[],"createdAt":"1970-01-01T00:00:00.000Z"}],"pagination":{}}"#
        );
        let request = CreateTokenRequest { idempotency_key_ttl: Some("1h".into()), ..Default::default() };
        assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"idempotencyKeyTTL":"1h"}"#);
    }

    #[test]
    fn the_token_request_builder_writes_what_the_spec_writes() {
        let request = CreateTokenRequest::new()
            .timeout("30s")
            .tags(["a", "b"])
            .idempotency_key(String::from("k"))
            .idempotency_key_ttl(std::time::Duration::from_secs(3_600));
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"timeout":"30s","idempotencyKey":"k","idempotencyKeyTTL":"3600s","tags":["a","b"]}"#
        );
        assert_eq!(CreateTokenRequest::new(), CreateTokenRequest::default());
        let page = crate::approval::Approval { title: Some("Publish?".into()), ..Default::default() };
        let with_page = CreateTokenRequest::new().approval(page);
        assert_eq!(serde_json::to_string(&with_page).unwrap(), r#"{"approval":{"title":"Publish?"}}"#);
        let at = Timestamp::from_millis(1_743_501_600_000);
        assert_eq!(CreateTokenRequest::new().timeout(at).timeout.as_deref(), Some("2025-04-01T10:00:00.000Z"));
        let rounded = CreateTokenRequest::new().timeout(std::time::Duration::from_millis(1));
        assert_eq!(rounded.timeout.as_deref(), Some("1s"), "a part of a second rounds up, never to zero");
    }
}
