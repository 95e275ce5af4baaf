//! The token routes. Each authenticates, reads its input, calls the engine and shapes the
//! answer; the order of checks follows Trigger.dev's (credentials, then size, then body).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use waitpoint_engine::Engine;
use waitpoint_types::Waitpoint;
use waitpoint_types::api::{
    CompleteResponse, CreateTokenRequest, CreateTokenResponse, ExtendTokenRequest, Page, Pagination, ProlongResponse,
    TokenDetail, TokenItem,
};

use crate::auth::{SecretKey, bearer};
use crate::body::{self, CREATE_LIMIT, Length, OUTPUT_LIMIT, PROLONG_LIMIT};
use crate::error::ApiError;
use crate::openapi::{
    BadRequest, CompleteTokenBody, Conflict, Forbidden, LengthRequired, NotFound, PayloadTooLarge, RejectTokenBody,
    ServerError, TokenListQuery, Unauthorized, Unprocessable,
};
use crate::{present, query};

/// `POST /api/v1/waitpoints/tokens`: create a token (secret key only).
#[utoipa::path(
    post,
    path = "/api/v1/waitpoints/tokens",
    operation_id = "createToken",
    tag = "tokens",
    summary = "Create a token",
    description = "Creates a waitpoint token. With an `idempotencyKey` that is still active, answers with the \
                   token made for it (`isCached: true`). Every field is optional; unknown fields, `null`s and \
                   wrong types are refused (400). The answer's headers carry the public access token and its \
                   claims, as Trigger.dev's do.",
    request_body(content = CreateTokenRequest, description = "The token's options (at most 10 KiB)."),
    responses(
        (status = 200, description = "The token.", body = CreateTokenResponse, headers(
            ("x-trigger-jwt" = String, description = "The public access token, as `publicAccessToken`."),
            ("x-trigger-jwt-claims" = String, description = "Its claims: `{\"sub\":\"<environment id>\",\"pub\":true}`."),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn create(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read(&headers, body, CREATE_LIMIT, Length::Optional).await?;
    let request = body::parse_create(&bytes)?;
    let created = engine.create_token(&environment, &request).await?;
    // Key order as Trigger.dev sends it; environment ids need no escaping.
    let claims = format!(r#"{{"sub":"{}","pub":true}}"#, environment.id);
    let jwt = HeaderValue::from_str(&created.public_access_token).map_err(|_| {
        ApiError::from(waitpoint_engine::EngineError::Internal("unprintable public access token".into()))
    })?;
    let mut response = Json(present::created_token(created)).into_response();
    response.headers_mut().insert("x-trigger-jwt", jwt);
    if let Ok(claims) = HeaderValue::from_str(&claims) {
        response.headers_mut().insert("x-trigger-jwt-claims", claims);
    }
    Ok(response)
}

/// `GET /api/v1/waitpoints/tokens`: list tokens, newest first (secret key only).
#[utoipa::path(
    get,
    path = "/api/v1/waitpoints/tokens",
    operation_id = "listTokens",
    tag = "tokens",
    summary = "List tokens",
    description = "Tokens, newest first, one page at a time: pass `pagination.next` back as `page[after]` (and \
                   `pagination.previous` as `page[before]`). Tags are sorted; no output.",
    params(TokenListQuery),
    responses(
        (status = 200, description = "A page of tokens.", body = Page<TokenItem>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn list(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<TokenItem>>, ApiError> {
    let request = query::parse_list(raw.as_deref())?;
    let page = engine.list_tokens(&environment, &request).await?;
    Ok(Json(Page {
        data: page.tokens.iter().map(|w| present::item(&engine, &environment, w)).collect(),
        pagination: Pagination { next: page.next, previous: page.previous },
    }))
}

/// `GET /api/v1/waitpoints/tokens/{id}`: one token with its output (secret key only).
#[utoipa::path(
    get,
    path = "/api/v1/waitpoints/tokens/{id}",
    operation_id = "retrieveToken",
    tag = "tokens",
    summary = "Retrieve a token",
    description = "One token, with its output once completed (or the timeout error once timed out, with \
                   `outputIsError: true`) and how it was completed.",
    params(("id" = String, Path, description = "The token's id, `waitpoint_…`.")),
    responses(
        (status = 200, description = "The token.", body = TokenDetail),
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
) -> Result<Json<TokenDetail>, ApiError> {
    let waitpoint = engine.get_token(&environment, &id).await?;
    Ok(Json(present::detail(&engine, &environment, &waitpoint)))
}

/// `POST /api/v1/waitpoints/tokens/{id}/complete`: complete with `{"data": …}` (secret key, or
/// the token's public access token).
#[utoipa::path(
    post,
    path = "/api/v1/waitpoints/tokens/{id}/complete",
    operation_id = "completeToken",
    tag = "tokens",
    summary = "Complete a token",
    description = "Completes a token with an output, resuming every run that waits on it. Completing a token \
                   that already finished changes nothing and succeeds: the first completion wins. Takes the \
                   secret key or the token's public access token; browsers may call it from any origin (CORS).",
    params(("id" = String, Path, description = "The token's id, `waitpoint_…`.")),
    request_body(content = CompleteTokenBody, description = "The output (at most 3 MiB)."),
    security(("secretKey" = []), ("publicAccessToken" = [])),
    responses(
        (status = 200, description = "Completed, now or before.", body = CompleteResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn complete(
    State(engine): State<Engine>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let principal = engine.authenticate(bearer(&headers)).await?;
    let bytes = body::read(&headers, body, OUTPUT_LIMIT, Length::Optional).await?;
    let output = body::parse_complete(&bytes)?;
    engine.complete_token(&principal, &id, output).await?;
    Ok(Json(json!({ "success": true })))
}

/// `POST /api/v1/waitpoints/tokens/{id}/callback/{hash}`: complete with the whole body (the
/// token's `url`; no credentials). The URL is checked first: a body sent to an unknown token
/// or with a wrong hash is never read (the answer comes at once, and the connection closes
/// unless the body had arrived).
#[utoipa::path(
    post,
    path = "/api/v1/waitpoints/tokens/{id}/callback/{hash}",
    operation_id = "completeTokenByCallback",
    tag = "tokens",
    summary = "Complete a token through its URL",
    description = "The token's `url`: a third party POSTs to it, with no credentials, to complete the token. \
                   The whole body is the output: JSON as sent, other UTF-8 text as text, no body as `{}`. \
                   The URL is checked before the body is read. The body must announce its length. A token \
                   created with a `callbackVerifier` also checks the delivery's signature (Standard Webhooks, \
                   Stripe, GitHub, or a hex HMAC-SHA256 header) over the raw body: one that does not verify is \
                   a 401 and changes nothing.",
    params(
        ("id" = String, Path, description = "The token's id, `waitpoint_…`."),
        ("hash" = String, Path, description = "The URL's signature, 64 hexadecimal digits."),
    ),
    request_body(
        description = "The output (at most 3 MiB); optional.",
        content((Option<serde_json::Value> = "application/json"), ("text/plain")),
    ),
    security(()),
    responses(
        (status = 200, description = "Completed, now or before.", body = CompleteResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 411, response = LengthRequired),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn callback(
    State(engine): State<Engine>,
    headers: HeaderMap,
    Path((id, hash)): Path<(String, String)>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let callback = engine.verify_callback(&id, &hash).await?;
    let bytes = body::read(&headers, body, OUTPUT_LIMIT, Length::Required).await?;
    engine.verify_delivery(&callback, |name| headers.get(name).and_then(|value| value.to_str().ok()), &bytes)?;
    let output = body::parse_callback(&bytes)?;
    engine.complete_via_callback(callback, output).await?;
    Ok(Json(json!({ "success": true })))
}

/// `POST /api/v1/waitpoints/tokens/{id}/reject`: reject with `{"error": {"message", "code"?,
/// "data"?}}` (secret key, or the token's public access token).
#[utoipa::path(
    post,
    path = "/api/v1/waitpoints/tokens/{id}/reject",
    operation_id = "rejectToken",
    tag = "tokens",
    summary = "Reject a token",
    description = "waitpoint's own: rejects a token with an error, resuming every run that waits on it with \
                   that error. Rejecting a token that already finished changes nothing and succeeds: the first \
                   outcome wins. Trigger.dev-shaped answers then read the token as `TIMED_OUT` with the error as \
                   its output (`outputIsError: true`); its `outcome` says `REJECTED`. Takes the secret key or \
                   the token's public access token; browsers may call it from any origin (CORS).",
    params(("id" = String, Path, description = "The token's id, `waitpoint_…`.")),
    request_body(content = RejectTokenBody, description = "The error (at most 3 MiB)."),
    security(("secretKey" = []), ("publicAccessToken" = [])),
    responses(
        (status = 200, description = "Rejected, now or before (or finished another way before).", body = CompleteResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn reject(
    State(engine): State<Engine>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let principal = engine.authenticate(bearer(&headers)).await?;
    let bytes = body::read(&headers, body, OUTPUT_LIMIT, Length::Optional).await?;
    let error = body::parse_reject(&bytes)?;
    engine.reject_token(&principal, &id, error).await?;
    Ok(Json(json!({ "success": true })))
}

/// `POST /api/v1/waitpoints/tokens/{id}/reject/{signature}`: reject, with the whole body as the
/// error's data (the token's reject URL; no credentials). The URL is checked before the body
/// is read.
#[utoipa::path(
    post,
    path = "/api/v1/waitpoints/tokens/{id}/reject/{signature}",
    operation_id = "rejectTokenByUrl",
    tag = "tokens",
    summary = "Reject a token through its reject URL",
    description = "waitpoint's own: the token's `rejectUrl` (given at create). A third party POSTs to it, with \
                   no credentials, to reject the token; the whole body is the error's `data` (JSON as sent, \
                   other UTF-8 text as a string, no body as none), its message says it came through the URL. \
                   The URL is checked before the body is read. The body must announce its length.",
    params(
        ("id" = String, Path, description = "The token's id, `waitpoint_…`."),
        ("signature" = String, Path, description = "The URL's signature, 64 hexadecimal digits."),
    ),
    request_body(
        description = "The error's data (at most 3 MiB); optional.",
        content((Option<serde_json::Value> = "application/json"), ("text/plain")),
    ),
    security(()),
    responses(
        (status = 200, description = "Rejected, now or before (or finished another way before).", body = CompleteResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 411, response = LengthRequired),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn reject_url(
    State(engine): State<Engine>,
    headers: HeaderMap,
    Path((id, signature)): Path<(String, String)>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let verified = engine.verify_reject_url(&id, &signature).await?;
    let bytes = body::read(&headers, body, OUTPUT_LIMIT, Length::Required).await?;
    let data = body::parse_reject_url(&bytes)?;
    engine.reject_via_url(verified, data).await?;
    Ok(Json(json!({ "success": true })))
}

/// `POST /api/v1/waitpoints/tokens/{id}/heartbeat`: keeps a token with a heartbeat alive
/// (secret key, or the token's public access token).
#[utoipa::path(
    post,
    path = "/api/v1/waitpoints/tokens/{id}/heartbeat",
    operation_id = "heartbeatToken",
    tag = "tokens",
    summary = "Send a token a heartbeat",
    description = "waitpoint's own: for a token created with `heartbeatTimeout`, moves its heartbeat deadline to \
                   now plus that interval. A token that gets no heartbeat in time times out with \
                   `WAITPOINT_HEARTBEAT_TIMEOUT`. Heartbeats never move `timeoutAt` (an extend does). The body is \
                   empty or `{}`. Takes the secret key or the token's public access token; browsers may call it \
                   from any origin (CORS).",
    params(("id" = String, Path, description = "The token's id, `waitpoint_…`.")),
    security(("secretKey" = []), ("publicAccessToken" = [])),
    responses(
        (status = 200, description = "The token still waits, until then.", body = ProlongResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn heartbeat(
    State(engine): State<Engine>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<ProlongResponse>, ApiError> {
    let principal = engine.authenticate(bearer(&headers)).await?;
    body::parse_heartbeat(&body::read(&headers, body, PROLONG_LIMIT, Length::Optional).await?)?;
    Ok(Json(prolonged(&engine.heartbeat_token(&principal, &id).await?)))
}

/// `POST /api/v1/waitpoints/tokens/{id}/heartbeat/{signature}`: a heartbeat through the token's
/// heartbeat URL (no credentials). The URL is checked before the body is read.
#[utoipa::path(
    post,
    path = "/api/v1/waitpoints/tokens/{id}/heartbeat/{signature}",
    operation_id = "heartbeatTokenByUrl",
    tag = "tokens",
    summary = "Send a token a heartbeat through its heartbeat URL",
    description = "waitpoint's own: the token's `heartbeatUrl` (given at create for a token with \
                   `heartbeatTimeout`). A third party POSTs to it, with no credentials and an empty body or `{}`, \
                   to keep the token alive. The URL is checked before the body is read.",
    params(
        ("id" = String, Path, description = "The token's id, `waitpoint_…`."),
        ("signature" = String, Path, description = "The URL's signature, 64 hexadecimal digits."),
    ),
    security(()),
    responses(
        (status = 200, description = "The token still waits, until then.", body = ProlongResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn heartbeat_url(
    State(engine): State<Engine>,
    headers: HeaderMap,
    Path((id, signature)): Path<(String, String)>,
    body: Body,
) -> Result<Json<ProlongResponse>, ApiError> {
    let verified = engine.verify_heartbeat_url(&id, &signature).await?;
    body::parse_heartbeat(&body::read(&headers, body, PROLONG_LIMIT, Length::Optional).await?)?;
    Ok(Json(prolonged(&engine.heartbeat_via_url(verified).await?)))
}

/// `POST /api/v1/waitpoints/tokens/{id}/extend`: moves a token's timeout later (secret key
/// only; every extend is logged for audit).
#[utoipa::path(
    post,
    path = "/api/v1/waitpoints/tokens/{id}/extend",
    operation_id = "extendToken",
    tag = "tokens",
    summary = "Extend a token's timeout",
    description = "waitpoint's own: moves a waiting token's `timeoutAt` later, to a duration from now or a date. \
                   An earlier or equal time is a 400 (an extend never shortens); a token that finished, or whose \
                   time came before the extend arrived, is a 409. Its heartbeat, if any, stays as it is. Secret \
                   key only; each extend is logged (target `waitpoint::audit`).",
    params(("id" = String, Path, description = "The token's id, `waitpoint_…`.")),
    request_body(content = ExtendTokenRequest, description = "The new timeout."),
    responses(
        (status = 200, description = "The token still waits, until then.", body = ProlongResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn extend(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<ProlongResponse>, ApiError> {
    let timeout = body::parse_extend(&body::read(&headers, body, PROLONG_LIMIT, Length::Optional).await?)?;
    let token = engine.extend_token(&environment, &id, &timeout, waitpoint_types::CompletedVia::SecretKey).await?;
    Ok(Json(prolonged(&token)))
}

fn prolonged(token: &Waitpoint) -> ProlongResponse {
    ProlongResponse {
        success: true,
        timeout_at: token.timeout_at,
        heartbeat_deadline: token.heartbeat.map(|heartbeat| heartbeat.deadline),
    }
}
