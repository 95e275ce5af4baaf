//! Which workers take runs handed straight to them on this node: those with a poll here now,
//! or that polled here within [`GRACE`] (a worker polls again as soon as an answer arrives),
//! with a slot to spare for the run's task: what their latest poll asked for, less what was
//! given or promised to them since. Two kinds of runs are handed so:
//!
//! - a run a finish resumes goes to the worker that suspended it if the finish's [`Takers`]
//!   find a slot of it free; the slot is counted as the run reaches the worker's mailbox, so the
//!   runs of one batch of finishes may exceed it (see [`SlotsAt`]);
//! - a new run goes, as it is triggered, to a worker that runs its task and has a slot for it
//!   ([`Handoffs::reserve`]), which takes the slot at once: never beyond what its poll asked.
//!
//! A busy worker's runs so wait in the queue, where it claims them when it has room, instead of
//! piling up in hand-offs it cannot take; and a worker that polls another node is not handed
//! runs here that it would not get.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use waitpoint_clock::Clock;
use waitpoint_storage::{Slots, Takers};
use waitpoint_types::{EnvironmentId, Timestamp, WorkerId};

use crate::workers::WorkerKey;

/// How long after its poll here ended a worker still takes hand-offs: about the time it takes
/// to poll again.
const GRACE: Duration = Duration::from_millis(250);

/// What this node knows of the workers polling it, for hand-offs.
#[derive(Debug, Default)]
pub(crate) struct Handoffs {
    workers: Mutex<HashMap<WorkerKey, Taker>>,
}

/// A worker polling this node.
#[derive(Debug)]
struct Taker {
    /// Its polls waiting here now.
    waiting: usize,
    /// The runs it may be given: what its latest poll asked for, less what it was given since.
    free: usize,
    /// Each task's share of `free`, the same way: a run of a task is given only while both
    /// have a slot.
    tasks: Vec<(String, usize)>,
    /// New runs promised to it whose creation is not written yet.
    promised: usize,
    /// Whether a claim of it is being written: that claim may take every slot it asked for, so
    /// no new run is promised to it meanwhile.
    claiming: bool,
    /// When a poll of it last began or ended here.
    active_at: Timestamp,
}

impl Taker {
    fn new(now: Timestamp) -> Self {
        Self { waiting: 0, free: 0, tasks: Vec::new(), promised: 0, claiming: false, active_at: now }
    }

    /// Whether a poll of it waits here, or did within its grace, at `now`.
    fn polls(&self, now: Timestamp) -> bool {
        self.waiting > 0 || now < self.active_at.saturating_add(GRACE)
    }

    /// How many runs of `task` it may be given at `now`.
    fn free_for(&self, task: &str, now: Timestamp) -> usize {
        if !self.polls(now) {
            return 0;
        }
        self.tasks.iter().find(|(id, _)| id == task).map_or(0, |(_, free)| (*free).min(self.free))
    }

    /// One run of `task` was given or promised to it.
    fn take_one(&mut self, task: &str) {
        self.free = self.free.saturating_sub(1);
        if let Some((_, free)) = self.tasks.iter_mut().find(|(id, _)| id == task) {
            *free = free.saturating_sub(1);
        }
    }
}

impl Handoffs {
    fn workers(&self) -> MutexGuard<'_, HashMap<WorkerKey, Taker>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The takers of runs resumed at `now`: the workers here with a slot free for the run's
    /// task (see [`SlotsAt`]).
    pub(crate) fn takers(self: &Arc<Self>, now: Timestamp) -> Takers {
        Takers::new(Arc::new(SlotsAt { handoffs: self.clone(), now }))
    }

    /// A poll of `worker` at `now` asks for up to `slots` runs of each task (the most of them
    /// is what the worker has free), while `pending` runs handed to it wait in its mailbox.
    /// Forgets the workers that no longer poll here.
    pub(crate) fn polled(&self, worker: &WorkerKey, slots: &[(String, usize)], pending: usize, now: Timestamp) {
        let mut workers = self.workers();
        workers.retain(|key, taker| key == worker || taker.promised > 0 || taker.claiming || taker.polls(now));
        let taker = workers.entry(worker.clone()).or_insert_with(|| Taker::new(now));
        // What is handed or promised to it, it does not know of yet.
        let known = pending + taker.promised;
        taker.free = slots.iter().map(|(_, slots)| *slots).max().unwrap_or(0).saturating_sub(known);
        taker.tasks = slots.iter().map(|(task, slots)| (task.clone(), slots.saturating_sub(known))).collect();
        taker.active_at = now;
    }

    /// A claim of `worker` is being written: no new run is promised to it until the guard
    /// drops, once what the claim took is [`given`](Self::given).
    pub(crate) fn claiming<'a>(&'a self, worker: &'a WorkerKey) -> Claiming<'a> {
        if let Some(taker) = self.workers().get_mut(worker) {
            taker.claiming = true;
        }
        Claiming { handoffs: self, worker }
    }

