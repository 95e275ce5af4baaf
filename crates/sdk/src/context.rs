//! The run context: the spec's API inside a run, journaled.
//!
//! Every operation takes the next position of the run's journal. Live, it is performed and its
//! result recorded on the server before it returns; on replay (a run resumed on another worker,
//! or after a crash) the recorded result is returned instead and nothing is performed again.
//! An operation that does not match the journal at its position (another kind, another name)
//! is non-determinism: the run fails, naming both.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use waitpoint_types::api::worker::{JournalEntryBody, WaitFor};
use waitpoint_types::api::{CreateTokenRequest, CreateTokenResponse, Page, TokenItem};
use waitpoint_types::{JournalKind, Timestamp};

use crate::worker::Parking;
use crate::{Client, Error, ListFilter, Result, Token};

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
    pub(crate) result: serde_json::Value,
    /// The run's new epoch.
    pub(crate) epoch: u64,
    /// Its slots again.
    pub(crate) permits: Permits,
}

/// Why a run's attempt must stop whatever its code does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Poison {
    /// This worker lost the run.
    MovedOn(String),
    /// The code diverged from the journal.
    NonDeterminism(String),
}

/// Where a run is in its journal.
#[derive(Debug)]
pub(crate) struct Cursor {
    pub(crate) epoch: u64,
    pub(crate) next_seq: u32,
    /// The entries recorded before this execution started (replayed in order).
    pub(crate) journal: Vec<JournalEntryBody>,
}

/// Everything one execution of a run shares between its context and its driver.
#[derive(Debug)]
pub(crate) struct RunShared {
    pub(crate) client: Client,
    pub(crate) run_id: String,
    pub(crate) attempt: u32,
    pub(crate) cursor: tokio::sync::Mutex<Cursor>,
    pub(crate) poison: Mutex<Option<Poison>>,
    pub(crate) permits: Mutex<Option<Permits>>,
    pub(crate) parking: Parking,
}

impl RunShared {
    pub(crate) fn poisoned(&self) -> Option<Poison> {
        self.poison.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn poison(&self, poison: Poison) {
        self.poison.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(poison);
    }
}

/// The result of waiting on a token: its output, or the timeout error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitResult<T> {
    /// The token was completed with this output.
    Completed(T),
    /// The token timed out first.
    TimedOut(WaitpointTimeoutError),
}

impl<T> WaitResult<T> {
    /// The output, or the timeout as an error, for `?`: the spec's `unwrap()`.
    pub fn into_result(self) -> std::result::Result<T, WaitpointTimeoutError> {
        match self {
            Self::Completed(output) => Ok(output),
            Self::TimedOut(error) => Err(error),
        }
    }

    /// Whether the token was completed (the spec's `ok`).
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Completed(_))
    }
}

/// A token timed out before anyone completed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitpointTimeoutError {
    /// `Waitpoint timed out at <ISO date>`.
    pub message: String,
}

impl fmt::Display for WaitpointTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WaitpointTimeoutError {}

/// What the journal says about the next operation.
enum Begin<'a> {
    /// Recorded before: its result.
    Replayed(serde_json::Value),
    /// Not recorded: perform it at `seq`, holding the cursor.
    Live { cursor: tokio::sync::MutexGuard<'a, Cursor>, seq: u32 },
}

/// The context of a run: pass it around inside the task's function. Operations must be awaited
/// one at a time (no `join!` of two waits).
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) run: Arc<RunShared>,
}

impl Context {
    /// The run's id (`run_…`).
    pub fn run_id(&self) -> &str {
        &self.run.run_id
    }

