//! Reading the durable event log ([`waitpoint_types::event`]): what the event stream API and
//! outbound webhooks follow, from a position onward, filtered by kind and tag.

use std::time::Duration;

use tokio::sync::watch;

use waitpoint_types::event::{Event, EventKind};
use waitpoint_types::{Environment, EnvironmentId};

use crate::Engine;
use crate::error::Result;

/// How long a follower waits for a change on this node before it reads the log again anyway
/// (other nodes write it too).
pub const RECHECK: Duration = Duration::from_secs(1);

/// Which events a reader wants: of these kinds (all when empty) and with any of these tags
/// (all when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// The kinds.
    pub kinds: Vec<EventKind>,
    /// The tags.
    pub tags: Vec<String>,
}

impl EventFilter {
    /// Whether `event` passes.
    pub fn admits(&self, event: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&event.event.kind))
            && (self.tags.is_empty() || event.event.tags.iter().any(|tag| self.tags.contains(tag)))
    }
}

/// A page of the log: the events that pass a filter, and the position read through (past
/// events that did not pass), from which the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// The next page starts after this position.
    pub through: u64,
}

impl Engine {
    /// The position of the newest event: a reader that starts here sees only what happens
    /// from now on.
    pub async fn events_head(&self) -> Result<u64> {
        Ok(self.inner.store.events_head().await?)
    }

    /// Up to `limit` events of `environment` after position `after` that pass `filter`.
    pub async fn read_events(
        &self,
        environment: &Environment,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EventPage> {
        self.read_events_of(&environment.id, after, filter, limit).await
    }

    /// [`read_events`](Self::read_events) by environment id.
    pub(crate) async fn read_events_of(
        &self,
        environment_id: &EnvironmentId,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EventPage> {
        let read = self.inner.store.events_after(environment_id, after, &filter.kinds, limit).await?;
        let through = read.last().map_or(after, |event| event.seq);
        Ok(EventPage { events: read.into_iter().filter(|event| filter.admits(event)).collect(), through })
    }

    /// Counts the commits that appended to the log: a follower takes it before reading the
    /// log, then waits with [`events_may_follow`](Self::events_may_follow).
    pub fn event_appends(&self) -> watch::Receiver<u64> {
        self.inner.writer.appended()
    }

    /// Waits until something may have been appended to the log since `appends` last saw it (a
    /// commit on this node), or [`RECHECK`] passed (other nodes append too).
    pub async fn events_may_follow(&self, appends: &mut watch::Receiver<u64>) {
        let recheck = self.inner.clock.sleep_until(self.inner.clock.now().saturating_add(RECHECK));
        tokio::select! {
            () = recheck => {}
            changed = appends.changed() => {
                if changed.is_err() {
                    // The writer is gone (the engine stops): nothing more will be appended here.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
