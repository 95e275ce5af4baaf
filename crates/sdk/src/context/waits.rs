//! Waiting inside a run: on a token, for a duration, until a time. A wait whose waitpoint has
//! not finished suspends the run: it gives back its slots and holds nothing until it resumes.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use waitpoint_types::api::worker::WaitFor;
use waitpoint_types::wait::WaitpointResult;
use waitpoint_types::{JournalKind, RawJson, Timestamp};

use super::journal::{Begin, Cursor};
use crate::error::decode;
use crate::parking::Resume;
use crate::{AsTokenId, Context, Error, Result};

/// One waitpoint to wait on: a token, a duration or a point in time. A set of them is what
/// [`Context::wait_for_any`], [`Context::wait_for_all`] and [`Context::wait_for_at_least`] wait
/// on (the run's journal names such a wait by its condition, not by its waitpoints).
///
/// ```
/// use std::time::Duration;
/// use waitpoint_sdk::Wait;
///
/// let waits = [Wait::token("waitpoint_c1"), Wait::duration(Duration::from_secs(2 * 86_400))];
/// # assert_eq!(waits.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait(WaitOn);

/// What a [`Wait`] waits on, as the worker protocol names it (never a set).
#[derive(Debug, Clone, PartialEq, Eq)]
enum WaitOn {
    Token { id: String },
    Duration { ms: u64, name: String },
    Datetime { until: Timestamp, name: String },
}

impl Wait {
    /// A token (an id, or the token itself), completed by anyone or timed out on its timeout.
    pub fn token(token: impl AsTokenId) -> Self {
        let token = token.token_id();
        let id = if token.starts_with("waitpoint_") { token.to_owned() } else { format!("waitpoint_{token}") };
        Self(WaitOn::Token { id })
    }

    /// A span of time, counted by the server's clock from when the server records the wait;
    /// named `for <ms>ms`.
    pub fn duration(duration: Duration) -> Self {
        let name = format!("for {}ms", duration.as_millis());
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(WaitOn::Duration { ms, name })
    }

    /// A point in time; named `until <ISO date>`.
    pub fn until(until: Timestamp) -> Self {
        Self(WaitOn::Datetime { until, name: format!("until {until}") })
    }

    /// The token's id, for a token.
    pub(super) fn token_id(&self) -> Option<&str> {
        match &self.0 {
            WaitOn::Token { id } => Some(id),
            WaitOn::Duration { .. } | WaitOn::Datetime { .. } => None,
        }
    }

    /// The journal kind and name of a wait on this waitpoint alone.
    fn journal(&self) -> (JournalKind, &str) {
        match &self.0 {
            WaitOn::Token { id } => (JournalKind::WaitToken, id),
            WaitOn::Duration { name, .. } | WaitOn::Datetime { name, .. } => (JournalKind::WaitDatetime, name),
        }
    }

    /// What the worker protocol calls this waitpoint.
    pub(super) fn into_wire(self) -> WaitFor {
        match self.0 {
            WaitOn::Token { id } => WaitFor::Token { id },
            WaitOn::Duration { ms, name } => WaitFor::Duration { ms, name },
            WaitOn::Datetime { until, name } => WaitFor::Datetime { until, name },
        }
    }
}

/// The result of waiting on a token: its output, the timeout error, or the error it was
/// rejected with (the spec's `ok`, `output` and `error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitResult<T> {
    /// The token was completed with this output.
    Completed(T),
    /// The token timed out first.
    TimedOut(WaitpointTimeoutError),
    /// Someone rejected the token, with this error.
    Rejected(WaitpointRejectedError),
}

