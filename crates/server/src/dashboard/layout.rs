//! The dashboard's page shell (header, navigation, sign-out) and the small pieces every page
//! shows alike: statuses, ids with a copy button, how a token finished, messages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use waitpoint_engine::{EngineError, Session};

use crate::error::ApiError;
use crate::pages::document;

use super::session::CSRF_FIELD;

/// Which part of the dashboard a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Tokens,
    Runs,
}

/// A dashboard page for `session`: the header with its environment, the navigation, and
/// `content`. `live` names what the page shows (`tokens`, `token:<id>`, `runs`, `run:<id>`,
/// `overview`), so the script refreshes it when that changes.
pub(crate) fn page(session: &Session, section: Section, title: &str, live: &str, content: Markup) -> Response {
    let link = |href: &str, name: &str, this: Section| {
        html! { a href=(href) aria-current=[(section == this).then_some("page")] { (name) } }
    };
    let body = html! {
        header.top {
            a.brand href="/" { "waitpoint" }
            nav aria-label="Sections" {
                (link("/", "Overview", Section::Overview))
                (link("/tokens", "Tokens", Section::Tokens))
                (link("/runs", "Runs", Section::Runs))
            }
            span.environment title="Environment" { (session.environment.name) }
            form.sign-out method="post" action="/sign-out" {
                input type="hidden" name=(CSRF_FIELD) value=(session.csrf_token);
                button type="submit" { "Sign out" }
            }
        }
        main id="live" data-live=(live) {
            h1 { (title) }
            (content)
        }
    };
    Html(document(title, "dashboard", body).into_string()).into_response()
}

/// A page with only a message (errors, refusals), without navigation.
pub(crate) fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        main.narrow {
            h1 { (title) }
            p { (message) }
            p { a href="/" { "Back to the dashboard" } }
        }
    };
    (status, Html(document(title, "message", body).into_string())).into_response()
}

/// The page of an engine error, with the status the API would answer.
pub(crate) fn engine_error(error: EngineError) -> Response {
    let api = ApiError::from(error);
    let title = match api.status() {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "That did not work",
        StatusCode::CONFLICT => "Not possible now",
        status if status.is_server_error() => "Something went wrong",
        _ => "Refused",
    };
    message_page(api.status(), title, api.message())
}

/// A status, as a badge.
pub(crate) fn status(status: &str) -> Markup {
    html! { span class={ "status status-" (status.to_ascii_lowercase()) } { (status) } }
}

/// An id (or URL) in monospace, with a button that copies it.
pub(crate) fn copyable(text: &str) -> Markup {
    html! {
        span.copyable {
            code { (text) }
            button.copy type="button" data-copy=(text) aria-label={ "Copy " (text) } { "Copy" }
        }
    }
}

/// The hidden CSRF field of a form of `session`.
pub(crate) fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(session.csrf_token); }
}
