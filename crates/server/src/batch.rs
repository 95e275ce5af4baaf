//! The worker channel: `POST /api/v1/workers/batch` carries the protocol operations of many
//! runs in one request, authenticated once. The operations enter the write queue together, so
//! they commit in the same group; each is answered with what its own route would have answered.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use waitpoint_engine::Engine;
use waitpoint_types::api::worker::{Answer, BatchRequest, BatchResponse, MAX_BATCH_OPERATIONS, Operation};
use waitpoint_types::{Environment, RawJson};

use crate::auth::SecretKey;
use crate::body::{self, Length};
use crate::error::ApiError;
use crate::openapi::{BadRequest, PayloadTooLarge, ServerError, Unauthorized};
use crate::worker;

/// A batch holds many outputs; each is bounded on its own as a route's body is.
const BATCH_LIMIT: usize = 16 * 1024 * 1024;

/// `POST /api/v1/workers/batch`: many runs' operations in one request.
#[utoipa::path(
    post,
    path = "/api/v1/workers/batch",
    operation_id = "batchOperations",
    tag = "worker protocol",
    summary = "Apply a batch of operations",
    description = "The worker channel: the operations of many runs (read a journal, record, create a token, wait, complete or fail an attempt) in one request. Operations on one run are applied in the order given; operations on different runs concurrently, committed together. Each answer is the status and body the operation's own route would have answered with (an operation that is not valid: 400 in its answer, the others unaffected); the batch itself answers 200 unless it cannot be read at all.",
    request_body(content = BatchRequest, description = "At most 1,000 operations and 16 MiB; an output or recorded result at most 3 MiB."),
    responses(
        (status = 200, description = "One answer per operation, in the operations' order.", body = BatchResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn batch(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResponse>, ApiError> {
    let bytes = body::read(&headers, body, BATCH_LIMIT, Length::Optional).await?;
    let envelope: Envelope =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("Invalid batch: {e}")))?;
    let count = envelope.operations.len();
    if count > MAX_BATCH_OPERATIONS {
        return Err(ApiError::bad_request(format!(
            "a batch holds at most {MAX_BATCH_OPERATIONS} operations, got {count}: send the rest in another"
        )));
    }
    let mut answered = Vec::with_capacity(count);
    let mut valid = Vec::with_capacity(count);
    for (index, text) in envelope.operations.iter().enumerate() {
        // Each held to its route's rules (the JSON a stored value must be, no unknown or missing
        // field), counted from the operation as from a route's body.
        match body::parse_json::<Operation>(text.get().as_bytes()) {
            Ok(operation) => valid.push((index, operation)),
            Err(error) => answered.push((index, answer(Err(error))?)),
        }
    }
    let lanes = by_run(valid);
    let journals = read_opening_journals(&engine, &environment, &lanes).await?;
    let lanes = join_all(lanes.into_iter().zip(journals).map(|(lane, opening_journal)| {
        let (engine, environment) = (&engine, &environment);
        async move {
            let mut answers = Vec::with_capacity(lane.len());
            let mut operations = lane.into_iter();
            if let Some(journal) = opening_journal
                && let Some((index, _)) = operations.next()
            {
                answers.push(Ok((index, journal)));
            }
            for (index, operation) in operations {
                answers.push(answer(apply(engine, environment, operation).await).map(|answer| (index, answer)));
            }
            answers
        }
    }))
    .await;
    for answer in lanes.into_iter().flatten() {
        answered.push(answer?);
    }
    answered.sort_unstable_by_key(|(index, _)| *index);
    let answers = answered.into_iter().map(|(_, answer)| answer).collect();
    Ok(Json(BatchResponse { answers }))
}

/// A batch as read before its operations, each kept as its text: one that is not valid is
/// refused alone (400 in its answer), not with the others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    operations: Vec<RawJson>,
}

/// The operations grouped by run, each group in the order given, with each one's index.
fn by_run(operations: Vec<(usize, Operation)>) -> Vec<Vec<(usize, Operation)>> {
    let mut lanes: Vec<Vec<(usize, Operation)>> = Vec::new();
    let mut lane_of: HashMap<String, usize> = HashMap::new();
    for (index, operation) in operations {
        let lane = *lane_of.entry(operation.run().to_owned()).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[lane].push((index, operation));
    }
    lanes
}

/// For each lane, the answer of the journal read that opens it (the replay of a run a worker
/// took again), if one does: those reads are read together, in one read of the store. A read
/// that comes after another operation on its run waits for that one, in its lane.
async fn read_opening_journals(
    engine: &Engine,
    environment: &Environment,
    lanes: &[Vec<(usize, Operation)>],
) -> Result<Vec<Option<Answer>>, ApiError> {
    let opening: Vec<Option<&str>> = lanes
        .iter()
        .map(|lane| match lane.first() {
            Some((_, Operation::Journal { run })) => Some(run.as_str()),
            _ => None,
        })
        .collect();
    let runs: Vec<&str> = opening.iter().flatten().copied().collect();
    if runs.is_empty() {
        return Ok(vec![None; lanes.len()]);
    }
    let mut answers = match worker::read_journals(engine, environment, &runs).await {
        Ok(journals) => {
            journals.into_iter().map(|journal| answer(journal.and_then(|body| raw(&body)))).collect::<Result<_, _>>()?
        }
        Err(error) => vec![answer(Err(error))?; runs.len()],
    }
    .into_iter();
    Ok(opening.into_iter().map(|run| run.and_then(|_| answers.next())).collect())
}

/// Applies one operation as its route does; its answer is the route's body.
async fn apply(engine: &Engine, environment: &Environment, operation: Operation) -> Result<RawJson, ApiError> {
    match operation {
        Operation::Journal { run } => raw(&worker::read_journal(engine, environment, &run).await?),
        Operation::Record { run, epoch, entry } => {
            raw(&worker::record_entry(engine, environment, &run, epoch, entry).await?)
        }
        Operation::CreateToken { run, epoch, seq, options } => {
            raw(&worker::create_token_for(engine, environment, &run, epoch, seq, &options).await?)
        }
        Operation::Wait { run, epoch, seq, wait_for } => {
            raw(&worker::wait_on(engine, environment, &run, epoch, seq, &wait_for).await?)
        }
        Operation::Complete { run, epoch, output } => {
            raw(&worker::complete(engine, environment, &run, epoch, output).await?)
        }
        Operation::Fail { run, epoch, error, retry_after_ms } => {
            raw(&worker::fail(engine, environment, &run, epoch, error, retry_after_ms).await?)
        }
    }
}

fn raw(body: &impl Serialize) -> Result<RawJson, ApiError> {
    RawJson::encode(body).map_err(|error| {
        tracing::error!(%error, "an answer did not serialize");
        ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    })
}

/// An operation's outcome as its route's status and body.
fn answer(outcome: Result<RawJson, ApiError>) -> Result<Answer, ApiError> {
    Ok(match outcome {
        Ok(body) => Answer { status: 200, body },
        Err(error) => Answer { status: error.status().as_u16(), body: raw(&error.body())? },
    })
}
