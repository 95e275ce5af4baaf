//! Retention: which finished records a purge deletes ([`Store::retention_purge`]).
//!
//! The rule is stated once, on [`Purge`]; each backend applies it in SQL, and the conformance
//! suite checks both against it.
//!
//! [`Store::retention_purge`]: crate::Store::retention_purge

use waitpoint_types::Timestamp;

/// A purge of the records that finished before `finished_before`.
///
/// A **waitpoint** (a token, or the datetime waitpoint of a run's wait) is deleted, with its
/// tags, when all of these hold:
/// 1. it finished (completed or timed out) before `finished_before`;
/// 2. it holds no idempotency key that is still active at `now`: a create with the same key
///    returns the token while `now <= idempotency_key_expires_at`, so it stays until then, and a
///    key without expiry keeps its token for good (a key moved to `inactive_idempotency_key`
///    protects nothing);
/// 3. no run that has not finished refers to it: none waits on it, and no journal of such a run
///    holds a `CREATE_TOKEN` entry (a replay reads the token back) or a `WAIT_TOKEN` entry that
///    names it.
///
/// A **run** is deleted, with its journal and its tags, when it finished (completed, failed or
/// canceled) before `finished_before` and holds no idempotency key still active at `now` (as
/// rule 2).
///
/// A datetime waitpoint finishes when its run's wait ends, before the run does, and nothing
/// reads it afterwards (the journal holds the wait's result): it goes by the same rule, never
/// later than its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purge {
    /// Records that finished strictly before this instant may go.
    pub finished_before: Timestamp,
    /// The current time, at which idempotency keys are judged active or expired.
    pub now: Timestamp,
    /// The most waitpoints, and the most runs, one call deletes.
    pub limit: usize,
}

/// What a purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Waitpoints: tokens and datetime waitpoints.
    pub waitpoints: u64,
    /// Runs.
    pub runs: u64,
    /// Journal entries of the runs deleted.
    pub journal_entries: u64,
    /// Events of the log, deleted apart ([`Store::events_purge`](crate::Store::events_purge));
    /// a retention purge leaves this at 0.
    pub events: u64,
}

impl Purged {
    /// Whether a call with `limit` deleted as many as it could of either kind, so that more may
    /// be due.
    pub fn was_full(&self, limit: usize) -> bool {
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        self.waitpoints >= limit || self.runs >= limit
    }

    /// Whether nothing was deleted.
    pub fn is_empty(&self) -> bool {
        self.waitpoints == 0 && self.runs == 0 && self.events == 0
    }
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Self) {
        self.waitpoints += other.waitpoints;
        self.runs += other.runs;
        self.journal_entries += other.journal_entries;
        self.events += other.events;
    }
}
