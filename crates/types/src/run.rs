//! A task run, its state machine and its journal.
//!
//! ```text
//!              trigger                claim                 wait on pending waitpoints
//!   (new) ───────────────▶ QUEUED ─────────────▶ EXECUTING ─────────────────────────────▶ WAITING
//!                   (DELAYED until   ▲  ▲          │    │                                  │
//!                    available_at)   │  │ retry    │    ├──▶ COMPLETED                     │
//!                                    │  └──────────┘    └──▶ FAILED (attempts used up)     │
//!                                    └────────── the wait is decided (resume) ────────────┘
//!   QUEUED | EXECUTING | WAITING ──cancel──▶ CANCELED
//! ```
//!
//! A run waits on one waitpoint (a token, a point in time) or on a set of them, for any, all
//! or k of them to complete; the wait is decided by the transaction that finishes the
//! waitpoint deciding it, and the run resumes once.
//!
//! A run's journal records, in order, every operation its code performed through the run
//! context (steps, tokens, waits) with its result. A run that resumes on another worker, or
//! after a crash, replays its code against the journal: recorded operations return their
//! recorded results, and execution continues live from the first unrecorded one.

use std::fmt;

use crate::id::{EnvironmentId, RunId, WaitpointId, WorkerId};
use crate::time::Timestamp;

/// A run's status as the API reports it (`QUEUED`, … on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Queued, but not before a later time (a `delay`, or a retry's backoff).
    Delayed,
    /// A worker is running it.
    Executing,
    /// Suspended until a waitpoint finishes; holds no worker and no concurrency slot.
    Waiting,
    /// Finished with an output.
    Completed,
    /// Finished with an error, after its last attempt.
    Failed,
    /// Canceled before it finished.
    Canceled,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 7] =
        [Self::Queued, Self::Delayed, Self::Executing, Self::Waiting, Self::Completed, Self::Failed, Self::Canceled];

    /// The API's name: `QUEUED`, `DELAYED`, `EXECUTING`, `WAITING`, `COMPLETED`, `FAILED`, `CANCELED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Delayed => "DELAYED",
            Self::Executing => "EXECUTING",
            Self::Waiting => "WAITING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Canceled => "CANCELED",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the run will not change any more.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run (or an attempt) failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunError {
    /// What kind of failure: `TaskError` (the task returned an error), `Panic`,
    /// `NonDeterminism` (replay diverged from the journal), `TaskNotFound`, ….
    pub name: String,
    /// What happened.
    pub message: String,
}

impl RunError {
    /// An error of kind `name`.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self { name: name.into(), message: message.into() }
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Ready for a worker from `available_at` on.
    Queued {
        /// When a worker may take it.
        available_at: Timestamp,
    },
    /// Held by a worker (whose lease is the run's `epoch`).
    Executing {
        /// The worker.
        worker: WorkerId,
    },
    /// Suspended on the wait at journal position `seq`, whose waitpoints the store keeps in
    /// order (a token or datetime wait has one; a set wait several). It resumes once `needed`
    /// of them completed, or once so many timed out that `needed` no longer can; the result
    /// becomes entry `seq`'s.
    Waiting {
        /// The journal position of the wait.
        seq: u32,
        /// How many of its waitpoints must complete.
        needed: u32,
    },
    /// Finished with `output` (JSON text).
    Completed {
        /// When.
        at: Timestamp,
        /// The task's output, as JSON text.
        output: String,
    },
    /// Finished with an error after its last attempt.
    Failed {
        /// When.
        at: Timestamp,
        /// The last attempt's error.
        error: RunError,
    },
    /// Canceled.
    Canceled {
        /// When.
        at: Timestamp,
    },
}

/// What a `CREATE_TOKEN` journal entry records: the token, and whether an active idempotency
/// key found it rather than a new one being made. Serialized only where the journal is stored
/// and sent (`{"id": "waitpoint_…", "isCached": false}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCreated {
    /// The token's public id.
    pub id: String,
    /// True when an active idempotency key found an existing token.
    pub is_cached: bool,
}

