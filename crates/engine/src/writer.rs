//! Group commit: many callers' writes share one transaction and one disk sync.
//!
//! Callers put a [`WriteOp`] on a queue and wait for its outcome. Each lane (one per
//! [`Store::write_concurrency`]) takes everything queued, up to `max_batch`, applies it with
//! one [`Store::write_batch`] and answers every caller. Nothing waits on a timer: a batch is
//! whatever arrived while the previous one was being synced, so a lone request commits at
//! once and a burst commits in large groups.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use waitpoint_storage::{Store, WriteOp, WriteOutcome};

use crate::error::{EngineError, Result};

/// Writes waiting for a lane; beyond this, callers wait to enqueue (back-pressure).
const QUEUE_CAPACITY: usize = 16_384;

struct Pending {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome>>,
}

/// The queue in front of the lanes.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Pending>,
    appended: watch::Sender<u64>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("op", &self.op).finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the lanes. They stop, after applying everything already queued, when
    /// `shutdown` turns true.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        max_batch: usize,
        shutdown: watch::Receiver<bool>,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let receiver = Arc::new(Mutex::new(receiver));
        let appended = watch::Sender::new(0);
        let lanes = (0..store.write_concurrency().max(1))
            .map(|_| {
                let lane = Lane { store: store.clone(), appended: appended.clone() };
                tokio::spawn(lane.run(receiver.clone(), max_batch.max(1), shutdown.clone()))
            })
            .collect();
        (Self { queue, appended }, lanes)
    }

    /// Counts the commits that appended events to the log: it changes after each one, so a
    /// follower of the log knows when to read it again without listening to every change.
    pub(crate) fn appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Applies `op` durably (in some batch) and returns what it did, as the outcome type of
    /// its family (see [`WriteOutcome`]).
    pub(crate) async fn write<T: TryFrom<WriteOutcome, Error = WriteOutcome>>(&self, op: WriteOp) -> Result<T> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send(Pending { op, reply }).await.map_err(|_| EngineError::ShuttingDown)?;
        let outcome = outcome.await.map_err(|_| EngineError::ShuttingDown)??;
        T::try_from(outcome).map_err(|other| {
            EngineError::Internal(format!("storage answered with an outcome of another operation: {other:?}"))
        })
    }
}

/// One write lane: its store, and where it tells that a commit appended events.
struct Lane {
    store: Arc<dyn Store>,
    appended: watch::Sender<u64>,
}

impl Lane {
    /// Applies batches of what is queued until `shutdown` turns true and the queue is empty.
    async fn run(
        self,
        receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
        max_batch: usize,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut batch = Vec::with_capacity(max_batch);
        loop {
            let stopping = {
                let mut receiver = receiver.lock().await;
                tokio::select! {
                    received = receiver.recv_many(&mut batch, max_batch) => received == 0,
                    _ = shutdown.wait_for(|stop| *stop) => {
                        receiver.close();
                        while batch.len() < max_batch {
                            match receiver.try_recv() {
                                Ok(pending) => batch.push(pending),
                                Err(_) => break,
                            }
                        }
                        batch.is_empty()
                    }
                }
            };
            if stopping {
                return;
            }
            apply(&self, &mut batch).await;
        }
    }

    /// Tells followers of the event log when `outcomes`, just committed, appended to it.
    fn committed(&self, outcomes: &[WriteOutcome]) {
        if outcomes.iter().any(waitpoint_storage::events::tells) {
            self.appended.send_modify(|count| *count = count.wrapping_add(1));
        }
    }
}

