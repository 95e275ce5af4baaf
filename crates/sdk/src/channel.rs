//! The worker channel: the protocol operations of all a worker's runs (journal reads, records,
//! run tokens, waits, attempt ends) go to the server in batches, `POST /api/v1/workers/batch`.
//!
//! At most [`MAX_IN_FLIGHT`] batches are in flight at a time. What runs produce meanwhile waits
//! in a queue and leaves together in the next batch, so a lone operation goes out at once and a
//! busy worker sends a few large requests instead of many small ones; with two in flight, one
//! leaves while the other waits on the server's group commit. Nothing waits on a timer. The
//! queue needs no bound of its own: each run has at most one operation outstanding, and the
//! worker's slots bound the runs.
//!
//! Every operation is idempotent (journal positions and epochs), so what did not get through
//! goes again in a later batch, after a backoff on the worker's clock: a whole batch that reached
//! no working server (no answer, a 5xx, 408 or 429), or one operation answered so.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use waitpoint_clock::Clock;
use waitpoint_types::{RawJson, Timestamp};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use waitpoint_types::api::worker::{
    Answer, BatchResponse, JournalEntryBody, JournalResponse, MAX_BATCH_OPERATIONS, Operation, RecordResponse,
    RunTokenResponse, WaitFor, WaitResponse,
};
use waitpoint_types::api::{CreateTokenRequest, RunErrorBody};

use crate::client::api_error;
use crate::protocol::is_transient;
use crate::{Client, Error, Result};

/// The first pause before sending again what did not get through.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest pause.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Batches sent and not yet answered, at most. Each run has at most one operation outstanding,
/// so batches in flight together hold different runs' operations.
const MAX_IN_FLIGHT: usize = 2;

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

/// Sends batches, up to [`MAX_IN_FLIGHT`] at once, until every clone of the channel is gone and
/// every operation is answered.
async fn drive(client: Client, clock: Arc<dyn Clock>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut ready: VecDeque<Pending> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    let mut backoff = FIRST_RETRY;
    // After something did not get through, no batch leaves before this.
    let mut paused_until: Option<Timestamp> = None;
    loop {
        while let Ok(pending) = queue.try_recv() {
            ready.push_back(pending);
        }
        // A caller that went away (its run was stopped) needs no answer.
        ready.retain(|pending| !pending.reply.is_closed());
        if paused_until.is_some_and(|until| clock.now() >= until) {
            paused_until = None;
        }
        while paused_until.is_none() && in_flight.len() < MAX_IN_FLIGHT && !ready.is_empty() {
            let batch = take_batch(&mut ready);
            let client = client.clone();
            in_flight.push(async move {
                let answered = client.batch(encode(&batch)).await;
                (batch, answered)
            });
        }
        if !open && ready.is_empty() && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            pending = queue.recv(), if open => match pending {
                Some(pending) => ready.push_back(pending),
                None => open = false,
            },
            Some((batch, answered)) = in_flight.next() => {
                if settle(batch, answered, &mut ready) {
                    paused_until = Some(clock.now().saturating_add(backoff));
                    backoff = (backoff * 2).min(MAX_RETRY);
                } else {
                    backoff = FIRST_RETRY;
                }
            }
            () = clock.sleep_until(paused_until.unwrap_or_else(|| clock.now())), if paused_until.is_some() => {}
        }
    }
}

