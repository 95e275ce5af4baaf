//! Workers: their polls, what this node knows of them, and the runs handed to them.
//!
//! A worker is known by its environment and its id; a process restarted under the same id
//! comes with a newer session and takes the worker over (the storage decides, see
//! `RunClaim::session`). A poll records that the worker is alive and which tasks it runs (at
//! most every quarter of the worker timeout, or when that changes), gives back what the worker
//! holds without knowing (at most every [`RECONCILE_EVERY`]), then takes runs, waiting for some
//! when there are none. A run resumed while its worker waits here with a free slot is handed
//! straight to it through its mailbox on this node; any other is queued, reserved a while for
//! its worker, which claims it when it has room. A new run is handed the same way, as it is
//! triggered, to a worker waiting here with a slot for its task; otherwise it is queued. The
//! release loop gives the runs of workers that stopped polling to others.
//!
//! Whether anyone serves a task is answered from what polls said, cached briefly: a run whose
//! task no worker runs gets a hint saying so, and the server logs it once per task.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use waitpoint_storage::{
    Claim, ClaimOutcome, HeldRun, Resumed, RunClaim, RunsRelease, Takers, WorkerOutcome, WorkerSeen, WriteOp,
};
use waitpoint_types::api::worker::{self, PollRequest};
use waitpoint_types::{Environment, EnvironmentId, RunId, Timestamp, WorkerId};

use crate::error::{EngineError, Result};
use crate::handoffs::Handoffs;
use crate::mailboxes::{Mailboxes, RECONCILE_EVERY};
use crate::metrics::{self, Transition};
use crate::runs::{parse_run_id, validate_task_id};
use crate::{Engine, Inner};

/// The longest a poll is held when there is nothing to take.
const MAX_POLL_WAIT: Duration = Duration::from_secs(30);
/// How often a held poll looks at storage even without a wake-up (runs made by other nodes).
const POLL_RECHECK: Duration = Duration::from_secs(1);
/// The most slots one poll may ask for, per task.
const MAX_SLOTS: u32 = 10_000;
/// The longest session a worker may give.
const MAX_SESSION_LEN: usize = 64;
/// How long an answer of storage to "does anyone serve this task?" is reused.
const SERVED_CACHE_TTL: Duration = Duration::from_secs(1);

/// A worker as the engine knows it: its environment and its id. The same id in another
/// environment is another worker.
pub(crate) type WorkerKey = (EnvironmentId, WorkerId);

/// What this node knows of workers.
#[derive(Debug, Default)]
pub(crate) struct Workers {
    /// What this node last recorded of each worker, so it records again only when that is
    /// stale or changed.
    seen: Mutex<HashMap<WorkerKey, Seen>>,
    /// What this node keeps of each worker between its polls (the runs handed to it).
    mailboxes: Mailboxes,
    /// Whether each task of an environment is served, as last found out.
    served: Mutex<HashMap<(EnvironmentId, String), Served>>,
    /// The tasks already reported (in the log) as served by no worker, until they are served.
    unserved_logged: Mutex<HashSet<(EnvironmentId, String)>>,
    /// True once polls are no longer held (the server is stopping).
    released: watch::Sender<bool>,
    /// When each run this node resumed was resumed, and whether it was handed to its worker
    /// (or queued): for the resume latency, measured when a poll delivers the run.
    resumed_at: Mutex<HashMap<RunId, (Instant, bool)>>,
    /// Which workers take resumed runs handed straight to them.
    handoffs: Arc<Handoffs>,
}

/// What this node last recorded of a worker.
#[derive(Debug)]
struct Seen {
    at: Timestamp,
    tasks: Vec<String>,
}

/// A task's service, as last found out.
#[derive(Debug, Clone, Copy)]
struct Served {
    served: bool,
    checked_at: Timestamp,
}

impl Workers {
    /// Notes when the runs of `resumed` were resumed, for the resume latency.
    pub(crate) fn resumed(&self, resumed: &Resumed) {
        if resumed.queued.is_empty() && resumed.handed.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut resumed_at = self.resumed_at.lock().unwrap_or_else(|p| p.into_inner());
        resumed_at.extend(resumed.queued.iter().map(|run| (run.clone(), (now, false))));
        resumed_at.extend(resumed.handed.iter().map(|claim| (claim.run.id.clone(), (now, true))));
    }

