//! The token list: Trigger.dev's filters (statuses, tags with suggestions, created period or
//! from/to, token id, idempotency key), newest first in cursor pages, and the bulk actions on
//! the rows selected or on everything the filter matches.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use waitpoint_engine::{Session, TokenPage};
use waitpoint_types::{Waitpoint, WaitpointStatus};

use super::Dashboard;
use super::forms::{self, Form, PERIODS, TokenFilters};
use super::layout::{self, Section};
use super::session::Signed;
use crate::pages::time;

/// Tags suggested at once (the script asks for more as one types).
const SUGGESTED_TAGS: usize = 50;

/// `GET /tokens`.
pub(crate) async fn page(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Response {
    let engine = &dashboard.engine;
    let query = Form::parse(raw.unwrap_or_default().as_bytes());
    let filters = TokenFilters::read(&query);
    let request = match filters.list() {
        Ok(request) => request,
        Err(message) => return forms::bad_filter(&message),
    };
    let environment = &session.environment;
    let page = match &filters.id {
        Some(id) => match engine.get_token(environment, id).await {
            Ok(token) => TokenPage { tokens: vec![token], next: None, previous: None },
            Err(_) => TokenPage { tokens: Vec::new(), next: None, previous: None },
        },
        None => match engine.list_tokens(environment, &request).await {
            Ok(page) => page,
            Err(error) => return layout::engine_error(error),
        },
    };
    let tags = engine.token_tags(environment, "", SUGGESTED_TAGS).await.unwrap_or_default();
    let content = html! {
        (filter_form(&filters, &tags))
        (table(&session, &filters, &page))
    };
    layout::page(&session, Section::Tokens, "Tokens", "tokens", content)
}

/// The filters, as a form that reloads the page with them in its URL.
fn filter_form(filters: &TokenFilters, tags: &[String]) -> Markup {
    html! {
        form.filters method="get" action="/tokens" {
            fieldset.statuses {
                legend { "Status" }
                @for status in WaitpointStatus::ALL {
                    label.check {
                        input type="checkbox" name="status" value=(status.as_str())
                            checked[filters.statuses.contains(&status)];
                        (status.as_str())
                    }
                }
            }
            label { "Tags" input type="text" name="tags" list="tag-suggestions" data-tag-input
                value=(filters.common.tags.join(",")) placeholder="user:1,urgent" autocomplete="off"; }
            datalist #tag-suggestions { @for tag in tags { option value=(tag) {} } }
            label { "Created" select name="period" {
                option value="" { "any time" }
                @for period in PERIODS {
                    option value=(period) selected[filters.common.period.as_deref() == Some(period)] { "last " (period) }
                }
            } }
            label { "From (UTC)" input type="datetime-local" name="from" step="1"
                value=[filters.common.from.as_deref()]; }
            label { "To (UTC)" input type="datetime-local" name="to" step="1" value=[filters.common.to.as_deref()]; }
            label { "Token id" input type="text" name="id" value=[filters.id.as_deref()] placeholder="waitpoint_…"
                spellcheck="false"; }
            label { "Idempotency key" input type="text" name="key" value=[filters.key.as_deref()] spellcheck="false"; }
            div.buttons {
                button type="submit" { "Filter" }
                a href="/tokens" { "Clear" }
            }
        }
    }
}

/// The rows, with their selection boxes and the bulk actions, and the links to other pages.
fn table(session: &Session, filters: &TokenFilters, page: &TokenPage) -> Markup {
    let pairs = filters.pairs();
    let bulk = |action: &str| {
        let mut pairs = pairs.clone();
        pairs.push(("action", action.to_owned()));
        forms::link("/tokens/bulk", &pairs)
    };
    let cursor = |name: &str, value: &str| {
        let mut pairs = pairs.clone();
        pairs.push((if name == "after" { "after" } else { "before" }, value.to_owned()));
        forms::link("/tokens", &pairs)
    };
    html! {
        form #rows method="post" action="/tokens/bulk" data-refresh="always" {
            (layout::csrf(session))
            @for (name, value) in &pairs { input type="hidden" name=(name) value=(value); }
            div.bulk {
                span { "Selected rows:" }
                button type="submit" name="action" value="complete-selected" { "Complete" }
                button type="submit" name="action" value="timeout-selected" { "Time out" }
                label.output { "with output (JSON, optional)"
                    textarea name="output" rows="1" spellcheck="false" placeholder="{\"status\":\"approved\"}" {} }
                span.all { "Everything matching the filter: "
                    a href=(bulk("complete")) { "complete…" } " · " a href=(bulk("timeout")) { "time out…" } }
            }
            @if page.tokens.is_empty() {
                p.empty { "No token matches." }
            } @else {
                div.scroll { table.tokens {
                    thead { tr {
                        th { input type="checkbox" data-select-all aria-label="Select every row"; }
                        th { "Created" } th { "ID" } th { "Status" } th { "Completed" } th { "Via" }
                        th { "Idempotency key" } th { "Tags" } th { "Timeout" }
                    } }
                    tbody {
                        @for token in &page.tokens { (row(token)) }
                    }
                } }
            }
            nav.pages aria-label="Pages" {
                @if let Some(previous) = &page.previous { a rel="prev" href=(cursor("before", previous)) { "← Newer" } }
                @if let Some(next) = &page.next { a rel="next" href=(cursor("after", next)) { "Older →" } }
            }
        }
    }
}

fn row(token: &Waitpoint) -> Markup {
    let id = token.id.public();
    let mut tags = token.tags.clone();
    tags.sort();
    html! {
        tr data-id=(id) {
            td { input type="checkbox" name="id" value=(id) aria-label={ "Select " (id) }; }
            td { (time(token.created_at)) }
            td { a href={ "/tokens/" (id) } { code { (id) } }
                 button.copy type="button" data-copy=(id) aria-label={ "Copy " (id) } { "Copy" } }
            td { (layout::status(token.status().as_str())) }
            td { @if let Some(at) = token.completed_at() { (time(at)) } }
            td { @if let Some(via) = token.completed_via_name() { (via) } }
            td { @if let Some(key) = token.user_idempotency_key() {
                    code { (key) }
                    @if let Some(expires) = token.idempotency_key_expires_at { br; small { "expires " (time(expires)) } }
                } }
            td { @for tag in &tags {
                    a.tag href=(forms::link("/tokens", &[("tags", tag.clone())])) { (tag) } " "
                } }
            td { @if let Some(at) = token.timeout_at { (time(at)) } }
        }
    }
}

/// `GET /tokens/tags?prefix=…`: tags of the session's environment that start with the prefix,
/// as a JSON array (for the tag field's suggestions).
pub(crate) async fn tags(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Form::parse(raw.unwrap_or_default().as_bytes());
    let prefix = query.get("prefix").unwrap_or_default();
    match dashboard.engine.token_tags(&session.environment, prefix, SUGGESTED_TAGS).await {
        Ok(tags) => Json(tags).into_response(),
        Err(error) => layout::engine_error(error),
    }
}
