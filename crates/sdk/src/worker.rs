//! The worker: takes runs of its tasks from the server and executes them.
//!
//! One loop polls the server for as many runs as there are free slots. Each run executes in a
//! task of its own. A run that waits on a pending waitpoint is *suspended*: it gives back its
//! slots and stays in memory (up to a limit), and when the waitpoint finishes the server hands
//! it back to this worker first, which continues it where it stopped, without replay. A run
//! that is not in memory any more (evicted, or this is another worker, or the process
//! restarted) replays its journal instead.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::task::AbortHandle;
use waitpoint_types::api::RunErrorBody;
use waitpoint_types::api::worker::{ClaimedRun, PollRequest, TaskSlots};
use waitpoint_types::{IdGenerator, Timestamp};

use crate::context::{Cursor, Permits, Poison, Resume, RunShared};
use crate::protocol::is_transient;
use crate::task::TaskError;
use crate::{Client, Context, Error, Result, Task};

/// How long the server may hold a poll when there is nothing to take.
const POLL_WAIT: Duration = Duration::from_secs(10);
/// The pause after a poll that failed (the server is down or restarting).
const POLL_RETRY: Duration = Duration::from_millis(500);

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Runs executing at once (suspended runs do not count).
    pub concurrency: usize,
    /// Suspended runs kept in memory; beyond this the oldest are dropped and resume by replay.
    pub max_suspended: usize,
    /// On shutdown, how long executing runs get to finish or suspend before they are stopped
    /// (and handed back to the server, to resume elsewhere by replay).
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { concurrency: 100, max_suspended: 10_000, shutdown_grace: Duration::from_secs(30) }
    }
}

/// A worker: a set of tasks, run against a server.
#[derive(Debug)]
pub struct Worker {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    id: String,
    tasks: HashMap<String, Task>,
    slots: Arc<Semaphore>,
    task_slots: HashMap<String, Arc<Semaphore>>,
    parking: Parking,
    config: WorkerConfig,
}

impl Worker {
    /// A worker running `tasks` against the server `client` talks to.
    pub fn new(client: Client, tasks: impl IntoIterator<Item = Task>, config: WorkerConfig) -> Result<Self> {
        let mut by_id = HashMap::new();
        for task in tasks {
            if by_id.insert(task.id.clone(), task).is_some() {
                return Err(Error::Config("two tasks share an id".into()));
            }
        }
        if by_id.is_empty() {
            return Err(Error::Config("a worker needs at least one task".into()));
        }
        let task_slots = by_id
            .values()
            .filter_map(|task| task.concurrency.map(|limit| (task.id.clone(), Arc::new(Semaphore::new(limit)))))
            .collect();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let id = IdGenerator::new().worker(Timestamp::from_millis(now.as_millis() as i64)).public();
        let parking = Parking::new(config.max_suspended.max(1));
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Ok(Self { shared: Arc::new(Shared { client, id, tasks: by_id, slots, task_slots, parking, config }) })
    }

    /// This worker's id (`worker_…`), new for each process.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Runs until `shutdown` completes, then stops taking runs, lets executing runs finish
    /// (for `shutdown_grace`), stops the rest and hands them back to the server.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let shared = self.shared;
        tracing::info!(worker = %shared.id, tasks = shared.tasks.len(), "worker started");
        tokio::select! {
            _ = poll_loop(shared.clone()) => {}
            _ = shutdown => {}
        }
        tracing::info!(worker = %shared.id, "worker stopping");
        let all = u32::try_from(shared.config.concurrency.max(1)).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(shared.config.shutdown_grace, shared.slots.acquire_many(all)).await;
        if drained.is_err() {
            tracing::warn!("runs still executing after the grace period are stopped and resume elsewhere");
        }
        shared.parking.abort_all();
        // Leaving with an empty `holding` gives back, at once, every run the server still counts
        // as ours (deferred ones too), and sends our suspended runs elsewhere when they resume.
        let request = PollRequest {
            tasks: task_slots(&shared, false),
            wait_ms: 0,
            holding: Vec::new(),
            leaving: true,
            session: None,
        };
        if let Err(error) = shared.client.poll(&shared.id, &request).await {
            tracing::warn!(%error, "could not hand runs back; they resume elsewhere once this worker times out");
        }
        Ok(())
    }
}

/// The tasks and their free slots now (all 0 when `with_slots` is false).
fn task_slots(shared: &Shared, with_slots: bool) -> Vec<TaskSlots> {
    let free = shared.slots.available_permits();
    shared
        .tasks
        .keys()
        .map(|id| {
            let task_free = shared.task_slots.get(id).map_or(free, |s| s.available_permits().min(free));
            let slots = if with_slots { u32::try_from(task_free).unwrap_or(u32::MAX) } else { 0 };
            TaskSlots { id: id.clone(), slots }
        })
        .collect()
}

