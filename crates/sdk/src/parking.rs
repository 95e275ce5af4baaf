//! The runs a worker holds in memory: executing, reporting how their code ended, suspended
//! (waiting for their resume), or resumed while every slot was taken (deferred); and the
//! resumes the suspended ones expect.
//!
//! The run context registers a wait here before asking the server ([`Parking::expect`]); the
//! worker delivers the resume the server hands over ([`Parking::take_resume`]), or evicts the
//! oldest suspended runs beyond `max_suspended` (they resume by replay).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, OwnedSemaphorePermit, oneshot};
use tokio::task::AbortHandle;
use waitpoint_types::RawJson;
use waitpoint_types::api::worker::{ClaimedRun, HeldRun, Lease};

/// The slots a running run holds: one of the worker's and, if the task has a limit, one of
/// the task's. A suspended run gives them back.
#[derive(Debug)]
pub(crate) struct Permits {
    pub(crate) _worker: OwnedSemaphorePermit,
    pub(crate) _task: Option<OwnedSemaphorePermit>,
}

/// What a suspended run gets when it resumes in memory.
#[derive(Debug)]
pub(crate) struct Resume {
    /// The wait's result.
    pub(crate) result: RawJson,
    /// The run's new epoch.
    pub(crate) epoch: u64,
    /// Its slots again.
    pub(crate) permits: Permits,
}

/// The runs a worker holds, executing or suspended in memory, and the resumes they expect.
#[derive(Debug, Clone)]
pub(crate) struct Parking {
    registry: Arc<Mutex<Registry>>,
    /// Woken when slots are given back (a run's code returned or it suspended) and when an
    /// execution ends.
    pub(crate) slots_freed: Arc<Notify>,
}

#[derive(Debug)]
struct Registry {
    runs: HashMap<String, Slot>,
    /// Suspended runs, oldest first, for eviction.
    suspended: BTreeMap<u64, String>,
    /// Resumed runs the server handed over while every slot was taken, oldest first: held
    /// here until a slot frees.
    deferred: VecDeque<ClaimedRun>,
    /// The epochs of the last executions that ended here, most recent last, so that a late
    /// copy of their claim is told from a new one.
    ended: HashMap<String, u64>,
    ended_order: VecDeque<String>,
    next: u64,
    max_suspended: usize,
}

/// How many ended executions [`Registry::ended`] remembers.
const ENDED_REMEMBERED: usize = 4_096;

impl Registry {
    fn remember_ended(&mut self, run_id: &str, epoch: u64) {
        self.ended.insert(run_id.to_owned(), epoch);
        self.ended_order.push_back(run_id.to_owned());
        while self.ended_order.len() > ENDED_REMEMBERED {
            if let Some(oldest) = self.ended_order.pop_front() {
                self.ended.remove(&oldest);
            }
        }
    }
}

#[derive(Debug)]
struct Slot {
    generation: u64,
    /// The epoch the server handed the run over with, last.
    epoch: u64,
    abort: Option<AbortHandle>,
    expecting: Option<Expecting>,
    /// Its code returned and its outcome is being reported: it holds no slot, and a stopping
    /// worker waits for the report.
    reporting: bool,
}

/// A run waiting for its resume at journal position `seq`.
#[derive(Debug)]
struct Expecting {
    seq: u32,
    sender: oneshot::Sender<Resume>,
    /// Set once the server suspended the run: its place in the eviction order.
    suspended: Option<u64>,
}

/// Held while a wait is being asked; dropped without [`Ticket::suspended`] it withdraws.
pub(crate) struct Ticket {
    parking: Parking,
    run_id: String,
    seq: u32,
    kept: bool,
}