impl TokenCreated {
    /// The entry's result for `token`.
    pub fn new(token: &WaitpointId, is_cached: bool) -> Self {
        Self { id: token.public(), is_cached }
    }

    /// The result as the journal stores it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The inverse of [`to_json`](Self::to_json); `None` for text that is not such a result.
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The token's id; `None` if the recorded id is not one.
    pub fn token(&self) -> Option<WaitpointId> {
        WaitpointId::parse(&self.id).ok()
    }
}

/// A task run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// The environment it belongs to.
    pub environment_id: EnvironmentId,
    /// The task it runs.
    pub task_id: String,
    /// The payload, as JSON text.
    pub payload: String,
    /// Where it is in its life.
    pub state: RunState,
    /// The current attempt: 0 before a worker first took it, then 1, 2, … as failed attempts
    /// are retried.
    pub attempt: u32,
    /// Attempts allowed before the run fails.
    pub max_attempts: u32,
    /// Incremented each time a worker takes the run; calls carrying an older epoch are refused,
    /// so a worker that lost the run (it was presumed dead) cannot change it.
    pub epoch: u64,
    /// The worker that last suspended the run; when it resumes, that worker is offered it first
    /// and continues it in memory, without replay.
    pub sticky_worker: Option<WorkerId>,
    /// Tags exactly as given.
    pub tags: Vec<String>,
    /// The caller's idempotency key while it is active.
    pub idempotency_key: Option<String>,
    /// The caller's idempotency key after it expired and a new run took it over.
    pub inactive_idempotency_key: Option<String>,
    /// When the idempotency key stops returning this run.
    pub idempotency_key_expires_at: Option<Timestamp>,
    /// When it was triggered.
    pub created_at: Timestamp,
    /// When a worker first took it.
    pub started_at: Option<Timestamp>,
    /// When its state last changed.
    pub updated_at: Timestamp,
}

impl Run {
    /// The status the API reports at `now`.
    pub fn status(&self, now: Timestamp) -> RunStatus {
        match &self.state {
            RunState::Queued { available_at } if *available_at > now => RunStatus::Delayed,
            RunState::Queued { .. } => RunStatus::Queued,
            RunState::Executing { .. } => RunStatus::Executing,
            RunState::Waiting { .. } => RunStatus::Waiting,
            RunState::Completed { .. } => RunStatus::Completed,
            RunState::Failed { .. } => RunStatus::Failed,
            RunState::Canceled { .. } => RunStatus::Canceled,
        }
    }

    /// When it finished, if it did.
    pub fn finished_at(&self) -> Option<Timestamp> {
        match &self.state {
            RunState::Completed { at, .. } | RunState::Failed { at, .. } | RunState::Canceled { at } => Some(*at),
            _ => None,
        }
    }

    /// The idempotency key the caller gave, active or not.
    pub fn user_idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref().or(self.inactive_idempotency_key.as_deref())
    }
}

/// What a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JournalKind {
    /// A `step`: a side effect whose result is recorded.
    Step,
    /// A token created by the run.
    CreateToken,
    /// A wait for a token.
    WaitToken,
    /// A wait for a point in time.
    WaitDatetime,
    /// A wait for several waitpoints (tokens and points in time): any, all, or k of them.
    WaitSet,
    /// A token completed by the run.
    CompleteToken,
    /// A token retrieved by the run.
    RetrieveToken,
    /// A page of tokens listed by the run.
    ListTokens,
    /// The time, read once by the run (`ctx.now()`): on replay the same instant.
    Now,
    /// A random value made by the run (`ctx.random()`, `ctx.uuid()`): on replay the same value.
    Random,
}

