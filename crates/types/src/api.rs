//! The JSON bodies of the HTTP API, field for field as Trigger.dev's waitpoint token API
//! sends them: camelCase names, ISO 8601 dates, optional fields omitted (never `null`, which
//! the official SDK rejects or misreads).
//!
//! The server serializes these; the Rust client deserializes them.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The body of `POST /api/v1/waitpoints/tokens` as a client sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTokenRequest {
    /// A duration (`"10m"`), an ISO 8601 date, or `"none"`; the server's default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Returns the same token for the same key while it is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// How long the key stays active (`"1h"`); the server's default when absent.
    #[serde(rename = "idempotencyKeyTTL", skip_serializing_if = "Option::is_none")]
    pub idempotency_key_ttl: Option<String>,
    /// Up to 10 tags, each shorter than 128 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// The answer to a create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTokenResponse {
    /// `waitpoint_…`.
    pub id: String,
    /// True when an active idempotency key returned an existing token.
    pub is_cached: bool,
    /// The callback URL: POST any JSON to it to complete the token, no credentials needed.
    pub url: String,
    /// A JWT that may complete this one token (also sent in the `x-trigger-jwt` header).
    pub public_access_token: String,
}

/// A token as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenItem {
    /// `waitpoint_…`.
    pub id: String,
    /// The callback URL.
    pub url: String,
    /// `WAITING`, `COMPLETED` or `TIMED_OUT`.
    pub status: String,
    /// When it was completed or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    /// When it times out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_at: Option<Timestamp>,
    /// The same as `timeoutAt` (Trigger.dev's internal name, kept for compatibility).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_after: Option<Timestamp>,
    /// The idempotency key the caller gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When the idempotency key expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key_expires_at: Option<Timestamp>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A token as retrieved: the listed fields plus its output and how it was completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenDetail {
    /// `waitpoint_…`.
    pub id: String,
    /// Always `MANUAL` for tokens.
    #[serde(rename = "type")]
    pub kind: String,
    /// The callback URL.
    pub url: String,
    /// `WAITING`, `COMPLETED` or `TIMED_OUT`.
    pub status: String,
    /// The idempotency key the caller gave, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When the idempotency key expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key_expires_at: Option<Timestamp>,
    /// The encoded output; decode it according to `outputType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// `application/super+json` (`{"json": value}`), `text/plain` or `application/json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_type: Option<String>,
    /// True when `output` is the timeout error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_is_error: Option<bool>,
    /// When it times out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_at: Option<Timestamp>,
    /// The same as `timeoutAt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_after: Option<Timestamp>,
    /// When it was completed or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    /// How it was completed: `SECRET_KEY`, `PUBLIC_ACCESS_TOKEN`, `CALLBACK_URL` or `TIMEOUT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_via: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Tags in the order given.
    pub tags: Vec<String>,
}

/// One page of a list, and the cursors around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub data: Vec<T>,
    /// Cursors for `page[after]` (next) and `page[before]` (previous).
    pub pagination: Pagination,
}

/// Cursors of a page; each present only when there is such a page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pagination {
    /// Pass as `page[after]` for the next (older) page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Pass as `page[before]` for the previous (newer) page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// The answer to a completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteResponse {
    /// Always true on a 2xx.
    pub success: bool,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and how to fix it.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_omitted_never_null() {
        let item = TokenItem {
            id: "waitpoint_c1".into(),
            url: "http://x/cb".into(),
            status: "WAITING".into(),
            completed_at: None,
            timeout_at: None,
            completed_after: None,
            idempotency_key: None,
            idempotency_key_expires_at: None,
            tags: vec![],
            created_at: Timestamp::from_millis(0),
        };
        let page = Page { data: vec![item], pagination: Pagination::default() };
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"data":[{"id":"waitpoint_c1","url":"http://x/cb","status":"WAITING","tags":[],"createdAt":"1970-01-01T00:00:00.000Z"}],"pagination":{}}"#
        );
        let request = CreateTokenRequest { idempotency_key_ttl: Some("1h".into()), ..Default::default() };
        assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"idempotencyKeyTTL":"1h"}"#);
    }
}
