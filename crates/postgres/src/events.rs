//! The event log: appending a batch's events in its transaction, and reading them back.
//!
//! Positions come from a sequence, which hands them out in insert order, not commit order: a
//! reader could see position 8 committed while 7 is still to come, and move past it. So a
//! batch appends under a transaction-level advisory lock, held until it commits: the batches
//! that append take their positions one after another, and each commits before the next one
//! takes any.

use deadpool_postgres::Transaction;
use waitpoint_storage::{Result, StorageError};
use waitpoint_types::event::{Event, EventKind, NewEvent};
use waitpoint_types::{EnvironmentId, Timestamp};

use crate::map_error;
use crate::rows::column;

/// The advisory lock key that orders appends ("waitpoint events", as bytes).
const APPEND_LOCK: i64 = 0x7761_6974_6576_7473;

const APPEND: &str = "INSERT INTO events (environment_id, kind, subject, tags, data, created_at)
     SELECT e.environment_id, e.kind, e.subject, ARRAY(SELECT jsonb_array_elements_text(e.tags::jsonb)), e.data,
         e.created_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
         WITH ORDINALITY AS e (environment_id, kind, subject, tags, data, created_at, n)
     ORDER BY e.n";

/// Appends `events`, in order, in the batch's transaction (see the module's note on order).
pub(crate) async fn append(tx: &Transaction<'_>, events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let lock = tx.prepare_cached("SELECT pg_advisory_xact_lock($1)").await.map_err(map_error)?;
    tx.execute(&lock, &[&APPEND_LOCK]).await.map_err(map_error)?;
    let environments: Vec<&str> = events.iter().map(|event| event.environment_id.internal()).collect();
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
    let subjects: Vec<&str> = events.iter().map(|event| event.subject.as_str()).collect();
    let tags: Vec<String> = events
        .iter()
        .map(|event| serde_json::to_string(&event.tags))
        .collect::<serde_json::Result<_>>()
        .map_err(StorageError::database)?;
    let data: Vec<&str> = events.iter().map(|event| event.data.as_str()).collect();
    let at: Vec<i64> = events.iter().map(|event| event.at.as_millis()).collect();
    let append = tx.prepare_cached(APPEND).await.map_err(map_error)?;
    tx.execute(&append, &[&environments, &kinds, &subjects, &tags, &data, &at]).await.map_err(map_error)?;
    Ok(())
}

/// Reads events from rows of `seq, kind, subject, tags, data, created_at`.
pub(crate) fn from_rows(environment_id: &EnvironmentId, rows: &[tokio_postgres::Row]) -> Result<Vec<Event>> {
    rows.iter()
        .map(|row| {
            let seq: i64 = column(row, 0)?;
            let corrupt = |what: &str| StorageError::Corrupt(format!("event {seq}: {what}"));
            let kind: String = column(row, 1)?;
            Ok(Event {
                seq: u64::try_from(seq).map_err(|_| corrupt("negative position"))?,
                event: NewEvent {
                    environment_id: environment_id.clone(),
                    kind: EventKind::parse(&kind).ok_or_else(|| corrupt("unknown kind"))?,
                    subject: column(row, 2)?,
                    tags: column(row, 3)?,
                    data: column(row, 4)?,
                    at: Timestamp::from_millis(column(row, 5)?),
                },
            })
        })
        .collect()
}

/// Deletes those of the `$2` oldest events appended before `$1`.
pub(crate) const PURGE: &str =
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT $2) AND created_at < $1";

/// The events after a position: `$1` environment, `$2` position, `$3` kinds (all when empty),
/// `$4` limit.
pub(crate) const AFTER: &str = "SELECT seq, kind, subject, tags, data, created_at FROM events
     WHERE environment_id = $1 AND seq > $2 AND (cardinality($3::text[]) = 0 OR kind = ANY($3))
     ORDER BY seq LIMIT $4";