/// Gives each operation of `batch` its answer, or puts it back in `ready` to go again when it
/// did not get through; says whether anything goes again.
fn settle(batch: Vec<Pending>, answered: Result<BatchResponse>, ready: &mut VecDeque<Pending>) -> bool {
    match answered {
        Ok(response) if response.answers.len() == batch.len() => {
            let mut again = false;
            for (pending, answer) in batch.into_iter().zip(response.answers) {
                match outcome(answer) {
                    Err(error) if is_transient(&error) => {
                        again = true;
                        ready.push_back(pending);
                    }
                    outcome => {
                        let _ = pending.reply.send(outcome);
                    }
                }
            }
            again
        }
        Ok(response) => {
            let message = format!("{} answers to a batch of {} operations", response.answers.len(), batch.len());
            for pending in batch {
                let _ = pending.reply.send(Err(Error::Decode(message.clone())));
            }
            false
        }
        Err(error) if is_transient(&error) => {
            tracing::debug!(%error, "a batch did not get through; sending it again");
            ready.extend(batch);
            true
        }
        Err(error) => {
            for pending in batch {
                let _ = pending.reply.send(Err(copy_of(&error)));
            }
            false
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

    #[tokio::test]
    async fn a_second_batch_leaves_while_the_first_waits_for_its_answer() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A peer that answers the first batch only once the second arrived: with one batch in
        // flight at a time, neither would ever be answered.
        let (batches, second) = (Arc::new(AtomicUsize::new(0)), Arc::new(tokio::sync::Notify::new()));
        let first_arrived = Arc::new(tokio::sync::Notify::new());
        let arrived = first_arrived.clone();
        let peer = axum::Router::new().route(
            "/api/v1/workers/batch",
            axum::routing::post(move |_body: String| async move {
                if batches.fetch_add(1, Ordering::SeqCst) == 0 {
                    arrived.notify_one();
                    second.notified().await;
                } else {
                    second.notify_one();
                }
                axum::Json(serde_json::json!({ "answers": [{ "status": 200, "body": { "entries": [] } }] }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, peer).await });
        let client = Client::new(&origin, "tr_dev_ScriptedPeer000000000000").unwrap();
        let channel = Channel::new(client, Arc::new(waitpoint_clock::SystemClock));

        let first = tokio::spawn({
            let channel = channel.clone();
            async move { channel.journal("run_a").await }
        });
        first_arrived.notified().await;
        let second = channel.journal("run_b");
        let both = tokio::time::timeout(Duration::from_secs(5), async { (second.await, first.await) }).await;
        let (second, first) = both.expect("the second batch left while the first waited");
        assert!(first.unwrap().unwrap().is_empty() && second.unwrap().is_empty());
    }

    #[test]
    fn a_settled_batch_answers_each_operation_and_puts_back_what_did_not_get_through() {
        let waiting = |json: &str| {
            let (reply, answer) = oneshot::channel();
            (Pending { operation: RawJson::parse(json.to_owned()).unwrap(), reply }, answer)
        };
        let answer = |status, body: &str| Answer { status, body: RawJson::parse(body.to_owned()).unwrap() };
        let ((a, mut a_answer), (b, mut b_answer), (c, mut c_answer)) = (waiting("1"), waiting("2"), waiting("3"));
        let response = BatchResponse {
            answers: vec![answer(200, "{}"), answer(503, r#"{"error":"stopping"}"#), answer(409, r#"{"error":"no"}"#)],
        };
        let mut ready = VecDeque::new();
        assert!(settle(vec![a, b, c], Ok(response), &mut ready), "the 503 goes again");
        assert!(a_answer.try_recv().unwrap().is_ok());
        assert!(matches!(c_answer.try_recv().unwrap(), Err(Error::Api { status: 409, .. })));
        assert!(b_answer.try_recv().is_err(), "no answer yet");
        assert_eq!(ready.iter().map(|p| p.operation.get()).collect::<Vec<_>>(), ["2"]);

        let failed = Err(Error::Api { status: 502, message: "bad gateway".into(), code: None });
        assert!(settle(ready.drain(..).collect(), failed, &mut ready), "a batch that reached no working server");
        assert_eq!(ready.len(), 1);
        let short = BatchResponse { answers: Vec::new() };
        assert!(!settle(ready.drain(..).collect(), Ok(short), &mut ready), "a wrong answer fails, once");
        assert!(matches!(b_answer.try_recv().unwrap(), Err(Error::Decode(_))));
    }
}
