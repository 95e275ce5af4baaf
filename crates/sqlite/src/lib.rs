//! The embedded SQLite backend of waitpoint's storage.
//!
//! One database file in WAL mode. All writes go through a single writer connection, one
//! transaction per [`Store::write_batch`] call, with `synchronous = FULL`: a commit is on disk
//! before it is acknowledged, and a batch of many operations costs one sync. Reads use a small
//! pool of read-only connections, which WAL lets run alongside the writer. Each connection
//! lives on a thread of its own.
//!
//! # Layout
//! - [`SqliteStore`]: opening, migrations and the [`Store`] implementation.
//! - [`backup`]: a consistent copy of a live database.
//! - `retention`: purges of what finished long ago, the pages they free returned to the file
//!   system, and [`vacuum`] for databases made before that.
//! - `waitpoints`: token writes and reads; a finish resumes the waiting runs through `resume`.
//! - `runs`: run writes and reads, on top of both (a run's tokens are created through
//!   `waitpoints`, its state is stored through `resume`).
//! - `events`: the event log, appended in each batch's transaction, and read by position.
//! - `webhooks`: outbound webhook subscriptions and how far their delivery got.
//! - `lists`: what the token and run lists share (filters, cursors, merged walks).
//! - `rows`: mapping between rows and domain types.
//! - `threads`: the connections' threads, which run the blocking SQLite calls.
//! - `migrations/`: the schema, one file per version, applied at open.

mod args;
mod backup;
mod events;
mod lists;
mod resume;
mod retention;
mod rows;
mod runs;
mod threads;
mod waitpoints;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use waitpoint_storage::{
    ListQuery, Purge, Purged, Result, RunJournal, RunListQuery, SchemaVersions, StorageError, Store, Upkeep,
    WakeupStream, WriteOp, WriteOutcome,
};
use waitpoint_types::WebhookId;
use waitpoint_types::event::{Event, EventKind};
use waitpoint_types::webhook::{Delivery, Webhook};
use waitpoint_types::{Environment, EnvironmentId, Run, RunId, Secret, Timestamp, Waitpoint, WaitpointId, WorkerId};

pub use crate::backup::backup;
pub use crate::retention::vacuum;
use crate::rows::environment_from_row;
use crate::threads::ConnectionThreads;

/// Schema versions, applied in order; released files are never edited.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_waitpoints.sql")),
    (2, include_str!("../migrations/0002_runs.sql")),
    (3, include_str!("../migrations/0003_workers.sql")),
    (4, include_str!("../migrations/0004_dashboard.sql")),
    (5, include_str!("../migrations/0005_wait_sets.sql")),
    (6, include_str!("../migrations/0006_rejected_tokens.sql")),
    (7, include_str!("../migrations/0007_retention.sql")),
    (8, include_str!("../migrations/0008_output_schemas.sql")),
    (9, include_str!("../migrations/0009_heartbeats.sql")),
    (10, include_str!("../migrations/0010_callback_verifiers.sql")),
    (11, include_str!("../migrations/0011_events.sql")),
    (12, include_str!("../migrations/0012_webhooks.sql")),
];

/// Read-only connections, so reads that run at once; more wait their turn.
const READERS: usize = 4;

/// Prepared statements kept per connection: every query shape stays parsed (lists build
/// their SQL from the filters given, so there are dozens of shapes).
const STATEMENT_CACHE: usize = 256;

