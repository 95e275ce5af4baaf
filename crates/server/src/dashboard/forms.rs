//! Reading what pages send: form bodies, and the filters of the token and run lists as the
//! pages put them in their URLs (`status` repeated, `tags` comma-separated, `period`, `from`,
//! `to`, `id`, `key`, `task`, and the cursors `after` and `before`).

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use waitpoint_engine::{ListPage, ListRuns, ListTokens};
use waitpoint_types::time::parse_duration;
use waitpoint_types::{RunStatus, Timestamp, WaitpointStatus};

use super::layout;
use crate::body::{self, Length};

/// Rows on a page of a list.
pub(crate) const PAGE_SIZE: usize = 50;
/// The periods the lists offer, as Trigger.dev's dashboard does.
pub(crate) const PERIODS: [&str; 4] = ["1h", "1d", "7d", "30d"];

/// The fields of a form or a query string, in order (names may repeat).
#[derive(Debug, Clone, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// Parses `application/x-www-form-urlencoded` text.
    pub(crate) fn parse(text: &[u8]) -> Self {
        Self(form_urlencoded::parse(text).map(|(name, value)| (name.into_owned(), value.into_owned())).collect())
    }

    /// The first value of `name`, unless blank.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
    }

    /// Every non-blank value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(n, v)| n == name && !v.trim().is_empty()).map(|(_, v)| v.as_str()).collect()
    }

    /// Every field, in order.
    pub(crate) fn fields(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Reads a form body of at most `limit` bytes.
pub(crate) async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Form, Response> {
    let bytes = body::read(headers, body, limit, Length::Optional)
        .await
        .map_err(|error| layout::message_page(error.status(), "The form could not be read", error.message()))?;
    Ok(Form::parse(&bytes))
}

/// A date from a filter: ISO 8601, or what a `datetime-local` input sends (taken as UTC).
fn date(name: &str, text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    let completed = match text.len() {
        16 => format!("{text}:00Z"),
        19 => format!("{text}Z"),
        _ => text.to_owned(),
    };
    Timestamp::parse_iso8601(&completed)
        .ok_or_else(|| format!("{name} {text:?} is not a date such as 2026-01-31T12:00"))
}

/// The creation filters and cursors both lists share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Common {
    pub(crate) tags: Vec<String>,
    pub(crate) period: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) after: Option<String>,
    pub(crate) before: Option<String>,
}

impl Common {
    fn read(form: &Form) -> Self {
        let text = |name| form.get(name).map(str::to_owned);
        Self {
            tags: form
                .get("tags")
                .map(|tags| tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            period: text("period").filter(|p| PERIODS.contains(&p.as_str())),
            from: text("from"),
            to: text("to"),
            after: text("after"),
            before: text("before"),
        }
    }

    fn page(&self) -> Result<ListPage, String> {
        let period = self.period.as_deref().map(parse_duration).transpose().map_err(|e| e.to_string())?;
        Ok(ListPage {
            page_size: Some(PAGE_SIZE),
            after: self.after.clone(),
            before: self.before.clone(),
            period,
            from: self.from.as_deref().map(|t| date("from", t)).transpose()?,
            to: self.to.as_deref().map(|t| date("to", t)).transpose()?,
        })
    }

    fn pairs(&self, out: &mut Vec<(&'static str, String)>) {
        if !self.tags.is_empty() {
            out.push(("tags", self.tags.join(",")));
        }
        for (name, value) in [("period", &self.period), ("from", &self.from), ("to", &self.to)] {
            if let Some(value) = value {
                out.push((name, value.clone()));
            }
        }
    }
}

/// The token list's filters, as the page's URL holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TokenFilters {
    pub(crate) statuses: Vec<WaitpointStatus>,
    pub(crate) id: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) common: Common,
}

impl TokenFilters {
    /// Reads the filters; unknown statuses and periods are dropped.
    pub(crate) fn read(form: &Form) -> Self {
        Self {
            statuses: form.all("status").into_iter().filter_map(WaitpointStatus::parse).collect(),
            id: form.get("id").map(|id| id.trim().to_owned()),
            key: form.get("key").map(str::to_owned),
            common: Common::read(form),
        }
    }

    /// The engine's list request for these filters.
    pub(crate) fn list(&self) -> Result<ListTokens, String> {
        Ok(ListTokens {
            statuses: self.statuses.clone(),
            idempotency_key: self.key.clone(),
            tags: self.common.tags.clone(),
            page: self.common.page()?,
        })
    }

    /// The filters as name–value pairs (without cursors), for links and hidden fields.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> =
            self.statuses.iter().map(|s| ("status", s.as_str().to_owned())).collect();
        self.common.pairs(&mut out);
        if let Some(id) = &self.id {
            out.push(("id", id.clone()));
        }
        if let Some(key) = &self.key {
            out.push(("key", key.clone()));
        }
        out
    }
}

/// The run list's filters, as the page's URL holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunFilters {
    pub(crate) statuses: Vec<RunStatus>,
    pub(crate) task: Option<String>,
    pub(crate) common: Common,
}

impl RunFilters {
    /// Reads the filters; unknown statuses and periods are dropped.
    pub(crate) fn read(form: &Form) -> Self {
        Self {
            statuses: form.all("status").into_iter().filter_map(RunStatus::parse).collect(),
            task: form.get("task").map(|t| t.trim().to_owned()),
            common: Common::read(form),
        }
    }

    /// The engine's list request for these filters.
    pub(crate) fn list(&self) -> Result<ListRuns, String> {
        Ok(ListRuns {
            statuses: self.statuses.clone(),
            task_ids: self.task.iter().cloned().collect(),
            idempotency_key: None,
            tags: self.common.tags.clone(),
            page: self.common.page()?,
        })
    }

    /// The filters as name–value pairs (without cursors), for links.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> =
            self.statuses.iter().map(|s| ("status", s.as_str().to_owned())).collect();
        if let Some(task) = &self.task {
            out.push(("task", task.clone()));
        }
        self.common.pairs(&mut out);
        out
    }
}

/// `path?pairs`, encoded.
pub(crate) fn link(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    format!("{path}?{}", query.finish())
}

/// A 400 page for a filter that cannot be read.
pub(crate) fn bad_filter(message: &str) -> Response {
    layout::message_page(StatusCode::BAD_REQUEST, "That filter does not work", message)
}
