//! Tasks: async functions with a typed payload and output, registered under an id.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use waitpoint_types::RawJson;

use crate::{Context, Error, OutputTypeError, WaitpointRejectedError, WaitpointTimeoutError};

/// Why a task's attempt failed. Any error converts into one with `?`.
///
/// A failed attempt is retried (while the run has attempts left) unless retrying cannot
/// help: failures that replay would only repeat are not retried. Those are, by name:
///
/// - `WaitpointTimeoutError`: a timed-out wait turned into an error
///   ([`WaitResult::into_result`](crate::WaitResult::into_result)`?`, or
///   [`WaitSetResult::into_result`](crate::WaitSetResult::into_result)`?` for a set wait that
///   too many timeouts or rejections decided); every replay sees the same timeout.
/// - `WaitpointRejectedError`: a wait on a rejected token turned into an error
///   (`into_result()?`); every replay sees the same rejection.
/// - `OutputTypeError`: an output that does not decode into the type awaited
///   ([`OutputTypeError`](crate::OutputTypeError)).
/// - `NonDeterminism`: the code no longer matches the run's journal.
/// - `ConfigError`: a request the SDK refused before sending it (an invalid duration).
/// - whatever [`TaskError::fatal`] makes.
///
/// To retry one of them anyway (a later attempt that takes another path, say), say so:
/// `TaskError::from(error).retryable(true)`.
pub struct TaskError {
    name: String,
    message: String,
    retryable: bool,
}

impl TaskError {
    /// A failure worth retrying, with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self { name: "TaskError".into(), message: message.to_string(), retryable: true }
    }

    /// A failure retrying cannot fix: the run fails without further attempts.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self { name: "TaskError".into(), message: message.to_string(), retryable: false }
    }

    pub(crate) fn named(name: &str, message: impl fmt::Display, retryable: bool) -> Self {
        Self { name: name.into(), message: message.to_string(), retryable }
    }

    /// The same failure, retried (`true`) or not (`false`) whatever its kind.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// The kind of failure (`TaskError`, `WaitpointTimeoutError`, `OutputTypeError`, `Panic`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What happened.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether another attempt may run.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    /// Names the failure after the SDK error it is or wraps (see [`TaskError`]), else
    /// `TaskError`; the message is the error's, followed by the causes it does not already
    /// mention.
    fn from(error: E) -> Self {
        let (name, retryable) = classify(&error);
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !message.contains(&cause_text) {
                message = format!("{message}: {cause_text}");
            }
            source = cause.source();
        }
        Self { name: name.into(), message, retryable }
    }
}

/// The name of a failure and whether retrying may help: the first SDK error found along the
/// error's chain of causes decides.
fn classify(error: &(dyn std::error::Error + 'static)) -> (&'static str, bool) {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<WaitpointTimeoutError>() {
            return ("WaitpointTimeoutError", false);
        }
        if error.is::<WaitpointRejectedError>() {
            return ("WaitpointRejectedError", false);
        }
        if error.is::<OutputTypeError>() {
            return ("OutputTypeError", false);
        }
        match error.downcast_ref::<Error>() {
            Some(Error::OutputType(_)) => return ("OutputTypeError", false),
            Some(Error::NonDeterminism(_)) => return ("NonDeterminism", false),
            Some(Error::Config(_)) => return ("ConfigError", false),
            _ => {}
        }
        next = error.source();
    }
    ("TaskError", true)
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// How long to wait before retrying a failed attempt: `min × factor^(attempt − 1)`, at most
/// `max`. How many attempts a run gets is set when it is triggered (`maxAttempts`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The delay after the first failure.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The growth of the delay per attempt.
    pub factor: f64,
}

impl Default for RetryPolicy {
    /// 1 s, 2 s, 4 s, … up to a minute.
    fn default() -> Self {
        Self { min: Duration::from_secs(1), max: Duration::from_secs(60), factor: 2.0 }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let millis = (self.min.as_millis() as f64) * self.factor.max(1.0).powi(exponent);
        Duration::from_millis(millis.min(self.max.as_millis() as f64) as u64)
    }
}

