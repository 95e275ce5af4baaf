//! The API's OpenAPI 3.1 document, served at `GET /api/openapi.json`.
//!
//! The document is generated from the routes themselves: the API router (`crate::api`)
//! registers every route through its handler's `#[utoipa::path]` annotation, and the same
//! annotations make the document's paths, so one list makes both. Request and response schemas
//! are derived on the wire types of `waitpoint_types::api`. This module adds what no handler
//! carries: the title, the security schemes, the tags and the shared error responses.
//!
//! - `errors`: the error responses, all `{"error": …}`.
//! - `params`: the list routes' query parameters.
//! - `bodies`: the bodies that no wire type describes (the complete route's request, the record
//!   route's answer).

mod bodies;
mod errors;
mod params;

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use waitpoint_types::api::ErrorBody;

pub(crate) use self::bodies::{CompleteTokenBody, RejectTokenBody};
pub(crate) use self::errors::{
    BadRequest, Conflict, Forbidden, LengthRequired, NotFound, PayloadTooLarge, ServerError, Unauthorized,
    Unprocessable,
};
pub(crate) use self::params::{RunListQuery, TokenListQuery};

/// What the document says besides its paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "waitpoint",
        description = "A self-hosted durable task engine. The token routes are wire-compatible with \
                       Trigger.dev v4's waitpoint token API; the run routes and the worker protocol are \
                       waitpoint's own. Every error is `{\"error\": \"<what to fix>\"}`. Optional fields \
                       are left out of answers, never `null`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    security(("secretKey" = [])),
    tags(
        (name = "tokens", description = "Waitpoint tokens, as Trigger.dev v4's API shapes them."),
        (name = "runs", description = "Task runs: trigger, list, retrieve, cancel."),
        (name = "events", description = "The event log: what happened to tokens and runs, as a stream."),
        (name = "worker protocol", description = "How a worker takes runs and records what they do \
                                                 (docs/runs.md)."),
        (name = "health", description = "Liveness, readiness, and this document."),
    ),
    components(
        schemas(ErrorBody),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            LengthRequired,
            PayloadTooLarge,
            Unprocessable,
            ServerError
        ),
    ),
    modifiers(&SecuritySchemes),
)]
struct Base;

/// The two bearer credentials: `secretKey`, which every route takes unless it says otherwise,
/// and `publicAccessToken`, which the complete route takes too.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer =
            |description: &str| HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description));
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "secretKey",
            SecurityScheme::Http(
                bearer("An environment's secret key (`tr_dev_…`), as `waitpoint env list` prints it.").build(),
            ),
        );
        components.add_security_scheme(
            "publicAccessToken",
            SecurityScheme::Http(
                bearer(
                    "A token's public access token (the `publicAccessToken` of its create, also sent as the \
                     `x-trigger-jwt` header): it may complete that one token, nothing else.",
                )
                .bearer_format("JWT")
                .build(),
            ),
        );
    }
}

/// The document's base: everything but the paths, which the API router adds.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// The document as served, made once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| crate::api().into_openapi().to_json().expect("the OpenAPI document serializes to JSON"));

/// `GET /api/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "health",
    summary = "This document",
    description = "The OpenAPI 3.1 document of the API, generated from the server's routes.",
    security(()),
    responses((status = 200, description = "The document.", body = BTreeMap<String, serde_json::Value>)),
)]
pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}