    /// The attempt (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.run.attempt
    }

    /// Runs `f` once and records its result: on replay the recorded result is returned and `f`
    /// is not called. An `Err` is not recorded (the attempt fails and a retry runs `f` again).
    ///
    /// A step interrupted mid-flight (the worker crashed after `f` ran, before the result was
    /// recorded) runs again: steps are at-least-once, so make their side effects idempotent.
    pub async fn step<T, E, F, Fut>(&self, name: &str, f: F) -> std::result::Result<T, StepError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
    {
        let (mut cursor, seq) = match self.begin(JournalKind::Step, name).await.map_err(StepError::Run)? {
            Begin::Replayed(result) => return decode(result).map_err(StepError::Run),
            Begin::Live { cursor, seq } => (cursor, seq),
        };
        let value = f().await.map_err(StepError::Failed)?;
        let json = serde_json::to_value(&value).map_err(|e| StepError::Run(Error::Decode(e.to_string())))?;
        let entry =
            JournalEntryBody { seq, kind: JournalKind::Step.as_str().into(), name: name.into(), result: Some(json) };
        let recorded =
            self.guard(self.run.client.record(&self.run.run_id, cursor.epoch, entry).await).map_err(StepError::Run)?;
        cursor.next_seq += 1;
        // A retried record returns what was recorded first; that is the step's result.
        decode(recorded.result.unwrap_or(serde_json::Value::Null)).map_err(StepError::Run)
    }

    /// Creates a waitpoint token (the same options as the API). On replay, the same token.
    pub async fn create_token(&self, options: CreateTokenRequest) -> Result<CreateTokenResponse> {
        match self.begin(JournalKind::CreateToken, "").await? {
            Begin::Replayed(result) => decode(result),
            Begin::Live { mut cursor, seq } => {
                let response = self.run.client.run_token(&self.run.run_id, cursor.epoch, seq, options).await;
                let response = self.guard(response)?;
                cursor.next_seq += 1;
                Ok(response.token)
            }
        }
    }

    /// Waits until the token is completed or times out. While it waits the run is suspended:
    /// it holds no slot, and no process needs to stay up for it.
    pub async fn wait_for_token<T: DeserializeOwned>(&self, token: &str) -> Result<WaitResult<T>> {
        let id = if token.starts_with("waitpoint_") { token.to_owned() } else { format!("waitpoint_{token}") };
        let result = match self.begin(JournalKind::WaitToken, &id).await? {
            Begin::Replayed(result) => result,
            Begin::Live { cursor, seq } => self.wait_live(cursor, seq, WaitFor::Token { id: id.clone() }).await?,
        };
        if result["ok"].as_bool() == Some(true) {
            return decode(result["output"].clone()).map(WaitResult::Completed);
        }
        let message = result["error"]["message"].as_str().unwrap_or("Waitpoint timed out").to_owned();
        Ok(WaitResult::TimedOut(WaitpointTimeoutError { message }))
    }

    /// Waits for `duration` (a durable datetime waitpoint: the run is suspended meanwhile).
    pub async fn wait_for(&self, duration: Duration) -> Result<()> {
        let name = format!("for {}ms", duration.as_millis());
        match self.begin(JournalKind::WaitDatetime, &name).await? {
            Begin::Replayed(_) => Ok(()),
            Begin::Live { cursor, seq } => {
                let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
                self.wait_live(cursor, seq, WaitFor::Duration { ms, name }).await.map(drop)
            }
        }
    }

    /// Waits until `until` (a durable datetime waitpoint: the run is suspended meanwhile).
    pub async fn wait_until(&self, until: Timestamp) -> Result<()> {
        let name = format!("until {until}");
        match self.begin(JournalKind::WaitDatetime, &name).await? {
            Begin::Replayed(_) => Ok(()),
            Begin::Live { cursor, seq } => {
                self.wait_live(cursor, seq, WaitFor::Datetime { until, name }).await.map(drop)
            }
        }
    }

    /// Completes a token with `output` (first completion wins).
    pub async fn complete_token<T: Serialize + ?Sized>(&self, token: &str, output: &T) -> Result<()> {
        match self.begin(JournalKind::CompleteToken, token).await? {
            Begin::Replayed(_) => Ok(()),
            Begin::Live { mut cursor, seq } => {
                self.run.client.complete_token(token, output).await?;
                let result = serde_json::json!({ "success": true });
                self.record(&mut cursor, seq, JournalKind::CompleteToken, token, result).await.map(drop)
            }
        }
    }

    /// Retrieves a token, as it was at this point of the run (recorded, so replay sees the same).
    pub async fn retrieve_token(&self, token: &str) -> Result<Token> {
        match self.begin(JournalKind::RetrieveToken, token).await? {
            Begin::Replayed(result) => Ok(Token { detail: decode(result)? }),
            Begin::Live { mut cursor, seq } => {
                let retrieved = self.run.client.retrieve_token(token).await?;
                let result = serde_json::to_value(&retrieved.detail).map_err(|e| Error::Decode(e.to_string()))?;
                self.record(&mut cursor, seq, JournalKind::RetrieveToken, token, result).await?;
                Ok(retrieved)
            }
        }
    }

    /// One page of tokens, as it was at this point of the run (recorded).
    pub async fn list_tokens(&self, filter: &ListFilter, after: Option<&str>) -> Result<Page<TokenItem>> {
        let name = after.unwrap_or("");
        match self.begin(JournalKind::ListTokens, name).await? {
            Begin::Replayed(result) => decode(result),
            Begin::Live { mut cursor, seq } => {
                let page = self.run.client.list_tokens_page(filter, after).await?;
                let result = serde_json::to_value(&page).map_err(|e| Error::Decode(e.to_string()))?;
                self.record(&mut cursor, seq, JournalKind::ListTokens, name, result).await?;
                Ok(page)
            }
        }
    }

    /// Checks the next journal position against an operation of `kind` named `name`.
    async fn begin(&self, kind: JournalKind, name: &str) -> Result<Begin<'_>> {
        if let Some(poison) = self.run.poisoned() {
            return Err(match poison {
                Poison::MovedOn(message) => Error::RunMovedOn(message),
                Poison::NonDeterminism(message) => Error::NonDeterminism(message),
            });
        }
        let mut cursor = self.run.cursor.try_lock().map_err(|_| Error::ParallelOperations)?;
        let seq = cursor.next_seq;
        if let Some(entry) = cursor.journal.get(seq as usize) {
            if entry.kind != kind.as_str() || entry.name != name {
                let message = format!(
                    "the run's code diverged from its journal at position {seq}: the journal recorded {} {:?}, \
                     the code now performs {kind} {name:?}",
                    entry.kind, entry.name
                );
                self.run.poison(Poison::NonDeterminism(message.clone()));
                return Err(Error::NonDeterminism(message));
            }
            if let Some(result) = entry.result.clone() {
                cursor.next_seq += 1;
                return Ok(Begin::Replayed(result));
            }
        }
        Ok(Begin::Live { cursor, seq })
    }

    async fn record(
        &self,
        cursor: &mut Cursor,
        seq: u32,
        kind: JournalKind,
        name: &str,
        result: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let entry = JournalEntryBody { seq, kind: kind.as_str().into(), name: name.into(), result: Some(result) };
        let recorded = self.guard(self.run.client.record(&self.run.run_id, cursor.epoch, entry).await)?;
        cursor.next_seq += 1;
        Ok(recorded.result.unwrap_or(serde_json::Value::Null))
    }

    /// Waits live: asks the server; if the run suspends, gives back its slots and sleeps until
    /// the worker hands it the result (or drops it, to replay later).
    async fn wait_live(
        &self,
        mut cursor: tokio::sync::MutexGuard<'_, Cursor>,
        seq: u32,
        wait_for: WaitFor,
    ) -> Result<serde_json::Value> {
        // Register before asking, so a resume that arrives before the answer is not missed.
        let (sender, receiver) = oneshot::channel::<Resume>();
        let ticket = self.run.parking.expect(&self.run.run_id, seq, sender);
        let answer = self.guard(self.run.client.wait(&self.run.run_id, cursor.epoch, seq, wait_for).await)?;
        if !answer.suspended {
            drop(ticket);
            cursor.next_seq += 1;
            return Ok(answer.entry.result.unwrap_or(serde_json::Value::Null));
        }
        // Suspended: the slots go back to the worker until the run resumes.
        self.run.permits.lock().unwrap_or_else(|p| p.into_inner()).take();
        ticket.suspended();
        let resume = receiver.await.map_err(|_| Error::RunMovedOn("the worker dropped the suspended run".into()))?;
        *self.run.permits.lock().unwrap_or_else(|p| p.into_inner()) = Some(resume.permits);
        cursor.epoch = resume.epoch;
        cursor.next_seq += 1;
        Ok(resume.result)
    }

    /// Turns the server's refusals into poison: a lost run stops, a mismatch fails the run.
    fn guard<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::Api { status: 409, message, code }) => {
                let poison = match code.as_deref() {
                    Some("journal_mismatch") => Poison::NonDeterminism(message),
                    _ => Poison::MovedOn(message),
                };
                self.run.poison(poison.clone());
                Err(match poison {
                    Poison::NonDeterminism(message) => Error::NonDeterminism(message),
                    Poison::MovedOn(message) => Error::RunMovedOn(message),
                })
            }
            other => other,
        }
    }
}

/// A step's failure: the step's own error, or the run's (lost, diverged, unreachable server).
#[derive(Debug)]
pub enum StepError<E> {
    /// The step's function failed; nothing was recorded.
    Failed(E),
    /// Recording or replaying the step failed.
    Run(Error),
}

impl<E: fmt::Display> fmt::Display for StepError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "{error}"),
            Self::Run(error) => write!(f, "{error}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for StepError<E> {}

fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Decode(format!("a recorded result does not decode: {e}")))
}
