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
mod token;

pub use crate::client::{Client, ListFilter};
pub use crate::token::Token;
pub use waitpoint_types::api::{CreateTokenRequest, CreateTokenResponse, Page, Pagination, TokenDetail, TokenItem};
pub use waitpoint_types::{Timestamp, WaitpointStatus};

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
}

/// Result of an SDK call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
