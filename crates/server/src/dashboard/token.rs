//! A token's page: every field, its output as formatted JSON, a timeline, its callback and
//! approval page URLs, the runs waiting on it or released by it; while it waits, a JSON editor
//! to complete it and a button to time it out, both done through the engine as any completion
//! and recorded as done from the dashboard.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use waitpoint_engine::{MAX_REJECTION_MESSAGE, Resolution, Session, checked_rejection};
use waitpoint_types::{CompletedVia, Output, RunState, Waitpoint, WaitpointState, WaitpointStatus};

use super::Dashboard;
use super::forms::{self, Form};
use super::layout::{self, Section};
use super::session::{self, CSRF_FIELD, Signed};
use crate::body::OUTPUT_LIMIT;
use crate::pages::{json_pretty, time};
use crate::strict_json;

/// Runs listed on a token's page.
const WAITERS: usize = 50;
/// A form body may be this much larger than the output it carries (URL encoding).
const FORM_OVERHEAD: usize = 3;

/// `GET /tokens/{id}`.
pub(crate) async fn page(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Response {
    render(&dashboard, &session, &id, None, StatusCode::OK).await
}

/// The page, with the editor showing `draft` and its problem when a completion was refused.
async fn render(
    dashboard: &Dashboard,
    session: &Session,
    id: &str,
    draft: Option<(&str, &str)>,
    status: StatusCode,
) -> Response {
    let engine = &dashboard.engine;
    let environment = &session.environment;
    let token = match engine.get_token(environment, id).await {
        Ok(token) => token,
        Err(error) => return layout::engine_error(error),
    };
    let waiters = match engine.token_waiters(environment, id, WAITERS).await {
        Ok(runs) => runs,
        Err(error) => return layout::engine_error(error),
    };
    let public = token.id.public();
    let callback = engine.callback_url(environment, &token.id);
    let approval = engine.approval_url(environment, &token.id);
    let mut tags = token.tags.clone();
    tags.sort();
    let content = html! {
        section #fields data-refresh="always" {
            dl.fields {
                dt { "ID" } dd { (layout::copyable(&public)) }
                dt { "Status" } dd { (layout::status(token.status().as_str())) }
                dt { "Created" } dd { (time(token.created_at)) }
                dt { "Times out" } dd { @if let Some(at) = token.timeout_at { (time(at)) } @else { "never" } }
                @if let Some(heartbeat) = token.heartbeat {
                    dt { "Heartbeat" } dd {
                        "every " (heartbeat.every.as_secs()) "s; "
                        @if token.status() == WaitpointStatus::Waiting { "next due by " } @else { "last due by " }
                        (time(heartbeat.deadline))
                    }
                }
                dt { "Completed" } dd { @if let Some(at) = token.completed_at() { (time(at)) } @else { "—" } }
                dt { "Completed via" } dd { (token.completed_via_name().unwrap_or("—")) }
                dt { "Idempotency key" } dd {
                    @if let Some(key) = token.user_idempotency_key() {
                        code { (key) }
                        @if token.idempotency_key.is_none() { " (inactive)" }
                        @if let Some(expires) = token.idempotency_key_expires_at { " · expires " (time(expires)) }
                    } @else { "—" }
                }
                dt { "Tags" } dd {
                    @for tag in &tags { a.tag href=(forms::link("/tokens", &[("tags", tag.clone())])) { (tag) } " " }
                    @if tags.is_empty() { "—" }
                }
                dt { "Callback URL" } dd { (layout::copyable(&callback)) }
                dt { "Approval page" } dd { (layout::copyable(&approval)) " " a href=(approval) rel="noreferrer" { "open" } }
                @if let Some(title) = token.approval.as_ref().and_then(|a| a.title.as_deref()) {
                    dt { "Approval asks" } dd { (title) }
                }
            }
        }
        section #output data-refresh="always" {
            h2 { "Output" }
            (output(&token))
        }
        section #timeline data-refresh="always" {
            h2 { "Timeline" }
            ol.timeline {
                li { (time(token.created_at)) " — created" }
                @match &token.state {
                    WaitpointState::Waiting => li.pending { "waiting" },
                    WaitpointState::Completed { at, via, .. } => li { (time(*at)) " — completed " (how(*via)) },
                    WaitpointState::TimedOut { at, via: None } => li { (time(*at)) " — timed out: its deadline passed" },
                    WaitpointState::TimedOut { at, via: Some(via) } => li { (time(*at)) " — timed out " (how(*via)) },
                    WaitpointState::Rejected { at, via, error } => li {
                        (time(*at)) " — rejected " (how(*via)) ": " (error.message) " (" code { (error.code) } ")"
                    },
                }
            }
        }
        section #actions data-refresh="state" data-state=(token.status().as_str()) {
            @if token.status() == WaitpointStatus::Waiting {
                h2 { "Complete, reject or time out" }
                (actions(session, &public, draft))
            }
        }
        section #runs data-refresh="always" {
            h2 { "Runs" }
            @if waiters.is_empty() {
                p.empty { "No run waited on this token." }
            } @else {
                table {
                    thead { tr { th { "Run" } th { "Task" } th { "Status" } th { "" } } }
                    tbody { @for run in &waiters {
                        tr {
                            td { a href={ "/runs/" (run.id.public()) } { code { (run.id.public()) } } }
                            td { (run.task_id) }
                            td { (layout::status(run.status(engine.clock().now()).as_str())) }
                            td { @if matches!(run.state, RunState::Waiting { .. }) && token.status() == WaitpointStatus::Waiting {
                                    "waiting on it"
                                } @else { "waited on it" } }
                        }
                    } }
                }
            }
        }
    };
    let mut response = layout::page(session, Section::Tokens, &public, &format!("token:{public}"), content);
    *response.status_mut() = status;
    response
}

