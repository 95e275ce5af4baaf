//! Retention: the loop that deletes what finished longer ago than
//! [`EngineConfig::retention`](crate::EngineConfig::retention).
//!
//! What may go is the storage's rule ([`Purge`]). Every [`SWEEP_EVERY`] by the injected clock,
//! and once at start-up, the loop purges what finished before `now - retention` in batches of
//! [`BATCH`] of a kind, each one short transaction of its own, straight to the store: it never
//! waits in the group-commit queue, and requests never wait behind more than one batch. After a
//! full batch it pauses for three times as long as the batch took (at least [`MIN_PAUSE`]), so
//! that while a backlog drains writes keep the database at least three quarters of the time.
//! The pause paces real load, so it is real time (Tokio's timer), not the injected clock's.
//! Each node runs its own loop; on PostgreSQL their purges skip each other's rows. It stops, at
//! the latest after the batch in flight, when the engine shuts down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use waitpoint_storage::{Purge, Purged, StorageError};
use waitpoint_types::Timestamp;

use crate::{Engine, Inner, metrics};

/// How often the loop looks for what to delete.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(5 * 60);
/// Waitpoints, and runs, deleted per transaction.
pub(crate) const BATCH: usize = 500;
/// The shortest pause between two batches of a sweep.
const MIN_PAUSE: Duration = Duration::from_millis(10);

/// What the retention loop deleted since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Sweeps done (a failed one not counted, though what it deleted before failing is).
    pub sweeps: u64,
    /// When the last sweep began, by the engine's clock.
    pub last_sweep_at: Option<Timestamp>,
    /// Everything deleted, over all sweeps.
    pub deleted: Purged,
}

impl Engine {
    /// What retention deleted since this engine started, updated after each sweep; it stays at
    /// its default when retention is off.
    pub fn retention(&self) -> watch::Receiver<RetentionReport> {
        self.inner.retention.subscribe()
    }
}

/// Runs until `shutdown` turns true.
pub(crate) async fn run(inner: Arc<Inner>, retention: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        let now = inner.clock.now();
        let purge = Purge { finished_before: now.saturating_sub(retention), now, limit: BATCH };
        let started = Instant::now();
        let mut deleted = Purged::default();
        let mut swept = sweep(&inner, &purge, &mut deleted, &mut shutdown).await;
        if swept.is_ok() {
            swept = sweep_events(&inner, &purge, &mut deleted.events).await;
        }
        if !deleted.is_empty() {
            tracing::info!(
                waitpoints = deleted.waitpoints,
                runs = deleted.runs,
                journal_entries = deleted.journal_entries,
                events = deleted.events,
                finished_before = %purge.finished_before,
                took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "retention deleted what finished before the cutoff"
            );
        }
        if let Err(error) = &swept {
            tracing::warn!(%error, "retention sweep failed; the next one takes up where it stopped");
        }
        inner.retention.send_modify(|report| {
            if swept.is_ok() {
                report.sweeps += 1;
                report.last_sweep_at = Some(now);
            }
            report.deleted += deleted;
        });
        tokio::select! {
            _ = inner.clock.sleep_until(now.saturating_add(SWEEP_EVERY)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Deletes the events appended before the purge's cutoff, batch by batch, adding how many to
/// `deleted`.
async fn sweep_events(inner: &Inner, purge: &Purge, deleted: &mut u64) -> Result<(), StorageError> {
    loop {
        let batch = inner.store.events_purge(purge.finished_before, purge.limit).await?;
        metrics::events_deleted(batch);
        *deleted += batch;
        if batch < u64::try_from(purge.limit).unwrap_or(u64::MAX) {
            return Ok(());
        }
    }
}

/// Applies `purge` batch by batch, adding what each deleted to `deleted`, until a batch is not
/// full or the engine stops.
async fn sweep(
    inner: &Inner,
    purge: &Purge,
    deleted: &mut Purged,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), StorageError> {
    loop {
        let started = Instant::now();
        let batch = inner.store.retention_purge(purge).await?;
        metrics::retention_deleted(&batch);
        *deleted += batch;
        if !batch.was_full(purge.limit) {
            return Ok(());
        }
        let pause = (started.elapsed() * 3).max(MIN_PAUSE);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}