    /// These runs (by task) were given to `worker`: claimed, or resumed runs handed to it.
    pub(crate) fn given<'a>(&self, worker: &WorkerKey, tasks: impl IntoIterator<Item = &'a str>) {
        if let Some(taker) = self.workers().get_mut(worker) {
            tasks.into_iter().for_each(|task| taker.take_one(task));
        }
    }

    /// Promises a new run of `task` of `environment` at `now` to the worker that takes
    /// hand-offs with the most slots free for it, if any does; that slot is its until
    /// [`settled`](Self::settled).
    pub(crate) fn reserve(&self, environment: &EnvironmentId, task: &str, now: Timestamp) -> Option<WorkerId> {
        let mut workers = self.workers();
        let (key, taker) = workers
            .iter_mut()
            .filter(|((env, _), taker)| env == environment && !taker.claiming && taker.free_for(task, now) > 0)
            .max_by_key(|(_, taker)| taker.free_for(task, now))?;
        taker.take_one(task);
        taker.promised += 1;
        Some(key.1.clone())
    }

    /// A promise of [`reserve`](Self::reserve) to `worker` is settled: the run is in its
    /// mailbox, or was not created. A slot promised for a run that was not created stays
    /// taken until the worker's next poll says what it has free.
    pub(crate) fn settled(&self, worker: &WorkerKey) {
        if let Some(taker) = self.workers().get_mut(worker) {
            taker.promised = taker.promised.saturating_sub(1);
        }
    }

    /// A poll of `worker` waits here for runs until the answer is dropped.
    pub(crate) fn waiting<'a>(&'a self, worker: &'a WorkerKey, clock: &'a dyn Clock) -> Waiting<'a> {
        let now = clock.now();
        let mut workers = self.workers();
        let taker = workers.entry(worker.clone()).or_insert_with(|| Taker::new(now));
        taker.waiting += 1;
        taker.active_at = now;
        Waiting { handoffs: self, worker, clock }
    }

    /// Forgets `worker` (it left).
    pub(crate) fn forget(&self, worker: &WorkerKey) {
        if let Some(taker) = self.workers().get_mut(worker) {
            taker.free = 0;
        }
    }
}

/// The slots of [`Handoffs::takers`]: the workers' here, as of `now`.
#[derive(Debug)]
struct SlotsAt {
    handoffs: Arc<Handoffs>,
    now: Timestamp,
}

impl Slots for SlotsAt {
    /// A slot free now: it is counted as the run reaches the worker's mailbox
    /// ([`Handoffs::given`]), so the runs one batch of finishes resumes may all go to a worker
    /// with one slot left. Its SDK holds those until slots free (up to its concurrency, giving
    /// back the rest), which costs less than queueing them to be claimed; and the worker's next
    /// poll asks only for the slots it has.
    fn has_room(&self, environment: &EnvironmentId, worker: &WorkerId, task: &str) -> bool {
        let workers = self.handoffs.workers();
        workers.get(&(environment.clone(), worker.clone())).is_some_and(|taker| taker.free_for(task, self.now) > 0)
    }
}

