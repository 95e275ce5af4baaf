//! What every HTML page shares, the dashboard's and the approval pages': the security headers,
//! the stylesheet and script embedded in the binary, and the document around a page.
//!
//! # Files
//! - `headers`: Content-Security-Policy and the other headers of every page, and the check
//!   that a form comes from this origin.
//! - `assets`: the CSS and JavaScript files of this crate, served with cache headers.
//! - `document`: the `<html>` around a page's content, and the few pieces every page formats
//!   alike (times, JSON).

mod assets;
mod document;
mod headers;

pub(crate) use assets::{router as assets, script_url, style_url};
pub(crate) use document::{document, json_pretty, time};
pub(crate) use headers::{same_origin, secure_headers};
