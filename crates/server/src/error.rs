//! The one error type of the HTTP edge.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use waitpoint_engine::EngineError;

/// An error response: a status and `{"error": message, ...extra}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    extra: Map<String, Value>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), extra: Map::new() }
    }

    /// 400: the request is malformed; `message` says how.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 405, with the body Trigger.dev sends.
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
    }

    /// 400 for a bad query parameter, with Trigger.dev's `details` list alongside.
    pub fn bad_query(parameter: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut error = Self::bad_request(format!("Invalid query parameter {parameter}: {message}"));
        error.extra.insert("details".into(), json!([{ "code": "custom", "message": message, "path": [parameter] }]));
        error
    }

    /// An error with a machine-readable `code` beside the message.
    pub fn coded(status: StatusCode, message: impl Into<String>, code: &'static str) -> Self {
        let mut error = Self::new(status, message);
        error.extra.insert("code".into(), code.into());
        error
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The body: `{"error": message, ...extra}`.
    pub fn body(&self) -> Value {
        let mut body = self.extra.clone();
        body.insert("error".into(), Value::String(self.message.clone()));
        Value::Object(body)
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Invalid(message) => Self::bad_request(message),
            EngineError::Unprocessable(message) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, message),
            EngineError::Unauthenticated(message) => Self::new(StatusCode::UNAUTHORIZED, message),
            EngineError::Forbidden(message) => {
                // Trigger.dev's 403 carries these fields; its SDK surfaces them on the error.
                let mut error = Self::coded(StatusCode::FORBIDDEN, message, "unauthorized");
                error.extra.insert("param".into(), "access_token".into());
                error.extra.insert("type".into(), "authorization".into());
                error
            }
            EngineError::NotFound(message) => Self::not_found(message),
            EngineError::Conflict(message) => Self::new(StatusCode::CONFLICT, message),
            EngineError::RunMovedOn(message) => Self::coded(StatusCode::CONFLICT, message, "run_moved_on"),
            EngineError::JournalMismatch(message) => Self::coded(StatusCode::CONFLICT, message, "journal_mismatch"),
            EngineError::WorkerReplaced(message) => Self::coded(StatusCode::CONFLICT, message, "worker_replaced"),
            EngineError::Storage(error) => {
                tracing::error!(%error, "storage failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            EngineError::Internal(detail) => {
                tracing::error!(detail, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            EngineError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "waitpoint is shutting down; retry")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::METHOD_NOT_ALLOWED && !response.headers().contains_key(header::ALLOW) {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        if self.status.is_client_error() {
            // Trigger.dev's SDK retries 408, 409 and 429 unless told not to; a caller's mistake will not fix itself.
            response.headers_mut().insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}
