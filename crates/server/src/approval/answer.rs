//! Answering an approval page: the form's decision, comment and fields complete the token with
//! `{"status": "approved" | "rejected", "comment": …, <fields>}`. An answer that does not fit
//! the page shows it again with the problem; a token answered before shows that first answer.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use waitpoint_engine::{Engine, EngineError};
use waitpoint_types::ApprovalAnswer;

use super::page::{failure, render};
use crate::body::{self, Length};

/// An answer's form is small: a comment and a few fields.
const ANSWER_LIMIT: usize = 256 * 1024;

/// `POST /approve/{id}/{signature}`.
pub(crate) async fn answer(
    State(engine): State<Engine>,
    Path((id, signature)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let page = match engine.verify_approval(&id, &signature).await {
        Ok(page) => page,
        Err(error) => return failure(error),
    };
    if !crate::pages::same_origin(&headers) {
        return failure(EngineError::Forbidden("Answer from the page itself".into()));
    }
    let bytes = match body::read(&headers, body, ANSWER_LIMIT, Length::Optional).await {
        Ok(bytes) => bytes,
        Err(error) => return (error.status(), error.message().to_owned()).into_response(),
    };
    let mut answer = ApprovalAnswer::default();
    let mut decision = None;
    for (name, value) in form_urlencoded::parse(&bytes) {
        match name.as_ref() {
            "decision" => decision = Some(value.into_owned()),
            "comment" => answer.comment = value.into_owned(),
            _ => answer.values.push((name.into_owned(), value.into_owned())),
        }
    }
    answer.approved = match decision.as_deref() {
        Some("approve") => true,
        Some("reject") => false,
        _ => return render(&page, Some((&answer, "Choose Approve or Reject.")), StatusCode::BAD_REQUEST),
    };
    match engine.answer_approval(&page, &answer).await {
        Ok(_) => Redirect::to(uri.path()).into_response(),
        Err(EngineError::Invalid(problem)) => render(&page, Some((&answer, &problem)), StatusCode::BAD_REQUEST),
        Err(EngineError::Unprocessable(problem)) => {
            render(&page, Some((&answer, &problem)), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(error) => failure(error),
    }
}
