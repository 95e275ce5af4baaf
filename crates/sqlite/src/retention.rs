//! Retention: purges of what finished long ago ([`Purge`] states the rule), and returning the
//! pages they free to the file system.
//!
//! A database made by this version has `auto_vacuum = INCREMENTAL` (set before its first table,
//! the only time SQLite allows it): each purge ends by moving up to [`VACUUM_PAGES`] pages from
//! the end of the file into the ones it freed and truncating the file, in the same transaction,
//! so the file shrinks as records go. An older database reuses the freed pages for new records
//! but never shrinks until [`vacuum`] rewrites it once.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior, params};
use waitpoint_storage::{Purge, Purged, Result, StorageError};
use waitpoint_types::WaitpointId;

use crate::map_error;

/// Free pages returned to the file system per purge (4 KiB each): more than a purge of a batch
/// frees, so the free list drains, and a bound on the time one purge holds the writer.
const VACUUM_PAGES: u32 = 1_024;

/// Whether a run that has not finished refers to the waitpoint `w`: one of its waits (alone or
/// in a set, now or before) is on it, or its journal names it in the result of a `CREATE_TOKEN`
/// entry (`{"id": "waitpoint_…", …}`). `?4` is the prefix of public waitpoint ids. Each part is
/// a probe of an index.
const LIVE_RUN_REFERS_TO_WAITPOINT: &str = "
    EXISTS (SELECT 1 FROM run_waits x JOIN runs r ON r.id = x.run_id
            WHERE x.waitpoint_id = w.id AND r.finished_at IS NULL)
    OR EXISTS (SELECT 1 FROM run_journal j JOIN runs r ON r.id = j.run_id
               WHERE j.kind = 'CREATE_TOKEN' AND json_extract(j.result, '$.id') = ?4 || w.id
                 AND r.finished_at IS NULL)";

/// Up to `?3` waitpoints that finished before `?1`, whose idempotency key is not active at `?2`
/// and which no live run refers to, the earliest finished first; walks `waitpoints_finished`
/// (whose condition the second line repeats, for the planner to use it).
fn doomed_waitpoints() -> String {
    format!(
        "SELECT w.id, w.environment_id, w.tags FROM waitpoints w
         WHERE w.completed_at IS NOT NULL AND w.completed_at < ?1
           AND (w.idempotency_key IS NULL OR w.idempotency_key_expires_at IS NOT NULL)
           AND (w.idempotency_key IS NULL OR w.idempotency_key_expires_at < ?2)
           AND NOT ({LIVE_RUN_REFERS_TO_WAITPOINT})
         ORDER BY w.completed_at LIMIT ?3"
    )
}

/// Up to `?3` runs that finished before `?1` and whose idempotency key is not active at `?2`,
/// the earliest finished first; walks `runs_finished`.
const DOOMED_RUNS: &str = "
    SELECT r.id, r.environment_id, r.tags FROM runs r
    WHERE r.finished_at IS NOT NULL AND r.finished_at < ?1
      AND (r.idempotency_key IS NULL OR r.idempotency_key_expires_at IS NOT NULL)
      AND (r.idempotency_key IS NULL OR r.idempotency_key_expires_at < ?2)
    ORDER BY r.finished_at LIMIT ?3";

/// A record to delete: its id, environment, and tags (a JSON array, duplicates possible).
struct Doomed {
    id: String,
    environment_id: String,
    tags: Vec<String>,
}

