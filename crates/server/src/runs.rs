//! The run routes: trigger, retrieve, list and cancel runs (secret key), and the worker
//! protocol a worker uses to take runs and record what they do (secret key too).

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use waitpoint_engine::Engine;
use waitpoint_types::api::worker::{
    CompleteAttemptRequest, FailAttemptRequest, JournalResponse, PollRequest, PollResponse, RecordRequest,
    RunTokenRequest, RunTokenResponse, WaitRequest, WaitResponse,
};
use waitpoint_types::api::{CreateTokenResponse, Page, Pagination, RunDetail, TriggerRequest, TriggerResponse};
use waitpoint_types::{JournalEntry, JournalKind, RunError};

use crate::auth::SecretKey;
use crate::body::{self, Length, OUTPUT_LIMIT, Protocol};
use crate::error::ApiError;
use crate::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, RecordResponse, RunListQuery, ServerError, Unauthorized,
    Unprocessable,
};
use crate::{present, query};

/// Protocol bodies other than outputs are small.
const PROTOCOL_LIMIT: usize = 64 * 1024;

/// `POST /api/v1/tasks/{taskId}/trigger`: start a run.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{taskId}/trigger",
    operation_id = "triggerTask",
    tag = "runs",
    summary = "Trigger a run",
    description = "Starts a run of a task. With an `idempotencyKey` that is still active (per task), answers with the run made for it (`isCached: true`). Unknown fields, `null`s and wrong types are refused (400).",
    params(("taskId" = String, Path, description = "The task: 1 to 128 letters, digits, `-`, `_`, `.`, `:` or `/`.")),
    request_body(content = TriggerRequest, description = "The payload and options (at most 3 MiB)."),
    responses(
        (status = 200, description = "The run.", body = TriggerResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn trigger(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    body: Body,
) -> Result<Json<TriggerResponse>, ApiError> {
    let bytes = body::read(&headers, body, OUTPUT_LIMIT, Length::Optional).await?;
    let (payload, options) = body::parse_trigger(&bytes)?;
    let triggered = engine.trigger_run(&environment, &task_id, payload, &options).await?;
    Ok(Json(TriggerResponse { id: triggered.run.id.public(), is_cached: triggered.is_cached, hint: triggered.hint }))
}

/// `GET /api/v1/runs/{id}`: a run with its payload, output or error, and what it waits on.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    operation_id = "retrieveRun",
    tag = "runs",
    summary = "Retrieve a run",
    description = "One run, with its payload, its output or error, what it waits on, and the worker that holds it.",
    params(("id" = String, Path, description = "The run's id, `run_…`.")),
    responses(
        (status = 200, description = "The run.", body = RunDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn retrieve(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let view = engine.get_run(&environment, &id).await?;
    Ok(Json(present::run(&view, engine.clock().now(), true)))
}

/// `GET /api/v1/runs`: runs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    operation_id = "listRuns",
    tag = "runs",
    summary = "List runs",
    description = "Runs, newest first, without payloads or outputs, one page at a time: pass `pagination.next` back as `page[after]` (and `pagination.previous` as `page[before]`).",
    params(RunListQuery),
    responses(
        (status = 200, description = "A page of runs.", body = Page<RunDetail>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn list(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<RunDetail>>, ApiError> {
    let request = query::parse_run_list(raw.as_deref())?;
    let page = engine.list_runs(&environment, &request).await?;
    let data = page.runs.into_iter().map(|run| summary(&engine, run)).collect();
    Ok(Json(Page { data, pagination: Pagination { next: page.next, previous: page.previous } }))
}

/// `POST /api/v1/runs/{id}/cancel`: cancel a run that has not finished.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    operation_id = "cancelRun",
    tag = "runs",
    summary = "Cancel a run",
    description = "Cancels a run that is queued, delayed, executing or waiting; final, a waitpoint that finishes later does not resume it. Canceling a finished run changes nothing.",
    params(("id" = String, Path, description = "The run's id, `run_…`.")),
    responses(
        (status = 200, description = "The run, as it is now.", body = RunDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn cancel(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = engine.cancel_run(&environment, &id).await?;
    let view = waitpoint_engine::RunView::of(run);
    Ok(Json(present::run(&view, engine.clock().now(), true)))
}

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
    let entries = engine.run_journal(&environment, &id).await?;
    Ok(Json(JournalResponse { entries: entries.iter().map(present::entry).collect() }))
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
) -> Result<Json<serde_json::Value>, ApiError> {
    let kind = JournalKind::parse(&request.entry.kind).ok_or_else(|| {
        let kinds: Vec<&str> = JournalKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::bad_request(format!("unknown entry kind {:?}: use one of {}", request.entry.kind, kinds.join(", ")))
    })?;
    let entry = JournalEntry {
        seq: request.entry.seq,
        kind,
        name: request.entry.name,
        result: request.entry.result.map(|result| result.to_string()),
    };
    if entry.name.contains('\0') {
        return Err(ApiError::bad_request("entry names cannot hold NUL characters"));
    }
    let recorded = engine.record(&environment, &id, request.epoch, entry).await?;
    Ok(Json(serde_json::json!({ "entry": present::entry(&recorded) })))
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
    let (entry, created) =
        engine.create_run_token(&environment, &id, request.epoch, request.seq, &request.options).await?;
    let token = CreateTokenResponse {
        id: created.waitpoint.id.public(),
        is_cached: created.is_cached,
        url: created.url,
        public_access_token: created.public_access_token,
        approval_url: Some(created.approval_url),
        reject_url: Some(created.reject_url),
        heartbeat_url: created.heartbeat_url,
    };
    Ok(Json(RunTokenResponse { entry: present::entry(&entry), token }))
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
    let answer = engine.wait(&environment, &id, request.epoch, request.seq, &request.wait_for).await?;
    Ok(Json(WaitResponse { entry: present::entry(&answer.entry), suspended: answer.suspended }))
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
    let run = engine.complete_attempt(&environment, &id, request.epoch, request.output.to_string()).await?;
    Ok(Json(summary(&engine, run)))
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
    let error = RunError::new(request.error.name, request.error.message);
    let retry_after = request.retry_after_ms.map(Duration::from_millis);
    let run = engine.fail_attempt(&environment, &id, request.epoch, error, retry_after).await?;
    Ok(Json(summary(&engine, run)))
}

/// A run as a list shows it (no payload, output or error body; see [`present::run`]).
fn summary(engine: &Engine, run: waitpoint_types::Run) -> RunDetail {
    present::run(&waitpoint_engine::RunView::of(run), engine.clock().now(), false)
}
