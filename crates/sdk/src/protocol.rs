//! The worker protocol's requests: the poll, and the batch of the worker channel (`channel`).
//! A batch that reaches no server (network errors, 5xx, 503 while a server restarts) is sent
//! again with backoff until it gets an answer: every operation is safe to repeat (journal
//! positions and epochs make them idempotent).

use std::time::Duration;

use reqwest::Method;
use waitpoint_types::api::worker::{BatchResponse, PollRequest, PollResponse};

use crate::client::segment;
use crate::{Client, Error, Result};

/// The first delay between tries of a call that reached no server.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest delay between tries.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(2);

/// Whether the error means the call may not have reached a working server (no answer, a 5xx,
/// 408 or 429), so the same call may succeed later.
pub(crate) fn is_transient(error: &Error) -> bool {
    match error {
        Error::Http(_) => true,
        Error::Api { status, .. } => *status >= 500 || *status == 408 || *status == 429,
        _ => false,
    }
}

impl Client {
    /// Takes runs (and says the worker is alive). Not retried: the caller polls again.
    pub(crate) async fn poll(&self, worker: &str, request: &PollRequest) -> Result<PollResponse> {
        let path = format!("api/v1/workers/{}/poll", segment(worker)?);
        // A held poll lasts up to `wait_ms`; give the answer time to come back.
        let timeout = Duration::from_millis(request.wait_ms) + Duration::from_secs(30);
        self.send(self.request(Method::POST, &path)?.json(request).timeout(timeout)).await
    }

    /// Sends a batch (its JSON body) until the server answers (anything but a transient
    /// failure).
    pub(crate) async fn batch(&self, body: String) -> Result<BatchResponse> {
        let mut delay = FIRST_RETRY;
        loop {
            let request = self
                .request(Method::POST, "api/v1/workers/batch")?
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            match self.send(request).await {
                Err(error) if is_transient(&error) => {
                    tracing::debug!(%error, "a batch failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY);
                }
                result => return result,
            }
        }
    }
}