async fn poll_loop(shared: Arc<Shared>) {
    loop {
        if shared.slots.available_permits() > 0 {
            for claimed in shared.parking.take_deferred() {
                dispatch(&shared, claimed);
            }
        }
        let tasks = task_slots(&shared, true);
        let request = PollRequest {
            tasks,
            wait_ms: POLL_WAIT.as_millis() as u64,
            holding: shared.parking.holding(),
            leaving: false,
            session: None,
        };
        // A poll with free slots returns as soon as there is a run to take. One without (a
        // heartbeat), or one while resumed runs wait for a slot (of a task with a limit), is
        // abandoned when a slot frees, to ask again with it. What an abandoned poll took is
        // not lost: the next poll, not counting it as held, gives it back.
        let idle = request.tasks.iter().all(|task| task.slots == 0) || shared.parking.has_deferred();
        let answer = if idle {
            tokio::select! {
                answer = shared.client.poll(&shared.id, &request) => answer,
                _ = shared.parking.slots_freed.notified() => continue,
            }
        } else {
            shared.client.poll(&shared.id, &request).await
        };
        match answer {
            Ok(response) => {
                for claimed in response.runs {
                    dispatch(&shared, claimed);
                }
            }
            Err(error) => {
                if !is_transient(&error) {
                    tracing::error!(%error, "poll refused");
                }
                tokio::time::sleep(POLL_RETRY).await;
            }
        }
    }
}

/// Starts (or resumes) a run the server handed over. A resumed run can arrive when every slot
/// is taken (the server hands it back to the worker that suspended it); it is then deferred
/// until a slot frees, or, when as many runs as there are slots wait already, left out: the
/// next poll, not counting it as held, gives it back for any worker to take.
fn dispatch(shared: &Arc<Shared>, claimed: ClaimedRun) {
    if shared.parking.superseded(&claimed.id, claimed.epoch) {
        // A late copy of a hand-off the server has since replaced (it gave the run back and
        // handed it over again, with a newer epoch): the execution here is the current one.
        tracing::debug!(run = %claimed.id, epoch = claimed.epoch, "ignoring a superseded claim");
        return;
    }
    let Some(permits) = acquire(shared, &claimed.task_id) else {
        if let Some(claimed) = shared.parking.defer(claimed, shared.config.concurrency.max(1)) {
            tracing::debug!(run = %claimed.id, "no free slot for a resumed run; handing it back");
        }
        return;
    };
    if let Some(resumed) = &claimed.resumed
        && let Some(sender) = shared.parking.take_resume(&claimed.id, resumed.seq, claimed.epoch)
    {
        let resume = Resume { result: resumed.result.clone().unwrap_or_default(), epoch: claimed.epoch, permits };
        match sender.send(resume) {
            Ok(()) => return,
            Err(resume) => return start(shared, claimed, resume.permits),
        }
    }
    start(shared, claimed, permits);
}

/// A worker slot and, if the task has a limit, one of the task's; `None` if one is not free.
fn acquire(shared: &Shared, task_id: &str) -> Option<Permits> {
    let worker = shared.slots.clone().try_acquire_owned().ok()?;
    let task = match shared.task_slots.get(task_id) {
        Some(slots) => Some(slots.clone().try_acquire_owned().ok()?),
        None => None,
    };
    Some(Permits { _worker: worker, _task: task })
}

/// Executes a run from its start, replaying its journal if it has one.
fn start(shared: &Arc<Shared>, claimed: ClaimedRun, permits: Permits) {
    let generation = shared.parking.begin(&claimed.id, claimed.epoch);
    let handle = tokio::spawn(execute(shared.clone(), claimed.clone(), permits, generation));
    shared.parking.set_abort(&claimed.id, generation, handle.abort_handle());
}