    /// Measures how long the resumed runs among `claims` took to reach their worker.
    fn delivered(&self, claims: &[Claim]) {
        let mut resumed_at = self.resumed_at.lock().unwrap_or_else(|p| p.into_inner());
        for claim in claims.iter().filter(|claim| claim.resumed.is_some()) {
            if let Some((at, handed)) = resumed_at.remove(&claim.run.id) {
                metrics::resume_delivered(handed, at.elapsed());
            }
        }
    }

    /// The workers that take resumed runs at `now` (see [`Takers`]).
    pub(crate) fn takers(&self, now: Timestamp) -> Takers {
        self.handoffs.takers(now)
    }

    /// A poll of `worker` at `now` asks for up to `slots` runs of each task: it may be handed
    /// as many, less those already handed to it that it has not picked up.
    fn polled(&self, worker: &WorkerKey, slots: &[(String, usize)], now: Timestamp) {
        self.handoffs.polled(worker, slots, self.mailboxes.pending(worker), now);
    }

    /// Puts a run resumed for its waiting worker in that worker's mailbox, which takes one of
    /// its slots, and wakes its poll.
    pub(crate) fn hand(&self, worker: WorkerKey, claim: Claim) {
        self.handoffs.given(&worker, [claim.run.task_id.as_str()]);
        self.mailboxes.hand(worker, claim);
    }

    /// Promises a new run of `task` of `environment` to a worker waiting here with a slot for
    /// it, if one is (see [`Handoffs::reserve`]): the run is to be created `EXECUTING` for
    /// that worker, then handed with [`Promise::hand`].
    pub(crate) fn promise(&self, environment: &EnvironmentId, task: &str, now: Timestamp) -> Option<Promise<'_>> {
        let worker = self.handoffs.reserve(environment, task, now)?;
        Some(Promise { workers: self, worker: (environment.clone(), worker) })
    }

    /// Forgets `worker` on this node (its throttle entries and mailbox; it takes no hand-offs).
    fn forget(&self, worker: &WorkerKey) {
        self.handoffs.forget(worker);
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).remove(worker);
        self.mailboxes.forget(worker);
    }

    /// Whether `worker` must be recorded as seen at `now` serving `tasks`: when this node has
    /// not recorded it for `every`, or its tasks changed. Notes the recording.
    fn record_due(&self, worker: &WorkerKey, tasks: &[String], now: Timestamp, every: Duration) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(worker) {
            Some(last) if now.duration_since(last.at) < every && last.at <= now && last.tasks == tasks => false,
            _ => {
                seen.insert(worker.clone(), Seen { at: now, tasks: tasks.to_vec() });
                true
            }
        }
    }

    /// Notes that a poll on this node said `tasks` of `environment` are served at `now`.
    fn served_by_poll(&self, environment: &EnvironmentId, tasks: &[String], now: Timestamp) {
        let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        let mut logged = self.unserved_logged.lock().unwrap_or_else(|p| p.into_inner());
        for task in tasks {
            let key = (environment.clone(), task.clone());
            logged.remove(&key);
            served.insert(key, Served { served: true, checked_at: now });
        }
    }

    /// Drops what this node keeps about workers not seen since `horizon` (their throttle
    /// entries and mailboxes; runs in those mailboxes are released with the rest of the
    /// worker's), so the maps stay small.
    fn forget_older_than(&self, horizon: Timestamp, resumed_horizon: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, last| last.at >= horizon);
        metrics::workers_connected(seen.len());
        let mut resumed_at = self.resumed_at.lock().unwrap_or_else(|p| p.into_inner());
        resumed_at.retain(|_, (at, _)| *at >= resumed_horizon);
        drop(resumed_at);
        self.mailboxes.retain(|worker| seen.contains_key(worker));
        self.served.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, served| served.checked_at >= horizon);
    }
}

/// A new run promised to a worker on this node ([`Workers::promise`]). Dropped without
/// [`hand`](Self::hand) (the run was not created: its idempotency key named another), the
/// promise lapses.
pub(crate) struct Promise<'a> {
    workers: &'a Workers,
    worker: WorkerKey,
}

impl Promise<'_> {
    /// The worker.
    pub(crate) fn worker(&self) -> &WorkerId {
        &self.worker.1
    }

    /// Puts the run, created `EXECUTING` for the worker, in its mailbox and wakes its poll.
    pub(crate) fn hand(self, claim: Claim) {
        self.workers.mailboxes.hand(self.worker.clone(), claim);
    }
}

