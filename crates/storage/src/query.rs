//! What reads ask for and answer: filters and keyset cursors of lists, and a run's journal.

use waitpoint_types::{EnvironmentId, JournalEntry, RunStatus, Timestamp, WaitpointStatus};

/// Where a list page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// The newest waitpoints.
    Newest,
    /// Waitpoints with an internal id smaller (older) than this one, newest first.
    After(String),
    /// Waitpoints with an internal id greater (newer) than this one, oldest first.
    Before(String),
}

/// The part of a list every list has: which ids, where to start, how many rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Only internal ids at or above this one. Ids begin with their creation time
    /// (`waitpoint_types::id::internal_floor`), so the engine turns creation-date filters into
    /// id bounds, which every index on ids can serve.
    pub id_at_least: Option<String>,
    /// Only internal ids below this one.
    pub id_below: Option<String>,
    /// Where to start.
    pub cursor: Cursor,
    /// How many rows at most.
    pub limit: usize,
}

impl Window {
    /// The newest `limit` rows, unbounded.
    pub fn newest(limit: usize) -> Self {
        Self { id_at_least: None, id_below: None, cursor: Cursor::Newest, limit }
    }
}

/// A filtered, keyset-paginated list of one environment's waitpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Whose waitpoints.
    pub environment_id: EnvironmentId,
    /// Any of these statuses; empty means all.
    pub statuses: Vec<WaitpointStatus>,
    /// The caller's idempotency key, active or inactive.
    pub idempotency_key: Option<String>,
    /// Any of these tags; empty means no tag filter.
    pub tags: Vec<String>,
    /// Which page.
    pub window: Window,
}

/// A filtered, keyset-paginated list of one environment's runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunListQuery {
    /// Whose runs.
    pub environment_id: EnvironmentId,
    /// Any of these statuses; empty means all. `QUEUED` and `DELAYED` are told apart at `now`.
    pub statuses: Vec<RunStatus>,
    /// Any of these tasks; empty means all.
    pub task_ids: Vec<String>,
    /// The caller's idempotency key, active or inactive.
    pub idempotency_key: Option<String>,
    /// Any of these tags; empty means no tag filter.
    pub tags: Vec<String>,
    /// Which page.
    pub window: Window,
    /// The time that tells `QUEUED` from `DELAYED`.
    pub now: Timestamp,
}

/// A run's journal as [`Store::run_journals`](crate::Store::run_journals) reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunJournal {
    /// The run's environment: a caller of another one sees no such run.
    pub environment_id: EnvironmentId,
    /// Its entries in order (`seq` 0, 1, …).
    pub entries: Vec<JournalEntry>,
}