async fn execute(shared: Arc<Shared>, claimed: ClaimedRun, permits: Permits, generation: u64) {
    let run_id = claimed.id.clone();
    let journal = if claimed.journal_length > 0 {
        match shared.client.journal(&run_id).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, run = %run_id, "could not read the journal; the run resumes elsewhere");
                shared.parking.end(&run_id, generation);
                return;
            }
        }
    } else {
        Vec::new()
    };
    let replayed = journal.len();
    let run = Arc::new(RunShared {
        client: shared.client.clone(),
        run_id: run_id.clone(),
        attempt: claimed.attempt,
        cursor: tokio::sync::Mutex::new(Cursor { epoch: claimed.epoch, next_seq: 0, journal }),
        poison: Mutex::new(None),
        permits: Mutex::new(Some(permits)),
        parking: shared.parking.clone(),
    });
    let outcome = match shared.tasks.get(&claimed.task_id) {
        Some(task) => {
            let body = (task.handler)(Context { run: run.clone() }, claimed.payload.clone());
            match AssertUnwindSafe(body).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Err(TaskError::named("Panic", panic_message(&panic), true)),
            }
        }
        None => Err(TaskError::named("TaskNotFound", format!("this worker has no task {:?}", claimed.task_id), false)),
    };
    let (epoch, unreplayed) = {
        let cursor = run.cursor.lock().await;
        (cursor.epoch, (cursor.next_seq as usize) < replayed)
    };
    let report = match (run.poisoned(), outcome) {
        (Some(Poison::MovedOn(reason)), _) => {
            tracing::info!(run = %run_id, reason, "the run moved on; dropping it");
            Ok(())
        }
        (Some(Poison::NonDeterminism(message)), _) => {
            let error = RunErrorBody { name: "NonDeterminism".into(), message };
            shared.client.fail_attempt(&run_id, epoch, error, None).await
        }
        (None, Ok(_)) if unreplayed => {
            let message = format!("the run's code returned before replaying its journal ({replayed} entries)");
            let error = RunErrorBody { name: "NonDeterminism".into(), message };
            shared.client.fail_attempt(&run_id, epoch, error, None).await
        }
        (None, Ok(output)) => shared.client.complete_attempt(&run_id, epoch, output).await,
        (None, Err(error)) => {
            let task = shared.tasks.get(&claimed.task_id);
            let retry_after = (error.is_retryable() && claimed.attempt < claimed.max_attempts)
                .then(|| task.map(|t| t.retry.delay(claimed.attempt)))
                .flatten();
            let body = RunErrorBody { name: error.name().into(), message: error.message().into() };
            shared.client.fail_attempt(&run_id, epoch, body, retry_after).await
        }
    };
    match report {
        Ok(()) | Err(Error::Api { status: 409, .. }) => {}
        Err(error) => tracing::warn!(%error, run = %run_id, "could not report the attempt; it resumes elsewhere"),
    }
    // Free the slots before saying so.
    run.permits.lock().unwrap_or_else(|p| p.into_inner()).take();
    shared.parking.end(&run_id, generation);
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .map_or_else(|| "the task panicked".to_owned(), |message| format!("the task panicked: {message}"))
}

/// The runs a worker holds, executing or suspended in memory, and the resumes they expect.
#[derive(Debug, Clone)]
pub(crate) struct Parking {
    registry: Arc<Mutex<Registry>>,
    /// Woken when slots are given back (a run finished or suspended).
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
    fn new(max_suspended: usize) -> Self {
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
    fn superseded(&self, run_id: &str, epoch: u64) -> bool {
        let registry = self.lock();
        let latest = registry.runs.get(run_id).map(|slot| slot.epoch).or_else(|| registry.ended.get(run_id).copied());
        latest.is_some_and(|latest| latest >= epoch)
    }

    /// Registers a new execution of `run_id`, claimed with `epoch`, stopping any older one;
    /// returns its generation.
    fn begin(&self, run_id: &str, epoch: u64) -> u64 {
        let old = {
            let mut registry = self.lock();
            let generation = registry.next;
            registry.next += 1;
            let slot = Slot { generation, epoch, abort: None, expecting: None };
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

    fn set_abort(&self, run_id: &str, generation: u64, abort: AbortHandle) {
        if let Some(slot) = self.lock().runs.get_mut(run_id).filter(|slot| slot.generation == generation) {
            slot.abort = Some(abort);
        }
    }

    /// The execution `generation` of `run_id` ended.
    fn end(&self, run_id: &str, generation: u64) {
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
    fn take_resume(&self, run_id: &str, seq: u32, epoch: u64) -> Option<oneshot::Sender<Resume>> {
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

    /// The runs executing here (not suspended) or deferred: what the server should count as
    /// held.
    fn holding(&self) -> Vec<String> {
        let registry = self.lock();
        let executing = registry
            .runs
            .iter()
            .filter(|(_, slot)| slot.expecting.as_ref().is_none_or(|e| e.suspended.is_none()))
            .map(|(id, _)| id.clone());
        let deferred = registry.deferred.iter().map(|claimed| claimed.id.clone());
        executing.chain(deferred).collect()
    }

    /// Holds `claimed` until a slot frees, unless `limit` runs already wait: then it is given
    /// back (returned).
    fn defer(&self, claimed: ClaimedRun, limit: usize) -> Option<ClaimedRun> {
        let mut registry = self.lock();
        if registry.deferred.len() >= limit {
            return Some(claimed);
        }
        registry.deferred.push_back(claimed);
        None
    }

    fn has_deferred(&self) -> bool {
        !self.lock().deferred.is_empty()
    }

    fn take_deferred(&self) -> VecDeque<ClaimedRun> {
        std::mem::take(&mut self.lock().deferred)
    }

    fn abort_all(&self) {
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
}
