//! The PostgreSQL backend of waitpoint's storage.
//!
//! A pool of connections to one database; the tables live in the first schema of the
//! connection's `search_path` (set it with `options=-c search_path=…` in the URL to give each
//! deployment its own schema). Each [`Store::write_batch`] call is one `READ COMMITTED`
//! transaction on one connection, committed under PostgreSQL's default
//! `synchronous_commit = on`: an acknowledged batch is flushed to the write-ahead log, and a
//! batch of many operations costs one flush.
//!
//! A batch costs a few statements, not one per operation. Operations on different ids commute,
//! so the batch is regrouped into sets of distinct ids, each applied by one multi-row statement
//! per kind: the creates without idempotency key of a set are one `INSERT` (with their tags), its
//! finishes one `UPDATE` of the waitpoints they apply to, plus one `SELECT … FOR UPDATE` of the
//! others when there are any. An operation that follows another on the same id goes to a later
//! set; a create with an idempotency key runs on its own, with everything before it applied
//! first and everything after it later. Each operation thus has the outcome it would have with
//! the batch applied one operation at a time, in order.
//!
//! Nodes sharing the database wake each other ([`WakeupMode::Listen`], the default): a batch that
//! makes runs ready or gives a waitpoint a deadline sends one `NOTIFY` in its transaction, and
//! [`Store::wakeups`] listens on a connection of its own. [`WakeupMode::Poll`] does neither, for a
//! transaction-pooling proxy, which cannot hold a `LISTEN`.
//!
//! Several batches run at once ([`Store::write_concurrency`]), so every write is safe against
//! the others: a create with an idempotency key inserts with `ON CONFLICT DO NOTHING` on the
//! active key and re-reads the winner when it loses; a finish updates only a row that is still
//! waiting, and locks the latest version of any row it did not update before deciding, so a
//! completion racing a timeout has exactly one outcome; a batch chosen as a deadlock or
//! serialization-failure victim, which PostgreSQL rolled back whole, is run again. Reads run on
//! pooled connections outside any transaction. Statements are prepared once per connection and
//! cached.
//!
//! # Layout
//! - [`PostgresStore`]: connecting, migrations and the [`Store`] implementation.
//! - `batch`: the write path: a batch planned into sets, and each step applied.
//! - `run_sets`: run operations of a set, together.
//! - `runs`: the run operations and queries.
//! - `waitpoints`: the statements that create and finish waitpoints. Each of these four
//!   builds only on those listed after it.
//! - `lists`: what the token and run lists share (filters on keys, bounds and cursors).
//! - `events`: the event log, a row per batch appended in the batch's transaction, sequenced in
//!   commit order by its readers, and read by position.
//! - `webhooks`: outbound webhook subscriptions and how far their delivery got.
//! - `wakeups`: the `NOTIFY` of a batch, and the listening connection of a subscription.
//! - `retention`: purges of what finished long ago.
//! - `upkeep`: vacuuming the store's tables where autovacuum does not.
//! - `rows`: mapping between rows and domain types.
//! - `testing` (feature `test-util`): a fresh schema per test, for this and other crates' tests,
//!   in the test server, a throwaway cluster when none runs, or skipped without PostgreSQL.
//! - `migrations/`: the schema, one file per version, applied at connect.

mod batch;
mod events;
mod lists;
mod retention;
mod rows;
mod run_sets;
mod runs;
#[cfg(feature = "test-util")]
pub mod testing;
mod upkeep;
mod waitpoints;
mod wakeups;
mod webhooks;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};
use waitpoint_storage::{
    ListQuery, Purge, Purged, Result, RunJournal, RunListQuery, SchemaVersions, StorageError, Store, Upkeep,
    WakeupStream, WriteOp, WriteOutcome,
};
use waitpoint_types::WebhookId;
use waitpoint_types::event::{Event, EventKind};
use waitpoint_types::webhook::{Delivery, Webhook};
use waitpoint_types::{Environment, EnvironmentId, Run, RunId, Secret, Timestamp, Waitpoint, WaitpointId, WorkerId};

use crate::rows::{column, environment_columns, environment_from_row, waitpoint_columns, waitpoint_from_row};
pub use crate::wakeups::LISTENER_APPLICATION_NAME;

