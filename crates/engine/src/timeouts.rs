//! Durable deadlines: tokens time out, datetime waitpoints complete.
//!
//! The deadline of every waiting token is in storage (its `timeout_at`), so nothing is lost
//! across restarts. One loop per engine sleeps until the earliest deadline (or until a token
//! with an earlier one is created, or at most [`POLL_INTERVAL`], which also picks up tokens
//! created by other server nodes), then times out everything due in batches. At start-up it
//! runs at once, so deadlines that passed while the server was down fire immediately. A
//! timeout is a conditional write (`WAITING` and due), so racing a completion, another node
//! or a retry still ends in exactly one outcome.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use waitpoint_storage::{Finish, FinishOutcome, Finishing, StorageError, WriteOp, WriteOutcome};
use waitpoint_types::Timestamp;

use crate::Inner;

/// The longest the loop sleeps without looking at storage.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait after a storage error before trying again.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Timeouts applied per transaction.
const BATCH: usize = 1_000;

/// Runs until `shutdown` turns true.
pub(crate) async fn run(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let now = inner.clock.now();
        // Until the next wake-up is known, any new deadline must wake the loop.
        inner.next_timer_wake.store(i64::MAX, Ordering::SeqCst);
        let wake_at = match fire_due(&inner, now).await {
            Ok(true) => continue,
            Ok(false) => match inner.store.waitpoint_timeouts_next().await {
                Ok(next) => {
                    next.map_or(now.saturating_add(POLL_INTERVAL), |next| next.min(now.saturating_add(POLL_INTERVAL)))
                }
                Err(error) => retry_later(now, &error),
            },
            Err(error) => retry_later(now, &error),
        };
        inner.next_timer_wake.store(wake_at.as_millis(), Ordering::SeqCst);
        tokio::select! {
            _ = inner.clock.sleep_until(wake_at) => {}
            _ = inner.timer_wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

fn retry_later(now: Timestamp, error: &StorageError) -> Timestamp {
    tracing::error!(%error, "timeout sweep failed; retrying");
    now.saturating_add(RETRY_AFTER)
}

/// Times out one batch of due tokens. True when the batch was full (more may be due).
async fn fire_due(inner: &Inner, now: Timestamp) -> Result<bool, StorageError> {
    let due = inner.store.waitpoint_timeouts_due(now, BATCH).await?;
    if due.is_empty() {
        return Ok(false);
    }
    let full = due.len() == BATCH;
    let hand_to = inner.hand_to();
    let ops = due
        .into_iter()
        .map(|id| {
            let finishing = Finishing::Deadline { at: now };
            WriteOp::Finish(Finish { id, environment_id: None, finishing, hand_to: hand_to.clone() })
        })
        .collect();
    let mut timed_out = 0;
    for outcome in inner.store.write_batch(ops).await? {
        if let WriteOutcome::Finish(FinishOutcome::Finished(waitpoint, resumed)) = outcome {
            timed_out += 1;
            inner.finished(waitpoint, resumed);
        }
    }
    tracing::debug!(timed_out, "timed out waitpoints");
    Ok(full)
}
