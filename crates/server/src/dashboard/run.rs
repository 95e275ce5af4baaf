//! A run's page: payload, output or error, attempts, what it waits on, and its journal as a
//! timeline (each step, token and wait: its name, its result); cancel, and skip a duration or
//! date wait.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use waitpoint_types::run::wait_set_name;
use waitpoint_types::{JournalEntry, JournalKind, RunState, WaitpointKind, WaitpointStatus};

use super::Dashboard;
use super::forms;
use super::layout::{self, Section};
use super::session::{self, CSRF_FIELD, Signed};
use crate::pages::{json_pretty, time};

/// JSON text as formatted JSON (or as it is, when it is not JSON).
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text).map_or_else(|_| text.to_owned(), |value| json_pretty(&value))
}

/// `GET /runs/{id}`.
pub(crate) async fn page(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Response {
    let engine = &dashboard.engine;
    let environment = &session.environment;
    let view = match engine.get_run(environment, &id).await {
        Ok(view) => view,
        Err(error) => return layout::engine_error(error),
    };
    let journal = match engine.run_journal(environment, &id).await {
        Ok(journal) => journal,
        Err(error) => return layout::engine_error(error),
    };
    let run = &view.run;
    let public = run.id.public();
    let now = engine.clock().now();
    let status = run.status(now);
    let content = html! {
        section #fields data-refresh="always" {
            dl.fields {
                dt { "ID" } dd { (layout::copyable(&public)) }
                dt { "Task" } dd { a href=(forms::link("/runs", &[("task", run.task_id.clone())])) { (run.task_id) } }
                dt { "Status" } dd { (layout::status(status.as_str())) }
                dt { "Attempt" } dd { (run.attempt) " of " (run.max_attempts) }
                dt { "Created" } dd { (time(run.created_at)) }
                dt { "Started" } dd { @if let Some(at) = run.started_at { (time(at)) } @else { "—" } }
                dt { "Updated" } dd { (time(run.updated_at)) }
                dt { "Finished" } dd { @if let Some(at) = run.finished_at() { (time(at)) } @else { "—" } }
                dt { "Tags" } dd { @for tag in &run.tags { a.tag href=(forms::link("/runs", &[("tags", tag.clone())])) { (tag) } " " }
                    @if run.tags.is_empty() { "—" } }
                @if let Some(key) = run.user_idempotency_key() { dt { "Idempotency key" } dd { code { (key) } } }
                @if let Some((worker, seen)) = &view.held_by {
                    dt { "Worker" } dd { code { (worker.public()) }
                        @if let Some(seen) = seen { " · last seen " (time(*seen)) } }
                }
                @if let RunState::Waiting { needed, .. } = run.state {
                    dt { "Waits on" } dd {
                        @if view.waiting_on.len() > 1 {
                            p { (wait_set_name(needed, view.waiting_on.len())) " of:" }
                        }
                        ul.waits { @for waitpoint in &view.waiting_on {
                            li {
                                @if waitpoint.kind == WaitpointKind::Manual {
                                    a href={ "/tokens/" (waitpoint.id.public()) } { code { (waitpoint.id.public()) } }
                                } @else {
                                    "a point in time"
                                }
                                @if let Some(at) = waitpoint.timeout_at { " · until " (time(at)) }
                                @if waitpoint.status() != WaitpointStatus::Waiting {
                                    " · " (layout::status(waitpoint.status().as_str()))
                                }
                            }
                        } }
                    }
                }
                @if let Some(hint) = &view.hint { dt { "Note" } dd.hint { (hint) } }
            }
        }
        section #actions data-refresh="state" data-state=(status.as_str()) {
            @if !status.is_final() {
                form method="post" action={ "/runs/" (public) "/cancel" } {
                    (layout::csrf(&session))
                    button.danger type="submit" { "Cancel run" }
                }
            }
            @if view.waiting_on.iter().any(|w| w.kind == WaitpointKind::Datetime && w.status() == WaitpointStatus::Waiting) {
                form method="post" action={ "/runs/" (public) "/skip" } {
                    (layout::csrf(&session))
                    button type="submit" { "Skip the wait" }
                }
            }
        }
        section #data data-refresh="always" {
            h2 { "Payload" }
            pre.json { code { (pretty(&run.payload)) } }
            @match &run.state {
                RunState::Completed { output, .. } => { h2 { "Output" } pre.json { code { (pretty(output)) } } },
                RunState::Failed { error, .. } => { h2 { "Error" } p.error { strong { (error.name) } ": " (error.message) } },
                _ => {},
            }
        }
        section #journal data-refresh="always" {
            h2 { "Journal" }
            @if journal.is_empty() {
                p.empty { "Nothing recorded yet." }
            } @else {
                ol.timeline.journal { @for entry in &journal { (journal_entry(entry)) } }
            }
        }
    };
    layout::page(&session, Section::Runs, &public, &format!("run:{public}"), content)
}

fn journal_entry(entry: &JournalEntry) -> Markup {
    let kind = match entry.kind {
        JournalKind::Step => "step",
        JournalKind::CreateToken => "created a token",
        JournalKind::WaitToken => "waited on a token",
        JournalKind::WaitDatetime => "waited",
        JournalKind::WaitSet => "waited for",
        JournalKind::CompleteToken => "completed a token",
        JournalKind::RetrieveToken => "retrieved a token",
        JournalKind::ListTokens => "listed tokens",
        JournalKind::Now => "read the time",
        JournalKind::Random => "drew a random value",
    };
    let token = match entry.kind {
        JournalKind::WaitToken | JournalKind::CompleteToken | JournalKind::RetrieveToken => Some(entry.name.clone()),
        JournalKind::CreateToken => entry
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .and_then(|r| r["id"].as_str().map(str::to_owned)),
        _ => None,
    };
    html! {
        li {
            span.seq { "#" (entry.seq) } " " strong { (kind) } " "
            @if let Some(token) = &token {
                a href={ "/tokens/" (token) } { code { (token) } }
            } @else if !entry.name.is_empty() {
                code { (entry.name) }
            }
            @match &entry.result {
                None => { " " span.pending { "waiting…" } },
                Some(result) => { details { summary { "result" } pre.json { code { (pretty(result)) } } } },
            }
        }
    }
}

/// `POST /runs/{id}/cancel`.
pub(crate) async fn cancel(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(response) = checked(&session, &headers, body).await {
        return response;
    }
    match dashboard.engine.cancel_run(&session.environment, &id).await {
        Ok(run) => Redirect::to(&format!("/runs/{}", run.id.public())).into_response(),
        Err(error) => layout::engine_error(error),
    }
}

/// `POST /runs/{id}/skip`: completes the duration or date wait the run is suspended on.
pub(crate) async fn skip(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(response) = checked(&session, &headers, body).await {
        return response;
    }
    match dashboard.engine.skip_wait(&session.environment, &id).await {
        Ok(_) => Redirect::to(&format!("/runs/{id}")).into_response(),
        Err(error) => layout::engine_error(error),
    }
}

async fn checked(session: &waitpoint_engine::Session, headers: &HeaderMap, body: Body) -> Result<(), Response> {
    let form = forms::read(headers, body, 16 * 1024).await?;
    session::form_refusal(session, headers, form.get(CSRF_FIELD)).map_or(Ok(()), Err)
}
