//! Retention: purges of what finished long ago ([`Purge`] states the rule).
//!
//! One transaction per purge: one statement deletes the waitpoints (and their tags), another
//! the runs (and their journals and tags). Candidates are locked with `SKIP LOCKED`, so a purge
//! never waits for a row a write holds (it takes it next time), and several nodes purging at
//! once share the work instead of queueing on each other. PostgreSQL does not shrink its files:
//! autovacuum makes the space of deleted rows reusable for new ones (migration 8 tunes it for
//! the tag tables, as migration 3 did for the others).

use deadpool_postgres::Client;
use tokio_postgres::IsolationLevel;
use waitpoint_storage::{Purge, Purged, Result};
use waitpoint_types::WaitpointId;

use crate::map_error;
use crate::rows::column;

/// How long a purge's statements wait for a lock before the purge fails (and the next one tries
/// again): a purge must never hold up writes that wait behind it for longer.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '100ms'";

/// Whether a run that has not finished refers to the waitpoint `w`: one of its waits (alone or
/// in a set, now or before) is on it, or its journal names it in the result of a `CREATE_TOKEN`
/// entry (`{"id": "waitpoint_…", …}`). `$4` is the prefix of public waitpoint ids. Each part is
/// a probe of an index; being under `OR`, they stay per-row checks instead of becoming joins.
macro_rules! live_run_refers_to_waitpoint {
    () => {
        "EXISTS (SELECT 1 FROM run_waits x JOIN runs r ON r.id = x.run_id
                 WHERE x.waitpoint_id = w.id AND r.finished_at IS NULL)
         OR EXISTS (SELECT 1 FROM run_journal j JOIN runs r ON r.id = j.run_id
                    WHERE j.kind = 'CREATE_TOKEN' AND (j.result::json ->> 'id') = $4 || w.id
                      AND r.finished_at IS NULL)"
    };
}

/// Deletes up to `$3` waitpoints that finished before `$1`, whose idempotency key is not active
/// at `$2` and which no live run refers to, the earliest finished first, with their tags; walks
/// `waitpoints_finished` (whose condition the second line repeats, for the planner to use it).
const DELETE_WAITPOINTS: &str = concat!(
    "WITH doomed AS (
         SELECT w.id, w.environment_id, w.tags FROM waitpoints w
         WHERE w.completed_at < $1
           AND (w.idempotency_key IS NULL OR w.idempotency_key_expires_at IS NOT NULL)
           AND (w.idempotency_key IS NULL OR w.idempotency_key_expires_at < $2)
           AND NOT (",
    live_run_refers_to_waitpoint!(),
    ")
         ORDER BY w.completed_at LIMIT $3
         FOR UPDATE OF w SKIP LOCKED
     ), untagged AS (
         DELETE FROM waitpoint_tags t USING doomed d
         WHERE t.environment_id = d.environment_id AND t.waitpoint_id = d.id AND t.tag = ANY (d.tags)
     )
     DELETE FROM waitpoints w USING doomed d WHERE w.id = d.id"
);

/// Deletes up to `$3` runs that finished before `$1` and whose idempotency key is not active at
/// `$2`, the earliest finished first, with their journals and tags; walks `runs_finished`. One
/// row: the runs deleted, the journal entries deleted.
const DELETE_RUNS: &str = "
    WITH doomed AS (
        SELECT r.id, r.environment_id, r.tags FROM runs r
        WHERE r.finished_at < $1
          AND (r.idempotency_key IS NULL OR r.idempotency_key_expires_at IS NOT NULL)
          AND (r.idempotency_key IS NULL OR r.idempotency_key_expires_at < $2)
        ORDER BY r.finished_at LIMIT $3
        FOR UPDATE SKIP LOCKED
    ), forgotten AS (
        DELETE FROM run_journal j USING doomed d WHERE j.run_id = d.id RETURNING 1
    ), unwaited AS (
        DELETE FROM run_waits x USING doomed d WHERE x.run_id = d.id
    ), untagged AS (
        DELETE FROM run_tags t USING doomed d
        WHERE t.environment_id = d.environment_id AND t.run_id = d.id AND t.tag = ANY (d.tags)
    ), deleted AS (
        DELETE FROM runs r USING doomed d WHERE r.id = d.id RETURNING 1
    )
    SELECT (SELECT count(*) FROM deleted), (SELECT count(*) FROM forgotten)";

/// Deletes what `purge` allows, in one transaction.
pub(crate) async fn purge(client: &mut Client, purge: &Purge) -> Result<Purged> {
    let tx =
        client.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().await.map_err(map_error)?;
    tx.batch_execute(LOCK_TIMEOUT).await.map_err(map_error)?;
    let limit = i64::try_from(purge.limit).unwrap_or(i64::MAX);
    let (before, now) = (purge.finished_before.as_millis(), purge.now.as_millis());

    let statement = tx.prepare_cached(DELETE_WAITPOINTS).await.map_err(map_error)?;
    let waitpoints = tx.execute(&statement, &[&before, &now, &limit, &WaitpointId::PREFIX]).await.map_err(map_error)?;
    let statement = tx.prepare_cached(DELETE_RUNS).await.map_err(map_error)?;
    let row = tx.query_one(&statement, &[&before, &now, &limit]).await.map_err(map_error)?;
    let (runs, journal_entries): (i64, i64) = (column(&row, 0)?, column(&row, 1)?);
    tx.commit().await.map_err(map_error)?;
    Ok(Purged {
        waitpoints,
        runs: u64::try_from(runs).unwrap_or_default(),
        journal_entries: u64::try_from(journal_entries).unwrap_or_default(),
        events: 0,
    })
}
