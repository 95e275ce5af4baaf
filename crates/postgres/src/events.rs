//! The event log: appending a batch's events in its transaction, and reading them back.
//!
//! A batch's events are one row of `event_batches` (a JSON array), so the log costs a write
//! one row, however many operations it holds. Concurrent transactions commit in another
//! order than they insert, so an insert-time position would let a reader see position 8 while
//! 7 is still to come, and move past it. Rows are appended without a position, and sequenced
//! before they are read: [`sequence`] gives the committed rows that have none the next
//! positions, in insert order, one sequencer at a time (a transaction advisory lock taken with
//! `try`: a reader that finds another sequencing reads what is sequenced). A row's events take
//! consecutive positions, the last one recorded as `last`. An event sequenced later always
//! comes after every event sequenced before it, and writers never wait for each other.

use deadpool_postgres::{Client, Transaction};
use waitpoint_storage::{Result, StorageError};
use waitpoint_types::event::{Event, EventKind, NewEvent};
use waitpoint_types::{EnvironmentId, Timestamp};

use crate::map_error;
use crate::rows::column;

/// The advisory lock key of the sequencer ("waitpoint events", as bytes).
const SEQUENCER_LOCK: i64 = 0x7761_6974_6576_7473;
/// Rows sequenced per statement.
const SEQUENCE_BATCH: i64 = 10_000;
/// Rows read per statement while looking for an environment's events.
const READ_BATCH: i64 = 200;

/// Gives the next positions to up to `$2` committed rows without one, in insert order, after
/// `$1` (the highest position given so far): each row's `last` is `$1` plus the events of the
/// rows up to and including it.
const SEQUENCE: &str = "UPDATE event_batches b SET last = $1 + p.through
     FROM (SELECT id, sum(count) OVER (ORDER BY id) AS through
           FROM (SELECT id, count FROM event_batches WHERE last IS NULL ORDER BY id LIMIT $2) AS next) AS p
     WHERE b.last IS NULL AND b.id = p.id";

const APPEND: &str = "INSERT INTO event_batches (count, environments, events, created_at) VALUES ($1, $2, $3, $4)";

/// The rows holding events of `$1` after position `$2`, oldest first, at most `$3`.
const AFTER: &str = "SELECT last, count, events FROM event_batches
     WHERE last > $2 AND $1 = ANY(environments) ORDER BY last LIMIT $3";

/// Deletes those of the `$2` oldest sequenced (read) rows that were appended before `$1`, and
/// returns how many events each held.
const PURGE: &str = "DELETE FROM event_batches
     WHERE last IN (SELECT last FROM event_batches WHERE last IS NOT NULL ORDER BY last LIMIT $2) AND created_at < $1
     RETURNING count";

/// The position of the newest sequenced event; 0 when there is none.
const HEAD: &str = "SELECT coalesce(max(last), 0) FROM event_batches";

/// An event as a row's array holds it.
#[derive(serde::Serialize)]
struct Stored<'a> {
    environment: &'a str,
    kind: &'a str,
    subject: &'a str,
    tags: &'a [String],
    data: &'a serde_json::Value,
    at: i64,
}

/// An event read back from a row's array.
#[derive(serde::Deserialize)]
struct Read {
    environment: String,
    kind: String,
    subject: String,
    tags: Vec<String>,
    data: serde_json::Value,
    at: i64,
}

/// Appends `events`, in order, as one row without a position (see the module's note on
/// order), in the batch's transaction.
pub(crate) async fn append(tx: &Transaction<'_>, events: &[NewEvent]) -> Result<()> {
    let Some(first) = events.first() else { return Ok(()) };
    let stored: Vec<Stored<'_>> = events
        .iter()
        .map(|event| Stored {
            environment: event.environment_id.internal(),
            kind: event.kind.as_str(),
            subject: &event.subject,
            tags: &event.tags,
            data: &event.data,
            at: event.at.as_millis(),
        })
        .collect();
    let array = serde_json::to_string(&stored).map_err(StorageError::database)?;
    let mut environments: Vec<&str> = Vec::new();
    for event in events {
        if !environments.contains(&event.environment_id.internal()) {
            environments.push(event.environment_id.internal());
        }
    }
    let count = i32::try_from(events.len()).map_err(StorageError::database)?;
    let append = tx.prepare_cached(APPEND).await.map_err(map_error)?;
    tx.execute(&append, &[&count, &environments, &array, &first.at.as_millis()]).await.map_err(map_error)?;
    Ok(())
}

