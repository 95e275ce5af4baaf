//! The event log: appending a batch's events in its transaction, and reading them back.
//!
//! Concurrent transactions commit in another order than they insert, so an insert-time
//! position would let a reader see position 8 while 7 is still to come, and move past it.
//! Events are appended without a position, and sequenced before they are read: [`sequence`]
//! gives the committed events that have none the next positions, in insert order, one
//! sequencer at a time (a transaction advisory lock taken with `try`: a reader that finds
//! another sequencing reads what is sequenced). An event sequenced later always comes after
//! every event sequenced before it, and writers never wait for each other.

use deadpool_postgres::Transaction;
use waitpoint_storage::{Result, StorageError};
use waitpoint_types::event::{Event, EventKind, NewEvent};
use waitpoint_types::{EnvironmentId, Timestamp};

use crate::map_error;
use crate::rows::column;

/// The advisory lock key of the sequencer ("waitpoint events", as bytes).
const SEQUENCER_LOCK: i64 = 0x7761_6974_6576_7473;
/// Events sequenced per statement.
const SEQUENCE_BATCH: i64 = 10_000;

/// Gives the next positions to up to `$2` committed events without one, in insert order,
/// after `$1` (the highest position given so far).
const SEQUENCE: &str = "UPDATE events e SET seq = $1 + p.n
     FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM events WHERE seq IS NULL ORDER BY id LIMIT $2) AS p
     WHERE e.id = p.id";

const APPEND: &str = "INSERT INTO events (environment_id, kind, subject, tags, data, created_at)
     SELECT e.environment_id, e.kind, e.subject, ARRAY(SELECT jsonb_array_elements_text(e.tags::jsonb)), e.data,
         e.created_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
         WITH ORDINALITY AS e (environment_id, kind, subject, tags, data, created_at, n)
     ORDER BY e.n";

/// Appends `events`, in order, in the batch's transaction, without positions (see the
/// module's note on order).
pub(crate) async fn append(tx: &Transaction<'_>, events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
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

/// Sequences the committed events that have no position yet (see the module's note), unless
/// another connection is doing it right now.
pub(crate) async fn sequence(client: &mut deadpool_postgres::Client) -> Result<()> {
    let tx = client.transaction().await.map_err(map_error)?;
    let locked = tx.prepare_cached("SELECT pg_try_advisory_xact_lock($1)").await.map_err(map_error)?;
    let got: bool = column(&tx.query_one(&locked, &[&SEQUENCER_LOCK]).await.map_err(map_error)?, 0)?;
    if got {
        let head = tx.prepare_cached("SELECT coalesce(max(seq), 0) FROM events").await.map_err(map_error)?;
        let sequence = tx.prepare_cached(SEQUENCE).await.map_err(map_error)?;
        loop {
            let after: i64 = column(&tx.query_one(&head, &[]).await.map_err(map_error)?, 0)?;
            let given = tx.execute(&sequence, &[&after, &SEQUENCE_BATCH]).await.map_err(map_error)?;
            if given < u64::try_from(SEQUENCE_BATCH).unwrap_or(u64::MAX) {
                break;
            }
        }
    }
    tx.commit().await.map_err(map_error)
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

/// Deletes those of the `$2` oldest events appended before `$1` that were sequenced (read).
pub(crate) const PURGE: &str = "DELETE FROM events
     WHERE id IN (SELECT id FROM events ORDER BY id LIMIT $2) AND created_at < $1 AND seq IS NOT NULL";

/// The events after a position: `$1` environment, `$2` position, `$3` kinds (all when empty),
/// `$4` limit.
pub(crate) const AFTER: &str = "SELECT seq, kind, subject, tags, data, created_at FROM events
     WHERE environment_id = $1 AND seq > $2 AND (cardinality($3::text[]) = 0 OR kind = ANY($3))
     ORDER BY seq LIMIT $4";
