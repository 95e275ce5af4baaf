//! The worker channel: the protocol operations of all a worker's runs (journal reads, records,
//! run tokens, waits, attempt ends) go to the server in batches, `POST /api/v1/workers/batch`.
//!
//! One batch is in flight at a time. What runs produce meanwhile waits in a queue and leaves
//! together in the next batch, so a lone operation goes out at once and a busy worker sends a
//! few large requests instead of many small ones. Nothing waits on a timer. The queue needs no
//! bound of its own: each run has at most one operation outstanding, and the worker's slots
//! bound the runs.
//!
//! Every operation is idempotent (journal positions and epochs), so what did not get through
//! goes again in a later batch, after a backoff on the worker's clock: a whole batch that reached
//! no working server (no answer, a 5xx, 408 or 429), or one operation answered so.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use waitpoint_clock::Clock;

use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use waitpoint_types::RawJson;
use waitpoint_types::api::worker::{
    Answer, JournalEntryBody, JournalResponse, MAX_BATCH_OPERATIONS, Operation, RecordResponse, RunTokenResponse,
    WaitFor, WaitResponse,
};
use waitpoint_types::api::{CreateTokenRequest, RunErrorBody};

use crate::client::api_error;
use crate::protocol::is_transient;
use crate::{Client, Error, Result};

/// The first pause before sending again what did not get through.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest pause.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// A batch stops growing at this many bytes of operations (the server takes 16 MiB); an
/// operation larger than that goes alone.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// The channel of one worker; clones share it. Its task starts with the first operation and
/// ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    clock: Arc<dyn Clock>,
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
}

/// An operation waiting to be sent, as JSON, and where its answer goes.
#[derive(Debug)]
struct Pending {
    operation: RawJson,
    reply: oneshot::Sender<Result<RawJson>>,
}

impl Channel {
    /// A channel to the server `client` talks to, pausing before retries on `clock`.
    pub(crate) fn new(client: Client, clock: Arc<dyn Clock>) -> Self {
        Self { shared: Arc::new(Shared { client, clock, queue: OnceLock::new() }) }
    }

    /// Every entry of a run's journal, to replay.
    pub(crate) async fn journal(&self, run: &str) -> Result<Vec<JournalEntryBody>> {
        let response: JournalResponse = self.call(&Operation::Journal { run: run.into() }).await?;
        Ok(response.entries)
    }

    /// Records a live operation's result; answers with the entry as recorded.
    pub(crate) async fn record(&self, run: &str, epoch: u64, entry: JournalEntryBody) -> Result<JournalEntryBody> {
        let response: RecordResponse = self.call(&Operation::Record { run: run.into(), epoch, entry }).await?;
        Ok(response.entry)
    }

    /// Creates a token for a run at journal position `seq`.
    pub(crate) async fn run_token(
        &self,
        run: &str,
        epoch: u64,
        seq: u32,
        options: CreateTokenRequest,
    ) -> Result<RunTokenResponse> {
        self.call(&Operation::CreateToken { run: run.into(), epoch, seq, options: Box::new(options) }).await
    }

    /// Records a wait at journal position `seq`.
    pub(crate) async fn wait(&self, run: &str, epoch: u64, seq: u32, wait_for: WaitFor) -> Result<WaitResponse> {
        self.call(&Operation::Wait { run: run.into(), epoch, seq, wait_for }).await
    }

    /// Ends the attempt with the task's output.
    pub(crate) async fn complete_attempt(&self, run: &str, epoch: u64, output: RawJson) -> Result<()> {
        let _: serde::de::IgnoredAny = self.call(&Operation::Complete { run: run.into(), epoch, output }).await?;
        Ok(())
    }

    /// Ends the attempt with an error, to retry after `retry_after` if attempts remain.
    pub(crate) async fn fail_attempt(
        &self,
        run: &str,
        epoch: u64,
        error: RunErrorBody,
        retry_after: Option<Duration>,
    ) -> Result<()> {
        let retry_after_ms = retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let _: serde::de::IgnoredAny =
            self.call(&Operation::Fail { run: run.into(), epoch, error, retry_after_ms }).await?;
        Ok(())
    }

    /// Queues `operation` for the next batch and decodes its answer.
    async fn call<T: DeserializeOwned>(&self, operation: &Operation) -> Result<T> {
        let operation = RawJson::encode(operation)
            .map_err(|e| Error::Config(format!("an operation does not encode as JSON: {e}")))?;
        let (reply, answer) = oneshot::channel();
        let queue = self.shared.queue.get_or_init(|| {
            let (queue, receiver) = mpsc::unbounded_channel();
            tokio::spawn(drive(self.shared.client.clone(), self.shared.clock.clone(), receiver));
            queue
        });
        queue.send(Pending { operation, reply }).map_err(|_| stopped())?;
        let body = answer.await.map_err(|_| stopped())??;
        body.decode().map_err(|e| Error::Decode(format!("{e} in {}", body.get())))
    }
}

fn stopped() -> Error {
    Error::Config("the worker channel stopped".into())
}