/// Sequences the committed rows that have no position yet (see the module's note), unless
/// another connection is doing it right now.
pub(crate) async fn sequence(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await.map_err(map_error)?;
    let locked = tx.prepare_cached("SELECT pg_try_advisory_xact_lock($1)").await.map_err(map_error)?;
    let got: bool = column(&tx.query_one(&locked, &[&SEQUENCER_LOCK]).await.map_err(map_error)?, 0)?;
    if got {
        let head = tx.prepare_cached(HEAD).await.map_err(map_error)?;
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

/// The position of the newest sequenced event; 0 when there is none.
pub(crate) async fn head(client: &Client) -> Result<u64> {
    let head = client.prepare_cached(HEAD).await.map_err(map_error)?;
    let last: i64 = column(&client.query_one(&head, &[]).await.map_err(map_error)?, 0)?;
    Ok(u64::try_from(last).unwrap_or(0))
}

/// The sequenced events of `environment_id` after position `after`, oldest first, at most
/// `limit`, only of `kinds` unless it is empty. Reads rows until it has `limit` events or
/// there are no more rows, so a page comes back short only at the end of the log.
pub(crate) async fn after(
    client: &Client,
    environment_id: &EnvironmentId,
    after: u64,
    kinds: &[EventKind],
    limit: usize,
) -> Result<Vec<Event>> {
    let statement = client.prepare_cached(AFTER).await.map_err(map_error)?;
    let mut events = Vec::new();
    let mut cursor = i64::try_from(after).unwrap_or(i64::MAX);
    while events.len() < limit {
        let rows =
            client.query(&statement, &[&environment_id.internal(), &cursor, &READ_BATCH]).await.map_err(map_error)?;
        for row in &rows {
            let last: i64 = column(row, 0)?;
            let count: i32 = column(row, 1)?;
            let array: String = column(row, 2)?;
            cursor = last;
            let corrupt = |what: String| StorageError::Corrupt(format!("events through {last}: {what}"));
            let read: Vec<Read> = serde_json::from_str(&array).map_err(|error| corrupt(error.to_string()))?;
            if read.len() != usize::try_from(count).unwrap_or(0) {
                return Err(corrupt(format!("{} events where {count} were appended", read.len())));
            }
            let first = last - i64::from(count) + 1;
            for (seq, event) in (first..).zip(read) {
                let seq = u64::try_from(seq).map_err(|_| corrupt("a negative position".into()))?;
                if seq <= after || event.environment != environment_id.internal() {
                    continue;
                }
                let kind = EventKind::parse(&event.kind).ok_or_else(|| corrupt(format!("kind {}", event.kind)))?;
                if !kinds.is_empty() && !kinds.contains(&kind) {
                    continue;
                }
                events.push(Event {
                    seq,
                    event: NewEvent {
                        environment_id: environment_id.clone(),
                        kind,
                        subject: event.subject,
                        tags: event.tags,
                        data: event.data,
                        at: Timestamp::from_millis(event.at),
                    },
                });
                if events.len() == limit {
                    return Ok(events);
                }
            }
        }
        if rows.len() < usize::try_from(READ_BATCH).unwrap_or(usize::MAX) {
            break;
        }
    }
    Ok(events)
}

/// Deletes those of the `limit` oldest sequenced rows that were appended before `before`, and
/// says how many events went.
pub(crate) async fn purge(client: &Client, before: Timestamp, limit: usize) -> Result<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = client.prepare_cached(PURGE).await.map_err(map_error)?;
    let rows = client.query(&statement, &[&before.as_millis(), &limit]).await.map_err(map_error)?;
    rows.iter().try_fold(0, |deleted, row| {
        let count: i32 = column(row, 0)?;
        Ok(deleted + u64::try_from(count).unwrap_or(0))
    })
}
