//! Connections that live on threads of their own.
//!
//! SQLite calls block, so each connection gets a dedicated thread and async callers send it
//! jobs. Unlike Tokio's blocking pool, the threads are fixed: no thread is started per call
//! (under load the pool grows to dozens of threads), and a connection stays with its thread,
//! its prepared statements warm.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::oneshot;
use waitpoint_storage::{Result, StorageError};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Connections, each on its thread, taking jobs from one queue: a job runs on whichever is
/// free first. The threads end when the pool is dropped, after the jobs already queued.
#[derive(Debug)]
pub(crate) struct ConnectionThreads {
    jobs: mpsc::Sender<Job>,
}

impl ConnectionThreads {
    /// Starts a thread for each connection, named `name`.
    pub(crate) fn start(name: &str, connections: Vec<Connection>) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for mut conn in connections {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    while let Some(job) = next_job(&queue) {
                        // A panicking job loses its own answer only; SQLite rolls back the
                        // transaction it left open when that unwinds.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
                    }
                })
                .map_err(StorageError::database)?;
        }
        Ok(Self { jobs })
    }

    /// Runs `f` on one of the connections and returns its result.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = answer.send(f(conn));
        });
        self.jobs.send(job).map_err(|_| StorageError::Database("the database threads stopped".into()))?;
        answered.await.map_err(|_| StorageError::Database("a database call panicked".into()))?
    }
}

fn next_job(queue: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
    queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv().ok()
}
