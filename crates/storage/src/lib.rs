//! The storage contract of waitpoint.
//!
//! [`Store`] is the one trait every backend implements (SQLite, PostgreSQL). It speaks in
//! domain types from `waitpoint-types`; SQL never leaves a backend. Every write goes through
//! [`Store::write_batch`], which applies many operations in one transaction and one disk
//! sync: that is how the engine does group commit.
//!
//! # Layout
//! - [`Store`]: the trait, with its contract on each method.
//! - [`ops`]: the batched write operations ([`WriteOp`]) and what each did ([`WriteOutcome`]).
//! - [`query`]: filters and keyset cursors of lists.
//! - [`transitions`]: what a waitpoint or run becomes, as pure functions both backends use.
//! - [`retention`]: which finished records a purge deletes ([`Purge`] states the rule).
//! - [`upkeep`]: what a backend tidies that its database does not ([`Upkeep`]).
//! - [`wakeups`]: what a committed batch wakes on the nodes sharing the database ([`Wakeup`]).
//! - [`StorageError`]: the one error type; backends map "no row" to `NotFound` and unique
//!   violations to `Conflict`.
//! - `conformance` (feature `conformance`): the test suite every backend runs.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod events;
pub mod ops;
pub mod query;
pub mod retention;
pub mod schema;
pub mod transitions;
pub mod upkeep;
pub mod wakeups;

use std::fmt;

use waitpoint_types::WebhookId;
use waitpoint_types::event::{Event, EventKind};
use waitpoint_types::webhook::{Delivery, Webhook};
use waitpoint_types::{Environment, EnvironmentId, Run, RunId, Secret, Timestamp, Waitpoint, WaitpointId, WorkerId};

pub use crate::ops::{
    Claim, ClaimOutcome, CreateOutcome, Finish, FinishOutcome, Finishing, HeldRun, JournalOutcome, LeaseRefusal,
    Prolong, ProlongOutcome, ProlongRefusal, Prolonging, Resumed, RunClaim, RunCreateOutcome, RunCreateToken,
    RunEndOutcome, RunFinish, RunOutcome, RunRecord, RunWait, RunsRelease, Slots, Takers, WorkerOutcome, WorkerSeen,
    WriteOp, WriteOutcome,
};
pub use crate::query::{Cursor, ListQuery, RunJournal, RunListQuery, Window};
pub use crate::retention::{Purge, Purged};
pub use crate::upkeep::Upkeep;
pub use crate::wakeups::{BatchWake, Wakeup, WakeupStream};

/// Result of a storage call.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint would be violated (for example an environment name in use).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed or could not be reached. Nothing was acknowledged.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database holds something this version cannot read.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl StorageError {
    /// Wraps a backend's error.
    pub fn database(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Database(Box::new(error))
    }
}

/// Where a database's schema is: the newest migration applied to it, and the newest this build
/// knows. A database migrated by a newer build has `applied > known`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersions {
    /// The newest migration applied to the database.
    pub applied: i64,
    /// The newest migration this build has.
    pub known: i64,
}