/// How long a statement waits for another process's lock (the CLI's `env` commands) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A waitpoint store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: ConnectionThreads,
    readers: ConnectionThreads,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path)).await.map_err(StorageError::database)?
    }

    fn open_blocking(path: PathBuf) -> Result<Self> {
        create_private(&path).map_err(StorageError::database)?;
        let mut writer = Connection::open(&path).map_err(map_error)?;
        configure(&writer)?;
        // Takes effect only in a new database, and only before WAL mode writes its first page:
        // purges then return the pages they free (see `retention`).
        writer.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(map_error)?;
        writer.pragma_update(None, "journal_mode", "WAL").map_err(map_error)?;
        // FULL: every commit syncs the WAL, so an acknowledged write survives power loss.
        writer.pragma_update(None, "synchronous", "FULL").map_err(map_error)?;
        writer.pragma_update(None, "foreign_keys", "ON").map_err(map_error)?;
        migrate(&mut writer)?;
        let readers = (0..READERS).map(|_| open_reader(&path)).collect::<Result<Vec<_>>>()?;
        let writer = ConnectionThreads::start("waitpoint-sqlite-writer", vec![writer])?;
        let readers = ConnectionThreads::start("waitpoint-sqlite-reader", readers)?;
        Ok(Self { inner: Arc::new(Inner { path, writer, readers }) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the file shrinks as retention deletes records. A database made before waitpoint
    /// returned free pages to the file system reuses them for new records instead, until
    /// [`vacuum`] rewrites it once.
    pub async fn returns_free_pages(&self) -> Result<bool> {
        self.read(retention::returns_free_pages).await
    }

    /// Runs `f` with the writer connection, on its thread.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.inner.writer.run(f).await
    }

    /// Runs `f` with a read-only connection, on its thread.
    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        self.inner.readers.run(move |conn| f(conn)).await
    }
}

/// Creates the database file (and its directory), readable by its owner only, unless they
/// exist: the database holds secret keys and signing secrets. SQLite gives its `-wal` and
/// `-shm` files the database file's permissions.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut directory = std::fs::DirBuilder::new();
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        directory.mode(0o700);
        file.mode(0o600);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        directory.recursive(true).create(dir)?;
    }
    file.open(path).map(drop)
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(map_error)?;
    configure(&conn)?;
    Ok(conn)
}

/// What every connection, the writer's and the readers', is set up with.
///
/// The query planner stability guarantee keeps each statement's plan fixed once it is prepared,
/// whatever values are bound to it. Without it, SQLite prepares a statement again whenever it
/// comes back from the statement cache with new values, if its plan could have depended on one
/// of them (a bound value against a partial index's condition): a fifth of the server's CPU
/// went to parsing SQL the cache had already parsed. Statements whose plan should follow a
/// value write it into the SQL (statuses and kinds are literals, not parameters).
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(map_error)?;
    Ok(())
}

/// The newest migration this build has.
fn latest_migration() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT",
    )
    .map_err(map_error)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_error)?;
    let applied: i64 = tx
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |row| row.get(0))
        .map_err(map_error)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.execute_batch(sql).map_err(map_error)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch() * 1000)",
            params![version],
        )
        .map_err(map_error)?;
    }
    tx.commit().map_err(map_error)
}

