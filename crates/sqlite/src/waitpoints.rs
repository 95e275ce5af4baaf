//! Waitpoint writes and reads: create with idempotency keys, finish (resuming waiting runs),
//! token lists.

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use waitpoint_storage::{Finish, ListQuery, Result, StorageError, WriteOutcome, transitions};
use waitpoint_types::{Timestamp, Waitpoint};

use crate::args::Args;
use crate::rows::{WAITPOINT_COLUMNS, state_columns, waitpoint_from_row};
use crate::runs;
use crate::{lists, map_error};

pub(crate) fn select_waitpoint(conn: &Connection, id: &str) -> Result<Option<Waitpoint>> {
    let sql = format!("SELECT {WAITPOINT_COLUMNS} FROM waitpoints w WHERE w.id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], waitpoint_from_row).optional())
        .map_err(map_error)?
        .transpose()
}

pub(crate) fn create(conn: &Connection, new: Waitpoint) -> Result<WriteOutcome> {
    if let Some(key) = &new.idempotency_key {
        let sql = format!(
            "SELECT {WAITPOINT_COLUMNS} FROM waitpoints w WHERE w.environment_id = ?1 AND w.idempotency_key = ?2"
        );
        let existing = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_row(params![new.environment_id.internal(), key], waitpoint_from_row).optional()
            })
            .map_err(map_error)?
            .transpose()?;
        if let Some(existing) = existing {
            if existing.idempotency_key_expires_at.is_none_or(|expires| new.created_at <= expires) {
                return Ok(WriteOutcome::Existing(existing));
            }
            conn.prepare_cached(
                "UPDATE waitpoints SET inactive_idempotency_key = idempotency_key, idempotency_key = NULL WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute([existing.id.internal()]))
            .map_err(map_error)?;
        }
    }
    let tags = serde_json::to_string(&new.tags).map_err(StorageError::database)?;
    conn.prepare_cached(
        "INSERT INTO waitpoints (id, environment_id, status, idempotency_key, inactive_idempotency_key,
             idempotency_key_expires_at, timeout_at, tags, created_at, kind)
         VALUES (?1, ?2, 'WAITING', ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            new.id.internal(),
            new.environment_id.internal(),
            new.idempotency_key,
            new.inactive_idempotency_key,
            new.idempotency_key_expires_at.map(Timestamp::as_millis),
            new.timeout_at.map(Timestamp::as_millis),
            tags,
            new.created_at.as_millis(),
            new.kind.as_str(),
        ])
    })
    .map_err(map_error)?;
    let mut insert_tag = conn
        .prepare_cached("INSERT OR IGNORE INTO waitpoint_tags (environment_id, tag, waitpoint_id) VALUES (?1, ?2, ?3)")
        .map_err(map_error)?;
    for tag in &new.tags {
        insert_tag.execute(params![new.environment_id.internal(), tag, new.id.internal()]).map_err(map_error)?;
    }
    Ok(WriteOutcome::Created(new))
}

/// Finishes a waiting waitpoint and resumes the runs waiting on it, in the caller's transaction.
pub(crate) fn finish(conn: &Connection, finish: Finish) -> Result<WriteOutcome> {
    let Some(mut current) = select_waitpoint(conn, finish.id.internal())? else {
        return Ok(WriteOutcome::NotFound);
    };
    if finish.environment_id.as_ref().is_some_and(|env| *env != current.environment_id) {
        return Ok(WriteOutcome::NotFound);
    }
    let Some(state) = transitions::waitpoint_finished(&current, &finish.state) else {
        return Ok(WriteOutcome::Unchanged(current));
    };
    let columns = state_columns(&state);
    conn.prepare_cached(
        "UPDATE waitpoints SET status = ?2, completed_at = ?3, completed_via = ?4, output = ?5, output_type = ?6
         WHERE id = ?1 AND status = 'WAITING'",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            current.id.internal(),
            columns.status,
            columns.completed_at,
            columns.completed_via,
            columns.output,
            columns.output_type,
        ])
    })
    .map_err(map_error)?;
    current.state = state;
    let resumed = runs::resume_waiting(conn, &current, finish.workers_alive_since)?;
    Ok(WriteOutcome::Finished(current, resumed))
}

/// Lists tokens. Every shape of query walks an index in id order and stops after `limit`
/// rows that pass every filter:
/// - with tags, the tag table's `(environment_id, tag, waitpoint_id)`, once per tag;
/// - else with statuses, `(environment_id, status, id)`, once per status;
/// - else `(environment_id, id)`.
///
/// Several walks are merged: the overall first `limit` rows are among the first `limit` of
/// some walk. An idempotency key is looked up through its two indexes first.
pub(crate) fn list(conn: &Connection, query: &ListQuery) -> Result<Vec<Waitpoint>> {
    let mut args = Args(vec![query.environment_id.internal().to_owned().into()]);
    let id_column = if query.tags.is_empty() { "w.id" } else { "t.waitpoint_id" };
    let mut filters = String::from(" AND w.kind = 'MANUAL'");
    if let Some(key) = &query.idempotency_key {
        filters += &lists::idempotency_key_filter(&mut args, "waitpoints", "w", key);
    }
    let (window, order, limit) = lists::window_filters(&mut args, &query.window, id_column);
    filters += &window;
    let statuses: Vec<String> = query.statuses.iter().map(|s| args.push(s.as_str().to_owned())).collect();
    let walks: Vec<String> = if !query.tags.is_empty() {
        if !statuses.is_empty() {
            filters += &format!(" AND w.status IN ({})", statuses.join(", "));
        }
        query
            .tags
            .iter()
            .map(|tag| {
                format!(
                    "SELECT {WAITPOINT_COLUMNS} FROM waitpoint_tags t JOIN waitpoints w ON w.id = t.waitpoint_id \
                     WHERE t.environment_id = ?1 AND t.tag = {}{filters} ORDER BY t.waitpoint_id {order} LIMIT {limit}",
                    args.push(tag.clone())
                )
            })
            .collect()
    } else if !statuses.is_empty() {
        statuses
            .iter()
            .map(|status| {
                format!(
                    "SELECT {WAITPOINT_COLUMNS} FROM waitpoints w WHERE w.environment_id = ?1 AND w.status = {status}\
                     {filters} ORDER BY w.id {order} LIMIT {limit}"
                )
            })
            .collect()
    } else {
        vec![format!(
            "SELECT {WAITPOINT_COLUMNS} FROM waitpoints w WHERE w.environment_id = ?1{filters} \
             ORDER BY w.id {order} LIMIT {limit}"
        )]
    };
    let sql = lists::merge(&walks, order, &limit);
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let rows = stmt.query_map(params_from_iter(args.0), waitpoint_from_row).map_err(map_error)?;
    rows.map(|row| row.map_err(map_error)?).collect()
}