/// Schema versions, applied in order; released files are never edited.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_waitpoints.sql")),
    (2, include_str!("../migrations/0002_runs.sql")),
    (3, include_str!("../migrations/0003_autovacuum.sql")),
    (4, include_str!("../migrations/0004_workers.sql")),
    (5, include_str!("../migrations/0005_dashboard.sql")),
    (6, include_str!("../migrations/0006_wait_sets.sql")),
    (7, include_str!("../migrations/0007_rejected_tokens.sql")),
    (8, include_str!("../migrations/0008_retention.sql")),
    (9, include_str!("../migrations/0009_output_schemas.sql")),
    (10, include_str!("../migrations/0010_heartbeats.sql")),
    (11, include_str!("../migrations/0011_callback_verifiers.sql")),
    (12, include_str!("../migrations/0012_events.sql")),
    (13, include_str!("../migrations/0013_webhooks.sql")),
    (14, include_str!("../migrations/0014_event_batches.sql")),
    (15, include_str!("../migrations/0015_run_waits_statistics.sql")),
];

/// The advisory lock that serializes migrations of servers starting at once ("waitpoin").
const MIGRATION_LOCK: i64 = 0x7761_6974_706f_696e;

/// Connections in the pool, shared by writes and reads.
const POOL_SIZE: usize = 16;

/// Batches worth running at once, each in its own transaction on its own connection: two, so
/// that one applies while the other commits. More lanes make smaller groups that wait on each
/// other's row locks (measured with 1, 2 and 4 in BENCHMARKS.md; 12 lost more).
const WRITE_CONCURRENCY: usize = 2;

/// How long opening a connection may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a batch runs when it keeps losing deadlocks, serialization failures or lock
/// waits.
const BATCH_ATTEMPTS: usize = 8;

/// How the nodes sharing a database learn of each other's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeupMode {
    /// Batches that wake something send a `NOTIFY`; [`Store::wakeups`] listens on a connection
    /// of its own (named [`LISTENER_APPLICATION_NAME`]).
    Listen,
    /// Neither: [`Store::wakeups`] is `None`, and nodes find each other's changes only by
    /// looking from time to time. For a proxy that pools connections per transaction (such as
    /// PgBouncer in transaction mode), which cannot hold a `LISTEN`.
    Poll,
}

/// A waitpoint store in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// Where batches notify and subscriptions listen; `None` in [`WakeupMode::Poll`].
    wakeups: Option<Arc<WakeChannel>>,
}