/// The output of an erased task body: JSON, or why the attempt failed.
pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Result<RawJson, TaskError>> + Send>>;
type Handler = dyn Fn(Context, RawJson) -> TaskFuture + Send + Sync;

/// A task: an id, the async function a run executes, and its settings.
#[derive(Clone)]
pub struct Task {
    pub(crate) id: String,
    pub(crate) handler: Arc<Handler>,
    pub(crate) retry: RetryPolicy,
    pub(crate) concurrency: Option<usize>,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("id", &self.id).field("retry", &self.retry).finish_non_exhaustive()
    }
}

impl Task {
    /// A task `id` running `handler` with the run's [`Context`] and its payload, decoded as `P`.
    /// The output `O` is stored as JSON. A payload that does not decode fails the run at once.
    pub fn new<P, O, F, Fut>(id: impl Into<String>, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased = move |ctx: Context, payload: RawJson| -> TaskFuture {
            let handler = handler.clone();
            Box::pin(async move {
                let payload: P = payload.decode().map_err(|e| {
                    TaskError::named("InvalidPayload", format!("the payload does not decode: {e}"), false)
                })?;
                let output = handler(ctx, payload).await?;
                RawJson::encode(&output)
                    .map_err(|e| TaskError::named("InvalidOutput", format!("the output does not encode: {e}"), false))
            })
        };
        Self { id: id.into(), handler: Arc::new(erased), retry: RetryPolicy::default(), concurrency: None }
    }

    /// The delays between retries of failed attempts.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// At most `limit` runs of this task execute at once in a worker (waiting runs do not count).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = Some(limit.max(1));
        self
    }

    /// The task's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_the_maximum() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=8).map(|attempt| policy.delay(attempt).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn errors_convert_with_their_causes() {
        let error: TaskError = std::io::Error::other("disk full").into();
        assert_eq!((error.name(), error.message(), error.is_retryable()), ("TaskError", "disk full", true));
        assert!(!TaskError::fatal("no").is_retryable());
        assert!(TaskError::fatal("no").retryable(true).is_retryable());
    }

    #[test]
    fn failures_replay_would_repeat_are_named_and_not_retried() {
        let timeout = WaitpointTimeoutError { message: "Waitpoint timed out at 2025-04-01T10:00:00.000Z".into() };
        let error = TaskError::from(timeout.clone());
        assert_eq!((error.name(), error.is_retryable()), ("WaitpointTimeoutError", false));
        assert_eq!(error.message(), timeout.message);
        assert!(TaskError::from(timeout).retryable(true).is_retryable(), "retries can still be asked for");

        let output = OutputTypeError {
            what: "the output of token waitpoint_c1".into(),
            type_name: "u8",
            message: "invalid type".into(),
        };
        for error in [TaskError::from(output.clone()), TaskError::from(Error::OutputType(output))] {
            assert_eq!((error.name(), error.is_retryable()), ("OutputTypeError", false));
            assert_eq!(error.message(), "the output of token waitpoint_c1 does not decode into u8: invalid type");
        }
        let diverged = TaskError::from(Error::NonDeterminism("position 0".into()));
        assert_eq!((diverged.name(), diverged.is_retryable()), ("NonDeterminism", false));
        let invalid = TaskError::from(Error::Config("timeout \"soon\" is not a duration".into()));
        assert_eq!((invalid.name(), invalid.is_retryable()), ("ConfigError", false));

        // Wrapped, as a step's failure wraps the run's error: the cause decides, and is not repeated.
        let wrapped = TaskError::from(crate::StepError::<std::io::Error>::Run(Error::NonDeterminism("at 3".into())));
        assert_eq!(
            (wrapped.name(), wrapped.message(), wrapped.is_retryable()),
            ("NonDeterminism", "non-determinism: at 3", false)
        );
        let unreachable = TaskError::from(Error::Api { status: 503, message: "restarting".into(), code: None });
        assert_eq!((unreachable.name(), unreachable.is_retryable()), ("TaskError", true));
    }
}