/// Maps rusqlite's errors to the storage contract's.
pub(crate) fn map_error(error: rusqlite::Error) -> StorageError {
    match &error {
        rusqlite::Error::QueryReturnedNoRows => StorageError::NotFound,
        rusqlite::Error::SqliteFailure(e, message) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            StorageError::Conflict(message.clone().unwrap_or_else(|| e.to_string()))
        }
        _ => StorageError::database(error),
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn write_concurrency(&self) -> usize {
        1
    }

    /// One process owns the file: no other node writes to it.
    fn wakeups(&self) -> Option<WakeupStream> {
        None
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        let applied = self
            .read(|conn| {
                conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |row| row.get(0))
                    .map_err(map_error)
            })
            .await?;
        Ok(SchemaVersions { applied, known: latest_migration() })
    }

    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_error)?;
            let outcomes = ops
                .into_iter()
                .map(|op| match op {
                    WriteOp::Create(new) => waitpoints::create(&tx, new).map(WriteOutcome::Create),
                    WriteOp::Finish(f) => waitpoints::finish(&tx, f).map(WriteOutcome::Finish),
                    WriteOp::Prolong(p) => waitpoints::prolong(&tx, &p).map(WriteOutcome::Prolong),
                    WriteOp::RunCreate(new) => runs::create(&tx, new).map(WriteOutcome::RunCreate),
                    WriteOp::RunClaim(claim) => runs::claim(&tx, claim).map(WriteOutcome::Claim),
                    WriteOp::RunRecord(record) => runs::record(&tx, record).map(WriteOutcome::Journal),
                    WriteOp::RunCreateToken(op) => runs::create_token(&tx, op).map(WriteOutcome::Journal),
                    WriteOp::RunWait(op) => runs::wait(&tx, op).map(WriteOutcome::Journal),
                    WriteOp::RunFinish(op) => runs::finish(&tx, op).map(WriteOutcome::RunEnd),
                    WriteOp::RunCancel { run, environment_id, at } => {
                        runs::cancel(&tx, &run, &environment_id, at).map(WriteOutcome::RunEnd)
                    }
                    WriteOp::RunsRelease(op) => runs::release(&tx, op).map(WriteOutcome::Released),
                    WriteOp::WorkerSeen(op) => runs::worker_seen(&tx, op).map(WriteOutcome::Worker),
                    WriteOp::WorkerLeft { environment_id, worker, session } => {
                        runs::worker_left(&tx, &environment_id, &worker, session.as_deref()).map(WriteOutcome::Worker)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let appended: Vec<_> = outcomes.iter().filter_map(waitpoint_storage::events::of_outcome).collect();
            events::append(&tx, &appended)?;
            tx.commit().map_err(map_error)?;
            Ok(outcomes)
        })
        .await
    }

    async fn events_after(
        &self,
        environment_id: &EnvironmentId,
        after: u64,
        kinds: &[EventKind],
        limit: usize,
    ) -> Result<Vec<Event>> {
        let (environment_id, kinds) = (environment_id.clone(), kinds.to_vec());
        self.read(move |conn| events::after(conn, &environment_id, after, &kinds, limit)).await
    }

    async fn events_head(&self) -> Result<u64> {
        self.read(events::head).await
    }

    async fn events_purge(&self, before: Timestamp, limit: usize) -> Result<u64> {
        self.write(move |conn| events::purge(conn, before, limit)).await
    }

    async fn webhook_create(&self, webhook: &Webhook) -> Result<()> {
        let webhook = webhook.clone();
        self.write(move |conn| webhooks::create(conn, &webhook)).await
    }

    async fn webhook_list(&self, environment_id: Option<&EnvironmentId>) -> Result<Vec<Webhook>> {
        let environment_id = environment_id.cloned();
        self.read(move |conn| webhooks::list(conn, environment_id.as_ref())).await
    }

    async fn webhook_delete(&self, environment_id: &EnvironmentId, id: &WebhookId) -> Result<()> {
        let (environment_id, id) = (environment_id.clone(), id.clone());
        self.write(move |conn| webhooks::delete(conn, &environment_id, &id)).await
    }

    async fn webhook_delivered(&self, id: &WebhookId, delivery: &Delivery) -> Result<()> {
        let (id, delivery) = (id.clone(), delivery.clone());
        self.write(move |conn| webhooks::delivered(conn, &id, &delivery)).await
    }

    async fn retention_purge(&self, purge: &Purge) -> Result<Purged> {
        let purge = *purge;
        self.write(move |conn| retention::purge(conn, &purge)).await
    }

    async fn upkeep(&self) -> Result<Upkeep> {
        Ok(Upkeep::default())
    }

    async fn waitpoint_get(&self, id: &WaitpointId) -> Result<Waitpoint> {
        let id = id.internal().to_owned();
        self.read(move |conn| waitpoints::select_waitpoint(conn, &id)?.ok_or(StorageError::NotFound)).await
    }

    async fn waitpoint_list(&self, query: &ListQuery) -> Result<Vec<Waitpoint>> {
        let query = query.clone();
        self.read(move |conn| waitpoints::list(conn, &query)).await
    }

    async fn waitpoint_count(&self, query: &ListQuery) -> Result<u64> {
        let query = query.clone();
        self.read(move |conn| waitpoints::count(conn, &query)).await
    }

    async fn waitpoint_tags(&self, environment_id: &EnvironmentId, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let (environment_id, prefix) = (environment_id.clone(), prefix.to_owned());
        self.read(move |conn| waitpoints::tags(conn, &environment_id, &prefix, limit)).await
    }

    async fn waitpoint_timeouts_soonest(&self, environment_id: &EnvironmentId, limit: usize) -> Result<Vec<Waitpoint>> {
        let environment_id = environment_id.clone();
        self.read(move |conn| waitpoints::timeouts_soonest(conn, &environment_id, limit)).await
    }

    async fn waitpoint_waiters(&self, id: &WaitpointId, limit: usize) -> Result<Vec<Run>> {
        let id = id.clone();
        self.read(move |conn| runs::waiters(conn, &id, limit)).await
    }

    async fn run_get(&self, id: &RunId) -> Result<Run> {
        let id = id.internal().to_owned();
        self.read(move |conn| runs::select(conn, &id)?.ok_or(StorageError::NotFound)).await
    }

    async fn run_list(&self, query: &RunListQuery) -> Result<Vec<Run>> {
        let query = query.clone();
        self.read(move |conn| runs::list(conn, &query)).await
    }

    async fn run_count(&self, query: &RunListQuery) -> Result<u64> {
        let query = query.clone();
        self.read(move |conn| runs::count(conn, &query)).await
    }

    async fn run_waiting_longest(&self, environment_id: &EnvironmentId, limit: usize) -> Result<Vec<Run>> {
        let environment_id = environment_id.clone();
        self.read(move |conn| runs::waiting_longest(conn, &environment_id, limit)).await
    }

    async fn run_journals(&self, ids: &[RunId]) -> Result<Vec<Option<RunJournal>>> {
        let ids: Vec<String> = ids.iter().map(|id| id.internal().to_owned()).collect();
        self.read(move |conn| runs::journals(conn, &ids)).await
    }

    async fn run_waits(&self, id: &RunId, seq: u32) -> Result<Vec<Waitpoint>> {
        let id = id.internal().to_owned();
        self.read(move |conn| resume::waits(conn, &id, seq)).await
    }

    async fn run_next_available(
        &self,
        environment_id: &EnvironmentId,
        task_ids: &[String],
        now: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let (environment_id, task_ids) = (environment_id.clone(), task_ids.to_vec());
        self.read(move |conn| runs::next_available(conn, &environment_id, &task_ids, now)).await
    }

    async fn worker_last_seen(&self, environment_id: &EnvironmentId, worker: &WorkerId) -> Result<Option<Timestamp>> {
        let (environment_id, worker) = (environment_id.clone(), worker.clone());
        self.read(move |conn| runs::worker_last_seen(conn, &environment_id, &worker)).await
    }

    async fn task_served(&self, environment_id: &EnvironmentId, task_id: &str, alive_since: Timestamp) -> Result<bool> {
        let (environment_id, task_id) = (environment_id.clone(), task_id.to_owned());
        self.read(move |conn| runs::task_served(conn, &environment_id, &task_id, alive_since)).await
    }

    async fn waitpoint_timeouts_next(&self) -> Result<Option<Timestamp>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT MIN(due) FROM (
                     SELECT MIN(timeout_at) AS due FROM waitpoints WHERE status = 'WAITING' AND timeout_at IS NOT NULL
                     UNION ALL
                     SELECT MIN(heartbeat_deadline) FROM waitpoints
                     WHERE status = 'WAITING' AND heartbeat_deadline IS NOT NULL
                 )",
            )
            .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, Option<i64>>(0)))
            .map(|millis| millis.map(Timestamp::from_millis))
            .map_err(map_error)
        })
        .await
    }

    async fn waitpoint_timeouts_due(&self, now: Timestamp, limit: usize) -> Result<Vec<WaitpointId>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, MIN(due) AS first FROM (
                         SELECT * FROM (
                             SELECT id, timeout_at AS due FROM waitpoints
                             WHERE status = 'WAITING' AND timeout_at IS NOT NULL AND timeout_at <= ?1
                             ORDER BY timeout_at, id LIMIT ?2
                         )
                         UNION ALL
                         SELECT * FROM (
                             SELECT id, heartbeat_deadline FROM waitpoints
                             WHERE status = 'WAITING' AND heartbeat_deadline IS NOT NULL AND heartbeat_deadline <= ?1
                             ORDER BY heartbeat_deadline, id LIMIT ?2
                         )
                     ) GROUP BY id ORDER BY first, id LIMIT ?2",
                )
                .map_err(map_error)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows =
                stmt.query_map(params![now.as_millis(), limit], |row| row.get::<_, String>(0)).map_err(map_error)?;
            rows.map(|id| id.map(WaitpointId::from_internal).map_err(map_error)).collect()
        })
        .await
    }

    async fn environment_create(&self, environment: &Environment) -> Result<()> {
        let env = environment.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO environments (id, name, api_key, signing_secret, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    env.id.internal(),
                    env.name,
                    env.api_key.expose(),
                    env.signing_secret.expose(),
                    env.created_at.as_millis()
                ],
            )
            .map(drop)
            .map_err(map_error)
        })
        .await
    }

    async fn environment_list(&self) -> Result<Vec<Environment>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, name, api_key, signing_secret, created_at FROM environments ORDER BY name")
                .map_err(map_error)?;
            let rows = stmt.query_map([], environment_from_row).map_err(map_error)?;
            rows.map(|row| row.map_err(map_error)).collect()
        })
        .await
    }

    async fn environment_by_name(&self, name: &str) -> Result<Environment> {
        self.environment_where("name", name.to_owned()).await
    }

    async fn environment_by_api_key(&self, api_key: &str) -> Result<Environment> {
        self.environment_where("api_key", api_key.to_owned()).await
    }

    async fn environment_by_id(&self, id: &EnvironmentId) -> Result<Environment> {
        self.environment_where("id", id.internal().to_owned()).await
    }

    async fn environment_set_api_key(&self, name: &str, api_key: &Secret) -> Result<Environment> {
        let (name, key) = (name.to_owned(), api_key.expose().to_owned());
        self.write(move |conn| {
            let changed = conn
                .execute("UPDATE environments SET api_key = ?2 WHERE name = ?1", params![name, key])
                .map_err(map_error)?;
            if changed == 0 {
                return Err(StorageError::NotFound);
            }
            conn.query_row(
                "SELECT id, name, api_key, signing_secret, created_at FROM environments WHERE name = ?1",
                [&name],
                environment_from_row,
            )
            .map_err(map_error)
        })
        .await
    }
}

