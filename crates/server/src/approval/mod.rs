//! The hosted approval pages: `GET /approve/{id}/{signature}` shows what a token asks, and
//! `POST` to the same address answers it. The signed address is the only credential (no
//! sign-in): it opens that one token's page, shows nothing else of the environment, and any
//! other address is the same 404. Pages work without JavaScript.
//!
//! # Files
//! - `page`: the page: the question, the form, or the outcome once answered.
//! - `answer`: reading an answer and completing the token with it (the first answer wins).

mod answer;
mod page;

use axum::Router;
use axum::routing::get;
use waitpoint_engine::Engine;

use crate::pages;

/// The approval pages' routes over `engine`.
pub(crate) fn router(engine: Engine) -> Router {
    Router::new()
        .route("/approve/{id}/{signature}", get(page::show).post(answer::answer))
        .layer(axum::middleware::from_fn(pages::secure_headers))
        .with_state(engine)
}
