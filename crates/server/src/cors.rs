//! CORS for the complete route, so a browser holding a token's public access token can
//! complete it: the request's origin is reflected, as Trigger.dev does.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOWED_METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE";
const EXPOSED_HEADERS: &str = "x-trigger-jwt,x-trigger-jwt-claims";
const MAX_AGE_SECS: &str = "300";

/// Answers a preflight: 200 `{}` allowing the origin, the methods and the requested headers.
#[utoipa::path(
    options,
    path = "/api/v1/waitpoints/tokens/{id}/complete",
    operation_id = "completeTokenPreflight",
    tag = "tokens",
    summary = "CORS preflight of a completion",
    description = "What a browser asks before it completes a token from another origin: the answer allows \
                   the request's origin, the methods, and the headers the browser asks for.",
    params(("id" = String, Path, description = "The token's id, `waitpoint_…`.")),
    security(()),
    responses((
        status = 200,
        description = "Allowed: `{}`, with the `Access-Control-Allow-*` headers.",
        body = BTreeMap<String, serde_json::Value>,
    )),
)]
pub(crate) async fn preflight(headers: HeaderMap) -> Response {
    let mut response = Json(serde_json::json!({})).into_response();
    let out = response.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
    out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE_SECS));
    if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        out.append(header::VARY, HeaderValue::from_static("Access-Control-Request-Headers"));
    }
    response
}

/// Answers the preflight of a rejection, as [`preflight`] does for a completion.
#[utoipa::path(
    options,
    path = "/api/v1/waitpoints/tokens/{id}/reject",
    operation_id = "rejectTokenPreflight",
    tag = "tokens",
    summary = "CORS preflight of a rejection",
    description = "What a browser asks before it rejects a token from another origin: the answer allows the \
                   request's origin, the methods, and the headers the browser asks for.",
    params(("id" = String, Path, description = "The token's id, `waitpoint_…`.")),
    security(()),
    responses((
        status = 200,
        description = "Allowed: `{}`, with the `Access-Control-Allow-*` headers.",
        body = BTreeMap<String, serde_json::Value>,
    )),
)]
pub(crate) async fn preflight_reject(headers: HeaderMap) -> Response {
    preflight(headers).await
}

/// Answers the preflight of a heartbeat, as [`preflight`] does for a completion.
#[utoipa::path(
    options,
    path = "/api/v1/waitpoints/tokens/{id}/heartbeat",
    operation_id = "heartbeatTokenPreflight",
    tag = "tokens",
    summary = "CORS preflight of a heartbeat",
    description = "What a browser asks before it sends a token a heartbeat from another origin: the answer \
                   allows the request's origin, the methods, and the headers the browser asks for.",
    params(("id" = String, Path, description = "The token's id, `waitpoint_…`.")),
    security(()),
    responses((
        status = 200,
        description = "Allowed: `{}`, with the `Access-Control-Allow-*` headers.",
        body = BTreeMap<String, serde_json::Value>,
    )),
)]
pub(crate) async fn preflight_heartbeat(headers: HeaderMap) -> Response {
    preflight(headers).await
}

/// Adds `Access-Control-Allow-Origin` (the request's origin) and the exposed headers to every
/// response of the route, errors included, so browsers can read them.
pub(crate) async fn allow_all(request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}
