//! Which workers take the runs a finish resumes handed straight to them on this node
//! ([`Takers`]): those with a poll here now, or that polled here within [`GRACE`] (a worker
//! polls again as soon as an answer arrives), with a slot to spare: what their latest poll
//! asked for, less what was given to them since. A busy worker's resumed runs so wait in the
//! queue, where it claims them when it has room, instead of piling up in hand-offs it cannot
//! take; and a worker that polls another node is not handed runs here that it would not get.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use waitpoint_clock::Clock;
use waitpoint_storage::Takers;
use waitpoint_types::Timestamp;

use crate::workers::WorkerKey;

/// How long after its poll here ended a worker still takes hand-offs: about the time it takes
/// to poll again.
const GRACE: Duration = Duration::from_millis(250);

/// What this node knows of the workers polling it, for hand-offs.
#[derive(Debug, Default)]
pub(crate) struct Handoffs {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    workers: HashMap<WorkerKey, Taker>,
    /// The takers, as of the last change.
    takers: Takers,
    /// When `takers` has to be made again without a change: the end of the earliest grace in it.
    stale_at: Option<Timestamp>,
}

/// A worker polling this node.
#[derive(Debug)]
struct Taker {
    /// Its polls waiting here now.
    waiting: usize,
    /// The runs it may be given: what its latest poll asked for, less what it was given since.
    free: usize,
    /// When a poll of it last began or ended here.
    active_at: Timestamp,
}

impl Taker {
    /// Whether it takes hand-offs at `now`: a slot to spare, and a poll waiting here or within
    /// its grace.
    fn takes(&self, now: Timestamp) -> bool {
        self.free > 0 && (self.waiting > 0 || now < self.active_at.saturating_add(GRACE))
    }
}

impl State {
    /// Makes the takers again, as of `now`, and forgets workers whose grace ended.
    fn remake(&mut self, now: Timestamp) {
        self.workers.retain(|_, taker| taker.waiting > 0 || now < taker.active_at.saturating_add(GRACE));
        self.takers =
            Takers::new(self.workers.iter().filter(|(_, taker)| taker.takes(now)).map(|(worker, _)| worker.clone()));
        self.stale_at = self
            .workers
            .values()
            .filter(|taker| taker.waiting == 0 && taker.takes(now))
            .map(|taker| taker.active_at.saturating_add(GRACE))
            .min();
    }
}

impl Handoffs {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The workers that take hand-offs at `now`.
    pub(crate) fn takers(&self, now: Timestamp) -> Takers {
        let mut state = self.state();
        if state.stale_at.is_some_and(|at| now >= at) {
            state.remake(now);
        }
        state.takers.clone()
    }

    /// A poll of `worker` at `now` asks for up to `free` runs.
    pub(crate) fn polled(&self, worker: &WorkerKey, free: usize, now: Timestamp) {
        let mut state = self.state();
        let taker = state.workers.entry(worker.clone()).or_insert(Taker { waiting: 0, free, active_at: now });
        (taker.free, taker.active_at) = (free, now);
        state.remake(now);
    }

    /// `count` runs were given to `worker` (claimed, or handed to it).
    pub(crate) fn given(&self, worker: &WorkerKey, count: usize, now: Timestamp) {
        let mut state = self.state();
        let Some(taker) = state.workers.get_mut(worker) else { return };
        let was = taker.free;
        taker.free = taker.free.saturating_sub(count);
        if was > 0 && taker.free == 0 {
            state.remake(now);
        }
    }

    /// A poll of `worker` waits here for runs until the answer is dropped.
    pub(crate) fn waiting<'a>(&'a self, worker: &'a WorkerKey, clock: &'a dyn Clock) -> Waiting<'a> {
        let now = clock.now();
        let mut state = self.state();
        let taker = state.workers.entry(worker.clone()).or_insert(Taker { waiting: 0, free: 0, active_at: now });
        taker.waiting += 1;
        taker.active_at = now;
        state.remake(now);
        Waiting { handoffs: self, worker, clock }
    }

    /// Forgets `worker` (it left).
    pub(crate) fn forget(&self, worker: &WorkerKey, now: Timestamp) {
        let mut state = self.state();
        if let Some(taker) = state.workers.get_mut(worker) {
            taker.free = 0;
            state.remake(now);
        }
    }
}

/// A poll waiting for runs; its worker still takes hand-offs for [`GRACE`] once it is dropped.
pub(crate) struct Waiting<'a> {
    handoffs: &'a Handoffs,
    worker: &'a WorkerKey,
    clock: &'a dyn Clock,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let now = self.clock.now();
        let mut state = self.handoffs.state();
        if let Some(taker) = state.workers.get_mut(self.worker) {
            taker.waiting = taker.waiting.saturating_sub(1);
            taker.active_at = now;
            state.remake(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use waitpoint_clock::ManualClock;
    use waitpoint_types::{EnvironmentId, WorkerId};

    use super::*;

    fn worker(name: &str) -> WorkerKey {
        (EnvironmentId::from_internal("env".into()), WorkerId::from_internal(name.into()))
    }

    fn takes(handoffs: &Handoffs, worker: &WorkerKey, now: Timestamp) -> bool {
        handoffs.takers(now).takes(&worker.0, &worker.1)
    }

    #[test]
    fn a_worker_takes_hand_offs_while_it_waits_here_and_shortly_after_with_a_slot_to_spare() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let (handoffs, a) = (Handoffs::default(), worker("a"));
        assert!(!takes(&handoffs, &a, clock.now()), "unknown here");

        handoffs.polled(&a, 2, clock.now());
        let waiting = handoffs.waiting(&a, &clock);
        clock.advance(Duration::from_secs(60));
        assert!(takes(&handoffs, &a, clock.now()), "its poll waits");
        drop(waiting);
        clock.advance(GRACE / 2);
        assert!(takes(&handoffs, &a, clock.now()), "it polls again in a moment");
        clock.advance(GRACE);
        assert!(!takes(&handoffs, &a, clock.now()), "it polls no more");

        handoffs.polled(&a, 2, clock.now());
        handoffs.given(&a, 1, clock.now());
        assert!(takes(&handoffs, &a, clock.now()), "a slot left");
        handoffs.given(&a, 1, clock.now());
        assert!(!takes(&handoffs, &a, clock.now()), "every slot it asked for is given");
        let _waiting = handoffs.waiting(&a, &clock);
        assert!(!takes(&handoffs, &a, clock.now()), "waiting without a slot");

        handoffs.polled(&a, 1, clock.now());
        assert!(takes(&handoffs, &a, clock.now()));
        handoffs.forget(&a, clock.now());
        assert!(!takes(&handoffs, &a, clock.now()), "it left");
    }
}