/// Applies a batch. If it fails as a whole, each operation is tried on its own, so one
/// operation the database refuses fails alone instead of taking its batch-mates with it.
async fn apply(lane: &Lane, batch: &mut Vec<Pending>) {
    let store = &*lane.store;
    let size = batch.len();
    let (ops, replies): (Vec<_>, Vec<_>) = batch.drain(..).map(|p| (p.op, p.reply)).unzip();
    if size > 1 {
        let started = Instant::now();
        let written = store.write_batch(ops.clone()).await;
        crate::metrics::committed(size, started.elapsed());
        match written {
            Ok(outcomes) if outcomes.len() == size => {
                lane.committed(&outcomes);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The caller may have gone away; its write is applied all the same.
                    let _ = reply.send(Ok(outcome));
                }
                return;
            }
            Ok(outcomes) => {
                // Committed, but unaccountably: retrying would apply it twice.
                tracing::error!(
                    size,
                    outcomes = outcomes.len(),
                    "storage answered a batch with the wrong number of outcomes"
                );
                for reply in replies {
                    let _ = reply.send(Err(EngineError::Internal("inconsistent batch outcome".into())));
                }
                return;
            }
            Err(error) => tracing::warn!(%error, size, "write batch failed; retrying its operations one by one"),
        }
    }
    for (op, reply) in ops.into_iter().zip(replies) {
        apply_one(lane, op, reply).await;
    }
}

async fn apply_one(lane: &Lane, op: WriteOp, reply: oneshot::Sender<Result<WriteOutcome>>) {
    let started = Instant::now();
    let written = lane.store.write_batch(vec![op]).await;
    crate::metrics::committed(1, started.elapsed());
    let outcome = match written {
        Ok(mut outcomes) if outcomes.len() == 1 => {
            lane.committed(&outcomes);
            Ok(outcomes.remove(0))
        }
        Ok(outcomes) => {
            tracing::error!(
                outcomes = outcomes.len(),
                "storage answered one operation with the wrong number of outcomes"
            );
            Err(EngineError::Internal("inconsistent batch outcome".into()))
        }
        Err(error) => {
            tracing::error!(%error, "write failed; it was not applied");
            Err(error.into())
        }
    };
    let _ = reply.send(outcome);
}

#[cfg(test)]
mod tests {
    use waitpoint_sqlite::SqliteStore;
    use waitpoint_storage::CreateOutcome;
    use waitpoint_types::{Environment, IdGenerator, Secret, Timestamp, Waitpoint, WaitpointKind, WaitpointState};

    use super::*;

    #[tokio::test]
    async fn an_operation_the_database_refuses_fails_alone() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
        let ids = IdGenerator::new();
        let now = Timestamp::from_millis(1_764_000_000_000);
        let env = Environment {
            id: ids.environment(now),
            name: "dev".into(),
            api_key: Secret::new("tr_dev_key".into()),
            signing_secret: Secret::new("s".into()),
            created_at: now,
        };
        store.environment_create(&env).await.unwrap();
        let waitpoint = |id| Waitpoint {
            id,
            kind: WaitpointKind::Manual,
            environment_id: env.id.clone(),
            state: WaitpointState::Waiting,
            idempotency_key: None,
            inactive_idempotency_key: None,
            idempotency_key_expires_at: None,
            timeout_at: None,
            heartbeat: None,
            callback_verifier: None,
            tags: Vec::new(),
            created_at: now,
            approval: None,
            output_schema: None,
        };
        let (a, b) = (waitpoint(ids.waitpoint(now)), waitpoint(ids.waitpoint(now)));
        let (_stop, stopped) = watch::channel(false);
        let (writer, _lanes) = Writer::start(Arc::new(store), 16, stopped);

        // Queued together, so they share one batch; the duplicate id breaks the transaction.
        let (first, duplicate, second) = tokio::join!(
            writer.write::<CreateOutcome>(WriteOp::Create(a.clone())),
            writer.write::<CreateOutcome>(WriteOp::Create(a.clone())),
            writer.write::<CreateOutcome>(WriteOp::Create(b.clone())),
        );
        assert_eq!(first.unwrap(), CreateOutcome::Created(a));
        assert!(matches!(duplicate, Err(EngineError::Conflict(_))), "{duplicate:?}");
        assert_eq!(second.unwrap(), CreateOutcome::Created(b));
    }
}