/// The channel of the store's schema, and how a subscription connects to listen on it.
struct WakeChannel {
    name: String,
    config: tokio_postgres::Config,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .field("wakeups", &self.wakeups.as_ref().map(|wakeups| &wakeups.name))
            .finish()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db?…`, as
    /// libpq's URIs, without TLS) and applies pending migrations; nodes wake each other
    /// ([`WakeupMode::Listen`]).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, WakeupMode::Listen).await
    }

    /// As [`connect`](Self::connect), with nodes learning of each other's writes as `mode` says.
    pub async fn connect_with(url: &str, mode: WakeupMode) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|error| failure(&error))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("waitpoint");
        }
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(POOL_SIZE).build().map_err(|error| failure(&error))?;
        let mut store = Self { pool, wakeups: None };
        store.migrate().await?;
        if mode == WakeupMode::Listen {
            let no_schema = || StorageError::database(Failure("no schema of the search_path exists".into()));
            let row = store.query_opt(wakeups::CHANNEL, &[]).await?.ok_or_else(no_schema)?;
            store.wakeups = Some(Arc::new(WakeChannel { name: column(&row, 0)?, config }));
        }
        Ok(store)
    }

    async fn client(&self) -> Result<Client> {
        self.pool.get().await.map_err(|error| failure(&error))
    }

    /// Applies pending migrations in one transaction, under an advisory lock so that servers
    /// starting at once apply each version once.
    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        // READ COMMITTED whatever the server's default: the statements after the lock must see
        // what a server that held it before committed.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(map_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(map_error)?;
        // Checked first so that a role without the right to create tables can start on a schema
        // that is up to date.
        let row = tx.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await.map_err(map_error)?;
        if !column::<bool>(&row, 0)? {
            tx.batch_execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                .await
                .map_err(map_error)?;
        }
        let row =
            tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await.map_err(map_error)?;
        let applied: i64 = column(&row, 0)?;
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
            tx.batch_execute(sql).await.map_err(map_error)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at)
                 VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
                &[version],
            )
            .await
            .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)
    }

    /// Runs a cached statement on a pooled connection and returns its rows.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(map_error)?;
        client.query(&statement, params).await.map_err(map_error)
    }

    /// Runs a cached statement on a pooled connection and returns its row, if any.
    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(map_error)?;
        client.query_opt(&statement, params).await.map_err(map_error)
    }

    /// Every shape of query walks an index in id order and stops after `limit` rows that pass
    /// every filter:
    /// - with tags, the tag table's `(environment_id, tag, waitpoint_id)`, once per tag, or with
    ///   statuses too, its `(environment_id, tag, status, waitpoint_id)`, once per tag and status;
    /// - else with statuses, `(environment_id, status, id)`, once per status;
    /// - else `(environment_id, id)`.
    ///
    /// Several walks (a lateral join over the array of tags, a union over statuses) are merged:
    /// the overall first `limit` rows are among the first `limit` of some walk. An idempotency key
    /// is looked up through its two indexes first.
    ///
    /// Selects `columns` (of `w`), or with `count`, the number of rows.
    async fn waitpoints_select(&self, query: &ListQuery, columns: &str) -> Result<Vec<Row>> {
        let (columns, count) = if columns == "count" { ("w.id", true) } else { (columns, false) };
        let environment_id = query.environment_id.internal();
        let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
        let limit = i64::try_from(query.window.limit).unwrap_or(i64::MAX);
        let id_column = if query.tags.is_empty() { "w.id" } else { "t.waitpoint_id" };

        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&environment_id];
        let mut filters = String::from(" AND w.kind = 'MANUAL'");
        if let Some(key) = &query.idempotency_key {
            filters += &lists::idempotency_key_filter(&mut params, "waitpoints", "w", key);
        }
        let (window, order, limit) = lists::window_filters(&mut params, &query.window, &limit, id_column);
        filters += &window;
        let sql = if !query.tags.is_empty() {
            // One walk per tag, or per tag and status (the tag table holds each token's status).
            let tags = bind(&mut params, &query.tags);
            let (wanted, status) = if statuses.is_empty() {
                (format!("unnest({tags}::text[]) AS wanted(tag)"), "")
            } else {
                let statuses = bind(&mut params, &statuses);
                (
                    format!(
                        "unnest({tags}::text[]) AS wanted_tag(tag) CROSS JOIN unnest({statuses}::text[]) AS wanted(status)"
                    ),
                    " AND t.status = wanted.status",
                )
            };
            let tag = if statuses.is_empty() { "wanted.tag" } else { "wanted_tag.tag" };
            format!(
                "SELECT {columns} FROM waitpoints w WHERE w.id IN (SELECT walk.id FROM {wanted} \
                 CROSS JOIN LATERAL (SELECT w.id FROM waitpoint_tags t JOIN waitpoints w \
                 ON w.id = t.waitpoint_id WHERE t.environment_id = $1 AND t.tag = {tag}{status}{filters} \
                 ORDER BY t.waitpoint_id {order} LIMIT {limit}) walk) ORDER BY w.id {order} LIMIT {limit}"
            )
        } else if !statuses.is_empty() {
            // Statuses are written as literals (a fixed set), so the planner sees which one is
            // rare and walks `(environment_id, status, id)` for it instead of the primary key,
            // which a parameter would hide.
            let per_status: Vec<String> = statuses
                .iter()
                .map(|status| {
                    format!(
                        "(SELECT w.id FROM waitpoints w WHERE w.environment_id = $1 AND w.status = '{status}'{filters} \
                         ORDER BY w.id {order} LIMIT {limit})"
                    )
                })
                .collect();
            format!(
                "SELECT {columns} FROM waitpoints w WHERE w.id IN ({}) ORDER BY w.id {order} LIMIT {limit}",
                per_status.join(" UNION ALL ")
            )
        } else {
            format!(
                "SELECT {columns} FROM waitpoints w WHERE w.environment_id = $1{filters} ORDER BY w.id {order} LIMIT {limit}"
            )
        };
        let sql = if count { format!("SELECT count(*) FROM ({sql}) AS counted") } else { sql };
        self.query(&sql, &params).await
    }

    /// The environment the statement returns, or `NotFound`.
    async fn environment_where(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Environment> {
        let row = self.query_opt(sql, params).await?.ok_or(StorageError::NotFound)?;
        environment_from_row(&row)
    }
}

/// Maps tokio-postgres's errors to the storage contract's: unique and foreign-key violations
/// are conflicts (as in the SQLite backend), anything else a database failure.
pub(crate) fn map_error(error: tokio_postgres::Error) -> StorageError {
    match error.as_db_error() {
        Some(db) if [SqlState::UNIQUE_VIOLATION, SqlState::FOREIGN_KEY_VIOLATION].contains(db.code()) => {
            // The message names the constraint; the detail would show the value, maybe a key.
            StorageError::Conflict(db.message().to_owned())
        }
        Some(db) => StorageError::database(db.clone()),
        None => failure(&error),
    }
}

/// A failure other than the server's `ERROR`, told with its causes: tokio-postgres and the
/// pool leave the reason ("connection refused") to the source chain, which logs often drop.
fn failure(error: &dyn std::error::Error) -> StorageError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message.
        if !message.ends_with(&cause_text) {
            message = format!("{message}: {cause_text}");
        }
        source = cause.source();
    }
    StorageError::database(Failure(message))
}

/// The text of a failure and its causes.
#[derive(Debug)]
struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// Whether PostgreSQL rolled the failed transaction back for a reason that running it again
/// can cure.
fn is_transient(error: &StorageError) -> bool {
    let StorageError::Database(source) = error else {
        return false;
    };
    source.downcast_ref::<DbError>().is_some_and(|db| {
        [SqlState::T_R_DEADLOCK_DETECTED, SqlState::T_R_SERIALIZATION_FAILURE, SqlState::LOCK_NOT_AVAILABLE]
            .contains(db.code())
    })
}

pub(crate) const SELECT_WAITPOINT: &str = concat!("SELECT ", waitpoint_columns!(), " FROM waitpoints WHERE id = $1");

/// Adds a parameter to a dynamic statement and returns its placeholder.
pub(crate) fn bind<'a>(params: &mut Vec<&'a (dyn ToSql + Sync)>, value: &'a (dyn ToSql + Sync)) -> String {
    params.push(value);
    format!("${}", params.len())
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn write_concurrency(&self) -> usize {
        WRITE_CONCURRENCY
    }

    async fn schema_versions(&self) -> Result<SchemaVersions> {
        let rows = self.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?;
        let applied = rows.first().map(|row| column::<i64>(row, 0)).transpose()?.unwrap_or(0);
        Ok(SchemaVersions { applied, known: MIGRATIONS.last().map_or(0, |(version, _)| *version) })
    }

    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let channel = self.wakeups.as_ref().map(|wakeups| wakeups.name.as_str());
        let mut attempt = 1;
        loop {
            match batch::apply_batch(&mut client, &ops, channel).await {
                Err(error) if attempt < BATCH_ATTEMPTS && is_transient(&error) => attempt += 1,
                result => return result,
            }
        }
    }

    fn wakeups(&self) -> Option<WakeupStream> {
        self.wakeups.as_ref().map(|wakeups| wakeups::subscribe(&wakeups.config, &wakeups.name))
    }

    async fn events_after(
        &self,
        environment_id: &EnvironmentId,
        after: u64,
        kinds: &[EventKind],
        limit: usize,
    ) -> Result<Vec<Event>> {
        let mut client = self.client().await?;
        events::sequence(&mut client).await?;
        events::after(&client, environment_id, after, kinds, limit).await
    }

    async fn events_head(&self) -> Result<u64> {
        let mut client = self.client().await?;
        events::sequence(&mut client).await?;
        events::head(&client).await
    }

    async fn events_purge(&self, before: Timestamp, limit: usize) -> Result<u64> {
        let mut client = self.client().await?;
        events::sequence(&mut client).await?;
        events::purge(&client, before, limit).await
    }

    async fn webhook_create(&self, webhook: &Webhook) -> Result<()> {
        let (kinds, tags) = webhooks::filters(webhook)?;
        let attempts = i32::try_from(webhook.delivery.attempts).unwrap_or(i32::MAX);
        self.query(
            webhooks::INSERT,
            &[
                &webhook.id.internal(),
                &webhook.environment_id.internal(),
                &webhook.url,
                &webhook.secret.expose(),
                &kinds,
                &tags,
                &webhook.created_at.as_millis(),
                &i64::try_from(webhook.delivery.through).unwrap_or(i64::MAX),
                &attempts,
                &webhook.delivery.retry_at.map(Timestamp::as_millis),
                &webhook.delivery.last_error,
            ],
        )
        .await?;
        Ok(())
    }

    async fn webhook_list(&self, environment_id: Option<&EnvironmentId>) -> Result<Vec<Webhook>> {
        let rows = self.query(webhooks::LIST, &[&environment_id.map(EnvironmentId::internal)]).await?;
        rows.iter().map(webhooks::from_row).collect()
    }

    async fn webhook_delete(&self, environment_id: &EnvironmentId, id: &WebhookId) -> Result<()> {
        let client = self.client().await?;
        let statement = client.prepare_cached(webhooks::DELETE).await.map_err(map_error)?;
        match client.execute(&statement, &[&id.internal(), &environment_id.internal()]).await.map_err(map_error)? {
            0 => Err(StorageError::NotFound),
            _ => Ok(()),
        }
    }

    async fn webhook_delivered(&self, id: &WebhookId, delivery: &Delivery) -> Result<()> {
        let attempts = i32::try_from(delivery.attempts).unwrap_or(i32::MAX);
        self.query(
            webhooks::DELIVERED,
            &[
                &id.internal(),
                &i64::try_from(delivery.through).unwrap_or(i64::MAX),
                &attempts,
                &delivery.retry_at.map(Timestamp::as_millis),
                &delivery.last_error,
            ],
        )
        .await?;
        Ok(())
    }

    async fn retention_purge(&self, purge: &Purge) -> Result<Purged> {
        retention::purge(&mut self.client().await?, purge).await
    }

    async fn upkeep(&self) -> Result<Upkeep> {
        upkeep::run(&self.client().await?).await
    }

    async fn waitpoint_get(&self, id: &WaitpointId) -> Result<Waitpoint> {
        let row = self.query_opt(SELECT_WAITPOINT, &[&id.internal()]).await?.ok_or(StorageError::NotFound)?;
        waitpoint_from_row(&row)
    }

    async fn waitpoint_list(&self, query: &ListQuery) -> Result<Vec<Waitpoint>> {
        self.waitpoints_select(query, waitpoint_columns!(w)).await?.iter().map(waitpoint_from_row).collect()
    }

    async fn waitpoint_count(&self, query: &ListQuery) -> Result<u64> {
        let rows = self.waitpoints_select(query, "count").await?;
        let count: i64 = match rows.first() {
            Some(row) => column(row, 0)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn waitpoint_tags(&self, environment_id: &EnvironmentId, prefix: &str, limit: usize) -> Result<Vec<String>> {
        // One seek per tag (a loose index scan): each step takes the first tag above the last.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "WITH RECURSIVE found (tag, n) AS (
                     (SELECT tag, 1::bigint FROM waitpoint_tags WHERE environment_id = $1 AND tag >= $2 ORDER BY tag LIMIT 1)
                     UNION ALL
                     SELECT next.tag, found.n + 1 FROM found CROSS JOIN LATERAL
                         (SELECT tag FROM waitpoint_tags WHERE environment_id = $1 AND tag > found.tag
                          ORDER BY tag LIMIT 1) AS next
                     WHERE found.n < $3::bigint AND starts_with(found.tag, $2)
                 )
                 SELECT tag FROM found WHERE starts_with(tag, $2) AND n <= $3 ORDER BY tag",
                &[&environment_id.internal(), &prefix, &limit],
            )
            .await?;
        rows.iter().map(|row| column(row, 0)).collect()
    }

    async fn waitpoint_timeouts_soonest(&self, environment_id: &EnvironmentId, limit: usize) -> Result<Vec<Waitpoint>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = concat!(
            "SELECT ",
            waitpoint_columns!(),
            " FROM waitpoints WHERE environment_id = $1 AND status = 'WAITING' AND kind = 'MANUAL' \
             AND timeout_at IS NOT NULL ORDER BY timeout_at, id LIMIT $2"
        );
        self.query(sql, &[&environment_id.internal(), &limit]).await?.iter().map(waitpoint_from_row).collect()
    }

    async fn waitpoint_waiters(&self, id: &WaitpointId, limit: usize) -> Result<Vec<Run>> {
        runs::waiters(&self.client().await?, id, limit).await
    }

    async fn run_get(&self, id: &RunId) -> Result<Run> {
        runs::get(&self.client().await?, id).await
    }

    async fn run_list(&self, query: &RunListQuery) -> Result<Vec<Run>> {
        runs::list(&self.client().await?, query).await
    }

    async fn run_count(&self, query: &RunListQuery) -> Result<u64> {
        runs::count(&self.client().await?, query).await
    }

    async fn run_waiting_longest(&self, environment_id: &EnvironmentId, limit: usize) -> Result<Vec<Run>> {
        runs::waiting_longest(&self.client().await?, environment_id, limit).await
    }

    async fn run_journals(&self, ids: &[RunId]) -> Result<Vec<Option<RunJournal>>> {
        runs::journals(&self.client().await?, ids).await
    }

    async fn run_waits(&self, id: &RunId, seq: u32) -> Result<Vec<Waitpoint>> {
        runs::waits(&self.client().await?, id, seq).await
    }

    async fn run_next_available(
        &self,
        environment_id: &EnvironmentId,
        task_ids: &[String],
        now: Timestamp,
    ) -> Result<Option<Timestamp>> {
        runs::next_available(&self.client().await?, environment_id, task_ids, now).await
    }

    async fn worker_last_seen(&self, environment_id: &EnvironmentId, worker: &WorkerId) -> Result<Option<Timestamp>> {
        runs::worker_last_seen(&self.client().await?, environment_id, worker).await
    }

    async fn task_served(&self, environment_id: &EnvironmentId, task_id: &str, alive_since: Timestamp) -> Result<bool> {
        runs::task_served(&self.client().await?, environment_id, task_id, alive_since).await
    }

    async fn waitpoint_timeouts_next(&self) -> Result<Option<Timestamp>> {
        let rows = self
            .query(
                "SELECT LEAST(
                     (SELECT MIN(timeout_at) FROM waitpoints WHERE status = 'WAITING' AND timeout_at IS NOT NULL),
                     (SELECT MIN(heartbeat_deadline) FROM waitpoints
                      WHERE status = 'WAITING' AND heartbeat_deadline IS NOT NULL)
                 )",
                &[],
            )
            .await?;
        let millis: Option<i64> = match rows.first() {
            Some(row) => column(row, 0)?,
            None => None,
        };
        Ok(millis.map(Timestamp::from_millis))
    }

    async fn waitpoint_timeouts_due(&self, now: Timestamp, limit: usize) -> Result<Vec<WaitpointId>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT id FROM (
                     (SELECT id, timeout_at AS due FROM waitpoints
                      WHERE status = 'WAITING' AND timeout_at IS NOT NULL AND timeout_at <= $1
                      ORDER BY timeout_at, id LIMIT $2)
                     UNION ALL
                     (SELECT id, heartbeat_deadline FROM waitpoints
                      WHERE status = 'WAITING' AND heartbeat_deadline IS NOT NULL AND heartbeat_deadline <= $1
                      ORDER BY heartbeat_deadline, id LIMIT $2)
                 ) AS due GROUP BY id ORDER BY MIN(due), id LIMIT $2",
                &[&now.as_millis(), &limit],
            )
            .await?;
        rows.iter().map(|row| column(row, 0).map(WaitpointId::from_internal)).collect()
    }

    async fn environment_create(&self, environment: &Environment) -> Result<()> {
        self.query(
            "INSERT INTO environments (id, name, api_key, signing_secret, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                &environment.id.internal(),
                &environment.name,
                &environment.api_key.expose(),
                &environment.signing_secret.expose(),
                &environment.created_at.as_millis(),
            ],
        )
        .await
        .map(drop)
    }

    async fn environment_list(&self) -> Result<Vec<Environment>> {
        let rows =
            self.query(concat!("SELECT ", environment_columns!(), " FROM environments ORDER BY name"), &[]).await?;
        rows.iter().map(environment_from_row).collect()
    }

    async fn environment_by_name(&self, name: &str) -> Result<Environment> {
        self.environment_where(
            concat!("SELECT ", environment_columns!(), " FROM environments WHERE name = $1"),
            &[&name],
        )
        .await
    }

    async fn environment_by_api_key(&self, api_key: &str) -> Result<Environment> {
        self.environment_where(
            concat!("SELECT ", environment_columns!(), " FROM environments WHERE api_key = $1"),
            &[&api_key],
        )
        .await
    }

    async fn environment_by_id(&self, id: &EnvironmentId) -> Result<Environment> {
        self.environment_where(
            concat!("SELECT ", environment_columns!(), " FROM environments WHERE id = $1"),
            &[&id.internal()],
        )
        .await
    }

    async fn environment_set_api_key(&self, name: &str, api_key: &Secret) -> Result<Environment> {
        self.environment_where(
            concat!("UPDATE environments SET api_key = $2 WHERE name = $1 RETURNING ", environment_columns!()),
            &[&name, &api_key.expose()],
        )
        .await
    }
}
