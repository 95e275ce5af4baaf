//! Waitpoint writes and reads: create with idempotency keys, finish (resuming waiting runs),
//! token lists.

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use waitpoint_storage::{
    CreateOutcome, Finish, FinishOutcome, ListQuery, Prolong, ProlongOutcome, Result, StorageError, transitions,
};
use waitpoint_types::{CallbackVerifier, EnvironmentId, Timestamp, Waitpoint, WaitpointKind};

use crate::args::Args;
use crate::resume;
use crate::rows::{WAITPOINT_COLUMNS, state_columns, waitpoint_from_row};
use crate::{lists, map_error};

pub(crate) fn select_waitpoint(conn: &Connection, id: &str) -> Result<Option<Waitpoint>> {
    let sql = format!("SELECT {WAITPOINT_COLUMNS} FROM waitpoints w WHERE w.id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], waitpoint_from_row).optional())
        .map_err(map_error)?
        .transpose()
}

pub(crate) fn create(conn: &Connection, new: Waitpoint) -> Result<CreateOutcome> {
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
                return Ok(CreateOutcome::Existing(existing));
            }
            conn.prepare_cached(
                "UPDATE waitpoints SET inactive_idempotency_key = idempotency_key, idempotency_key = NULL WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute([existing.id.internal()]))
            .map_err(map_error)?;
        }
    }
    let tags = serde_json::to_string(&new.tags).map_err(StorageError::database)?;
    let approval = new.approval.as_ref().map(serde_json::to_string).transpose().map_err(StorageError::database)?;
    conn.prepare_cached(
        "INSERT INTO waitpoints (id, environment_id, status, idempotency_key, inactive_idempotency_key,
             idempotency_key_expires_at, timeout_at, tags, created_at, kind, approval, output_schema, heartbeat_every,
             heartbeat_deadline, callback_verifier)
         VALUES (?1, ?2, 'WAITING', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
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
            approval,
            new.output_schema,
            new.heartbeat.map(|heartbeat| millis_of(heartbeat.every)),
            new.heartbeat.map(|heartbeat| heartbeat.deadline.as_millis()),
            new.callback_verifier.as_ref().map(CallbackVerifier::to_stored),
        ])
    })
    .map_err(map_error)?;
    let mut insert_tag = conn
        .prepare_cached("INSERT OR IGNORE INTO waitpoint_tags (environment_id, tag, waitpoint_id) VALUES (?1, ?2, ?3)")
        .map_err(map_error)?;
    for tag in &new.tags {
        insert_tag.execute(params![new.environment_id.internal(), tag, new.id.internal()]).map_err(map_error)?;
    }
    Ok(CreateOutcome::Created(new))
}