/// Sends batches until every clone of the channel is gone.
async fn drive(client: Client, clock: Arc<dyn Clock>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut ready: VecDeque<Pending> = VecDeque::new();
    let mut backoff = FIRST_RETRY;
    loop {
        if ready.is_empty() {
            match queue.recv().await {
                Some(pending) => ready.push_back(pending),
                None => return,
            }
        }
        while let Ok(pending) = queue.try_recv() {
            ready.push_back(pending);
        }
        // A caller that went away (its run was stopped) needs no answer.
        ready.retain(|pending| !pending.reply.is_closed());
        let batch = take_batch(&mut ready);
        if batch.is_empty() {
            continue;
        }
        let mut passing = false;
        match client.batch(encode(&batch)).await {
            Ok(response) if response.answers.len() == batch.len() => {
                for (pending, answer) in batch.into_iter().zip(response.answers) {
                    match outcome(answer) {
                        Err(error) if is_transient(&error) => {
                            passing = true;
                            ready.push_back(pending);
                        }
                        outcome => {
                            let _ = pending.reply.send(outcome);
                        }
                    }
                }
            }
            Ok(response) => {
                let message = format!("{} answers to a batch of {} operations", response.answers.len(), batch.len());
                for pending in batch {
                    let _ = pending.reply.send(Err(Error::Decode(message.clone())));
                }
            }
            Err(error) if is_transient(&error) => {
                tracing::debug!(%error, "a batch did not get through; sending it again");
                passing = true;
                ready.extend(batch);
            }
            Err(error) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(copy_of(&error)));
                }
            }
        }
        if passing {
            clock.sleep_until(clock.now().saturating_add(backoff)).await;
            backoff = (backoff * 2).min(MAX_RETRY);
        } else {
            backoff = FIRST_RETRY;
        }
    }
}

/// The next batch: from the front of `ready`, up to [`MAX_BATCH_OPERATIONS`] operations and
/// [`MAX_BATCH_BYTES`] (but at least one operation).
fn take_batch(ready: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(next) = ready.front() {
        let size = next.operation.get().len();
        if batch.len() == MAX_BATCH_OPERATIONS || (!batch.is_empty() && bytes + size > MAX_BATCH_BYTES) {
            break;
        }
        bytes += size;
        batch.extend(ready.pop_front());
    }
    batch
}

/// The batch's body, from its operations' JSON.
fn encode(batch: &[Pending]) -> String {
    let length: usize = batch.iter().map(|pending| pending.operation.get().len() + 1).sum();
    let mut body = String::with_capacity(length + 16);
    body.push_str(r#"{"operations":["#);
    for (index, pending) in batch.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(pending.operation.get());
    }
    body.push_str("]}");
    body
}

/// An answer as its route's call would have turned out.
fn outcome(answer: Answer) -> Result<RawJson> {
    if (200..300).contains(&answer.status) {
        return Ok(answer.body);
    }
    Err(api_error(answer.status, answer.body.get().as_bytes()))
}

/// The failure of a whole batch, for each of its operations.
fn copy_of(error: &Error) -> Error {
    match error {
        Error::Api { status, message, code } => {
            Error::Api { status: *status, message: message.clone(), code: code.clone() }
        }
        error => Error::Decode(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(json: &str) -> Pending {
        let (reply, _) = oneshot::channel();
        Pending { operation: RawJson::parse(json.to_owned()).unwrap(), reply }
    }

    #[test]
    fn a_batch_takes_what_is_ready_up_to_its_limits_and_at_least_one() {
        let mut ready: VecDeque<Pending> = (0..MAX_BATCH_OPERATIONS + 5).map(|_| pending("{}")).collect();
        assert_eq!(take_batch(&mut ready).len(), MAX_BATCH_OPERATIONS);
        assert_eq!(take_batch(&mut ready).len(), 5);
        assert!(take_batch(&mut ready).is_empty());

        let big = format!("\"{}\"", "x".repeat(MAX_BATCH_BYTES));
        let mut ready: VecDeque<Pending> = [pending("1"), pending(&big), pending("2")].into();
        assert_eq!(take_batch(&mut ready).len(), 1, "the big one does not fit beside the first");
        assert_eq!(take_batch(&mut ready).len(), 1, "alone, it goes");
        assert_eq!(take_batch(&mut ready).len(), 1);
    }

    #[test]
    fn a_batch_body_lists_its_operations_in_order() {
        let batch = [pending(r#"{"op":"journal","run":"run_a"}"#), pending(r#"{"op":"journal","run":"run_b"}"#)];
        let body = encode(&batch);
        assert_eq!(body, r#"{"operations":[{"op":"journal","run":"run_a"},{"op":"journal","run":"run_b"}]}"#);
        let parsed: waitpoint_types::api::worker::BatchRequest = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.operations[1].run(), "run_b");
    }

    #[test]
    fn an_answer_is_the_body_on_success_and_the_routes_error_otherwise() {
        let answer = |status, body: &str| Answer { status, body: RawJson::parse(body.to_owned()).unwrap() };
        assert_eq!(outcome(answer(200, r#"{"entry":1}"#)).unwrap().get(), r#"{"entry":1}"#);
        let moved = outcome(answer(409, r#"{"error":"moved on","code":"run_moved_on"}"#)).unwrap_err();
        assert!(
            matches!(&moved, Error::Api { status: 409, message, code: Some(code) } if message == "moved on" && code == "run_moved_on")
        );
        assert!(is_transient(&outcome(answer(503, r#"{"error":"restarting"}"#)).unwrap_err()));
        assert!(!is_transient(&moved));
    }
}