impl Drop for Promise<'_> {
    fn drop(&mut self) {
        self.workers.handoffs.settled(&self.worker);
    }
}

impl Engine {
    /// A worker's poll (`worker` is its id): records that it is alive and what it runs, gives
    /// back the runs it holds without knowing (those not in `holding`; at most every
    /// [`RECONCILE_EVERY`] per worker and node), then hands it up to its free slots of queued
    /// runs per task, waiting up to `wait_ms` for some to become available (meanwhile, runs
    /// resumed for it are handed to it straight). A poll of a session that another one took
    /// over is refused ([`EngineError::WorkerReplaced`]).
    pub async fn poll_runs(&self, environment: &Environment, worker: &str, poll: &PollRequest) -> Result<Vec<Claim>> {
        let inner = &self.inner;
        let worker = WorkerId::parse(worker).map_err(|error| EngineError::Invalid(error.to_string()))?;
        for task in &poll.tasks {
            validate_task_id(&task.id)?;
            if task.slots > MAX_SLOTS {
                return Err(EngineError::Invalid(format!("slots must be at most {MAX_SLOTS}, got {}", task.slots)));
            }
        }
        let session = poll.session.as_deref();
        if let Some(session) = session
            && (session.is_empty()
                || session.len() > MAX_SESSION_LEN
                || !session.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(EngineError::Invalid(format!(
                "session must be 1 to {MAX_SESSION_LEN} letters, digits, '-' or '_'"
            )));
        }
        let holding = poll.holding.iter().map(held_run).collect::<Result<Vec<HeldRun>>>()?;
        let key: WorkerKey = (environment.id.clone(), worker);
        if poll.leaving {
            return inner.worker_left(&key, session, holding).await.map(|()| Vec::new());
        }
        let tasks: Vec<String> = poll.tasks.iter().map(|task| task.id.clone()).collect();
        inner.worker_seen(&key, &tasks).await?;
        let wanted: Vec<(String, usize)> = poll
            .tasks
            .iter()
            .filter(|task| task.slots > 0)
            .map(|task| (task.id.clone(), task.slots as usize))
            .collect();
        inner.workers.polled(&key, &wanted, inner.clock.now());
        let task_ids: Vec<String> = wanted.iter().map(|(task, _)| task.clone()).collect();
        let deadline = inner.clock.now().saturating_add(Duration::from_millis(poll.wait_ms).min(MAX_POLL_WAIT));
        let mailboxes = &inner.workers.mailboxes;
        let (number, mail) = mailboxes.begin_poll(&key);
        // What the last answer carried and this poll does not list is compared at once.
        let mut unconfirmed = mailboxes.answer_unconfirmed(&key, &holding);
        let mut released = inner.workers.released.subscribe();
        loop {
            let mut ready = pin!(inner.runs_ready.notified());
            ready.as_mut().enable();
            let mut delivered = pin!(mail.notified());
            delivered.as_mut().enable();
            let now = inner.clock.now();
            // A poll without a free slot leaves the mailbox alone: its client gives it up as soon
            // as a slot frees (an answer on its way then would be lost), and asks again with
            // that slot, and that poll takes what waits here.
            let taken = if wanted.is_empty() {
                mailboxes.newest(&key, number).then(Vec::new)
            } else {
                mailboxes.take(&key, number)
            };
            let Some(mut claims) = taken else {
                metrics::polled();
                return Ok(Vec::new());
            };
            // A claim may give back what the worker does not hold (a claim whose answer was lost,
            // a run handed to a poll that has just ended, which the same claim then takes again);
            // it is made for that even when the worker has no free slot.
            let unread = std::mem::take(&mut unconfirmed);
            let comparison = mailboxes.compare_due(&key, session, now, !unread.is_empty());
            let reconcile = comparison.is_some();
            if reconcile || (claims.is_empty() && !wanted.is_empty()) {
                // Runs handed to the worker since its last poll count as held: it is about to
                // get them.
                let holding = reconcile.then(|| {
                    let handed = claims.iter().map(|c| HeldRun { run: c.run.id.clone(), epoch: Some(c.run.epoch) });
                    holding.iter().cloned().chain(handed).collect()
                });
                let claim = RunClaim {
                    environment_id: environment.id.clone(),
                    worker: key.1.clone(),
                    tasks: if claims.is_empty() { wanted.clone() } else { Vec::new() },
                    now,
                    alive_since: now.saturating_sub(inner.config.worker_timeout),
                    sticky_for: inner.config.sticky_for,
                    holding,
                    handed_by: comparison.map_or(now, |comparison| comparison.handed_by(now)),
                    unread,
                    session: session.map(str::to_owned),
                };
                // The claim may take every slot the worker asked for: no new run is promised to
                // it meanwhile.
                let _claiming = (!claim.tasks.is_empty()).then(|| inner.workers.handoffs.claiming(&key));
                match inner.writer.write(WriteOp::RunClaim(claim)).await? {
                    ClaimOutcome::Claimed { claims: claimed, released } => {
                        inner.workers.handoffs.given(&key, claimed.iter().map(|c| c.run.task_id.as_str()));
                        metrics::runs(Transition::Claimed, claimed.len());
                        metrics::runs(Transition::Released, released.len());
                        inner.runs_changed(&environment.id, claimed.iter().map(|c| &c.run.id).chain(&released));
                        claims.extend(claimed);
                        if !released.is_empty() {
                            // A run handed to the worker after this poll took its mail was not
                            // in the list, and was given back: the copy in the mailbox is stale.
                            mailboxes.drop_given_back(&key, &released);
                            inner.runs_ready.notify_waiters();
                        }
                    }
                    ClaimOutcome::WorkerReplaced => {
                        mailboxes.put_back(&key, claims);
                        return Err(replaced(&key.1));
                    }
                }
            }
            if !claims.is_empty() {
                metrics::polled();
                inner.workers.delivered(&claims);
                mailboxes.answered(&key, &claims);
                return Ok(claims);
            }
            if now >= deadline || *released.borrow_and_update() {
                metrics::polled();
                return Ok(Vec::new());
            }
            let next = if task_ids.is_empty() {
                None
            } else {
                inner.store.run_next_available(&environment.id, &task_ids, now).await?
            };
            // Sticky runs become free to others after a while, and other nodes do not wake us. A
            // run handed to the worker may have gone to a poll its client gave up on: the next
            // comparison of what it holds gives it back, as soon as one is due.
            let recheck = if mailboxes.handed_since_compared(&key) { RECONCILE_EVERY } else { POLL_RECHECK };
            let wake = deadline.min(now.saturating_add(recheck)).min(next.unwrap_or(deadline));
            let _waiting = inner.workers.handoffs.waiting(&key, inner.clock.as_ref());
            tokio::select! {
                _ = ready => {}
                _ = delivered => {}
                _ = released.changed() => {}
                _ = inner.clock.sleep_until(wake) => {}
            }
        }
    }