/// The storage of waitpoint.
///
/// Every method is safe to call concurrently. A successful write is durable: on disk (synced)
/// before the call returns. Callers never pass text containing NUL characters (the engine
/// rejects them at the edge); a backend may refuse such text.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The backend's name for logs: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The schema version the database is at (read from it, so this also shows it is reachable)
    /// and the newest one this build knows.
    async fn schema_versions(&self) -> Result<SchemaVersions>;

    /// How many [`write_batch`](Self::write_batch) calls are worth running at once: 1 for a
    /// single-writer database, more where concurrent transactions help.
    fn write_concurrency(&self) -> usize;

    /// Applies `ops` in order, atomically and durably, and says what each did.
    ///
    /// Later operations see the effects of earlier ones in the same batch. An outcome such as
    /// [`FinishOutcome::NotFound`] does not affect the other operations; an `Err` means nothing
    /// of the batch was written.
    ///
    /// Create: when the waitpoint has an idempotency key and the environment has a waitpoint
    /// whose active key is the same and unexpired at the new one's `created_at`
    /// (`created_at <= idempotency_key_expires_at`, or no expiry), the outcome is
    /// [`CreateOutcome::Existing`]. An expired match is deactivated (its key moves to
    /// `inactive_idempotency_key`) and the new waitpoint is created.
    ///
    /// Finish: applies only to a `WAITING` waitpoint, and a deadline only once it is due.
    /// Every run whose wait it decides ([`transitions::wait_decided`]) resumes in the same
    /// transaction, once, however many of its waitpoints finish in the batch.
    ///
    /// The run operations are documented on their types in [`ops`].
    ///
    /// Every operation's event ([`events::of_outcome`]) is appended to the event log in the
    /// same transaction, in the order of the operations; positions grow in commit order, so a
    /// reader that has seen position `n` never later finds an event before it.
    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>>;

    /// Subscribes to the wake-ups of batches committed through every node that shares the
    /// database, this one included: for each batch that wakes something ([`BatchWake`]), its
    /// wake-ups, in commit order; first, and again after a lost subscription is restored,
    /// [`Wakeup::Reconcile`]. `None` when the backend has no other nodes to hear from (a database
    /// one process owns) or is set to let nodes find each other's changes by polling.
    ///
    /// Each call subscribes anew; the subscription ends when the stream is dropped. A wake-up may
    /// be one too many, and while the subscription is lost some are missed: callers keep looking
    /// on their own from time to time.
    fn wakeups(&self) -> Option<WakeupStream>;

    /// The events of `environment_id` after position `after`, oldest first, at most `limit`,
    /// only of `kinds` unless it is empty.
    async fn events_after(
        &self,
        environment_id: &EnvironmentId,
        after: u64,
        kinds: &[EventKind],
        limit: usize,
    ) -> Result<Vec<Event>>;

    /// The position of the newest event of any environment; 0 when the log is empty.
    async fn events_head(&self) -> Result<u64>;

    /// Deletes, among the `limit` oldest entries of the log, those appended before `before`,
    /// and says how many events went. An entry is an event, or a batch's events where a backend
    /// stores them together (so a call may delete more than `limit` events). The log is appended
    /// in time order, so a call that deleted fewer than `limit` events found no more that old.
    async fn events_purge(&self, before: Timestamp, limit: usize) -> Result<u64>;

    /// Stores a new webhook subscription.
    async fn webhook_create(&self, webhook: &Webhook) -> Result<()>;

    /// The webhooks of `environment_id`, oldest first; of every environment when `None`.
    async fn webhook_list(&self, environment_id: Option<&EnvironmentId>) -> Result<Vec<Webhook>>;

    /// Deletes webhook `id` of `environment_id`: [`StorageError::NotFound`] when there is none.
    async fn webhook_delete(&self, environment_id: &EnvironmentId, id: &WebhookId) -> Result<()>;

    /// Records how far delivery of webhook `id` got (nothing happens if it was deleted).
    async fn webhook_delivered(&self, id: &WebhookId, delivery: &Delivery) -> Result<()>;

    /// Deletes what retention no longer keeps (the rule is on [`Purge`]): up to `purge.limit`
    /// waitpoints and up to `purge.limit` runs, the earliest finished first, in one short
    /// transaction, and says how many went. Lists, counts and reads see none of them afterwards.
    ///
    /// A call that deleted fewer than `limit` of both kinds found nothing more it could delete
    /// ([`Purged::was_full`]). A backend with concurrent writers may pass over a record another
    /// transaction holds at that moment; a later call takes it.
    async fn retention_purge(&self, purge: &Purge) -> Result<Purged>;

    /// Tidies what the database keeps of changed and deleted rows where the database does not
    /// do so itself, and says what it did; cheap when there is nothing to do (the engine calls
    /// it every few seconds). PostgreSQL vacuums and analyzes this store's tables that
    /// autovacuum does not cover once enough of their rows changed: without it, the dead
    /// versions of queued runs pile up in the queue's index and every claim walks them. SQLite
    /// changes rows in place and has nothing to do.
    async fn upkeep(&self) -> Result<Upkeep>;

    /// Reads one waitpoint by id, whatever its environment.
    async fn waitpoint_get(&self, id: &WaitpointId) -> Result<Waitpoint>;

    /// Lists tokens (waitpoints of kind `MANUAL`): with [`Cursor::Newest`] or [`Cursor::After`]
    /// in descending id order, with [`Cursor::Before`] in ascending id order (the rows nearest
    /// the cursor first).
    async fn waitpoint_list(&self, query: &ListQuery) -> Result<Vec<Waitpoint>>;

    /// How many tokens [`waitpoint_list`](Self::waitpoint_list) would return for `query`,
    /// without reading them: all that match after the cursor, up to the window's limit (a cap
    /// that bounds the cost of counting).
    async fn waitpoint_count(&self, query: &ListQuery) -> Result<u64>;

    /// Up to `limit` distinct tags of `environment_id`'s tokens that start with `prefix`, in
    /// order; each found by one index seek, however many tokens carry it.
    async fn waitpoint_tags(&self, environment_id: &EnvironmentId, prefix: &str, limit: usize) -> Result<Vec<String>>;

    /// Up to `limit` waiting tokens (`MANUAL`) of `environment_id` that have a deadline, the
    /// earliest `timeout_at` first.
    async fn waitpoint_timeouts_soonest(&self, environment_id: &EnvironmentId, limit: usize) -> Result<Vec<Waitpoint>>;

    /// Up to `limit` runs that waited on the waitpoint `id`, alone or in a set: those waiting on
    /// it now and those that waited before, newest first.
    async fn waitpoint_waiters(&self, id: &WaitpointId, limit: usize) -> Result<Vec<Run>>;

    /// The earliest `timeout_at` among waiting waitpoints.
    async fn waitpoint_timeouts_next(&self) -> Result<Option<Timestamp>>;

    /// Up to `limit` waiting waitpoints whose `timeout_at` is at or before `now`, earliest first.
    async fn waitpoint_timeouts_due(&self, now: Timestamp, limit: usize) -> Result<Vec<WaitpointId>>;

    /// Reads one run by id, whatever its environment.
    async fn run_get(&self, id: &RunId) -> Result<Run>;

    /// Lists runs, ordered as [`waitpoint_list`](Self::waitpoint_list).
    async fn run_list(&self, query: &RunListQuery) -> Result<Vec<Run>>;

    /// How many runs [`run_list`](Self::run_list) would return for `query`, without reading
    /// them (as [`waitpoint_count`](Self::waitpoint_count)).
    async fn run_count(&self, query: &RunListQuery) -> Result<u64>;

    /// Up to `limit` `WAITING` runs of `environment_id`, the longest waiting (earliest
    /// `updated_at`) first.
    async fn run_waiting_longest(&self, environment_id: &EnvironmentId, limit: usize) -> Result<Vec<Run>>;

    /// The journals of the runs `ids`, in one read, answered in the order of `ids`: each run's
    /// environment and entries, or `None` for a run that does not exist.
    async fn run_journals(&self, ids: &[RunId]) -> Result<Vec<Option<RunJournal>>>;

    /// The waitpoints of the run's wait at journal position `seq`, in the wait's order (as
    /// they are now); empty when there is no wait there.
    async fn run_waits(&self, id: &RunId, seq: u32) -> Result<Vec<Waitpoint>>;

    /// The earliest `available_at` after `now` among queued runs of these tasks: when a worker
    /// that found nothing to claim should look again.
    async fn run_next_available(
        &self,
        environment_id: &EnvironmentId,
        task_ids: &[String],
        now: Timestamp,
    ) -> Result<Option<Timestamp>>;

    /// When the worker `worker` of `environment_id` last polled, if it is known.
    async fn worker_last_seen(&self, environment_id: &EnvironmentId, worker: &WorkerId) -> Result<Option<Timestamp>>;

    /// Whether a worker of `environment_id` seen at or after `alive_since` runs `task_id` (as its
    /// last [`WorkerSeen`] said).
    async fn task_served(&self, environment_id: &EnvironmentId, task_id: &str, alive_since: Timestamp) -> Result<bool>;

    /// Creates an environment. `Conflict` if its name or key is taken.
    async fn environment_create(&self, environment: &Environment) -> Result<()>;

    /// All environments, by name.
    async fn environment_list(&self) -> Result<Vec<Environment>>;

    /// The environment with this name.
    async fn environment_by_name(&self, name: &str) -> Result<Environment>;

    /// The environment whose secret key is `api_key`.
    async fn environment_by_api_key(&self, api_key: &str) -> Result<Environment>;

    /// The environment with this id.
    async fn environment_by_id(&self, id: &EnvironmentId) -> Result<Environment>;

    /// Replaces the secret key of the named environment; the old key stops working.
    /// `Conflict` if another environment has this key.
    async fn environment_set_api_key(&self, name: &str, api_key: &Secret) -> Result<Environment>;
}
