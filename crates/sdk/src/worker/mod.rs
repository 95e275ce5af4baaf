//! The worker: takes runs of its tasks from the server and executes them.
//!
//! One loop polls the server for as many runs as there are free slots. Each run executes in a
//! task of its own, and gives back its slots as soon as its code returns (the outcome is then
//! reported). A run that waits on a pending waitpoint is *suspended*: it gives back its
//! slots and stays in memory (up to a limit), and when the waitpoint finishes the server hands
//! it back to this worker first, which continues it where it stopped, without replay. A run
//! that is not in memory any more (evicted, or this is another worker, or the process
//! restarted) replays its journal instead.
//!
//! # Layout
//! - `config`: [`WorkerConfig`], and the worker's identity (id and session).
//! - `poll`: the poll loop, and which failures stop the worker.
//! - `execute`: executing the runs the server hands over.

mod config;
mod execute;
mod poll;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use waitpoint_types::api::worker::{PollRequest, TaskSlots};

use self::config::Identity;
pub use self::config::WorkerConfig;
use crate::channel::Channel;
use crate::parking::Parking;
use crate::{Client, Error, Result, Task};

/// A worker: a set of tasks, run against a server.
///
/// ```no_run
/// # async fn example(task: waitpoint_sdk::Task) -> waitpoint_sdk::Result<()> {
/// waitpoint_sdk::init_logging();
/// waitpoint_sdk::Worker::from_env([task])?.run_until_signal().await
/// # }
/// ```
#[derive(Debug)]
pub struct Worker {
    shared: Arc<Shared>,
}

/// What the poll loop and the executions share.
#[derive(Debug)]
struct Shared {
    client: Client,
    channel: Channel,
    identity: Identity,
    tasks: HashMap<String, Task>,
    slots: Arc<Semaphore>,
    task_slots: HashMap<String, Arc<Semaphore>>,
    parking: Parking,
    config: WorkerConfig,
}

impl Worker {
    /// A worker running `tasks` against the server `client` talks to. Fails with
    /// [`Error::Config`] on two tasks with one id, no task, or an invalid instance name.
    pub fn new(client: Client, tasks: impl IntoIterator<Item = Task>, config: WorkerConfig) -> Result<Self> {
        let mut by_id = HashMap::new();
        for task in tasks {
            if let Some(task) = by_id.insert(task.id.clone(), task) {
                return Err(Error::Config(format!("two tasks share the id {:?}", task.id)));
            }
        }
        if by_id.is_empty() {
            return Err(Error::Config("a worker needs at least one task".into()));
        }
        let identity = Identity::new(&config)?;
        let task_slots = by_id
            .values()
            .filter_map(|task| task.concurrency.map(|limit| (task.id.clone(), Arc::new(Semaphore::new(limit)))))
            .collect();
        let parking = Parking::new(config.max_suspended.max(1));
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let channel = Channel::new(client.clone(), config.clock.clone());
        Ok(Self {
            shared: Arc::new(Shared { client, channel, identity, tasks: by_id, slots, task_slots, parking, config }),
        })
    }

    /// A worker configured from the environment: [`Client::from_env`] and
    /// [`WorkerConfig::from_env`].
    pub fn from_env(tasks: impl IntoIterator<Item = Task>) -> Result<Self> {
        Self::new(Client::from_env()?, tasks, WorkerConfig::from_env())
    }

    /// This worker's id: `worker_<instance>`, or a new one for each process.
    pub fn id(&self) -> &str {
        &self.shared.identity.id
    }

    /// Runs until `shutdown` completes (whatever it returns), then stops taking runs, lets
    /// executing runs finish and report how they ended (for `shutdown_grace`), stops the rest
    /// and hands them back to the server.
    ///
    /// Returns an error, at once, when the server refuses the worker for good: the key is
    /// wrong ([`Error::KeyRefused`]), another process took this worker id over
    /// ([`Error::WorkerReplaced`]), or a poll was refused otherwise ([`Error::Api`]). An
    /// unreachable or failing server is not such an error: the worker warns and keeps trying.
    pub async fn run_until<F: Future>(self, shutdown: F) -> Result<()> {
        let shared = self.shared;
        let mut tasks: Vec<&str> = shared.tasks.keys().map(String::as_str).collect();
        tasks.sort_unstable();
        tracing::info!(
            api_url = shared.client.api_url(),
            worker = %shared.identity.id,
            tasks = ?tasks,
            slots = shared.config.concurrency.max(1),
            "worker started"
        );
        let refused = tokio::select! {
            error = poll::poll_loop(shared.clone()) => Some(error),
            _ = shutdown => None,
        };
        if let Some(error) = refused {
            tracing::error!(worker = %shared.identity.id, "worker stopped: {error}");
            shared.parking.abort_all();
            return Err(error);
        }
        tracing::info!(worker = %shared.identity.id, "worker stopping");
        let all = u32::try_from(shared.config.concurrency.max(1)).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(shared.config.shutdown_grace, async {
            // Every slot free: no code runs. Then every outcome reported.
            let _slots = shared.slots.acquire_many(all).await;
            shared.parking.reported().await;
        })
        .await;
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
            session: Some(shared.identity.session.clone()),
        };
        if let Err(error) = shared.client.poll(&shared.identity.id, &request).await {
            tracing::warn!(%error, "could not hand runs back; they resume elsewhere once this worker times out");
        }
        Ok(())
    }

    /// Runs until the process is asked to stop (SIGINT or SIGTERM; Ctrl-C where there are no
    /// signals), as [`run_until`](Self::run_until) does.
    pub async fn run_until_signal(self) -> Result<()> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind| signal(kind).map_err(|e| Error::Config(format!("cannot listen for signals: {e}")));
            let (mut interrupt, mut terminate) = (listen(SignalKind::interrupt())?, listen(SignalKind::terminate())?);
            self.run_until(async move {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            })
            .await
        }
        #[cfg(not(unix))]
        {
            self.run_until(tokio::signal::ctrl_c()).await
        }
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
