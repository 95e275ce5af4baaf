//! Credentials: the bearer token of a request, and [`SecretKey`], the extractor of the routes
//! that take only an environment's secret key.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use waitpoint_engine::Engine;
use waitpoint_types::Environment;

use crate::error::ApiError;

/// The credential of `Authorization: Bearer <credential>`, if the header has that form.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(credential)
}

/// The environment whose secret key the request carries. A request without one is refused
/// (401) before its body is read.
pub(crate) struct SecretKey(pub(crate) Environment);

impl FromRequestParts<Engine> for SecretKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, engine: &Engine) -> Result<Self, ApiError> {
        Ok(Self(engine.authenticate_secret_key(bearer(&parts.headers)).await?))
    }
}
