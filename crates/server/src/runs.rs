//! The run routes: trigger, retrieve, list and cancel runs (secret key).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use waitpoint_engine::Engine;
use waitpoint_types::api::{Page, Pagination, RunDetail, TriggerRequest, TriggerResponse};

use crate::auth::SecretKey;
use crate::body::{self, Length, OUTPUT_LIMIT};
use crate::error::ApiError;
use crate::openapi::{BadRequest, NotFound, PayloadTooLarge, RunListQuery, ServerError, Unauthorized, Unprocessable};
use crate::{present, query};

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

/// A run as a list shows it (no payload, output or error body; see [`present::run`]).
pub(crate) fn summary(engine: &Engine, run: waitpoint_types::Run) -> RunDetail {
    present::run(&waitpoint_engine::RunView::of(run), engine.clock().now(), false)
}