impl Ticket {
    /// The server suspended the run: keep expecting the resume, and count it as suspended.
    pub(crate) fn suspended(mut self) {
        self.kept = true;
        let mut evicted = Vec::new();
        {
            let mut registry = self.parking.lock();
            let order = registry.next;
            registry.next += 1;
            if let Some(expecting) = registry
                .runs
                .get_mut(&self.run_id)
                .and_then(|slot| slot.expecting.as_mut())
                .filter(|e| e.seq == self.seq)
            {
                expecting.suspended = Some(order);
                registry.suspended.insert(order, self.run_id.clone());
            }
            while registry.suspended.len() > registry.max_suspended {
                let Some((_, oldest)) = registry.suspended.pop_first() else { break };
                if let Some(slot) = registry.runs.remove(&oldest) {
                    evicted.push(slot);
                }
            }
        }
        for slot in evicted {
            if let Some(abort) = slot.abort {
                abort.abort();
            }
        }
        self.parking.slots_freed.notify_one();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut registry = self.parking.lock();
        if let Some(slot) = registry.runs.get_mut(&self.run_id)
            && slot.expecting.as_ref().is_some_and(|e| e.seq == self.seq)
        {
            slot.expecting = None;
        }
    }
}

impl Parking {
    pub(crate) fn new(max_suspended: usize) -> Self {
        let registry = Registry {
            runs: HashMap::new(),
            suspended: BTreeMap::new(),
            deferred: VecDeque::new(),
            ended: HashMap::new(),
            ended_order: VecDeque::new(),
            next: 0,
            max_suspended,
        };
        Self { registry: Arc::new(Mutex::new(registry)), slots_freed: Arc::new(Notify::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `run_id` runs here, or ran here lately, under an epoch newer than `epoch` or
    /// equal to it: a claim with `epoch` is then a late or repeated copy.
    pub(crate) fn superseded(&self, run_id: &str, epoch: u64) -> bool {
        let registry = self.lock();
        let latest = registry.runs.get(run_id).map(|slot| slot.epoch).or_else(|| registry.ended.get(run_id).copied());
        latest.is_some_and(|latest| latest >= epoch)
    }

    /// Registers a new execution of `run_id`, claimed with `epoch`, stopping any older one;
    /// returns its generation.
    pub(crate) fn begin(&self, run_id: &str, epoch: u64) -> u64 {
        let old = {
            let mut registry = self.lock();
            let generation = registry.next;
            registry.next += 1;
            let slot = Slot { generation, epoch, abort: None, expecting: None, reporting: false };
            let old = registry.runs.insert(run_id.to_owned(), slot);
            if let Some(order) = old.as_ref().and_then(|slot| slot.expecting.as_ref()).and_then(|e| e.suspended) {
                registry.suspended.remove(&order);
            }
            (generation, old)
        };
        if let Some(abort) = old.1.and_then(|slot| slot.abort) {
            abort.abort();
        }
        old.0
    }

    pub(crate) fn set_abort(&self, run_id: &str, generation: u64, abort: AbortHandle) {
        if let Some(slot) = self.lock().runs.get_mut(run_id).filter(|slot| slot.generation == generation) {
            slot.abort = Some(abort);
        }
    }

    /// The code of execution `generation` of `run_id` returned: its `permits` go back while
    /// its outcome is reported, and it stays held until [`end`](Self::end).
    pub(crate) fn returned(&self, run_id: &str, generation: u64, permits: Option<Permits>) {
        if let Some(slot) = self.lock().runs.get_mut(run_id).filter(|slot| slot.generation == generation) {
            slot.reporting = true;
        }
        drop(permits);
        self.slots_freed.notify_one();
    }

    /// Returns once no execution here is reporting its outcome.
    pub(crate) async fn reported(&self) {
        while self.any_reporting() {
            // `end` notifies; a notification between the check and this wait is kept for it.
            self.slots_freed.notified().await;
        }
    }

    fn any_reporting(&self) -> bool {
        self.lock().runs.values().any(|slot| slot.reporting)
    }

    /// The execution `generation` of `run_id` ended.
    pub(crate) fn end(&self, run_id: &str, generation: u64) {
        {
            let mut registry = self.lock();
            if registry.runs.get(run_id).is_some_and(|slot| slot.generation == generation)
                && let Some(slot) = registry.runs.remove(run_id)
            {
                registry.remember_ended(run_id, slot.epoch);
            }
        }
        self.slots_freed.notify_one();
    }

    /// Expects a resume of `run_id` at `seq`, delivered through `sender`.
    pub(crate) fn expect(&self, run_id: &str, seq: u32, sender: oneshot::Sender<Resume>) -> Ticket {
        if let Some(slot) = self.lock().runs.get_mut(run_id) {
            slot.expecting = Some(Expecting { seq, sender, suspended: None });
        }
        Ticket { parking: self.clone(), run_id: run_id.to_owned(), seq, kept: false }
    }

    /// Takes the resume channel of `run_id` if it waits at `seq`; the run continues under
    /// `epoch`.
    pub(crate) fn take_resume(&self, run_id: &str, seq: u32, epoch: u64) -> Option<oneshot::Sender<Resume>> {
        let mut registry = self.lock();
        let slot = registry.runs.get_mut(run_id)?;
        if slot.expecting.as_ref()?.seq != seq {
            return None;
        }
        let expecting = slot.expecting.take()?;
        slot.epoch = epoch;
        if let Some(order) = expecting.suspended {
            registry.suspended.remove(&order);
        }
        Some(expecting.sender)
    }

    /// The runs executing here (not suspended) or deferred, with their epochs: what the server
    /// should count as held.
    pub(crate) fn holding(&self) -> Vec<HeldRun> {
        let registry = self.lock();
        let executing = registry
            .runs
            .iter()
            .filter(|(_, slot)| slot.expecting.as_ref().is_none_or(|e| e.suspended.is_none()))
            .map(|(id, slot)| (id.clone(), slot.epoch));
        let deferred = registry.deferred.iter().map(|claimed| (claimed.id.clone(), claimed.epoch));
        executing.chain(deferred).map(|(id, epoch)| HeldRun::Leased(Lease { id, epoch })).collect()
    }

    /// Holds `claimed` until a slot frees, unless `limit` runs already wait: then it is given
    /// back (returned).
    pub(crate) fn defer(&self, claimed: ClaimedRun, limit: usize) -> Option<ClaimedRun> {
        let mut registry = self.lock();
        if registry.deferred.len() >= limit {
            return Some(claimed);
        }
        registry.deferred.push_back(claimed);
        None
    }

    pub(crate) fn has_deferred(&self) -> bool {
        !self.lock().deferred.is_empty()
    }

    pub(crate) fn take_deferred(&self) -> VecDeque<ClaimedRun> {
        std::mem::take(&mut self.lock().deferred)
    }

    pub(crate) fn abort_all(&self) {
        let slots: Vec<Slot> = {
            let mut registry = self.lock();
            registry.suspended.clear();
            registry.deferred.clear();
            registry.runs.drain().map(|(_, slot)| slot).collect()
        };
        for abort in slots.into_iter().filter_map(|slot| slot.abort) {
            abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn a_claim_is_superseded_by_the_execution_of_a_newer_or_equal_epoch() {
        let parking = Parking::new(10);
        assert!(!parking.superseded("run", 1), "nothing runs yet");
        let generation = parking.begin("run", 5);
        assert!(parking.superseded("run", 4), "a late copy of an older hand-off");
        assert!(parking.superseded("run", 5), "the same hand-off twice");
        assert!(!parking.superseded("run", 6), "the server handed the run over again");

        let (sender, _receiver) = oneshot::channel();
        let ticket = parking.expect("run", 3, sender);
        ticket.suspended();
        assert!(parking.take_resume("run", 3, 7).is_some());
        assert!(parking.superseded("run", 6), "the resumed execution runs under epoch 7");
        assert!(!parking.superseded("run", 8));

        parking.end("run", generation);
        assert!(parking.superseded("run", 7), "a late copy of the claim of an execution that ended");
        assert!(!parking.superseded("run", 8), "a retry, handed over again");
    }

    #[tokio::test]
    async fn reports_are_waited_for_until_their_executions_end() {
        let parking = Parking::new(10);
        let old = parking.begin("run", 1);
        let generation = parking.begin("run", 2);
        parking.returned("run", old, None);
        parking.reported().await;

        parking.returned("run", generation, None);
        let mut reported = std::pin::pin!(parking.reported());
        assert!((&mut reported).now_or_never().is_none(), "the execution still reports");
        parking.end("run", generation);
        assert!(reported.now_or_never().is_some());
    }
}
