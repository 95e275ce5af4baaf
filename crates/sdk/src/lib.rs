//! Rust SDK for waitpoint.
//!
//! [`Client`] is a typed client of the waitpoint token API: create tokens, complete them,
//! retrieve them with their output, and list them as a stream that follows cursors. The API
//! is wire-compatible with Trigger.dev's, so the client works against either.
//!
//! ```no_run
//! # async fn example() -> Result<(), waitpoint_sdk::Error> {
//! use waitpoint_sdk::{Client, CreateTokenRequest};
//!
//! let client = Client::new("http://127.0.0.1:3030", "tr_dev_…")?;
//! let token = client
//!     .create_token(&CreateTokenRequest { timeout: Some("10m".into()), ..Default::default() })
//!     .await?;
//! // Hand `token.url` to anyone: a POST of JSON to it completes the token.
//! client.complete_token(&token.id, &serde_json::json!({ "status": "approved" })).await?;
//! let done = client.retrieve_token(&token.id).await?;
//! assert_eq!(done.output::<serde_json::Value>()?.unwrap()["status"], "approved");
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Client`]: the HTTP calls.
//! - [`Token`]: a retrieved token with its output decoded.
//! - [`ListFilter`]: the list filters.
//! - [`Error`]: everything a call can fail with.

mod client;
mod context;
mod protocol;
mod runs;
mod task;
mod token;
mod worker;

pub use crate::client::{Client, ListFilter};
pub use crate::context::{Context, StepError, WaitResult, WaitpointTimeoutError};
pub use crate::runs::RunFilter;
pub use crate::task::{RetryPolicy, Task, TaskError};
pub use crate::token::Token;
pub use crate::worker::{Worker, WorkerConfig};
pub use waitpoint_types::api::{
    CreateTokenRequest, CreateTokenResponse, Page, Pagination, RunDetail, TokenDetail, TokenItem, TriggerOptions,
    TriggerResponse,
};
pub use waitpoint_types::{RunStatus, Timestamp, WaitpointStatus};

/// What can go wrong calling the API.
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
    /// The answer or an output was not what was expected.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// The client is misconfigured (bad URL, missing key).
    #[error("{0}")]
    Config(String),
    /// Inside a run: the run's code no longer matches its journal (it was changed between
    /// attempts, or depends on something that differs on replay). The run fails.
    #[error("non-determinism: {0}")]
    NonDeterminism(String),
    /// Inside a run: this worker no longer holds the run (it was canceled, or given to another
    /// worker). The attempt stops without reporting anything.
    #[error("the run moved on: {0}")]
    RunMovedOn(String),
    /// Inside a run: two context operations ran at once. Await each before starting the next.
    #[error("parallel operations are not supported in a run: await each wait, step or token call before the next")]
    ParallelOperations,
}

/// Result of an SDK call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
