//! The stylesheet and the script, files of this crate embedded in the binary. Their URLs carry
//! a digest of their content, so they are cached for a year and a new build's are fetched anew.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const STYLE: &str = include_str!("../../assets/waitpoint.css");
const SCRIPT: &str = include_str!("../../assets/waitpoint.js");

/// A digest of `content` for its URL (FNV-1a, 64 bits: it only tells versions apart).
fn digest(content: &str) -> String {
    let hash = content
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

static STYLE_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/{}/waitpoint.css", digest(STYLE)));
static SCRIPT_URL: LazyLock<String> = LazyLock::new(|| format!("/assets/{}/waitpoint.js", digest(SCRIPT)));

/// The stylesheet's URL.
pub(crate) fn style_url() -> &'static str {
    &STYLE_URL
}

/// The script's URL.
pub(crate) fn script_url() -> &'static str {
    &SCRIPT_URL
}

/// `GET /assets/{digest}/{file}`, and `GET /favicon.ico` (none: 204, so browsers stop asking).
pub(crate) fn router() -> Router {
    Router::new()
        .route("/assets/{digest}/{file}", get(asset))
        .route("/favicon.ico", get(no_icon))
        .layer(axum::middleware::from_fn(super::secure_headers))
}

async fn no_icon() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}

async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let (content, content_type) = match file.as_str() {
        "waitpoint.css" => (STYLE, "text/css; charset=utf-8"),
        "waitpoint.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    let current = digest(content);
    let cache = if version == current { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = content.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{current}\"")) {
        headers.insert(header::ETAG, etag);
    }
    response
}
