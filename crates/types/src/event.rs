//! The durable event log: what happened to an environment's tokens and runs, in commit order.
//! Each event is written in the same transaction as the change it tells of (an outbox), so the
//! log holds no event of a change that did not commit and loses none of one that did. The
//! stream API and outbound webhooks read it from a position (`seq`) onward.

use std::fmt;

use crate::id::EnvironmentId;
use crate::run::{Run, RunStatus};
use crate::time::Timestamp;
use crate::waitpoint::{Waitpoint, WaitpointKind, WaitpointStatus};

/// What an event tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A token was created (not found by its idempotency key).
    WaitpointCreated,
    /// A token was completed.
    WaitpointCompleted,
    /// A token timed out (its deadline, a missed heartbeat, or forced).
    WaitpointTimedOut,
    /// A token was rejected.
    WaitpointRejected,
    /// A run finished with an output.
    RunCompleted,
    /// A run failed after its last attempt.
    RunFailed,
    /// A run was canceled.
    RunCanceled,
}

impl EventKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [EventKind; 7] = [
        Self::WaitpointCreated,
        Self::WaitpointCompleted,
        Self::WaitpointTimedOut,
        Self::WaitpointRejected,
        Self::RunCompleted,
        Self::RunFailed,
        Self::RunCanceled,
    ];

    /// `waitpoint.created`, `waitpoint.completed`, `waitpoint.timed_out`,
    /// `waitpoint.rejected`, `run.completed`, `run.failed` or `run.canceled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WaitpointCreated => "waitpoint.created",
            Self::WaitpointCompleted => "waitpoint.completed",
            Self::WaitpointTimedOut => "waitpoint.timed_out",
            Self::WaitpointRejected => "waitpoint.rejected",
            Self::RunCompleted => "run.completed",
            Self::RunFailed => "run.failed",
            Self::RunCanceled => "run.canceled",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to append to the log (its position is given when it is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The environment it happened in.
    pub environment_id: EnvironmentId,
    /// What happened.
    pub kind: EventKind,
    /// The token's or run's public id.
    pub subject: String,
    /// The subject's tags, for filtering.
    pub tags: Vec<String>,
    /// What a reader needs without another call, a JSON object: the subject's id and status,
    /// and how and when it finished.
    pub data: serde_json::Value,
    /// When it happened.
    pub at: Timestamp,
}

impl NewEvent {
    /// The event of a token that was just created or finished; `None` for a datetime
    /// waitpoint (a run's wait, which the run's own events tell of) or one still waiting that
    /// was not just `created`.
    pub fn of_waitpoint(waitpoint: &Waitpoint, created: bool) -> Option<Self> {
        if waitpoint.kind != WaitpointKind::Manual {
            return None;
        }
        let status = waitpoint.status();
        let kind = match (created, status) {
            (true, _) => EventKind::WaitpointCreated,
            (false, WaitpointStatus::Waiting) => return None,
            (false, WaitpointStatus::Completed) => EventKind::WaitpointCompleted,
            (false, WaitpointStatus::TimedOut) => EventKind::WaitpointTimedOut,
            (false, WaitpointStatus::Rejected) => EventKind::WaitpointRejected,
        };
        let mut data = serde_json::json!({ "id": waitpoint.id.public(), "status": status.as_str() });
        if let Some(via) = waitpoint.completed_via_name() {
            data["completedVia"] = via.into();
        }
        if let Some(at) = waitpoint.completed_at() {
            data["completedAt"] = at.to_string().into();
        }
        Some(Self {
            environment_id: waitpoint.environment_id.clone(),
            kind,
            subject: waitpoint.id.public(),
            tags: waitpoint.tags.clone(),
            data,
            at: waitpoint.completed_at().unwrap_or(waitpoint.created_at),
        })
    }

    /// The event of a run that just ended; `None` when it has not (a retried attempt).
    pub fn of_run(run: &Run) -> Option<Self> {
        let at = run.finished_at()?;
        let status = run.status(at);
        let kind = match status {
            RunStatus::Completed => EventKind::RunCompleted,
            RunStatus::Failed => EventKind::RunFailed,
            RunStatus::Canceled => EventKind::RunCanceled,
            _ => return None,
        };
        let data = serde_json::json!({
            "id": run.id.public(),
            "taskIdentifier": run.task_id,
            "status": status.as_str(),
        });
        Some(Self {
            environment_id: run.environment_id.clone(),
            kind,
            subject: run.id.public(),
            tags: run.tags.clone(),
            data,
            at,
        })
    }
}

/// An event as the log holds it. Serialized as the event stream sends it and a webhook
/// delivery carries it: `{"seq", "type", "subject", "tags", "createdAt", "data"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its position in the log: increasing in commit order, across environments.
    pub seq: u64,
    /// What was appended.
    pub event: NewEvent,
}

impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            seq: u64,
            #[serde(rename = "type")]
            kind: &'a str,
            subject: &'a str,
            tags: &'a [String],
            created_at: Timestamp,
            data: &'a serde_json::Value,
        }
        Wire {
            seq: self.seq,
            kind: self.event.kind.as_str(),
            subject: &self.event.subject,
            tags: &self.event.tags,
            created_at: self.event.at,
            data: &self.event.data,
        }
        .serialize(serializer)
    }
}
