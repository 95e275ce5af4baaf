//! Wake-ups from the other nodes sharing the database: a run made ready, or a deadline given,
//! through another node wakes this node's held polls and timeout loop at once, instead of at their
//! next look at storage (which they keep taking, in case a wake-up is lost).
//!
//! One loop per engine consumes the store's wake-ups ([`Store::wakeups`]; none on a database one
//! process owns, or when the deployment polls only). Whatever has arrived is taken at once and
//! acted on together: runs ready wake every held poll, which claims again (and so also takes a
//! run handed to its worker through another node); the earliest deadline wakes the timeout loop
//! if it sleeps past it; a reconcile (wake-ups may have been missed) wakes both.
//!
//! [`Store::wakeups`]: waitpoint_storage::Store::wakeups

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;
use waitpoint_storage::{Wakeup, WakeupStream};
use waitpoint_types::Timestamp;

use crate::Inner;

/// The most wake-ups taken at once.
const DRAIN: usize = 256;

/// Consumes `wakeups` until `shutdown` turns true, or the stream ends.
pub(crate) async fn run(inner: Arc<Inner>, wakeups: WakeupStream, mut shutdown: watch::Receiver<bool>) {
    let mut arrived = wakeups.ready_chunks(DRAIN);
    loop {
        let wakeups = tokio::select! {
            wakeups = arrived.next() => wakeups,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Some(wakeups) = wakeups else { return };
        let (mut runs_ready, mut any_deadline, mut earliest) = (false, false, None);
        for wakeup in wakeups {
            match wakeup {
                Ok(Wakeup::RunsReady) => runs_ready = true,
                Ok(Wakeup::DeadlineMoved(deadline)) => {
                    earliest = Some(earliest.map_or(deadline, |earliest: Timestamp| earliest.min(deadline)));
                }
                Ok(Wakeup::Reconcile) => (runs_ready, any_deadline) = (true, true),
                Err(error) => tracing::warn!(
                    %error,
                    "lost the wake-ups of other nodes; reconnecting (meanwhile polls and timeouts look at the database every second)"
                ),
            }
        }
        if runs_ready {
            inner.runs_ready.notify_waiters();
        }
        if any_deadline {
            inner.timer_wake.notify_one();
        } else if let Some(deadline) = earliest {
            inner.deadline_added(deadline);
        }
    }
}