/// Deletes what `purge` allows in one transaction, then returns up to [`VACUUM_PAGES`] free
/// pages to the file system in it.
pub(crate) fn purge(conn: &mut Connection, purge: &Purge) -> Result<Purged> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_error)?;
    let limit = i64::try_from(purge.limit).unwrap_or(i64::MAX);
    let (before, now) = (purge.finished_before.as_millis(), purge.now.as_millis());
    let mut purged = Purged::default();

    let waitpoints = doomed(&tx, &doomed_waitpoints(), params![before, now, limit, WaitpointId::PREFIX])?;
    {
        let mut untag = tx
            .prepare_cached("DELETE FROM waitpoint_tags WHERE environment_id = ?1 AND tag = ?2 AND waitpoint_id = ?3")
            .map_err(map_error)?;
        let mut delete = tx.prepare_cached("DELETE FROM waitpoints WHERE id = ?1").map_err(map_error)?;
        for w in &waitpoints {
            for tag in &w.tags {
                untag.execute(params![w.environment_id, tag, w.id]).map_err(map_error)?;
            }
            purged.waitpoints += count(delete.execute([&w.id]).map_err(map_error)?);
        }
    }

    let runs = doomed(&tx, DOOMED_RUNS, params![before, now, limit])?;
    {
        let mut untag = tx
            .prepare_cached("DELETE FROM run_tags WHERE environment_id = ?1 AND tag = ?2 AND run_id = ?3")
            .map_err(map_error)?;
        let mut forget = tx.prepare_cached("DELETE FROM run_journal WHERE run_id = ?1").map_err(map_error)?;
        let mut unwait = tx.prepare_cached("DELETE FROM run_waits WHERE run_id = ?1").map_err(map_error)?;
        let mut delete = tx.prepare_cached("DELETE FROM runs WHERE id = ?1").map_err(map_error)?;
        for r in &runs {
            for tag in &r.tags {
                untag.execute(params![r.environment_id, tag, r.id]).map_err(map_error)?;
            }
            purged.journal_entries += count(forget.execute([&r.id]).map_err(map_error)?);
            unwait.execute([&r.id]).map_err(map_error)?;
            purged.runs += count(delete.execute([&r.id]).map_err(map_error)?);
        }
    }

    if !purged.is_empty() {
        give_back_pages(&tx)?;
    }
    tx.commit().map_err(map_error)?;
    Ok(purged)
}

/// Gives free pages back to the file system (a few at a time), in a database made to.
pub(crate) fn give_back_pages(conn: &Connection) -> Result<()> {
    // One row per page given back: the pages go as the rows are stepped through.
    let mut vacuum = conn.prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})")).map_err(map_error)?;
    let mut pages = vacuum.query([]).map_err(map_error)?;
    while pages.next().map_err(map_error)?.is_some() {}
    Ok(())
}

/// The records `sql` selects with `params`, each with its distinct tags.
fn doomed(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Doomed>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_error)?;
    let rows = stmt
        .query_map(params, |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)))
        .map_err(map_error)?;
    rows.map(|row| {
        let (id, environment_id, tags) = row.map_err(map_error)?;
        let mut tags: Vec<String> = serde_json::from_str(&tags)
            .map_err(|_| StorageError::Corrupt(format!("{id}: tags are not a JSON array")))?;
        tags.sort_unstable();
        tags.dedup();
        Ok(Doomed { id, environment_id, tags })
    })
    .collect()
}

fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

/// Whether the database returns the pages purges free to the file system (`auto_vacuum =
/// INCREMENTAL`); a database made before waitpoint did needs [`vacuum`] once for that.
pub(crate) fn returns_free_pages(conn: &Connection) -> Result<bool> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |row| row.get(0)).map_err(map_error)?;
    Ok(mode == 2)
}

/// Rewrites the database at `path` into a compact file that returns the pages purges free to
/// the file system from then on (`auto_vacuum = INCREMENTAL`, then `VACUUM`). It writes a whole
/// copy of the database, needs that much free disk space while it runs, and holds the write
/// lock throughout: stop the server first. `NotFound` if there is no database at `path`.
pub async fn vacuum(path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || vacuum_blocking(&path)).await.map_err(StorageError::database)?
}

fn vacuum_blocking(path: &Path) -> Result<()> {
    if !path.is_file() {
        return Err(StorageError::NotFound);
    }
    let conn = Connection::open(path).map_err(map_error)?;
    conn.busy_timeout(crate::BUSY_TIMEOUT).map_err(map_error)?;
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;").map_err(map_error)?;
    // The rewritten pages are in the write-ahead log until a checkpoint copies them back.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(map_error)
}
