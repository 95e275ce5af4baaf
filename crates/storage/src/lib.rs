//! The storage contract of waitpoint.
//!
//! [`Store`] is the one trait every backend implements (SQLite, PostgreSQL). It speaks in
//! domain types from `waitpoint-types`; SQL never leaves a backend. Writes that change a
//! waitpoint go through [`Store::write_batch`], which applies many operations in one
//! transaction and one disk sync: that is how the engine does group commit.
//!
//! # Layout
//! - [`Store`]: the trait, with its contract on each method.
//! - [`WriteOp`] / [`WriteOutcome`]: the batched write operations and what each did.
//! - [`ListQuery`]: filters and keyset cursor of a list.
//! - [`StorageError`]: the one error type; backends map "no row" to `NotFound` and unique
//!   violations to `Conflict`.
//! - `conformance` (feature `conformance`): the test suite every backend runs.

#[cfg(feature = "conformance")]
pub mod conformance;

use std::fmt;

use waitpoint_types::{
    Environment, EnvironmentId, Secret, Timestamp, Waitpoint, WaitpointId, WaitpointState, WaitpointStatus,
};

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

/// One write in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Create a waitpoint, honouring its idempotency key.
    Create(Waitpoint),
    /// Move a waiting waitpoint to a final state.
    Finish(Finish),
}

/// Moves a waitpoint out of `WAITING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// The waitpoint.
    pub id: WaitpointId,
    /// When set, a waitpoint of another environment counts as not found.
    pub environment_id: Option<EnvironmentId>,
    /// [`WaitpointState::Completed`] or [`WaitpointState::TimedOut`]. A timeout applies only
    /// once the waitpoint's `timeout_at` is at or before the state's `at`.
    pub state: WaitpointState,
}

/// What one [`WriteOp`] did, in the order of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The waitpoint was created as given.
    Created(Waitpoint),
    /// An active idempotency key matched: this existing waitpoint (in whatever state) is the
    /// answer and nothing was written.
    Existing(Waitpoint),
    /// The waitpoint moved to the requested final state.
    Finished(Waitpoint),
    /// Nothing changed: the waitpoint had already finished (the first completion wins) or,
    /// for a timeout, its deadline has not come. The current record is returned.
    Unchanged(Waitpoint),
    /// No such waitpoint (in that environment).
    NotFound,
}

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

/// The storage of waitpoint.
///
/// Every method is safe to call concurrently. A successful write is durable: on disk (synced)
/// before the call returns. Callers never pass text containing NUL characters (the engine
/// rejects them at the edge); a backend may refuse such text.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The backend's name for logs: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// How many [`write_batch`](Self::write_batch) calls are worth running at once: 1 for a
    /// single-writer database, more where concurrent transactions help.
    fn write_concurrency(&self) -> usize;

    /// Applies `ops` in order, atomically and durably, and says what each did.
    ///
    /// Later operations see the effects of earlier ones in the same batch. An outcome such as
    /// [`WriteOutcome::NotFound`] does not affect the other operations; an `Err` means nothing
    /// of the batch was written.
    ///
    /// Create: when the waitpoint has an idempotency key and the environment has a waitpoint
    /// whose active key is the same and unexpired at the new one's `created_at`
    /// (`created_at <= idempotency_key_expires_at`, or no expiry), the outcome is
    /// [`WriteOutcome::Existing`]. An expired match is deactivated (its key moves to
    /// `inactive_idempotency_key`) and the new waitpoint is created.
    ///
    /// Finish: applies only to a `WAITING` waitpoint, and a timeout only once it is due.
    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>>;

    /// Reads one waitpoint by id, whatever its environment.
    async fn waitpoint_get(&self, id: &WaitpointId) -> Result<Waitpoint>;

    /// Lists waitpoints: with [`Cursor::Newest`] or [`Cursor::After`] in descending id order,
    /// with [`Cursor::Before`] in ascending id order (the rows nearest the cursor first).
    async fn waitpoint_list(&self, query: &ListQuery) -> Result<Vec<Waitpoint>>;

    /// The earliest `timeout_at` among waiting waitpoints.
    async fn waitpoint_timeouts_next(&self) -> Result<Option<Timestamp>>;

    /// Up to `limit` waiting waitpoints whose `timeout_at` is at or before `now`, earliest first.
    async fn waitpoint_timeouts_due(&self, now: Timestamp, limit: usize) -> Result<Vec<WaitpointId>>;

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
