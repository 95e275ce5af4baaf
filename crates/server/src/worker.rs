//! The worker protocol a worker uses to take runs and record what they do (secret key): one
//! route per operation, and the functions behind them that the batch route (`batch`) shares.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use waitpoint_engine::Engine;
use waitpoint_types::api::worker::{
    CompleteAttemptRequest, FailAttemptRequest, JournalEntryBody, JournalResponse, PollRequest, PollResponse,
    RecordRequest, RecordResponse, RunTokenRequest, RunTokenResponse, WaitFor, WaitRequest, WaitResponse,
};
use waitpoint_types::api::{CreateTokenRequest, RunDetail, RunErrorBody};
use waitpoint_types::{Environment, JournalEntry, JournalKind, RawJson, RunError};

use crate::auth::SecretKey;
use crate::body::{OUTPUT_LIMIT, Protocol};
use crate::error::ApiError;
use crate::openapi::{BadRequest, Conflict, NotFound, PayloadTooLarge, ServerError, Unauthorized, Unprocessable};
use crate::present;
use crate::runs::summary;

/// Protocol bodies other than outputs are small.
const PROTOCOL_LIMIT: usize = 64 * 1024;

/// `POST /api/v1/workers/{workerId}/poll`: take queued runs (and say the worker is alive).
#[utoipa::path(
    post,
    path = "/api/v1/workers/{workerId}/poll",
    operation_id = "pollRuns",
    tag = "worker protocol",
    summary = "Poll for runs",
    description = "Says the worker is alive and which tasks it runs and which runs it executes, and takes runs: queued ones, and runs resumed for it. Held up to `waitMs` when there is nothing to take.",
    params(("workerId" = String, Path, description = "The worker: `worker_` and lowercase letters, digits and `-`.")),
    request_body(content = PollRequest, description = "At most 64 KiB."),
    responses(
        (status = 200, description = "The runs now held by the worker (maybe none).", body = PollResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn poll(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(worker): Path<String>,
    Protocol(request): Protocol<PollRequest, PROTOCOL_LIMIT>,
) -> Result<Json<PollResponse>, ApiError> {
    let claims = engine.poll_runs(&environment, &worker, &request).await?;
    Ok(Json(PollResponse { runs: claims.iter().map(present::claim).collect() }))
}

/// `GET /api/v1/runs/{id}/journal`: every recorded operation, for replay.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/journal",
    operation_id = "getJournal",
    tag = "worker protocol",
    summary = "Read a journal",
    description = "Every operation the run recorded, in order, for replay.",
    params(("id" = String, Path, description = "The run's id, `run_…`.")),
    responses(
        (status = 200, description = "The journal.", body = JournalResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn journal(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<JournalResponse>, ApiError> {
    Ok(Json(read_journal(&engine, &environment, &id).await?))
}

/// `POST /api/v1/runs/{id}/journal`: record an operation's result.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/journal",
    operation_id = "recordJournalEntry",
    tag = "worker protocol",
    summary = "Record an operation",
    description = "Records a live operation's result at the next position of the journal. Recording the same entry again answers with it.",
    params(("id" = String, Path, description = "The run's id, `run_…`.")),
    request_body(content = RecordRequest, description = "At most 3 MiB."),
    responses(
        (status = 200, description = "The recorded entry.", body = RecordResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn record(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
    Protocol(request): Protocol<RecordRequest, OUTPUT_LIMIT>,
) -> Result<Json<RecordResponse>, ApiError> {
    Ok(Json(record_entry(&engine, &environment, &id, request.epoch, request.entry).await?))
}

/// `POST /api/v1/runs/{id}/tokens`: create a token for the run, once per journal position.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/tokens",
    operation_id = "createRunToken",
    tag = "worker protocol",
    summary = "Create a token for a run",
    description = "Creates a token and records it at a journal position, in one transaction; asked again for the same position, answers with the same token.",
    params(("id" = String, Path, description = "The run's id, `run_…`.")),
    request_body(content = RunTokenRequest, description = "At most 64 KiB."),
    responses(
        (status = 200, description = "The entry and the token.", body = RunTokenResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn create_token(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
    Protocol(request): Protocol<RunTokenRequest, PROTOCOL_LIMIT>,
) -> Result<Json<RunTokenResponse>, ApiError> {
    Ok(Json(create_token_for(&engine, &environment, &id, request.epoch, request.seq, &request.options).await?))
}

/// `POST /api/v1/runs/{id}/wait`: wait on a token, until a time, or for any, all or some of
/// several; the run may suspend.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/wait",
    operation_id = "waitRun",
    tag = "worker protocol",
    summary = "Wait",
    description = "Records a wait at a journal position: on a token, until a time, for a duration (by the server's clock), or for `needed` of a set of those (`SET`: 1 is any, their number is all). A wait that is decided already answers with its result; otherwise the run suspends (`suspended: true`) and resumes through a later poll, once, when the wait is decided.",
    params(("id" = String, Path, description = "The run's id, `run_…`.")),
    request_body(content = WaitRequest, description = "At most 64 KiB."),
    responses(
        (status = 200, description = "The wait's entry, with its result unless the run suspended.", body = WaitResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn wait(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
    Protocol(request): Protocol<WaitRequest, PROTOCOL_LIMIT>,
) -> Result<Json<WaitResponse>, ApiError> {
    Ok(Json(wait_on(&engine, &environment, &id, request.epoch, request.seq, &request.wait_for).await?))
}

/// `POST /api/v1/runs/{id}/attempt/complete`: the task returned its output.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/attempt/complete",
    operation_id = "completeAttempt",
    tag = "worker protocol",
    summary = "Complete an attempt",
    description = "The task returned its output: the run completes.",
    params(("id" = String, Path, description = "The run's id, `run_…`.")),
    request_body(content = CompleteAttemptRequest, description = "At most 3 MiB."),
    responses(
        (status = 200, description = "The run, as a list shows it.", body = RunDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn complete_attempt(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
    Protocol(request): Protocol<CompleteAttemptRequest, OUTPUT_LIMIT>,
) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(complete(&engine, &environment, &id, request.epoch, request.output).await?))
}

/// `POST /api/v1/runs/{id}/attempt/fail`: the attempt failed; retry or fail the run.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/attempt/fail",
    operation_id = "failAttempt",
    tag = "worker protocol",
    summary = "Fail an attempt",
    description = "The attempt failed: the run is retried after `retryAfterMs` if attempts remain, and fails otherwise (or at once without `retryAfterMs`).",
    params(("id" = String, Path, description = "The run's id, `run_…`.")),
    request_body(content = FailAttemptRequest, description = "At most 64 KiB."),
    responses(
        (status = 200, description = "The run, as a list shows it.", body = RunDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn fail_attempt(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
    Protocol(request): Protocol<FailAttemptRequest, PROTOCOL_LIMIT>,
) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(fail(&engine, &environment, &id, request.epoch, request.error, request.retry_after_ms).await?))
}

/// Every entry of a run's journal.
pub(crate) async fn read_journal(
    engine: &Engine,
    environment: &Environment,
    run: &str,
) -> Result<JournalResponse, ApiError> {
    let entries = engine.run_journal(environment, run).await?;
    Ok(journal_response(&entries))
}

/// Every entry of the journals of `runs`, read together: each as [`read_journal`] answers it.
pub(crate) async fn read_journals(
    engine: &Engine,
    environment: &Environment,
    runs: &[&str],
) -> Result<Vec<Result<JournalResponse, ApiError>>, ApiError> {
    let journals = engine.run_journals(environment, runs).await?;
    Ok(journals.into_iter().map(|entries| Ok(journal_response(&entries?))).collect())
}

fn journal_response(entries: &[JournalEntry]) -> JournalResponse {
    JournalResponse { entries: entries.iter().map(present::entry).collect() }
}

/// Records a live operation's result.
pub(crate) async fn record_entry(
    engine: &Engine,
    environment: &Environment,
    run: &str,
    epoch: u64,
    entry: JournalEntryBody,
) -> Result<RecordResponse, ApiError> {
    let kind = JournalKind::parse(&entry.kind).ok_or_else(|| {
        let kinds: Vec<&str> = JournalKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::bad_request(format!("unknown entry kind {:?}: use one of {}", entry.kind, kinds.join(", ")))
    })?;
    if entry.name.contains('\0') {
        return Err(ApiError::bad_request("entry names cannot hold NUL characters"));
    }
    let result = entry.result.map(|result| within_output_limit(result, "the entry's result")).transpose()?;
    let entry = JournalEntry { seq: entry.seq, kind, name: entry.name, result };
    let recorded = engine.record(environment, run, epoch, entry).await?;
    Ok(RecordResponse { entry: present::entry(&recorded) })
}

/// Creates a token for a run at a journal position.
pub(crate) async fn create_token_for(
    engine: &Engine,
    environment: &Environment,
    run: &str,
    epoch: u64,
    seq: u32,
    options: &CreateTokenRequest,
) -> Result<RunTokenResponse, ApiError> {
    let (entry, created) = engine.create_run_token(environment, run, epoch, seq, options).await?;
    Ok(RunTokenResponse { entry: present::entry(&entry), token: present::created_token(created) })
}

/// Records a wait at a journal position; the run may suspend.
pub(crate) async fn wait_on(
    engine: &Engine,
    environment: &Environment,
    run: &str,
    epoch: u64,
    seq: u32,
    wait_for: &WaitFor,
) -> Result<WaitResponse, ApiError> {
    let answer = engine.wait(environment, run, epoch, seq, wait_for).await?;
    Ok(WaitResponse { entry: present::entry(&answer.entry), suspended: answer.suspended })
}

/// Ends the attempt with the task's output: the run completes.
pub(crate) async fn complete(
    engine: &Engine,
    environment: &Environment,
    run: &str,
    epoch: u64,
    output: RawJson,
) -> Result<RunDetail, ApiError> {
    let output = within_output_limit(output, "the output")?;
    let run = engine.complete_attempt(environment, run, epoch, output).await?;
    Ok(summary(engine, run))
}

/// Ends the attempt with an error: retried after `retry_after_ms` if attempts remain.
pub(crate) async fn fail(
    engine: &Engine,
    environment: &Environment,
    run: &str,
    epoch: u64,
    error: RunErrorBody,
    retry_after_ms: Option<u64>,
) -> Result<RunDetail, ApiError> {
    let error = RunError::new(error.name, error.message);
    let retry_after = retry_after_ms.map(Duration::from_millis);
    let run = engine.fail_attempt(environment, run, epoch, error, retry_after).await?;
    Ok(summary(engine, run))
}

/// `value`'s text, refused (413) when longer than an output may be: a route's body limit
/// bounds it already, a batch's (which holds many) does not.
fn within_output_limit(value: RawJson, what: &str) -> Result<String, ApiError> {
    let text = value.into_string();
    if text.len() > OUTPUT_LIMIT {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} is {} bytes of JSON; at most {OUTPUT_LIMIT} are allowed", text.len()),
        ));
    }
    Ok(text)
}
