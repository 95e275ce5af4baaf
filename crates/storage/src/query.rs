//! Filters and keyset cursors of lists.

use waitpoint_types::{EnvironmentId, RunStatus, Timestamp, WaitpointStatus};

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
    /// Only internal ids at or above this one (see [`ListQuery::id_at_least`]).
    pub id_at_least: Option<String>,
    /// Only internal ids below this one.
    pub id_below: Option<String>,
    /// Where to start.
    pub cursor: Cursor,
    /// How many rows at most.
    pub limit: usize,
    /// The time that tells `QUEUED` from `DELAYED`.
    pub now: Timestamp,
}