    /// Stops holding polls: held ones answer at once with what they have, and later ones do
    /// not wait. For a server that is stopping, so that idle workers do not delay it.
    pub fn release_polls(&self) {
        self.inner.workers.released.send_replace(true);
    }

    /// Whether polls are no longer held: the server is stopping.
    pub(crate) fn polls_released(&self) -> bool {
        *self.inner.workers.released.borrow()
    }

    /// Resolves once polls are released ([`release_polls`](Self::release_polls)): the server is
    /// stopping, and other long answers (event streams) end too.
    pub async fn stopping(&self) {
        let mut released = self.inner.workers.released.subscribe();
        // The sender lives as long as the engine.
        let _ = released.wait_for(|released| *released).await;
    }

    /// A hint for a run of `task_id` queued in `environment`: `Some` when no worker seen within
    /// the worker timeout runs that task, which is logged once per task.
    pub(crate) async fn unserved_hint(&self, environment: &Environment, task_id: &str) -> Result<Option<String>> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let key = (environment.id.clone(), task_id.to_owned());
        let cached = inner.workers.served.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied();
        let served = match cached {
            Some(cached) if now.duration_since(cached.checked_at) < SERVED_CACHE_TTL && cached.checked_at <= now => {
                cached.served
            }
            _ => {
                let alive_since = inner.workers_alive_since();
                let served = inner.store.task_served(&environment.id, task_id, alive_since).await?;
                let entry = Served { served, checked_at: now };
                inner.workers.served.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), entry);
                served
            }
        };
        if served {
            return Ok(None);
        }
        let timeout = inner.config.worker_timeout.as_secs();
        if inner.workers.unserved_logged.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
            tracing::warn!(
                environment = %environment.name,
                task = task_id,
                "runs of this task are queued, but no worker polled for it in the last {timeout} s"
            );
        }
        Ok(Some(format!(
            "no worker serves task {task_id:?}: none that polled in the last {timeout} s runs it; start a worker with \
             this task, or check the task id"
        )))
    }
}

