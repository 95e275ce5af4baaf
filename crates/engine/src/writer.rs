//! Group commit: many callers' writes share one transaction and one disk sync.
//!
//! Callers put a [`WriteOp`] on a queue and wait for its outcome. Each lane (one per
//! [`Store::write_concurrency`]) takes everything queued, up to `max_batch`, applies it with
//! one [`Store::write_batch`] and answers every caller. Nothing waits on a timer: a batch is
//! whatever arrived while the previous one was being synced, so a lone request commits at
//! once and a burst commits in large groups.

use std::sync::Arc;

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
        let lanes = (0..store.write_concurrency().max(1))
            .map(|_| tokio::spawn(lane(store.clone(), receiver.clone(), max_batch.max(1), shutdown.clone())))
            .collect();
        (Self { queue }, lanes)
    }

    /// Applies `op` durably (in some batch) and returns what it did.
    pub(crate) async fn write(&self, op: WriteOp) -> Result<WriteOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send(Pending { op, reply }).await.map_err(|_| EngineError::ShuttingDown)?;
        outcome.await.map_err(|_| EngineError::ShuttingDown)?
    }
}

async fn lane(
    store: Arc<dyn Store>,
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
        apply(&*store, &mut batch).await;
    }
}

async fn apply(store: &dyn Store, batch: &mut Vec<Pending>) {
    let size = batch.len();
    let (ops, replies): (Vec<_>, Vec<_>) = batch.drain(..).map(|p| (p.op, p.reply)).unzip();
    match store.write_batch(ops).await {
        Ok(outcomes) if outcomes.len() == size => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // The caller may have gone away; its write is applied all the same.
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(outcomes) => {
            tracing::error!(
                size,
                outcomes = outcomes.len(),
                "storage answered a batch with the wrong number of outcomes"
            );
            for reply in replies {
                let _ = reply.send(Err(EngineError::Storage("inconsistent batch outcome".into())));
            }
        }
        Err(error) => {
            tracing::error!(%error, size, "write batch failed; none of it was applied");
            let message = error.to_string();
            for reply in replies {
                let _ = reply.send(Err(EngineError::Storage(message.clone())));
            }
        }
    }
}