/// A claim being written ([`Handoffs::claiming`]).
pub(crate) struct Claiming<'a> {
    handoffs: &'a Handoffs,
    worker: &'a WorkerKey,
}

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        if let Some(taker) = self.handoffs.workers().get_mut(self.worker) {
            taker.claiming = false;
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
        if let Some(taker) = self.handoffs.workers().get_mut(self.worker) {
            taker.waiting = taker.waiting.saturating_sub(1);
            taker.active_at = now;
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

    /// Whether `worker` takes a resumed run of task `t` at `now`.
    fn hand(handoffs: &Arc<Handoffs>, worker: &WorkerKey, now: Timestamp) -> bool {
        handoffs.takers(now).takes(&worker.0, &worker.1, "t")
    }

    fn slots(tasks: &[(&str, usize)]) -> Vec<(String, usize)> {
        tasks.iter().map(|(task, slots)| ((*task).to_owned(), *slots)).collect()
    }

    #[test]
    fn a_worker_takes_hand_offs_while_it_waits_here_and_shortly_after_with_a_slot_to_spare() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let (handoffs, a) = (Arc::new(Handoffs::default()), worker("a"));
        assert!(!hand(&handoffs, &a, clock.now()), "unknown here");

        handoffs.polled(&a, &slots(&[("t", 9)]), 0, clock.now());
        let waiting = handoffs.waiting(&a, &clock);
        clock.advance(Duration::from_secs(60));
        assert!(hand(&handoffs, &a, clock.now()), "its poll waits");
        drop(waiting);
        clock.advance(GRACE / 2);
        assert!(hand(&handoffs, &a, clock.now()), "it polls again in a moment");
        clock.advance(GRACE);
        assert!(!hand(&handoffs, &a, clock.now()), "it polls no more");

        handoffs.polled(&a, &slots(&[("t", 3), ("u", 3)]), 0, clock.now());
        assert!(!handoffs.takers(clock.now()).takes(&a.0, &a.1, "v"), "a task it does not run");
        handoffs.given(&a, ["u"]);
        let takers = handoffs.takers(clock.now());
        assert!(takers.takes(&a.0, &a.1, "t"), "a slot left");
        handoffs.given(&a, ["t"]);
        assert!(takers.takes(&a.0, &a.1, "t"), "and another");
        handoffs.given(&a, ["t"]);
        assert!(!takers.takes(&a.0, &a.1, "t"), "every slot it asked for is given");
        let _waiting = handoffs.waiting(&a, &clock);
        assert!(!hand(&handoffs, &a, clock.now()), "waiting without a slot");

        handoffs.polled(&a, &slots(&[("t", 2)]), 1, clock.now());
        assert!(hand(&handoffs, &a, clock.now()), "one slot, less the run waiting in its mailbox");
        handoffs.given(&a, ["t"]);
        assert!(!hand(&handoffs, &a, clock.now()));
        handoffs.polled(&a, &slots(&[("t", 1)]), 0, clock.now());
        handoffs.forget(&a);
        assert!(!hand(&handoffs, &a, clock.now()), "it left");
    }

    #[test]
    fn a_worker_whose_claim_outlasts_its_grace_keeps_its_slots_here() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let (handoffs, a, b) = (Arc::new(Handoffs::default()), worker("a"), worker("b"));
        handoffs.polled(&a, &slots(&[("t", 2)]), 0, clock.now());
        let claiming = handoffs.claiming(&a);
        clock.advance(GRACE * 4);
        handoffs.polled(&b, &slots(&[("t", 1)]), 0, clock.now());
        handoffs.given(&a, ["t"]);
        drop(claiming);
        let _waiting = handoffs.waiting(&a, &clock);
        assert!(hand(&handoffs, &a, clock.now()), "the slot its claim left");
        handoffs.given(&a, ["t"]);
        assert!(!hand(&handoffs, &a, clock.now()));
    }

    #[test]
    fn new_runs_are_promised_to_the_worker_with_most_slots_for_their_task_and_never_beyond_them() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let (handoffs, a, b) = (Arc::new(Handoffs::default()), worker("a"), worker("b"));
        let env = a.0.clone();
        assert_eq!(handoffs.reserve(&env, "t", clock.now()), None, "no worker here");

        handoffs.polled(&a, &slots(&[("t", 1), ("u", 3)]), 0, clock.now());
        handoffs.polled(&b, &slots(&[("t", 2)]), 0, clock.now());
        let (_a_waits, _b_waits) = (handoffs.waiting(&a, &clock), handoffs.waiting(&b, &clock));
        let claiming = handoffs.claiming(&a);
        assert_eq!(handoffs.reserve(&env, "u", clock.now()), None, "a's claim may take every slot");
        assert!(hand(&handoffs, &a, clock.now()), "a resumed run may still go to it");
        drop(claiming);
        assert_eq!(handoffs.reserve(&EnvironmentId::from_internal("other".into()), "t", clock.now()), None);
        assert_eq!(handoffs.reserve(&env, "v", clock.now()), None, "a task no one runs");
        assert_eq!(handoffs.reserve(&env, "t", clock.now()), Some(b.1.clone()), "b has two slots for it");
        let second = handoffs.reserve(&env, "t", clock.now()).expect("one slot each left");
        let third = handoffs.reserve(&env, "t", clock.now()).expect("one slot left");
        let mut both = [second, third];
        both.sort();
        assert_eq!(both, [a.1.clone(), b.1.clone()]);
        assert_eq!(handoffs.reserve(&env, "t", clock.now()), None, "every slot for t is promised");
        assert_eq!(handoffs.reserve(&env, "u", clock.now()), Some(a.1.clone()), "a has two slots left");
        handoffs.given(&a, ["u"]);
        assert_eq!(handoffs.reserve(&env, "u", clock.now()), None, "a's three slots are taken");

        // b's next poll, before its two promised runs reach its mailbox, does not count them.
        handoffs.polled(&b, &slots(&[("t", 2)]), 0, clock.now());
        assert_eq!(handoffs.reserve(&env, "t", clock.now()), None);
        handoffs.settled(&b);
        handoffs.settled(&b);
        handoffs.polled(&b, &slots(&[("t", 2)]), 0, clock.now());
        assert_eq!(handoffs.reserve(&env, "t", clock.now()), Some(b.1.clone()));
    }
}
