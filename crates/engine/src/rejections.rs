//! Rejecting a token, with an error: by a caller (secret key or public access token), through
//! the token's reject URL, or from the dashboard ([`Resolution::Reject`](crate::Resolution)).
//! A run waiting on it gets `{"ok": false, "error": {…}, "rejected": true}`.

use waitpoint_storage::{Finish, Finishing};
use waitpoint_types::waitpoint::{REJECTED_ERROR_CODE, minify};
use waitpoint_types::{CompletedVia, Environment, Rejection, Waitpoint, WaitpointId};

use crate::Engine;
use crate::auth::{Principal, SignedUrl};
use crate::error::{EngineError, Result};
use crate::tokens::{Finished, VerifiedCallback};

/// The longest message a rejection may carry, in characters.
pub const MAX_REJECTION_MESSAGE: usize = 10_000;
/// The longest code a rejection may carry, in characters.
pub const MAX_REJECTION_CODE: usize = 100;
/// The message of a rejection made through a token's reject URL.
pub const REJECT_URL_MESSAGE: &str = "Rejected through the token's reject URL";

/// Checks what a caller asked to reject with: a message of 1 to [`MAX_REJECTION_MESSAGE`]
/// characters, a code (default [`REJECTED_ERROR_CODE`]) of 1 to [`MAX_REJECTION_CODE`] without
/// control characters, and data as JSON text (already checked by whoever parsed it), kept
/// without the whitespace between its tokens.
pub fn checked_rejection(message: String, code: Option<String>, data: Option<String>) -> Result<Rejection> {
    let length = message.chars().count();
    if length == 0 || length > MAX_REJECTION_MESSAGE {
        return Err(EngineError::Invalid(format!(
            "error.message must be 1 to {MAX_REJECTION_MESSAGE} characters, not {length}: say why the token is rejected"
        )));
    }
    let code = code.unwrap_or_else(|| REJECTED_ERROR_CODE.to_owned());
    if code.is_empty() || code.chars().count() > MAX_REJECTION_CODE || code.chars().any(char::is_control) {
        return Err(EngineError::Invalid(format!(
            "error.code must be 1 to {MAX_REJECTION_CODE} characters without control characters, such as \
             \"PAYMENT_DECLINED\"; leave it out for {REJECTED_ERROR_CODE}"
        )));
    }
    Ok(Rejection { message, code, data: data.as_deref().map(minify) })
}

fn not_found() -> EngineError {
    EngineError::NotFound("Waitpoint not found".into())
}

impl Engine {
    /// Rejects the token `id` with `error` on behalf of `principal` (a secret key of its
    /// environment, or a public access token scoped to it). Rejecting a finished token changes
    /// nothing and succeeds: the first outcome wins.
    pub async fn reject_token(&self, principal: &Principal, id: &str, error: Rejection) -> Result<Waitpoint> {
        let id = WaitpointId::parse(id).map_err(|error| EngineError::Invalid(error.to_string()))?;
        let via = principal.may_write(&id, "rejecting")?;
        let environment = principal.environment().clone();
        self.reject(&environment, id, via, error).await
    }

    /// The reject URL of token `id`: POST to it (any body, kept as the error's data) to reject
    /// the token. Signed in a domain of its own: neither the callback URL nor the approval page
    /// can be turned into it.
    pub fn reject_url(&self, environment: &Environment, id: &WaitpointId) -> String {
        self.signed_url(SignedUrl::Reject, environment, id)
    }

    /// Checks a reject URL: the token `id` exists, is a token, and `signature` is its reject
    /// signature. Nothing else about the request needs reading before this passes.
    pub async fn verify_reject_url(&self, id: &str, signature: &str) -> Result<VerifiedCallback> {
        self.verify_signed_url(SignedUrl::Reject, id, signature).await
    }

    /// Rejects the token of a verified reject URL, with `data` (JSON text) as the error's data.
    pub async fn reject_via_url(&self, verified: VerifiedCallback, data: Option<String>) -> Result<Waitpoint> {
        let VerifiedCallback { waitpoint, environment } = verified;
        let data = data.as_deref().map(minify);
        let error = Rejection { message: REJECT_URL_MESSAGE.to_owned(), code: REJECTED_ERROR_CODE.to_owned(), data };
        self.reject(&environment, waitpoint.id, CompletedVia::CallbackUrl, error).await
    }

    async fn reject(
        &self,
        environment: &Environment,
        id: WaitpointId,
        via: CompletedVia,
        error: Rejection,
    ) -> Result<Waitpoint> {
        let finish = Finish {
            id,
            environment_id: Some(environment.id.clone()),
            finishing: Finishing::Reject { at: self.inner.clock.now(), via, error },
            hand_to: self.inner.hand_to(),
        };
        match self.finish_waitpoint(finish).await? {
            Finished::Now(waitpoint) | Finished::Before(waitpoint) => Ok(waitpoint),
            Finished::NotFound => Err(not_found()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_needs_a_message_and_a_short_printable_code() {
        let made = checked_rejection("declined".into(), None, Some(r#"{"n":1}"#.into())).unwrap();
        assert_eq!((made.code.as_str(), made.data.as_deref()), (REJECTED_ERROR_CODE, Some(r#"{"n":1}"#)));
        assert!(checked_rejection(String::new(), None, None).is_err());
        assert!(checked_rejection("x".repeat(MAX_REJECTION_MESSAGE + 1), None, None).is_err());
        assert!(checked_rejection("x".repeat(MAX_REJECTION_MESSAGE), Some("CARD".into()), None).is_ok());
        assert!(checked_rejection("no".into(), Some(String::new()), None).is_err());
        assert!(checked_rejection("no".into(), Some("a\nb".into()), None).is_err());
        assert!(checked_rejection("no".into(), Some("c".repeat(MAX_REJECTION_CODE + 1)), None).is_err());
    }
}
