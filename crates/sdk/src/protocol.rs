//! The worker protocol's requests: the poll, and the batch of the worker channel (`channel`,
//! which retries what did not get through), and which failures may pass.

use std::time::Duration;

use reqwest::Method;
use waitpoint_types::api::worker::{BatchResponse, PollRequest, PollResponse};

use crate::client::segment;
use crate::{Client, Error, Result};

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

    /// Sends a batch (its JSON body) once; the channel retries what did not get through.
    pub(crate) async fn batch(&self, body: String) -> Result<BatchResponse> {
        let request = self
            .request(Method::POST, "api/v1/workers/batch")?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request).await
    }
}
