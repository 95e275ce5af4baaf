//! Bulk actions on tokens: on the rows selected, or on everything the filter matches. By a
//! filter, the page first shows how many waiting tokens match and the newest of them; the
//! action then applies to those, and never to a token created after the count was shown.
//! Either way the page reports what happened to each token.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use waitpoint_engine::{BulkItem, BulkOutcome, BulkTarget, Resolution};
use waitpoint_types::time::parse_duration;

use super::Dashboard;
use super::forms::{self, Form, TokenFilters};
use super::layout::{self, Section};
use super::session::{self, CSRF_FIELD, Signed};
use super::token::parse_output;
use crate::body::OUTPUT_LIMIT;
use crate::pages::time;

/// Results listed one by one on the page (all are counted).
const LISTED: usize = 1_000;

fn resolution_name(action: &str) -> Option<(&'static str, bool)> {
    match action {
        "complete" | "complete-selected" => Some(("Complete", true)),
        "timeout" | "timeout-selected" => Some(("Time out", false)),
        _ => None,
    }
}

/// The filters of a bulk action by filter: a `period` becomes the `from` it means now, so the
/// action covers what the count covered.
fn pinned(mut filters: TokenFilters, dashboard: &Dashboard) -> TokenFilters {
    if let Some(period) = filters.common.period.take().and_then(|p| parse_duration(&p).ok()) {
        let from = dashboard.engine.clock().now().saturating_sub(period);
        let given = filters.common.from.as_deref().and_then(waitpoint_types::Timestamp::parse_iso8601);
        filters.common.from = Some(given.map_or(from, |given| given.max(from)).to_string());
    }
    filters.common.after = None;
    filters.common.before = None;
    filters.id = None;
    filters
}

/// `GET /tokens/bulk?…&action=complete|timeout`: the count, and the form that applies the action.
pub(crate) async fn confirm(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Form::parse(raw.unwrap_or_default().as_bytes());
    let action = query.get("action").unwrap_or_default().to_owned();
    let Some((verb, completes)) = resolution_name(&action) else {
        return forms::bad_filter("Choose what to do: complete or time out.");
    };
    let filters = pinned(TokenFilters::read(&query), &dashboard);
    let request = match filters.list() {
        Ok(request) => request,
        Err(message) => return forms::bad_filter(&message),
    };
    let preview = match dashboard.engine.preview_bulk(&session.environment, &request).await {
        Ok(preview) => preview,
        Err(error) => return layout::engine_error(error),
    };
    let back = forms::link("/tokens", &filters.pairs());
    let content = html! {
        section.confirm {
            @match &preview.through {
                None => { p { "No waiting token matches this filter now." } p { a href=(back) { "Back to the tokens" } } }
                Some(through) => {
                    p.count { strong #count { (preview.count) } " waiting "
                        (if preview.count == 1 { "token matches" } else { "tokens match" }) " this filter now." }
                    p { (verb) " applies to them, and to none created after "
                        code { (through.public()) } " (the newest of them, created "
                        @if let Some(at) = through.created_at() { (time(at)) } ")." }
                    form method="post" action="/tokens/bulk" {
                        (layout::csrf(&session))
                        @for (name, value) in filters.pairs() { input type="hidden" name=(name) value=(value); }
                        input type="hidden" name="through" value=(through.public());
                        input type="hidden" name="action" value=(action);
                        @if completes {
                            label for="output" { "Output for every one of them (JSON; empty for none)" }
                            textarea #output name="output" rows="4" spellcheck="false" {}
                        }
                        div.buttons {
                            button.danger type="submit" { (verb) " " (preview.count) " tokens" }
                            a href=(back) { "Cancel" }
                        }
                    }
                }
            }
        }
    };
    layout::page(&session, Section::Tokens, &format!("{verb} every matching token"), "bulk", content)
}

/// `POST /tokens/bulk`: the action, on the rows selected (`*-selected`) or on what the filter
/// matches up to `through`; then what happened to each token.
pub(crate) async fn apply(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match forms::read(&headers, body, OUTPUT_LIMIT * 3).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if let Some(response) = session::form_refusal(&session, &headers, form.get(CSRF_FIELD)) {
        return response;
    }
    let action = form.get("action").unwrap_or_default().to_owned();
    let Some((verb, completes)) = resolution_name(&action) else {
        return forms::bad_filter("Choose what to do: complete or time out.");
    };
    let resolution = if completes {
        let text = form.fields().iter().find(|(n, _)| n == "output").map_or("", |(_, v)| v.as_str());
        match parse_output(text) {
            Ok(output) => Resolution::Complete(output),
            Err(problem) => {
                return layout::message_page(StatusCode::BAD_REQUEST, "That output does not work", &problem);
            }
        }
    } else {
        Resolution::TimeOut
    };
    let filters = TokenFilters::read(&form);
    let target = if action.ends_with("-selected") {
        let ids: Vec<String> = form.all("id").into_iter().map(str::to_owned).collect();
        if ids.is_empty() {
            return layout::message_page(
                StatusCode::BAD_REQUEST,
                "No token selected",
                "Tick the rows to act on first.",
            );
        }
        BulkTarget::Ids(ids)
    } else {
        let Some(through) = form.get("through") else {
            return forms::bad_filter("The count was not confirmed: start again from the token list.");
        };
        let filter = match filters.list() {
            Ok(filter) => filter,
            Err(message) => return forms::bad_filter(&message),
        };
        BulkTarget::Filter { filter, through: through.to_owned() }
    };
    let items = match dashboard.engine.resolve_tokens(&session.environment, &target, &resolution).await {
        Ok(items) => items,
        Err(error) => return layout::engine_error(error),
    };
    let content = report(&items, &forms::link("/tokens", &filters.pairs()));
    layout::page(&session, Section::Tokens, &format!("{verb}: done"), "bulk", content)
}

fn report(items: &[BulkItem], back: &str) -> Markup {
    let count = |pick: fn(&BulkOutcome) -> bool| items.iter().filter(|item| pick(&item.outcome)).count();
    let finished = count(|o| matches!(o, BulkOutcome::Finished(_)));
    let already = count(|o| matches!(o, BulkOutcome::AlreadyFinished(_)));
    let missing = count(|o| matches!(o, BulkOutcome::NotFound));
    let failed = count(|o| matches!(o, BulkOutcome::Failed(_)));
    html! {
        p.summary #summary {
            strong { (finished) } " done · " (already) " had finished already · " (missing) " not found · "
            (failed) " failed"
        }
        @if items.len() > LISTED { p { "The first " (LISTED) " of " (items.len()) " tokens:" } }
        table.results {
            thead { tr { th { "Token" } th { "Result" } } }
            tbody { @for item in items.iter().take(LISTED) {
                tr {
                    td { @match &item.outcome {
                        BulkOutcome::NotFound => code { (item.id) },
                        _ => a href={ "/tokens/" (item.id) } { code { (item.id) } },
                    } }
                    td { @match &item.outcome {
                        BulkOutcome::Finished(token) => { "done: " (layout::status(token.status().as_str())) },
                        BulkOutcome::AlreadyFinished(token) => { "had finished: " (layout::status(token.status().as_str())) },
                        BulkOutcome::NotFound => "not found",
                        BulkOutcome::Failed(problem) => { "failed: " (problem) },
                    } }
                }
            } }
        }
        p { a href=(back) { "Back to the tokens" } }
    }
}