/// How a completion was made, for the timeline.
fn how(via: CompletedVia) -> &'static str {
    match via {
        CompletedVia::SecretKey => "with the secret key",
        CompletedVia::PublicAccessToken => "with its public access token",
        CompletedVia::CallbackUrl => "by a POST to its callback URL",
        CompletedVia::Datetime => "when its time came",
        CompletedVia::Dashboard => "from the dashboard",
        CompletedVia::ApprovalPage => "on its approval page",
        CompletedVia::MissedHeartbeat => "when no heartbeat came in time",
    }
}

/// The output as formatted JSON (or text).
fn output(token: &Waitpoint) -> Markup {
    match token.output() {
        None if token.status() == WaitpointStatus::Waiting => html! { p.empty { "None yet." } },
        None => html! { p.empty { "Completed without output." } },
        Some(output) => {
            let value = output.decode();
            let text = match &value {
                serde_json::Value::String(text) if output.data_type != waitpoint_types::waitpoint::SUPERJSON => {
                    text.clone()
                }
                other => json_pretty(other),
            };
            html! { pre.json { code { (text) } } }
        }
    }
}

fn actions(session: &Session, public: &str, draft: Option<(&str, &str)>) -> Markup {
    html! {
        form.complete method="post" action={ "/tokens/" (public) "/complete" } {
            (layout::csrf(session))
            label for="output" { "Output (JSON; empty completes without output)" }
            @if let Some((_, problem)) = draft { p.error role="alert" { (problem) } }
            textarea #output name="output" rows="8" spellcheck="false" {
                (draft.map_or("{\n  \"status\": \"approved\"\n}", |(text, _)| text))
            }
            button type="submit" { "Complete" }
        }
        form.reject method="post" action={ "/tokens/" (public) "/reject" } {
            (layout::csrf(session))
            label for="reason" { "Reason (what a run waiting on it gets as its error)" }
            input #reason name="reason" type="text" required maxlength=(MAX_REJECTION_MESSAGE) placeholder="Declined";
            button.danger type="submit" { "Reject" }
        }
        form.timeout method="post" action={ "/tokens/" (public) "/timeout" } {
            (layout::csrf(session))
            button.danger type="submit" { "Time out now" }
        }
    }
}

/// The form of a POST, checked (CSRF, origin).
async fn checked_form(session: &Session, headers: &HeaderMap, body: Body, limit: usize) -> Result<Form, Response> {
    let form = forms::read(headers, body, limit).await?;
    match session::form_refusal(session, headers, form.get(CSRF_FIELD)) {
        Some(refusal) => Err(refusal),
        None => Ok(form),
    }
}

/// `POST /tokens/{id}/complete`: completes with the JSON typed in the editor. JSON that does not
/// parse, or is too large, shows the page again with the problem and the text as typed.
pub(crate) async fn complete(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match checked_form(&session, &headers, body, OUTPUT_LIMIT * FORM_OVERHEAD).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let text = form.fields().iter().find(|(name, _)| name == "output").map_or("", |(_, v)| v.as_str());
    let output = match parse_output(text) {
        Ok(output) => output,
        Err(problem) => {
            return render(&dashboard, &session, &id, Some((text, &problem)), StatusCode::BAD_REQUEST).await;
        }
    };
    match dashboard.engine.resolve_token(&session.environment, &id, &Resolution::Complete(output)).await {
        Ok(token) => Redirect::to(&format!("/tokens/{}", token.id.public())).into_response(),
        Err(error) => layout::engine_error(error),
    }
}

/// The output typed in an editor: JSON within the size limit, as the API takes it; blank for
/// none.
pub(crate) fn parse_output(text: &str) -> Result<Option<Output>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    if text.len() > OUTPUT_LIMIT {
        return Err(format!("The output is {} bytes; the limit is {OUTPUT_LIMIT}.", text.len()));
    }
    strict_json::check(text.as_bytes()).map_err(|error| format!("That is not JSON the API would take: {error}."))?;
    Ok(Some(Output::from_json_text(text)))
}

/// `POST /tokens/{id}/reject`: rejects the token with the reason typed (its error's message).
pub(crate) async fn reject(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match checked_form(&session, &headers, body, MAX_REJECTION_MESSAGE * FORM_OVERHEAD).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let reason = form.fields().iter().find(|(name, _)| name == "reason").map_or("", |(_, v)| v.trim());
    let error = match checked_rejection(reason.to_owned(), None, None) {
        Ok(error) => error,
        Err(error) => return layout::engine_error(error),
    };
    match dashboard.engine.resolve_token(&session.environment, &id, &Resolution::Reject(error)).await {
        Ok(token) => Redirect::to(&format!("/tokens/{}", token.id.public())).into_response(),
        Err(error) => layout::engine_error(error),
    }
}

/// `POST /tokens/{id}/timeout`: times the token out now.
pub(crate) async fn time_out(
    State(dashboard): State<Dashboard>,
    Signed(session): Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(response) = checked_form(&session, &headers, body, 16 * 1024).await {
        return response;
    }
    match dashboard.engine.resolve_token(&session.environment, &id, &Resolution::TimeOut).await {
        Ok(token) => Redirect::to(&format!("/tokens/{}", token.id.public())).into_response(),
        Err(error) => layout::engine_error(error),
    }
}
