//! The session cookie, and the checks every page and form makes: a page without a session
//! redirects to sign-in (and shows nothing); a form must carry the session's CSRF token and
//! come from this origin.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use waitpoint_engine::{EngineError, Session};
use waitpoint_types::Timestamp;

use super::Dashboard;
use super::layout;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "waitpoint_session";
/// The cookie of the sign-in form's CSRF token (double submit: the form carries it too).
pub(crate) const SIGN_IN_COOKIE: &str = "waitpoint_sign_in";
/// The form field of CSRF tokens.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// The value of the cookie `name`, if the request has it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, path `/`, `Secure` when `secure`, and
/// gone at `expires` (or at once, with `None` and an empty value).
pub(crate) fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    // Names and values are ours, of `[0-9a-zA-Z._]`.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The seconds from `now` to `expires`.
pub(crate) fn max_age(now: Timestamp, expires: Timestamp) -> u64 {
    expires.duration_since(now).as_secs()
}

/// The session of a signed-in person. A page asked without one is redirected to sign-in,
/// with the page to come back to.
pub(crate) struct Signed(pub(crate) Session);

impl FromRequestParts<Dashboard> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, dashboard: &Dashboard) -> Result<Self, Response> {
        let found = match cookie(&parts.headers, COOKIE) {
            Some(value) => dashboard.engine.session(value).await,
            None => Err(EngineError::Unauthenticated("no session".into())),
        };
        match found {
            Ok(session) => Ok(Self(session)),
            Err(EngineError::Unauthenticated(_)) => {
                let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let next = if parts.method == axum::http::Method::GET { next } else { "/" };
                let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
                Err(Redirect::to(&format!("/sign-in?{query}")).into_response())
            }
            Err(error) => Err(layout::engine_error(error)),
        }
    }
}

/// The refusal of a form that is not the session's own (a wrong or missing CSRF token, or sent
/// from another site); `None` for one that is.
pub(crate) fn form_refusal(session: &Session, headers: &HeaderMap, token: Option<&str>) -> Option<Response> {
    if !crate::pages::same_origin(headers) || !token.is_some_and(|token| session.csrf_matches(token)) {
        return Some(layout::message_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was not sent from this dashboard's page, or the page is from another session. Go back, \
             reload the page and try again.",
        ));
    }
    None
}
