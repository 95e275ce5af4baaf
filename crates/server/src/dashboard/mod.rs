//! The dashboard: server-rendered pages for people, on the same port and over the same engine
//! as the API. No page shows anything without a session; a session shows one environment.
//!
//! Routes: `/` (overview), `/tokens` (list, filters in the query), `/tokens/{id}` (detail),
//! `POST /tokens/{id}/complete`, `/reject` and `/timeout`, `/tokens/bulk` (confirm, then apply),
//! `/tokens/tags` (tag suggestions), `/runs`, `/runs/{id}`, `POST /runs/{id}/cancel` and
//! `/skip`, `/events` (server-sent events for live pages), `/sign-in` (a secret key),
//! `/sign-in/link/{secret}` (a one-time link), `POST /sign-out`, and `/assets/…`.
//!
//! # Files
//! - `session`: the session cookie, the extractor that redirects to sign-in, CSRF checks.
//! - `sign_in`: signing in (key or one-time link, rate-limited) and out.
//! - `throttle`: the sign-in rate limit.
//! - `layout`: the page shell and the small pieces every page uses (times, statuses, ids).
//! - `overview`, `tokens`, `token`, `bulk`, `runs`, `run`: the pages, one per file.
//! - `forms`: reading form bodies and list filters.
//! - `live`: the event stream that keeps open pages up to date.

mod bulk;
mod forms;
mod layout;
mod live;
mod overview;
mod run;
mod runs;
mod session;
mod sign_in;
mod throttle;
mod token;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use waitpoint_engine::Engine;

use crate::pages;

/// What the dashboard's handlers share.
#[derive(Debug, Clone)]
pub(crate) struct Dashboard {
    pub(crate) engine: Engine,
    pub(crate) throttle: Arc<throttle::Throttle>,
    /// Whether cookies are `Secure` (the public URL is https).
    pub(crate) secure: bool,
}

/// The dashboard's routes over `engine`.
pub(crate) fn router(engine: Engine) -> Router {
    let secure = engine.config().public_url.starts_with("https://");
    let state = Dashboard { engine, throttle: Arc::new(throttle::Throttle::default()), secure };
    Router::new()
        .route("/", get(overview::page))
        .route("/sign-in", get(sign_in::page).post(sign_in::with_key))
        .route("/sign-in/link/{secret}", get(sign_in::with_link))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/tokens", get(tokens::page))
        .route("/tokens/tags", get(tokens::tags))
        .route("/tokens/bulk", get(bulk::confirm).post(bulk::apply))
        .route("/tokens/{id}", get(token::page))
        .route("/tokens/{id}/complete", post(token::complete))
        .route("/tokens/{id}/timeout", post(token::time_out))
        .route("/tokens/{id}/reject", post(token::reject))
        .route("/runs", get(runs::page))
        .route("/runs/{id}", get(run::page))
        .route("/runs/{id}/cancel", post(run::cancel))
        .route("/runs/{id}/skip", post(run::skip))
        .route("/events", get(live::events))
        .layer(axum::middleware::from_fn(pages::secure_headers))
        .with_state(state)
}