impl JournalKind {
    /// Every kind.
    pub const ALL: [JournalKind; 10] = [
        Self::Step,
        Self::CreateToken,
        Self::WaitToken,
        Self::WaitDatetime,
        Self::WaitSet,
        Self::CompleteToken,
        Self::RetrieveToken,
        Self::ListTokens,
        Self::Now,
        Self::Random,
    ];

    /// `STEP`, `CREATE_TOKEN`, `WAIT_TOKEN`, `WAIT_DATETIME`, `WAIT_SET`, `COMPLETE_TOKEN`,
    /// `RETRIEVE_TOKEN`, `LIST_TOKENS`, `NOW`, `RANDOM`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Step => "STEP",
            Self::CreateToken => "CREATE_TOKEN",
            Self::WaitToken => "WAIT_TOKEN",
            Self::WaitDatetime => "WAIT_DATETIME",
            Self::WaitSet => "WAIT_SET",
            Self::CompleteToken => "COMPLETE_TOKEN",
            Self::RetrieveToken => "RETRIEVE_TOKEN",
            Self::ListTokens => "LIST_TOKENS",
            Self::Now => "NOW",
            Self::Random => "RANDOM",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether an entry of this kind is a wait (whose result may come later).
    pub const fn is_wait(self) -> bool {
        matches!(self, Self::WaitToken | Self::WaitDatetime | Self::WaitSet)
    }
}

/// The journal name of a wait for `needed` of `count` waitpoints: `any of 3`, `all of 3`, or
/// `2 of 3`. Replay compares it: the condition is part of the operation, the waitpoints are
/// what it recorded (as a datetime wait's instant is).
pub fn wait_set_name(needed: u32, count: usize) -> String {
    match needed {
        1 if count > 1 => format!("any of {count}"),
        needed if usize::try_from(needed).is_ok_and(|needed| needed == count) => format!("all of {count}"),
        needed => format!("{needed} of {count}"),
    }
}

impl fmt::Display for JournalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded operation of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Its position, from 0, in the order the run's code performed the operations.
    pub seq: u32,
    /// What it was.
    pub kind: JournalKind,
    /// Which: a step's name, a waited or completed token's id, a datetime wait's target.
    /// Replay compares it, with the kind, to detect code that no longer matches the journal.
    pub name: String,
    /// The result, as JSON text; `None` for a wait that has not finished yet.
    pub result: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_run_is_delayed_until_it_is_available() {
        let at = Timestamp::from_millis(1_000);
        let run = Run {
            id: RunId::parse("run_c1").unwrap(),
            environment_id: EnvironmentId::parse("env_c1").unwrap(),
            task_id: "t".into(),
            payload: "{}".into(),
            state: RunState::Queued { available_at: at },
            attempt: 0,
            max_attempts: 3,
            epoch: 0,
            sticky_worker: None,
            tags: vec![],
            idempotency_key: None,
            inactive_idempotency_key: Some("k".into()),
            idempotency_key_expires_at: None,
            created_at: at,
            started_at: None,
            updated_at: at,
        };
        assert_eq!(run.status(Timestamp::from_millis(999)), RunStatus::Delayed);
        assert_eq!(run.status(at), RunStatus::Queued);
        assert_eq!(run.user_idempotency_key(), Some("k"));
        assert!(!RunStatus::Waiting.is_final() && RunStatus::Canceled.is_final());
        assert_eq!(RunStatus::parse("WAITING"), Some(RunStatus::Waiting));
        assert_eq!(JournalKind::parse("WAIT_TOKEN"), Some(JournalKind::WaitToken));
        assert_eq!(JournalKind::parse("WAIT_SET"), Some(JournalKind::WaitSet));
    }

    #[test]
    fn set_waits_are_named_by_their_condition() {
        assert_eq!(wait_set_name(1, 3), "any of 3");
        assert_eq!(wait_set_name(3, 3), "all of 3");
        assert_eq!(wait_set_name(2, 3), "2 of 3");
        assert_eq!(wait_set_name(1, 1), "all of 1");
    }
}
