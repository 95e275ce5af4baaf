//! The event log: appending a batch's events in its transaction, and reading them back.

use rusqlite::{Connection, params, params_from_iter};
use waitpoint_storage::{Result, StorageError};
use waitpoint_types::event::{Event, EventKind, NewEvent};
use waitpoint_types::{EnvironmentId, Timestamp};

use crate::map_error;

/// Appends `events`, in order, in the caller's transaction.
pub(crate) fn append(conn: &Connection, events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (environment_id, kind, subject, tags, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(map_error)?;
    for event in events {
        let tags = serde_json::to_string(&event.tags).map_err(StorageError::database)?;
        insert
            .execute(params![
                event.environment_id.internal(),
                event.kind.as_str(),
                event.subject,
                tags,
                event.data.to_string(),
                event.at.as_millis(),
            ])
            .map_err(map_error)?;
    }
    Ok(())
}

/// The events of `environment_id` after `after`, oldest first, of `kinds` (all when empty).
pub(crate) fn after(
    conn: &Connection,
    environment_id: &EnvironmentId,
    after: u64,
    kinds: &[EventKind],
    limit: usize,
) -> Result<Vec<Event>> {
    let mut sql = "SELECT seq, kind, subject, tags, data, created_at FROM events
         WHERE environment_id = ?1 AND seq > ?2"
        .to_owned();
    let mut args: Vec<rusqlite::types::Value> = vec![
        environment_id.internal().to_owned().into(),
        i64::try_from(after).unwrap_or(i64::MAX).into(),
        i64::try_from(limit).unwrap_or(i64::MAX).into(),
    ];
    if !kinds.is_empty() {
        let marks: Vec<String> = (0..kinds.len()).map(|i| format!("?{}", i + 4)).collect();
        sql.push_str(&format!(" AND kind IN ({})", marks.join(", ")));
        args.extend(kinds.iter().map(|kind| rusqlite::types::Value::from(kind.as_str().to_owned())));
    }
    sql.push_str(" ORDER BY seq LIMIT ?3");
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let rows = stmt
        .query_map(params_from_iter(args), |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })
        .map_err(map_error)?;
    rows.map(|row| {
        let (seq, kind, subject, tags, data, created_at) = row.map_err(map_error)?;
        let corrupt = |what: &str| StorageError::Corrupt(format!("event {seq}: {what}"));
        Ok(Event {
            seq: u64::try_from(seq).map_err(|_| corrupt("negative position"))?,
            event: NewEvent {
                environment_id: environment_id.clone(),
                kind: EventKind::parse(&kind).ok_or_else(|| corrupt("unknown kind"))?,
                subject,
                tags: serde_json::from_str(&tags).map_err(|_| corrupt("tags are not a JSON array"))?,
                data: serde_json::from_str(&data).map_err(|_| corrupt("data is not JSON"))?,
                at: Timestamp::from_millis(created_at),
            },
        })
    })
    .collect()
}

/// Deletes those of the `limit` oldest events appended before `before`.
pub(crate) fn purge(conn: &Connection, before: Timestamp, limit: usize) -> Result<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let deleted = conn
        .prepare_cached(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?2) AND created_at < ?1",
        )
        .and_then(|mut stmt| stmt.execute(params![before.as_millis(), limit]))
        .map_err(map_error)?;
    if deleted > 0 {
        crate::retention::give_back_pages(conn)?;
    }
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

/// The newest position of the log, 0 when it is empty.
pub(crate) fn head(conn: &Connection) -> Result<u64> {
    let seq: Option<i64> = conn.query_row("SELECT MAX(seq) FROM events", [], |row| row.get(0)).map_err(map_error)?;
    Ok(seq.and_then(|seq| u64::try_from(seq).ok()).unwrap_or(0))
}