impl SqliteStore {
    async fn environment_where(&self, column: &'static str, value: String) -> Result<Environment> {
        self.read(move |conn| {
            let sql =
                format!("SELECT id, name, api_key, signing_secret, created_at FROM environments WHERE {column} = ?1");
            conn.prepare_cached(&sql)
                .and_then(|mut stmt| stmt.query_row([value], environment_from_row))
                .map_err(map_error)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, StatementStatus};

    use super::{configure, migrate};

    /// A statement taken from the cache again and bound to new values runs as it was prepared,
    /// even on a table with partial indexes (`run_journal` has two).
    #[test]
    fn cached_statements_are_not_prepared_again() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut conn = Connection::open(dir.path().join("waitpoint.db")).expect("a database");
        configure(&conn).expect("configured");
        migrate(&mut conn).expect("migrated");
        let sql = "SELECT seq FROM run_journal WHERE run_id = ?1 ORDER BY seq DESC LIMIT 1";
        let mut prepared_again = 0;
        for run in ["run_a", "run_b", "run_c"] {
            let mut statement = conn.prepare_cached(sql).expect("prepared");
            assert!(statement.query([run]).expect("queried").next().expect("read").is_none());
            prepared_again = statement.get_status(StatementStatus::RePrepare);
        }
        assert_eq!(prepared_again, 0);
    }
}
