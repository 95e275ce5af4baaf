//! The document around every page, and the pieces every page formats alike. maud escapes
//! every value it is given; nothing here is written unescaped.

use maud::{DOCTYPE, Markup, html};
use waitpoint_types::Timestamp;

use super::{script_url, style_url};

/// A whole HTML document: `title`, then `body` (the body's own attributes are the page's).
pub(crate) fn document(title: &str, body_class: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · waitpoint" }
                link rel="stylesheet" href=(style_url());
                script src=(script_url()) defer {}
            }
            body class=(body_class) { (body) }
        }
    }
}

/// A time, in UTC to the second, with the exact instant for machines.
pub(crate) fn time(at: Timestamp) -> Markup {
    let iso = at.to_string();
    let shown = format!("{} {} UTC", &iso[..10], &iso[11..19]);
    html! { time datetime=(iso) { (shown) } }
}

/// A JSON value laid out for reading.
pub(crate) fn json_pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
