//! Tasks: async functions with a typed payload and output, registered under an id.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Context;

/// Why a task's attempt failed. Any error converts into one with `?`; [`TaskError::fatal`]
/// marks one that retrying cannot fix (the run fails at once).
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

    /// The kind of failure (`TaskError`, `Panic`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What happened.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        Self::msg(message)
    }
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
pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, TaskError>> + Send>>;
type Handler = dyn Fn(Context, serde_json::Value) -> TaskFuture + Send + Sync;

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
        let erased = move |ctx: Context, payload: serde_json::Value| -> TaskFuture {
            let handler = handler.clone();
            Box::pin(async move {
                let payload: P = serde_json::from_value(payload).map_err(|e| {
                    TaskError::named("InvalidPayload", format!("the payload does not decode: {e}"), false)
                })?;
                let output = handler(ctx, payload).await?;
                serde_json::to_value(output)
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
    }
}