impl<T> WaitResult<T> {
    /// The output, or why there is none as an error, for `?`: the spec's `unwrap()`. A task
    /// that fails with it is not retried (every replay would see the same outcome).
    pub fn into_result(self) -> std::result::Result<T, WaitError> {
        match self {
            Self::Completed(output) => Ok(output),
            Self::TimedOut(error) => Err(WaitError::TimedOut(error)),
            Self::Rejected(error) => Err(WaitError::Rejected(error)),
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

impl WaitpointTimeoutError {
    /// The error a timed-out waitpoint's recorded result gives (`{"code", "message"}`).
    pub(super) fn from_recorded(error: &serde_json::Value) -> Self {
        Self { message: error["message"].as_str().unwrap_or("Waitpoint timed out").to_owned() }
    }
}

/// A token was rejected: the error its rejection gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitpointRejectedError {
    /// Why, for people.
    pub message: String,
    /// For programs (`WAITPOINT_REJECTED` when the rejection gave none).
    pub code: String,
    /// Anything else the rejection gave.
    pub data: Option<serde_json::Value>,
}

impl fmt::Display for WaitpointRejectedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for WaitpointRejectedError {}

impl WaitpointRejectedError {
    /// The error a rejected waitpoint's recorded result gives (`{"code", "message", "data"?}`).
    pub(super) fn from_recorded(error: &serde_json::Value) -> Self {
        Self {
            message: error["message"].as_str().unwrap_or("Waitpoint rejected").to_owned(),
            code: error["code"].as_str().unwrap_or("WAITPOINT_REJECTED").to_owned(),
            data: error.get("data").cloned(),
        }
    }
}

/// Why a wait on a token gave no output: what [`WaitResult::into_result`] fails with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The token timed out.
    #[error("{0}")]
    TimedOut(#[source] WaitpointTimeoutError),
    /// The token was rejected.
    #[error("rejected: {0}")]
    Rejected(#[source] WaitpointRejectedError),
}

impl Context {
    /// Waits until `token` (an id, or the token itself) is completed or times out. While it
    /// waits the run is suspended: it holds no slot, and no process needs to stay up for it.
    ///
    /// An output that does not decode as `T` is an [`Error::OutputType`] naming the token and
    /// `T`; a run that fails with it is not retried.
    pub async fn wait_for_token<T: DeserializeOwned>(&self, token: impl AsTokenId) -> Result<WaitResult<T>> {
        let wait = Wait::token(token);
        let id = wait.journal().1.to_owned();
        let recorded = self.wait_alone(wait).await?;
        let result: WaitpointResult = recorded.decode().map_err(|error| {
            Error::Decode(format!(
                "the result of {} {id:?} is not a token wait's result: {error}",
                JournalKind::WaitToken
            ))
        })?;
        match result {
            WaitpointResult::Completed { output } => {
                decode(output, || format!("the output of token {id}")).map(WaitResult::Completed)
            }
            WaitpointResult::TimedOut { error } => {
                Ok(WaitResult::TimedOut(WaitpointTimeoutError::from_recorded(&error)))
            }
            WaitpointResult::Rejected { error } => {
                Ok(WaitResult::Rejected(WaitpointRejectedError::from_recorded(&error)))
            }
        }
    }

    /// Waits for `duration`, counted from when the server records the wait (a durable datetime
    /// waitpoint: the run is suspended meanwhile).
    pub async fn wait_for(&self, duration: Duration) -> Result<()> {
        self.wait_alone(Wait::duration(duration)).await.map(drop)
    }

    /// Waits until `until` (a durable datetime waitpoint: the run is suspended meanwhile).
    ///
    /// On replay the recorded wait is the truth: a datetime wait at the same position matches
    /// whatever deadline the code computes now, and resumes as recorded.
    pub async fn wait_until(&self, until: Timestamp) -> Result<()> {
        self.wait_alone(Wait::until(until)).await.map(drop)
    }

    /// Waits on one waitpoint: its recorded result on replay, else the result live.
    async fn wait_alone(&self, wait: Wait) -> Result<RawJson> {
        let (kind, name) = wait.journal();
        match self.begin(kind, name).await? {
            Begin::Replayed(result) => Ok(result),
            Begin::Live { cursor, seq } => self.wait_live(cursor, seq, wait.into_wire()).await,
        }
    }

    /// Waits live: asks the server; if the run suspends, gives back its slots and sleeps until
    /// the worker hands it the result (or drops it, to replay later).
    pub(super) async fn wait_live(
        &self,
        mut cursor: tokio::sync::MutexGuard<'_, Cursor>,
        seq: u32,
        wait_for: WaitFor,
    ) -> Result<RawJson> {
        // Register before asking, so a resume that arrives before the answer is not missed.
        let (sender, receiver) = oneshot::channel::<Resume>();
        let ticket = self.run.parking.expect(&self.run.run_id, seq, sender);
        let answer = self.guard(self.run.channel.wait(&self.run.run_id, cursor.epoch, seq, wait_for).await)?;
        if !answer.suspended {
            drop(ticket);
            cursor.next_seq += 1;
            return Ok(answer.entry.result.unwrap_or_else(RawJson::null));
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
}
