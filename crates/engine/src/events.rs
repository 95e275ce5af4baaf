//! What changes, as it changes: tokens created and finished, runs changed. The dashboard's live
//! pages listen ([`Engine::subscribe`]); nothing is built while nobody does, so the API pays
//! nothing for them.

use std::sync::Arc;

use tokio::sync::broadcast;
use waitpoint_types::{EnvironmentId, RunId, Waitpoint};

use crate::{Engine, Inner};

/// Events buffered for slow subscribers; one that falls further behind misses some (and is
/// told so by its receiver).
pub(crate) const EVENT_BUFFER: usize = 4_096;

/// Something that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A token was created (not found by its idempotency key).
    TokenCreated(Waitpoint),
    /// A waitpoint finished: completed, timed out, or a datetime wait's time came.
    WaitpointFinished(Waitpoint),
    /// A run changed: its status, or its journal.
    RunChanged {
        /// Its environment.
        environment_id: EnvironmentId,
        /// The run.
        run: RunId,
    },
}

impl Event {
    /// The environment it happened in.
    pub fn environment_id(&self) -> &EnvironmentId {
        match self {
            Self::TokenCreated(waitpoint) | Self::WaitpointFinished(waitpoint) => &waitpoint.environment_id,
            Self::RunChanged { environment_id, .. } => environment_id,
        }
    }
}

impl Engine {
    /// Every change from now on, as it happens: tokens created, waitpoints finished, runs
    /// changed. A subscriber that falls more than a few thousand events behind misses some.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }
}

impl Inner {
    /// Whether anyone listens: events are built only then.
    pub(crate) fn observed(&self) -> bool {
        self.events.receiver_count() > 0
    }

    /// Sends the event `make` builds, if anyone listens.
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if self.observed() {
            // A subscriber may have left since; that is fine.
            let _ = self.events.send(make());
        }
    }

    /// Tells that these runs of `environment_id` changed.
    pub(crate) fn runs_changed<'a>(&self, environment_id: &EnvironmentId, runs: impl IntoIterator<Item = &'a RunId>) {
        if self.observed() {
            for run in runs {
                let _ =
                    self.events.send(Event::RunChanged { environment_id: environment_id.clone(), run: run.clone() });
            }
        }
    }

    /// Tells that these runs, of environments not known here, changed: each is read to learn
    /// its environment, only when someone listens.
    pub(crate) async fn runs_of_any_environment_changed(self: &Arc<Self>, runs: &[RunId]) {
        if !self.observed() {
            return;
        }
        for id in runs {
            if let Ok(run) = self.store.run_get(id).await {
                self.runs_changed(&run.environment_id, [&run.id]);
            }
        }
    }
}
