//! What SDK calls fail with.

use waitpoint_types::RawJson;

/// What can go wrong calling the API, running a worker, or inside a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status; `message` is its `error` field.
    #[error("{status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// What the server said.
        message: String,
        /// The machine-readable kind, when the server gave one.
        code: Option<String>,
    },
    /// The request did not get an answer (connection refused, timeout, …).
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server's answer was not what was expected.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// A token's output, or a result recorded in a run's journal, does not decode into the
    /// type the code asked for.
    #[error(transparent)]
    OutputType(#[from] OutputTypeError),
    /// The client, the worker or a request is misconfigured (bad URL, missing key, invalid
    /// duration, invalid instance name); the message names what to fix.
    #[error("{0}")]
    Config(String),
    /// The worker's polls were refused (401 or 403): the secret key is not one the server
    /// knows. The worker stops.
    #[error(
        "the server at {api_url} refused the secret key ({status}: {message}): check that WAITPOINT_SECRET_KEY \
         (or TRIGGER_SECRET_KEY) holds the secret key of one of its environments (`waitpoint env list` prints them)"
    )]
    KeyRefused {
        /// The server's URL.
        api_url: String,
        /// 401 or 403.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// Another process took over this worker id: it started later with the same instance
    /// name, and the server now refuses this one's polls. The worker stops.
    #[error(
        "another process took over worker id {worker} (it started later with the same instance name); this one \
         stops. Give each process an instance name of its own"
    )]
    WorkerReplaced {
        /// The worker id (`worker_…`).
        worker: String,
    },
    /// Inside a run: the run's code no longer matches its journal (it was changed between
    /// attempts, or depends on something that differs on replay). The run fails.
    #[error("non-determinism: {0}")]
    NonDeterminism(String),
    /// Inside a run: this worker no longer holds the run (it was canceled, or given to another
    /// worker). The attempt stops without reporting anything.
    #[error("the run moved on: {0}")]
    RunMovedOn(String),
    /// Inside a run: two context operations ran at once. Await each before starting the next.
    #[error(
        "parallel operations are not supported in a run: await each wait, step or token call before the next \
         (wait_for_any, wait_for_all and wait_for_at_least wait on several waitpoints at once)"
    )]
    ParallelOperations,
}

/// Result of an SDK call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A value that does not decode into the Rust type the code asked for: a token's output (the
/// token names it) or a result recorded in a run's journal (the operation names it). Replay
/// cannot change a recorded value, so a run failing with it is not retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} does not decode into {type_name}: {message}")]
pub struct OutputTypeError {
    /// Which value: `the output of token waitpoint_…`, `the recorded result of step "…"`.
    pub what: String,
    /// The Rust type asked for (`std::any::type_name`).
    pub type_name: &'static str,
    /// serde's message.
    pub message: String,
}

/// Decodes `value` as `T`; `what` names the value in the error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    what: impl FnOnce() -> String,
) -> Result<T> {
    serde_json::from_value(value).map_err(|error| output_type::<T>(error, what))
}

/// [`decode`] for JSON text.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(json: &RawJson, what: impl FnOnce() -> String) -> Result<T> {
    json.decode().map_err(|error| output_type::<T>(error, what))
}

fn output_type<T>(error: serde_json::Error, what: impl FnOnce() -> String) -> Error {
    Error::OutputType(OutputTypeError {
        what: what(),
        type_name: std::any::type_name::<T>(),
        message: error.to_string(),
    })
}
