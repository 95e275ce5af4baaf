//! Rust SDK for waitpoint: tasks that wait on waitpoint tokens, the worker that runs them, and
//! a typed client of the token and run API.
//!
//! - A [`Task`] is an async function of a [`Context`] and a typed payload. Inside it, the
//!   context offers the spec's API (create a token, wait for it, complete, retrieve and list
//!   tokens, wait for a duration or until a time, wait on any, all or some of several) plus
//!   steps, the time and random values, all journaled: a run survives crashes and restarts by
//!   replaying its journal. The rules that makes for task code are on [`Context`].
//! - A [`Worker`] takes runs of its tasks from the server and executes them; a waiting run is
//!   suspended and holds nothing.
//! - A [`Client`] triggers and inspects runs, and creates, completes, retrieves and lists
//!   tokens from anywhere. The token API is wire-compatible with Trigger.dev's, so the client
//!   works against either.
//!
//! ```no_run
//! use serde::Deserialize;
//! use waitpoint_sdk::{Context, CreateTokenRequest, Task, TaskError, Worker};
//!
//! #[derive(Deserialize)]
//! struct Approval {
//!     approved: bool,
//! }
//!
//! async fn publish(ctx: Context, title: String) -> Result<String, TaskError> {
//!     let token = ctx.create_token(CreateTokenRequest::new().timeout("1h")).await?;
//!     ctx.info(format!("approve {title} at {}", token.url)); // quiet on replay
//!     let approval: Approval = ctx.wait_for_token(&token).await?.into_result()?;
//!     Ok(if approval.approved { "published" } else { "rejected" }.to_owned())
//! }
//!
//! #[tokio::main]
//! async fn main() -> waitpoint_sdk::Result<()> {
//!     waitpoint_sdk::init_logging();
//!     // WAITPOINT_API_URL, WAITPOINT_SECRET_KEY and WAITPOINT_WORKER_INSTANCE configure it.
//!     Worker::from_env([Task::new("publish", publish)])?.run_until_signal().await
//! }
//! ```
//!
//! The client alone:
//!
//! ```no_run
//! # async fn example() -> Result<(), waitpoint_sdk::Error> {
//! use waitpoint_sdk::{Client, CreateTokenRequest};
//!
//! let client = Client::from_env()?;
//! let token = client.create_token(CreateTokenRequest::new().timeout("10m")).await?;
//! // Hand `token.url` to anyone: a POST of JSON to it completes the token.
//! client.complete_token(&token, &serde_json::json!({ "status": "approved" })).await?;
//! let done = client.retrieve_token(&token).await?;
//! assert_eq!(done.output::<serde_json::Value>()?.unwrap()["status"], "approved");
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Client`] (`client`, `runs`): the HTTP calls of the token and run API; `protocol`: the
//!   worker protocol's requests; `channel`: the worker channel, which batches the operations
//!   of all a worker's runs.
//! - [`Token`], [`AsTokenId`] (`token`): a retrieved token, and the ways to name one.
//! - [`Task`], [`TaskError`], [`RetryPolicy`] (`task`): tasks, and which failures are retried.
//! - [`Context`] (`context`): the API inside a run, journaled; [`Wait`], [`WaitSetResult`]:
//!   waiting on several waitpoints at once.
//! - [`Worker`], [`WorkerConfig`] (`worker`): polling, executing, identity; `parking`: the runs
//!   a worker holds in memory.
//! - [`env`](mod@env): the environment variables the SDK and the CLI read; [`init_logging`]
//!   (`logging`): logs to stderr in one line.
//! - [`Error`], [`OutputTypeError`] (`error`): everything a call can fail with.
#![warn(missing_docs)]

mod channel;
mod client;
mod context;
pub mod env;
mod error;
mod logging;
mod parking;
mod protocol;
mod runs;
mod task;
mod token;
mod worker;

pub use crate::client::{Client, ListFilter};
pub use crate::context::{
    Context, MemberState, StepError, Wait, WaitError, WaitResult, WaitSetMember, WaitSetResult, WaitpointRejectedError,
    WaitpointTimeoutError,
};
pub use crate::error::{Error, OutputTypeError, Result};
pub use crate::logging::init_logging;
pub use crate::runs::RunFilter;
pub use crate::task::{RetryPolicy, Task, TaskError};
pub use crate::token::{AsTokenId, Token};
pub use crate::worker::{Worker, WorkerConfig};
pub use waitpoint_clock::{Clock, SystemClock};
pub use waitpoint_types::api::{
    CallbackVerifierRequest, CreateTokenRequest, CreateTokenResponse, ExtendTokenRequest, Page, Pagination,
    ProlongResponse, RejectTokenError, RejectTokenRequest, RunDetail, RunWorker, TimeText, TokenDetail, TokenItem,
    TriggerOptions, TriggerResponse,
};
pub use waitpoint_types::approval::{Approval, ApprovalField, FieldKind};
pub use waitpoint_types::{RunStatus, Timestamp, VerifierScheme, WaitpointStatus};

/// The README's Rust examples, compiled as doc tests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
