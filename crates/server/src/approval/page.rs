//! An approval page: the title and description the token was created with, its form fields, a
//! comment, and Approve / Reject; once answered (or timed out), the outcome instead. Plain
//! HTML forms: keyboard and phone friendly, no script needed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use waitpoint_engine::{Engine, EngineError, VerifiedApproval};
use waitpoint_types::{Approval, ApprovalAnswer, ApprovalField, CompletedVia, FieldKind, WaitpointState};

use crate::error::ApiError;
use crate::pages::{document, time};

/// `GET /approve/{id}/{signature}`.
pub(crate) async fn show(State(engine): State<Engine>, Path((id, signature)): Path<(String, String)>) -> Response {
    match engine.verify_approval(&id, &signature).await {
        Ok(page) => render(&page, None, StatusCode::OK),
        Err(error) => failure(error),
    }
}

/// A refusal: a page saying so, without anything of the token.
pub(crate) fn failure(error: EngineError) -> Response {
    let api = ApiError::from(error);
    let body = html! { main.narrow.approval { h1 { "No approval here" } p { (api.message()) } } };
    (api.status(), Html(document("Approval", "approval", body).into_string())).into_response()
}

/// The page of `page`'s token; with `refused`, the answer as given and why it was refused.
pub(crate) fn render(
    page: &VerifiedApproval,
    refused: Option<(&ApprovalAnswer, &str)>,
    status: StatusCode,
) -> Response {
    let approval = page.approval();
    let token = &page.waitpoint;
    let title = approval.title.clone().unwrap_or_else(|| "Approval requested".to_owned());
    let body = html! {
        main.narrow.approval {
            h1 { (title) }
            @if let Some(description) = &approval.description {
                @for paragraph in description.split("\n\n") { p.description { (paragraph) } }
            }
            @match &token.state {
                WaitpointState::Waiting => {
                    @if let Some(deadline) = token.timeout_at { p.deadline { "Answer by " (time(deadline)) "." } }
                    (form(&approval, refused))
                },
                WaitpointState::Completed { at, via, output } => {
                    (outcome(output.as_ref().map(|o| o.decode()), *at, *via))
                },
                WaitpointState::TimedOut { at, .. } => {
                    section.outcome #outcome { h2 { "Expired" } p { "This request expired at " (time(*at)) "; it takes no answer." } }
                },
                WaitpointState::Rejected { at, .. } => {
                    section.outcome #outcome { h2 { "Withdrawn" } p { "This request was withdrawn at " (time(*at)) "; it takes no answer." } }
                },
            }
        }
    };
    (status, Html(document(&title, "approval", body).into_string())).into_response()
}

fn form(approval: &Approval, refused: Option<(&ApprovalAnswer, &str)>) -> Markup {
    let given = |name: &str| {
        refused.and_then(|(answer, _)| answer.values.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()))
    };
    html! {
        form.answer method="post" {
            @if let Some((_, problem)) = refused { p.error role="alert" { (problem) } }
            @for field in &approval.fields { (input(field, given(&field.name))) }
            label for="comment" { "Comment (optional)" }
            textarea #comment name="comment" rows="3" { (refused.map_or(String::new(), |(a, _)| a.comment.clone())) }
            div.decide {
                button.approve type="submit" name="decision" value="approve" { "Approve" }
                button.reject type="submit" name="decision" value="reject" { "Reject" }
            }
            p.hint { "The first answer counts; the page then shows it." }
        }
    }
}

fn input(field: &ApprovalField, given: Option<String>) -> Markup {
    let id = format!("field-{}", field.name);
    let label = html! { (field.label()) @if field.required && field.kind != FieldKind::Boolean { " *" } };
    let required = field.required && field.kind != FieldKind::Boolean;
    match field.kind {
        FieldKind::Text if field.multiline => html! {
            label for=(id) { (label) }
            textarea id=(id) name=(field.name) rows="4" required[required] { (given.unwrap_or_default()) }
        },
        FieldKind::Text => html! {
            label for=(id) { (label) }
            input id=(id) type="text" name=(field.name) value=[given] required[required];
        },
        FieldKind::Number => html! {
            label for=(id) { (label) }
            input id=(id) type="number" name=(field.name) value=[given] step="any" inputmode="decimal"
                min=[field.min.as_ref().map(ToString::to_string)] max=[field.max.as_ref().map(ToString::to_string)]
                required[required];
        },
        FieldKind::Choice => html! {
            label for=(id) { (label) }
            select id=(id) name=(field.name) required[required] {
                option value="" { "—" }
                @for option in &field.options {
                    option value=(option) selected[given.as_deref() == Some(option.as_str())] { (option) }
                }
            }
        },
        FieldKind::Boolean => html! {
            label.check for=(id) {
                input id=(id) type="checkbox" name=(field.name) value="on" checked[given.is_some()];
                (label)
            }
        },
    }
}

/// What the first answer was: the decision and comment of an approval page's output, or the
/// output of another completion.
fn outcome(output: Option<serde_json::Value>, at: waitpoint_types::Timestamp, via: CompletedVia) -> Markup {
    let decision = output.as_ref().and_then(|o| o.get("status")).and_then(|s| s.as_str()).map(str::to_owned);
    let comment = output.as_ref().and_then(|o| o.get("comment")).and_then(|c| c.as_str()).map(str::to_owned);
    let heading = match decision.as_deref() {
        Some("approved") => "Approved",
        Some("rejected") => "Rejected",
        _ => "Answered",
    };
    html! {
        section.outcome #outcome data-decision=[decision.as_deref()] {
            h2 { (heading) }
            p { "Answered " (time(at))
                @if via == CompletedVia::ApprovalPage { " on this page." } @else { " elsewhere." } }
            @if let Some(comment) = comment { blockquote { (comment) } }
            p.hint { "The first answer counts: this page takes no other." }
        }
    }
}
