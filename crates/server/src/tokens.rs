//! The token routes. Each authenticates, reads its input, calls the engine and shapes the
//! answer; the order of checks follows Trigger.dev's (credentials, then size, then body).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use waitpoint_engine::Engine;
use waitpoint_types::api::{CreateTokenResponse, Page, Pagination};

use crate::auth::{SecretKey, bearer};
use crate::body::{self, CREATE_LIMIT, Length, OUTPUT_LIMIT};
use crate::error::ApiError;
use crate::{present, query};

/// `POST /api/v1/waitpoints/tokens`: create a token (secret key only).
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
    let body = CreateTokenResponse {
        id: created.waitpoint.id.public(),
        is_cached: created.is_cached,
        url: created.url,
        public_access_token: created.public_access_token,
        approval_url: Some(created.approval_url),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert("x-trigger-jwt", jwt);
    if let Ok(claims) = HeaderValue::from_str(&claims) {
        response.headers_mut().insert("x-trigger-jwt-claims", claims);
    }
    Ok(response)
}

/// `GET /api/v1/waitpoints/tokens`: list tokens, newest first (secret key only).
pub(crate) async fn list(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<waitpoint_types::api::TokenItem>>, ApiError> {
    let request = query::parse_list(raw.as_deref())?;
    let page = engine.list_tokens(&environment, &request).await?;
    Ok(Json(Page {
        data: page.tokens.iter().map(|w| present::item(&engine, &environment, w)).collect(),
        pagination: Pagination { next: page.next, previous: page.previous },
    }))
}

/// `GET /api/v1/waitpoints/tokens/{id}`: one token with its output (secret key only).
pub(crate) async fn retrieve(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    Path(id): Path<String>,
) -> Result<Json<waitpoint_types::api::TokenDetail>, ApiError> {
    let waitpoint = engine.get_token(&environment, &id).await?;
    Ok(Json(present::detail(&engine, &environment, &waitpoint)))
}

/// `POST /api/v1/waitpoints/tokens/{id}/complete`: complete with `{"data": …}` (secret key, or
/// the token's public access token).
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
pub(crate) async fn callback(
    State(engine): State<Engine>,
    headers: HeaderMap,
    Path((id, hash)): Path<(String, String)>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let callback = engine.verify_callback(&id, &hash).await?;
    let bytes = body::read(&headers, body, OUTPUT_LIMIT, Length::Required).await?;
    let output = body::parse_callback(&bytes)?;
    engine.complete_via_callback(callback, output).await?;
    Ok(Json(json!({ "success": true })))
}
