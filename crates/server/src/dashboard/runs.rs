//! The run list: filters (status, task, tags, created period or from/to), newest first in
//! cursor pages.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::html;
use waitpoint_types::RunStatus;

use super::Dashboard;
use super::forms::{self, Form, PERIODS, RunFilters};
use super::layout::{self, Section};
use super::session::Signed;
use crate::pages::time;

/// `GET /runs`.
pub(crate) async fn page(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    RawQuery(raw): RawQuery,
) -> Response {
    let engine = &dashboard.engine;
    let query = Form::parse(raw.unwrap_or_default().as_bytes());
    let filters = RunFilters::read(&query);
    let request = match filters.list() {
        Ok(request) => request,
        Err(message) => return forms::bad_filter(&message),
    };
    let page = match engine.list_runs(&session.environment, &request).await {
        Ok(page) => page,
        Err(error) => return layout::engine_error(error),
    };
    let now = engine.clock().now();
    let pairs = filters.pairs();
    let cursor = |name: &'static str, value: &str| {
        let mut pairs = pairs.clone();
        pairs.push((name, value.to_owned()));
        forms::link("/runs", &pairs)
    };
    let content = html! {
        form.filters method="get" action="/runs" {
            fieldset.statuses {
                legend { "Status" }
                @for status in RunStatus::ALL {
                    label.check {
                        input type="checkbox" name="status" value=(status.as_str()) checked[filters.statuses.contains(&status)];
                        (status.as_str())
                    }
                }
            }
            label { "Task" input type="text" name="task" value=[filters.task.as_deref()] spellcheck="false"; }
            label { "Tags" input type="text" name="tags" value=(filters.common.tags.join(",")) autocomplete="off"; }
            label { "Created" select name="period" {
                option value="" { "any time" }
                @for period in PERIODS {
                    option value=(period) selected[filters.common.period.as_deref() == Some(period)] { "last " (period) }
                }
            } }
            label { "From (UTC)" input type="datetime-local" name="from" step="1" value=[filters.common.from.as_deref()]; }
            label { "To (UTC)" input type="datetime-local" name="to" step="1" value=[filters.common.to.as_deref()]; }
            div.buttons { button type="submit" { "Filter" } a href="/runs" { "Clear" } }
        }
        section #rows data-refresh="always" {
            @if page.runs.is_empty() {
                p.empty { "No run matches." }
            } @else {
                div.scroll { table.runs {
                    thead { tr { th { "Created" } th { "ID" } th { "Task" } th { "Status" } th { "Attempt" }
                        th { "Tags" } th { "Updated" } } }
                    tbody { @for run in &page.runs {
                        tr data-id=(run.id.public()) {
                            td { (time(run.created_at)) }
                            td { a href={ "/runs/" (run.id.public()) } { code { (run.id.public()) } } }
                            td { a href=(forms::link("/runs", &[("task", run.task_id.clone())])) { (run.task_id) } }
                            td { (layout::status(run.status(now).as_str())) }
                            td { (run.attempt) "/" (run.max_attempts) }
                            td { @for tag in &run.tags {
                                a.tag href=(forms::link("/runs", &[("tags", tag.clone())])) { (tag) } " "
                            } }
                            td { (time(run.updated_at)) }
                        }
                    } }
                } }
            }
            nav.pages aria-label="Pages" {
                @if let Some(previous) = &page.previous { a rel="prev" href=(cursor("before", previous)) { "← Newer" } }
                @if let Some(next) = &page.next { a rel="next" href=(cursor("after", next)) { "Older →" } }
            }
        }
    };
    layout::page(&session, Section::Runs, "Runs", "runs", content)
}
