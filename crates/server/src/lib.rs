//! waitpoint's HTTP API: waitpoint tokens (wire-compatible with Trigger.dev's API), task runs,
//! and the protocol workers use; and, on the same port, the pages for people: the dashboard and
//! the hosted approval pages.
//!
//! [`app`] builds the router over an [`Engine`]; [`serve_with`] runs it on a listener until a
//! shutdown signal, within the limits of a [`ServeConfig`] ([`serve`]: the default limits).
//! Handlers only translate: HTTP in (credentials, bodies, query strings), engine call, JSON out.
//! Every failure leaves as [`ApiError`]: a stable status code and a body `{"error": "..."}`
//! that tells the caller what to fix.
//!
//! # Layout
//! - [`error`]: [`ApiError`] and the mapping from engine errors to status codes.
//! - `auth`: the bearer credential, and the extractor of routes that take a secret key.
//! - `openapi/`: the API's OpenAPI document (`GET /api/openapi.json`), generated from the
//!   routes' annotations: its title, security schemes, error responses and list parameters.
//! - `health`: liveness and readiness (`/healthz`, `/readyz`).
//! - `tokens`: the token routes (create, list, retrieve, complete, callback, reject, reject URL,
//!   heartbeat, heartbeat URL, extend).
//! - `events`: the event log as a stream of server-sent events.
//! - `webhooks`: subscriptions that deliver the event log to URLs.
//! - `runs`: the run routes (trigger, list, retrieve, cancel).
//! - `worker`: the worker protocol, one route per operation; `batch`: the worker channel, many
//!   runs' operations in one request.
//! - `body`: reading request bodies within their size limits and parsing them strictly.
//! - `strict_json`: the JSON a stored body must be (bounded depth, numbers a double holds, no
//!   repeated keys), so that what is stored comes back as sent.
//! - `query`: parsing the list route's query string.
//! - `present`: turning waitpoints into the API's JSON shapes.
//! - `cors`: the CORS policy of the complete and reject routes (browsers with a public access
//!   token).
//! - `listener`: taking connections, at most so many at once, and shutting down within a
//!   deadline.
//! - `connection`: serving one connection, with the time its client has to send.
//! - [`descriptors`]: the process's descriptor limit, and the connection cap derived from it.
//! - [`metrics`]: HTTP request metrics, and the Prometheus endpoint (`GET /metrics`) on an
//!   address of its own.
//! - `dashboard/`: the dashboard's pages (sign-in, overview, tokens, runs, bulk actions, live
//!   updates); the only code besides `approval/` and `pages/` that writes HTML.
//! - `approval/`: the hosted approval pages.
//! - `pages/`: what every page shares: security headers, the embedded CSS and script, the
//!   document shell.

pub mod descriptors;
pub mod error;
pub mod metrics;

mod approval;
mod auth;
mod batch;
mod body;
mod connection;
mod cors;
mod dashboard;
mod events;
mod health;
mod listener;
mod openapi;
mod pages;
mod present;
mod query;
mod runs;
mod strict_json;
mod tokens;
mod webhooks;
mod worker;

use std::future::Future;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use waitpoint_engine::Engine;

pub use crate::error::ApiError;
pub use crate::listener::ServeConfig;

/// The router of the whole API, the dashboard and the approval pages over `engine`.
pub fn app(engine: Engine) -> Router {
    let (api, _) = api().split_for_parts();
    api.with_state(engine.clone())
        .merge(dashboard::router(engine.clone()))
        .merge(approval::router(engine.clone()))
        .merge(pages::assets())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(engine, log_request))
}

/// The API's routes (everything under `/api`, and `/healthz` and `/readyz`) with the OpenAPI
/// document that describes them. Each route is registered from its handler's
/// `#[utoipa::path]` annotation, which gives both its path and methods in the router and its
/// entry in the document: register API routes here, and only with `routes!`.
fn api() -> OpenApiRouter<Engine> {
    let cors = middleware::from_fn(cors::allow_all);
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi::document))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::retrieve))
        .routes(routes!(tokens::complete, cors::preflight).layer(cors))
        .routes(routes!(tokens::callback))
        .routes(routes!(tokens::reject, cors::preflight_reject).layer(middleware::from_fn(cors::allow_all)))
        .routes(routes!(tokens::reject_url))
        .routes(routes!(tokens::heartbeat, cors::preflight_heartbeat).layer(middleware::from_fn(cors::allow_all)))
        .routes(routes!(tokens::heartbeat_url))
        .routes(routes!(tokens::extend))
        .routes(routes!(events::stream))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::delete))
        .routes(routes!(runs::trigger))
        .routes(routes!(runs::list))
        .routes(routes!(runs::retrieve))
        .routes(routes!(runs::cancel))
        .routes(routes!(worker::journal, worker::record))
        .routes(routes!(worker::create_token))
        .routes(routes!(worker::wait))
        .routes(routes!(worker::complete_attempt))
        .routes(routes!(worker::fail_attempt))
        .routes(routes!(worker::poll))
        .routes(routes!(batch::batch))
}

/// [`serve_with`] with the default [`ServeConfig`].
pub async fn serve(listener: TcpListener, engine: Engine, shutdown: impl Future<Output = ()>) {
    serve_with(listener, engine, ServeConfig::default(), shutdown).await;
}

/// Serves [`app`] on `listener` within the limits of `config` until `shutdown` completes; then
/// stops accepting, lets the requests in flight be answered for up to
/// [`ServeConfig::shutdown_timeout`], closes the connections still open, and returns. The
/// engine is not shut down: that is the caller's next step.
pub async fn serve_with(
    listener: TcpListener,
    engine: Engine,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) {
    let router = app(engine.clone());
    // Held polls answer at once, so that idle workers do not hold the shutdown up.
    let shutdown = async move {
        shutdown.await;
        engine.release_polls();
    };
    listener::serve(listener, router, config, shutdown).await;
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!("Not found: no route for {} {}", request.method(), request.uri().path()))
}

/// Logs each request's route template (never its raw path: callback URLs carry a secret),
/// status and duration.
async fn log_request(State(_engine): State<Engine>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    let route = route.as_deref().unwrap_or("(no route)");
    metrics::request(method.as_str(), route, status, started.elapsed());
    if status >= 500 {
        tracing::warn!(%method, route, status, micros, "request failed");
    } else {
        tracing::debug!(%method, route, status, micros, "request");
    }
    response
}