fn replaced(worker: &WorkerId) -> EngineError {
    EngineError::WorkerReplaced(format!(
        "{worker} was taken over by a newer process with the same worker id: this process must stop (each process \
         needs an instance name of its own)"
    ))
}

/// A run a poll lists as held, with its epoch when the poll names one.
fn held_run(held: &worker::HeldRun) -> Result<HeldRun> {
    Ok(match held {
        worker::HeldRun::Id(id) => HeldRun::any_epoch(parse_run_id(id)?),
        worker::HeldRun::Leased(lease) => HeldRun { run: parse_run_id(&lease.id)?, epoch: Some(lease.epoch) },
    })
}

impl Inner {
    /// `worker` stops: gives back what it holds (beyond `holding`), forgets it, and drops what
    /// was handed to it here (those runs are released with the rest). A session that another
    /// took over changes nothing.
    async fn worker_left(&self, worker: &WorkerKey, session: Option<&str>, holding: Vec<HeldRun>) -> Result<()> {
        let now = self.clock.now();
        let (environment_id, id) = worker.clone();
        let left = WriteOp::WorkerLeft {
            environment_id: environment_id.clone(),
            worker: id.clone(),
            session: session.map(str::to_owned),
        };
        if self.writer.write::<WorkerOutcome>(left).await? == WorkerOutcome::Replaced {
            return Err(replaced(&id));
        }
        // Without a session: the worker is forgotten now, and a claim with one would record it
        // again (alive, so runs resumed meanwhile would be handed to it).
        let release = RunClaim {
            environment_id,
            worker: id,
            tasks: Vec::new(),
            now,
            alive_since: now,
            sticky_for: self.config.sticky_for,
            holding: Some(holding),
            handed_by: now,
            unread: Vec::new(),
            session: None,
        };
        if let ClaimOutcome::Claimed { released, .. } = self.writer.write(WriteOp::RunClaim(release)).await? {
            self.runs_changed(&worker.0, &released);
        }
        self.workers.forget(worker);
        self.runs_ready.notify_waiters();
        Ok(())
    }

    /// Records that `worker` is alive and runs `tasks`: at most every quarter of the worker
    /// timeout, unless its tasks changed.
    async fn worker_seen(&self, worker: &WorkerKey, tasks: &[String]) -> Result<()> {
        let now = self.clock.now();
        self.workers.served_by_poll(&worker.0, tasks, now);
        if !self.workers.record_due(worker, tasks, now, self.config.worker_timeout / 4) {
            return Ok(());
        }
        let op =
            WorkerSeen { worker: worker.1.clone(), environment_id: worker.0.clone(), at: now, tasks: tasks.to_vec() };
        self.writer.write::<WorkerOutcome>(WriteOp::WorkerSeen(op)).await?;
        Ok(())
    }
}

/// Gives back the runs of workers that stopped, every quarter of the worker timeout, until
/// `shutdown` turns true.
pub(crate) async fn release_loop(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let every = inner.config.worker_timeout / 4;
    loop {
        let now = inner.clock.now();
        let release = RunsRelease { alive_since: now.saturating_sub(inner.config.worker_timeout), now };
        match inner.writer.write::<Vec<RunId>>(WriteOp::RunsRelease(release)).await {
            Ok(released) if !released.is_empty() => {
                metrics::runs(Transition::Released, released.len());
                tracing::info!(runs = released.len(), "released the runs of stopped workers");
                inner.runs_ready.notify_waiters();
                inner.runs_of_any_environment_changed(&released).await;
            }
            Ok(_) => {}
            Err(EngineError::ShuttingDown) => return,
            Err(error) => tracing::error!(%error, "releasing the runs of stopped workers failed"),
        }
        // A resumed run not delivered within a few worker timeouts went to another node's worker.
        let resumed_horizon = Instant::now().checked_sub(inner.config.worker_timeout * 4).unwrap_or_else(Instant::now);
        inner.workers.forget_older_than(now.saturating_sub(inner.config.worker_timeout), resumed_horizon);
        tokio::select! {
            _ = inner.clock.sleep_until(now.saturating_add(every)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
