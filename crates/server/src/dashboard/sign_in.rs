//! Signing in and out. The sign-in form takes a secret key (never put in a URL: the form posts
//! it); a one-time link signs in by itself. Both are rate-limited per client address. The
//! sign-in form has its own CSRF token, in a cookie and in the form (double submit), so no
//! other site can sign a browser in to an environment of its choosing.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use waitpoint_engine::{EngineError, SignedIn};
use waitpoint_types::id::random_alphanumeric;

use super::forms::{self, Form};
use super::layout;
use super::session::{self, CSRF_FIELD, SIGN_IN_COOKIE, Signed};
use super::{Dashboard, throttle};
use crate::connection::ClientAddr;
use crate::pages::document;

/// How long the sign-in form stays usable.
const FORM_LIFETIME_SECS: u64 = 60 * 60;

/// Where to go after signing in: a path of this site (never another site), else the overview.
fn next_page(form: &Form) -> String {
    form.get("next")
        .filter(|next| next.starts_with('/') && !next.starts_with("//") && !next.contains('\\'))
        .unwrap_or("/")
        .to_owned()
}

/// `GET /sign-in`: the form. A person already signed in goes on.
pub(crate) async fn page(State(dashboard): State<Dashboard>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let query = Form::parse(raw.unwrap_or_default().as_bytes());
    if let Some(cookie) = session::cookie(&headers, session::COOKIE)
        && dashboard.engine.session(cookie).await.is_ok()
    {
        return Redirect::to(&next_page(&query)).into_response();
    }
    form_page(&dashboard, &next_page(&query), None, StatusCode::OK)
}

/// The sign-in form with a fresh CSRF token (and its cookie), and `problem` when the last try
/// failed.
fn form_page(dashboard: &Dashboard, next: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let token = random_alphanumeric(32);
    let body = html! {
        main.narrow.sign-in {
            h1 { "Sign in to waitpoint" }
            @if let Some(problem) = problem {
                p.error role="alert" { (problem) }
            }
            form method="post" action="/sign-in" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                input type="hidden" name="next" value=(next);
                label for="key" { "Secret key of an environment" }
                input #key type="password" name="key" autocomplete="off" required autofocus
                    placeholder="tr_dev_…" spellcheck="false";
                button type="submit" { "Sign in" }
            }
            p.hint { "The key shows that environment only. " code { "waitpoint env list" } " prints the keys; "
                code { "waitpoint serve" } " prints a one-time sign-in link for " code { "dev" } "." }
        }
    };
    let mut response = (status, Html(document("Sign in", "message", body).into_string())).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(SIGN_IN_COOKIE, &token, FORM_LIFETIME_SECS, dashboard.secure));
    response
}

/// A redirect to `next` that sets the session's cookie (and drops the sign-in form's).
fn signed_in(dashboard: &Dashboard, signed_in: &SignedIn, next: &str) -> Response {
    let mut response = Redirect::to(next).into_response();
    let max_age = session::max_age(dashboard.engine.clock().now(), signed_in.expires_at);
    let headers = response.headers_mut();
    headers
        .append(header::SET_COOKIE, session::set_cookie(session::COOKIE, &signed_in.cookie, max_age, dashboard.secure));
    headers.append(header::SET_COOKIE, session::set_cookie(SIGN_IN_COOKIE, "", 0, dashboard.secure));
    response
}

fn too_many() -> Response {
    layout::message_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts",
        &format!("Wait {} seconds, then try again.", throttle::WINDOW.as_secs()),
    )
}

/// `POST /sign-in`: a secret key.
pub(crate) async fn with_key(
    State(dashboard): State<Dashboard>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match forms::read(&headers, body, 16 * 1024).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let next = next_page(&form);
    let expected = session::cookie(&headers, SIGN_IN_COOKIE);
    let sent = form.get(CSRF_FIELD);
    let csrf_ok = matches!((expected, sent), (Some(a), Some(b)) if !a.is_empty()
        && constant_time_equal(a, b));
    if !csrf_ok || !crate::pages::same_origin(&headers) {
        let problem = "The form expired (or cookies are off): try again.";
        return form_page(&dashboard, &next, Some(problem), StatusCode::FORBIDDEN);
    }
    if !dashboard.throttle.allow(client.map(|c| c.0.0), dashboard.engine.clock().now()) {
        return too_many();
    }
    match dashboard.engine.sign_in(form.get("key").unwrap_or_default()).await {
        Ok(session) => signed_in(&dashboard, &session, &next),
        Err(EngineError::Unauthenticated(message)) => {
            form_page(&dashboard, &next, Some(&message), StatusCode::UNAUTHORIZED)
        }
        Err(error) => layout::engine_error(error),
    }
}

/// Compares two short tokens without stopping at the first difference.
fn constant_time_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `GET /sign-in/link/{secret}`: a one-time link opens a session and goes to the overview,
/// which takes the secret out of the address bar.
pub(crate) async fn with_link(
    State(dashboard): State<Dashboard>,
    client: Option<Extension<ClientAddr>>,
    Path(secret): Path<String>,
) -> Response {
    if !dashboard.throttle.allow(client.map(|c| c.0.0), dashboard.engine.clock().now()) {
        return too_many();
    }
    match dashboard.engine.redeem_sign_in_link(&secret).await {
        Ok(session) => signed_in(&dashboard, &session, "/"),
        Err(EngineError::Unauthenticated(message)) => {
            form_page(&dashboard, "/", Some(&message), StatusCode::UNAUTHORIZED)
        }
        Err(error) => layout::engine_error(error),
    }
}

/// `POST /sign-out`: drops the session's cookie.
pub(crate) async fn sign_out(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match forms::read(&headers, body, 16 * 1024).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if let Some(response) = session::form_refusal(&session, &headers, form.get(CSRF_FIELD)) {
        return response;
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().append(header::SET_COOKIE, session::set_cookie(session::COOKIE, "", 0, dashboard.secure));
    response.headers_mut().insert("clear-site-data", HeaderValue::from_static("\"cache\""));
    response
}
