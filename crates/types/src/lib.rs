//! The shared vocabulary of waitpoint.
//!
//! Every other crate speaks in these types: typed identifiers, millisecond timestamps and
//! duration strings, the [`Waitpoint`] and [`Environment`] records, and the JSON shapes of
//! the HTTP API (wire-compatible with Trigger.dev's waitpoint token API).
//!
//! # Layout
//! - [`id`]: `waitpoint_…` and `env_…` identifiers and their time-ordered generator.
//! - [`time`]: [`Timestamp`] and the parsers for `"1h30m"` durations and ISO 8601 dates.
//! - [`waitpoint`]: a waitpoint (a token, or a point in time) and its state machine
//!   (waiting → completed | timed out).
//! - [`json`]: [`RawJson`], JSON text carried as written between the database and the wire.
//! - [`approval`]: what a token's hosted approval page asks, and the output an answer becomes.
//! - [`run`]: a task run, its state machine and its journal.
//! - [`wait`]: what a decided wait records in the journal (one waitpoint's result, or a set's).
//! - [`environment`]: an isolated environment with its secret key and signing secret.
//! - [`api`]: request and response bodies exactly as they travel over HTTP.
//! - `openapi` (feature `openapi`): the OpenAPI schemas the derives on the wire types cannot
//!   infer (timestamps, tag lists).
//!
//! This crate depends on no other waitpoint crate and does no I/O.

pub mod api;
pub mod approval;
pub mod environment;
pub mod event;
pub mod id;
pub mod json;
pub mod run;
pub mod time;
pub mod verifier;
pub mod wait;
pub mod waitpoint;
pub mod webhook;

#[cfg(feature = "openapi")]
mod openapi;

pub use approval::{Approval, ApprovalAnswer, ApprovalField, FieldKind};
pub use environment::{Environment, Secret};
pub use id::{EnvironmentId, IdGenerator, InvalidId, RunId, WaitpointId, WebhookId, WorkerId};
pub use json::RawJson;
pub use run::{JournalEntry, JournalKind, Run, RunError, RunState, RunStatus};
pub use time::{DurationError, Timestamp};
pub use verifier::{CallbackVerifier, VerifierScheme};
pub use waitpoint::{
    CompletedVia, Heartbeat, Output, Rejection, Waitpoint, WaitpointKind, WaitpointState, WaitpointStatus,
};