/// Finishes a waiting waitpoint and resumes the runs waiting on it, in the caller's transaction.
pub(crate) fn finish(conn: &Connection, finish: Finish) -> Result<FinishOutcome> {
    let Some(mut current) = select_waitpoint(conn, finish.id.internal())? else {
        return Ok(FinishOutcome::NotFound);
    };
    if finish.environment_id.as_ref().is_some_and(|env| *env != current.environment_id) {
        return Ok(FinishOutcome::NotFound);
    }
    if let Some(reason) = transitions::completion_refused(&current, &finish.finishing) {
        return Ok(FinishOutcome::Refused(current, reason));
    }
    let Some(state) = transitions::waitpoint_finished(&current, &finish.finishing) else {
        return Ok(FinishOutcome::Unchanged(current));
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
    let mut tagged = current.tags.clone();
    tagged.sort_unstable();
    tagged.dedup();
    if !tagged.is_empty() {
        let mut retag = conn
            .prepare_cached(
                "UPDATE waitpoint_tags SET status = ?1 WHERE environment_id = ?2 AND tag = ?3 AND waitpoint_id = ?4",
            )
            .map_err(map_error)?;
        for tag in &tagged {
            retag
                .execute(params![columns.status, current.environment_id.internal(), tag, current.id.internal()])
                .map_err(map_error)?;
        }
    }
    current.state = state;
    let resumed = resume::resume_waiting(conn, &current, &finish.hand_to)?;
    Ok(FinishOutcome::Finished(current, resumed))
}

/// Keeps a waiting token alive (a heartbeat or an extend), in the caller's transaction.
pub(crate) fn prolong(conn: &Connection, prolong: &Prolong) -> Result<ProlongOutcome> {
    let Some(current) = select_waitpoint(conn, prolong.id.internal())? else {
        return Ok(ProlongOutcome::NotFound);
    };
    if current.environment_id != prolong.environment_id || current.kind != WaitpointKind::Manual {
        return Ok(ProlongOutcome::NotFound);
    }
    let next = match transitions::waitpoint_prolonged(&current, prolong.prolonging, prolong.at) {
        Ok(next) => next,
        Err(refusal) => return Ok(ProlongOutcome::Refused(current, refusal)),
    };
    conn.prepare_cached("UPDATE waitpoints SET timeout_at = ?2, heartbeat_deadline = ?3 WHERE id = ?1")
        .and_then(|mut stmt| {
            stmt.execute(params![
                next.id.internal(),
                next.timeout_at.map(Timestamp::as_millis),
                next.heartbeat.map(|heartbeat| heartbeat.deadline.as_millis()),
            ])
        })
        .map_err(map_error)?;
    Ok(ProlongOutcome::Prolonged(next))
}

/// A heartbeat interval as stored: whole milliseconds.
fn millis_of(every: std::time::Duration) -> i64 {
    i64::try_from(every.as_millis()).unwrap_or(i64::MAX)
}

/// Lists tokens. Every shape of query walks an index in id order and stops after `limit`
/// rows that pass every filter:
/// - with tags, the tag table's `(environment_id, tag, waitpoint_id)`, once per tag, or with
///   statuses too, its `(environment_id, tag, status, waitpoint_id)`, once per tag and status;
/// - else with statuses, `(environment_id, status, id)`, once per status;
/// - else `(environment_id, id)`.
///
/// Several walks are merged: the overall first `limit` rows are among the first `limit` of
/// some walk. An idempotency key is looked up through its two indexes first.
pub(crate) fn list(conn: &Connection, query: &ListQuery) -> Result<Vec<Waitpoint>> {
    let (sql, args) = list_sql(query, WAITPOINT_COLUMNS);
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let rows = stmt.query_map(params_from_iter(args.0), waitpoint_from_row).map_err(map_error)?;
    rows.map(|row| row.map_err(map_error)?).collect()
}

/// Counts what [`list`] would return, walking the same indexes for the ids alone.
pub(crate) fn count(conn: &Connection, query: &ListQuery) -> Result<u64> {
    let (sql, args) = list_sql(query, "w.id");
    conn.prepare_cached(&format!("SELECT COUNT(*) FROM ({sql})"))
        .and_then(|mut stmt| stmt.query_row(params_from_iter(args.0), |row| row.get::<_, i64>(0)))
        .map(|count| u64::try_from(count).unwrap_or_default())
        .map_err(map_error)
}

/// The statement of [`list`], selecting `columns` (of `w`), and its arguments.
fn list_sql(query: &ListQuery, columns: &str) -> (String, Args) {
    let mut args = Args(vec![query.environment_id.internal().to_owned().into()]);
    let id_column = if query.tags.is_empty() { "w.id" } else { "t.waitpoint_id" };
    let mut filters = String::from(" AND w.kind = 'MANUAL'");
    if let Some(key) = &query.idempotency_key {
        filters += &lists::idempotency_key_filter(&mut args, "waitpoints", "w", key);
    }
    let (window, order, limit) = lists::window_filters(&mut args, &query.window, id_column);
    filters += &window;
    // Literals, as the planner sees them (see `configure`).
    let statuses: Vec<String> = query.statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let walks: Vec<String> = if !query.tags.is_empty() {
        let conditions: Vec<String> = if statuses.is_empty() {
            vec![String::new()]
        } else {
            statuses.iter().map(|status| format!(" AND t.status = {status}")).collect()
        };
        let mut walks = Vec::new();
        for tag in &query.tags {
            let tag = args.push(tag.clone());
            for status in &conditions {
                walks.push(format!(
                    "SELECT {columns} FROM waitpoint_tags t JOIN waitpoints w ON w.id = t.waitpoint_id \
                     WHERE t.environment_id = ?1 AND t.tag = {tag}{status}{filters} \
                     ORDER BY t.waitpoint_id {order} LIMIT {limit}"
                ));
            }
        }
        walks
    } else if !statuses.is_empty() {
        statuses
            .iter()
            .map(|status| {
                format!(
                    "SELECT {columns} FROM waitpoints w WHERE w.environment_id = ?1 AND w.status = {status}\
                     {filters} ORDER BY w.id {order} LIMIT {limit}"
                )
            })
            .collect()
    } else {
        vec![format!(
            "SELECT {columns} FROM waitpoints w WHERE w.environment_id = ?1{filters} \
             ORDER BY w.id {order} LIMIT {limit}"
        )]
    };
    (lists::merge(&walks, order, &limit), args)
}

/// Distinct tags of an environment starting with `prefix`: one seek per tag, to the first
/// entry of the tag table above the previous tag (tags with a prefix sort together, bytewise).
pub(crate) fn tags(
    conn: &Connection,
    environment_id: &EnvironmentId,
    prefix: &str,
    limit: usize,
) -> Result<Vec<String>> {
    // Two statements, each a plain range the index serves (an `OR` in one would scan).
    let mut first = conn
        .prepare_cached("SELECT tag FROM waitpoint_tags WHERE environment_id = ?1 AND tag >= ?2 ORDER BY tag LIMIT 1")
        .map_err(map_error)?;
    let mut next = conn
        .prepare_cached("SELECT tag FROM waitpoint_tags WHERE environment_id = ?1 AND tag > ?2 ORDER BY tag LIMIT 1")
        .map_err(map_error)?;
    let mut found: Vec<String> = Vec::new();
    while found.len() < limit {
        let tag: Option<String> = match found.last() {
            None => first.query_row(params![environment_id.internal(), prefix], |row| row.get(0)),
            Some(last) => next.query_row(params![environment_id.internal(), last], |row| row.get(0)),
        }
        .optional()
        .map_err(map_error)?;
        match tag {
            Some(tag) if tag.starts_with(prefix) => found.push(tag),
            _ => break,
        }
    }
    Ok(found)
}

/// Waiting tokens of an environment with a deadline, earliest first.
pub(crate) fn timeouts_soonest(
    conn: &Connection,
    environment_id: &EnvironmentId,
    limit: usize,
) -> Result<Vec<Waitpoint>> {
    let sql = format!(
        "SELECT {WAITPOINT_COLUMNS} FROM waitpoints w
         WHERE w.environment_id = ?1 AND w.status = 'WAITING' AND w.kind = 'MANUAL' AND w.timeout_at IS NOT NULL
         ORDER BY w.timeout_at, w.id LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![environment_id.internal(), limit], waitpoint_from_row).map_err(map_error)?;
    rows.map(|row| row.map_err(map_error)?).collect()
}
