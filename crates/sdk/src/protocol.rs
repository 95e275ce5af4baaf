//! The worker protocol calls. Calls that reach no server (network errors, 5xx, 503 while a
//! server restarts) are retried with backoff until they get an answer: every call is safe to
//! repeat (journal positions and epochs make them idempotent).

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use waitpoint_types::api::worker::{
    CompleteAttemptRequest, FailAttemptRequest, JournalEntryBody, JournalResponse, PollRequest, PollResponse,
    RecordRequest, RunTokenRequest, RunTokenResponse, WaitFor, WaitRequest, WaitResponse,
};
use waitpoint_types::api::{CreateTokenRequest, RunErrorBody};

use crate::client::segment;
use crate::{Client, Error, Result};

/// The first delay between tries of a call that reached no server.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest delay between tries.
const MAX_RETRY: Duration = Duration::from_secs(2);

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
    /// Sends until the server answers (anything but a transient failure).
    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let mut delay = FIRST_RETRY;
        loop {
            let mut request = self.request(method.clone(), path)?;
            if let Some(body) = body {
                request = request.json(body);
            }
            match self.send(request).await {
                Err(error) if is_transient(&error) => {
                    tracing::debug!(%error, path, "worker call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY);
                }
                result => return result,
            }
        }
    }

    /// Takes runs (and says the worker is alive). Not retried: the caller polls again.
    pub(crate) async fn poll(&self, worker: &str, request: &PollRequest) -> Result<PollResponse> {
        let path = format!("api/v1/workers/{}/poll", segment(worker)?);
        // A held poll lasts up to `wait_ms`; give the answer time to come back.
        let timeout = Duration::from_millis(request.wait_ms) + Duration::from_secs(30);
        self.send(self.request(Method::POST, &path)?.json(request).timeout(timeout)).await
    }

    pub(crate) async fn journal(&self, run: &str) -> Result<Vec<JournalEntryBody>> {
        let path = format!("api/v1/runs/{}/journal", segment(run)?);
        let response: JournalResponse = self.call::<(), _>(Method::GET, &path, None).await?;
        Ok(response.entries)
    }

    pub(crate) async fn record(&self, run: &str, epoch: u64, entry: JournalEntryBody) -> Result<JournalEntryBody> {
        #[derive(serde::Deserialize)]
        struct Recorded {
            entry: JournalEntryBody,
        }
        let path = format!("api/v1/runs/{}/journal", segment(run)?);
        let recorded: Recorded = self.call(Method::POST, &path, Some(&RecordRequest { epoch, entry })).await?;
        Ok(recorded.entry)
    }

    pub(crate) async fn run_token(
        &self,
        run: &str,
        epoch: u64,
        seq: u32,
        options: CreateTokenRequest,
    ) -> Result<RunTokenResponse> {
        let path = format!("api/v1/runs/{}/tokens", segment(run)?);
        self.call(Method::POST, &path, Some(&RunTokenRequest { epoch, seq, options })).await
    }

    pub(crate) async fn wait(&self, run: &str, epoch: u64, seq: u32, wait_for: WaitFor) -> Result<WaitResponse> {
        let path = format!("api/v1/runs/{}/wait", segment(run)?);
        self.call(Method::POST, &path, Some(&WaitRequest { epoch, seq, wait_for })).await
    }

    pub(crate) async fn complete_attempt(&self, run: &str, epoch: u64, output: serde_json::Value) -> Result<()> {
        let path = format!("api/v1/runs/{}/attempt/complete", segment(run)?);
        let _: serde_json::Value =
            self.call(Method::POST, &path, Some(&CompleteAttemptRequest { epoch, output })).await?;
        Ok(())
    }

    pub(crate) async fn fail_attempt(
        &self,
        run: &str,
        epoch: u64,
        error: RunErrorBody,
        retry_after: Option<Duration>,
    ) -> Result<()> {
        let path = format!("api/v1/runs/{}/attempt/fail", segment(run)?);
        let request = FailAttemptRequest {
            epoch,
            error,
            retry_after_ms: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        };
        let _: serde_json::Value = self.call(Method::POST, &path, Some(&request)).await?;
        Ok(())
    }
}
