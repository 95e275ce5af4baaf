//! Upkeep: the loop that has the store tidy what its database does not tidy itself
//! ([`Store::upkeep`]: on PostgreSQL, vacuuming the tables autovacuum leaves alone).
//!
//! Every [`UPKEEP_EVERY`] by the injected clock, and once at start-up. Where there is nothing to
//! do a call only reads statistics. The first time it vacuums, the loop says so in the log as a
//! warning (the database's own autovacuum would do better); afterwards at debug level. A failed
//! call is logged and tried again after [`AFTER_FAILURE`]. Each node runs its own loop. It stops
//! when the engine shuts down, after the call in flight.
//!
//! [`Store::upkeep`]: waitpoint_storage::Store::upkeep

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::{Inner, metrics};

/// How often the loop has the store tidy up.
pub(crate) const UPKEEP_EVERY: Duration = Duration::from_secs(10);
/// How long the loop waits after a failed call (a missing privilege fails every time).
const AFTER_FAILURE: Duration = Duration::from_secs(10 * 60);

/// Runs until `shutdown` turns true.
pub(crate) async fn run(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut warned = false;
    loop {
        let now = inner.clock.now();
        let pause = match inner.store.upkeep().await {
            Ok(upkeep) => {
                metrics::tables_vacuumed(upkeep.vacuumed.len());
                let took_ms = u64::try_from(inner.clock.now().duration_since(now).as_millis()).unwrap_or(u64::MAX);
                if upkeep.vacuumed.is_empty() {
                    // Nothing was due.
                } else if std::mem::replace(&mut warned, true) {
                    tracing::debug!(tables = ?upkeep.vacuumed, took_ms, "vacuumed");
                } else {
                    tracing::warn!(
                        tables = ?upkeep.vacuumed,
                        took_ms,
                        "autovacuum is off for these tables: waitpoint vacuums them itself once a tenth of their \
                         rows changed; turn autovacuum on to leave it to the database"
                    );
                }
                UPKEEP_EVERY
            }
            Err(error) => {
                tracing::warn!(%error, "upkeep of the database failed; trying again in 10 minutes");
                AFTER_FAILURE
            }
        };
        tokio::select! {
            _ = inner.clock.sleep_until(now.saturating_add(pause)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
