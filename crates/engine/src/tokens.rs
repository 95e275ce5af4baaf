//! Token operations: create, complete (three ways), retrieve and list, with their validation.

use waitpoint_storage::{CreateOutcome, Finish, FinishOutcome, Finishing, ListQuery, StorageError, WriteOp};
use waitpoint_types::api::CreateTokenRequest;
use waitpoint_types::time::parse_duration;
use waitpoint_types::{
    CompletedVia, Environment, Heartbeat, Output, Timestamp, Waitpoint, WaitpointId, WaitpointKind, WaitpointState,
    WaitpointStatus,
};

use crate::auth::{self, Principal, SignedUrl};
use crate::error::{EngineError, Result};
use crate::pages::ListPage;
use crate::validate;
use crate::{Engine, Event};

/// A created (or, with an active idempotency key, found) token.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    /// The token.
    pub waitpoint: Waitpoint,
    /// True when an active idempotency key returned an existing token.
    pub is_cached: bool,
    /// Its callback URL.
    pub url: String,
    /// A public access token that may complete it, valid for 24 hours.
    pub public_access_token: String,
    /// Its hosted approval page.
    pub approval_url: String,
    /// Its reject URL.
    pub reject_url: String,
    /// Its heartbeat URL, for a token with a heartbeat.
    pub heartbeat_url: Option<String>,
}

/// A callback or reject URL that checked out ([`Engine::verify_callback`],
/// [`Engine::verify_reject_url`]): its token, as read then, and the token's environment.
#[derive(Debug, Clone)]
pub struct VerifiedCallback {
    pub(crate) waitpoint: Waitpoint,
    pub(crate) environment: Environment,
}

/// A list request: filters (all optional, combined with AND) and a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListTokens {
    /// Any of these statuses.
    pub statuses: Vec<WaitpointStatus>,
    /// The idempotency key the token was created with (active or expired).
    pub idempotency_key: Option<String>,
    /// Any of these tags.
    pub tags: Vec<String>,
    /// Which page, and the creation-time filters.
    pub page: ListPage,
}

/// One page of tokens, newest first, and the cursors around it.
#[derive(Debug, Clone)]
pub struct TokenPage {
    /// The tokens.
    pub tokens: Vec<Waitpoint>,
    /// Cursor of the next (older) page, if there is one.
    pub next: Option<String>,
    /// Cursor of the previous (newer) page, if there is one.
    pub previous: Option<String>,
}

/// Parses a `timeout` relative to `now`: a duration (`"10m"`), a future ISO 8601 date, or
/// `"none"` (never times out, returned as `Ok(None)`).
pub(crate) fn parse_timeout(text: &str, now: Timestamp) -> Result<Option<Timestamp>> {
    if text == validate::NONE {
        return Ok(None);
    }
    parse_deadline("timeout", text, now, ", or \"none\" for no timeout").map(Some)
}

/// Parses a `heartbeatTimeout`: a duration only (`"30s"`); the first heartbeat is due that long
/// after `now`.
fn parse_heartbeat(text: &str, now: Timestamp) -> Result<Heartbeat> {
    let every = parse_duration(text).map_err(|error| {
        EngineError::Invalid(format!(
            "heartbeatTimeout {text:?} is not valid ({error}): use a duration such as \"30s\", \"5m\" or \"1h\""
        ))
    })?;
    Ok(Heartbeat { every, deadline: validate::end_of(every, now, "heartbeatTimeout", text)? })
}

/// Parses a deadline given as `field`: a duration from `now` (`"10m"`) or a future ISO 8601
/// date. Errors name the field and what it takes (the grammar, then `alternatives`).
pub(crate) fn parse_deadline(field: &str, text: &str, now: Timestamp, alternatives: &str) -> Result<Timestamp> {
    if let Ok(duration) = parse_duration(text) {
        return validate::end_of(duration, now, field, text);
    }
    match Timestamp::parse_iso8601(text) {
        Some(at) if at > now => Ok(at),
        Some(at) => Err(EngineError::Invalid(format!(
            "{field} {text:?} is in the past ({at}, now is {now}): give a future date or a duration such as \"10m\""
        ))),
        None => Err(EngineError::Invalid(format!(
            "{field} {text:?} is not valid: use a duration such as \"30s\", \"10m\", \"2h\", \"3d\", \"4w\" or \
             \"1h30m\", an ISO 8601 date in the future such as \"2030-01-01T00:00:00Z\"{alternatives}"
        ))),
    }
}

/// The stored statuses a status filter means: `TIMED_OUT` is also every rejected token, which
/// Trigger.dev-shaped answers report as timed out.
pub(crate) fn stored_statuses(statuses: &[WaitpointStatus]) -> Vec<WaitpointStatus> {
    let mut stored = statuses.to_vec();
    if stored.contains(&WaitpointStatus::TimedOut) && !stored.contains(&WaitpointStatus::Rejected) {
        stored.push(WaitpointStatus::Rejected);
    }
    stored
}

fn not_found() -> EngineError {
    EngineError::NotFound("Waitpoint not found".into())
}

fn parse_id(id: &str) -> Result<WaitpointId> {
    WaitpointId::parse(id).map_err(|error| EngineError::Invalid(error.to_string()))
}

impl Engine {
    /// Creates a token in `environment`, or returns the one an active idempotency key names.
    pub async fn create_token(&self, environment: &Environment, request: &CreateTokenRequest) -> Result<CreatedToken> {
        let now = self.inner.clock.now();
        let waitpoint = self.prepare_token(environment, request, now)?;
        let (waitpoint, is_cached) = match self.inner.writer.write(WriteOp::Create(waitpoint)).await? {
            CreateOutcome::Created(waitpoint) => {
                crate::metrics::token_created();
                if let Some(deadline) = waitpoint.due_at() {
                    self.inner.deadline_added(deadline);
                }
                self.inner.emit(|| Event::TokenCreated(waitpoint.clone()));
                (waitpoint, false)
            }
            CreateOutcome::Existing(waitpoint) => (waitpoint, true),
        };
        Ok(self.created_token(environment, waitpoint, is_cached))
    }

    /// Validates a create request and builds the token it asks for (not yet stored).
    pub(crate) fn prepare_token(
        &self,
        environment: &Environment,
        request: &CreateTokenRequest,
        now: Timestamp,
    ) -> Result<Waitpoint> {
        let inner = &self.inner;
        let tags = request.tags.clone().unwrap_or_default();
        validate::tags(&tags, "Waitpoints")?;
        if let Some(approval) = &request.approval {
            approval.validate().map_err(|error| EngineError::Invalid(error.0))?;
        }
        let output_schema = match &request.output_schema {
            Some(schema) => {
                waitpoint_storage::schema::check(schema).map_err(|error| {
                    EngineError::Invalid(format!(
                        "outputSchema is not a JSON Schema (draft 2020-12) that stands alone: {error}"
                    ))
                })?;
                Some(schema.to_string())
            }
            None => None,
        };
        let (idempotency_key, idempotency_key_expires_at) = validate::idempotency(
            request.idempotency_key.as_deref(),
            request.idempotency_key_ttl.as_deref(),
            inner.config.default_idempotency_key_ttl,
            now,
        )?;
        let timeout_at = match &request.timeout {
            Some(text) => parse_timeout(text, now)?,
            None => inner.config.default_timeout.map(|d| now.saturating_add(d)),
        };
        let heartbeat = match &request.heartbeat_timeout {
            Some(text) => Some(parse_heartbeat(text, now)?),
            None => None,
        };
        let callback_verifier =
            request.callback_verifier.as_ref().map(crate::verifiers::checked_verifier).transpose()?;
        // The id carries the creation time, which the list's date filters rely on; it only
        // differs from `now` if the clock stepped back.
        let id = inner.ids.waitpoint(now);
        let created_at = id.created_at().unwrap_or(now);
        Ok(Waitpoint {
            id,
            kind: WaitpointKind::Manual,
            environment_id: environment.id.clone(),
            state: WaitpointState::Waiting,
            idempotency_key,
            inactive_idempotency_key: None,
            idempotency_key_expires_at,
            timeout_at,
            heartbeat,
            callback_verifier,
            tags,
            created_at,
            approval: request.approval.clone(),
            output_schema,
        })
    }

    /// The signed URL of `kind` of token `id`: `<public URL><path>/<signature>`.
    pub(crate) fn signed_url(&self, kind: SignedUrl, environment: &Environment, id: &WaitpointId) -> String {
        format!("{}{}/{}", self.inner.config.public_url, kind.path(id), kind.signature(&environment.signing_secret, id))
    }

    /// Checks a signed token URL of `kind`: the token `id` exists, is a token (404 otherwise),
    /// and `signature` is its signature for `kind` (401 otherwise). Nothing else about the
    /// request needs reading before this passes.
    pub(crate) async fn verify_signed_url(
        &self,
        kind: SignedUrl,
        id: &str,
        signature: &str,
    ) -> Result<VerifiedCallback> {
        let id = parse_id(id)?;
        let waitpoint = match self.inner.store.waitpoint_get(&id).await {
            Ok(waitpoint) if waitpoint.kind == WaitpointKind::Manual => waitpoint,
            Ok(_) | Err(StorageError::NotFound) => return Err(not_found()),
            Err(error) => return Err(error.into()),
        };
        let environment =
            self.inner.environment_by_id(&waitpoint.environment_id).await.map_err(|error| match error {
                EngineError::NotFound(_) => not_found(),
                other => other,
            })?;
        if !kind.matches(&environment.signing_secret, &id, signature) {
            return Err(EngineError::Unauthenticated("Invalid URL, signature doesn't match".into()));
        }
        Ok(VerifiedCallback { waitpoint, environment })
    }

    /// The answer to a create: the token with its URL and a fresh public access token.
    pub(crate) fn created_token(
        &self,
        environment: &Environment,
        waitpoint: Waitpoint,
        is_cached: bool,
    ) -> CreatedToken {
        CreatedToken {
            url: self.callback_url(environment, &waitpoint.id),
            approval_url: self.approval_url(environment, &waitpoint.id),
            reject_url: self.reject_url(environment, &waitpoint.id),
            heartbeat_url: waitpoint.heartbeat.map(|_| self.heartbeat_url(environment, &waitpoint.id)),
            public_access_token: auth::sign_public_token(environment, &waitpoint.id, self.inner.clock.now()),
            waitpoint,
            is_cached,
        }
    }

    /// Completes the token `id` with `output` on behalf of `principal` (a secret key of its
    /// environment, or a public access token scoped to it). Completing a finished token
    /// changes nothing and succeeds: the first completion wins.
    pub async fn complete_token(&self, principal: &Principal, id: &str, output: Option<Output>) -> Result<Waitpoint> {
        let id = parse_id(id)?;
        let via = principal.may_write(&id, "completing")?;
        let environment_id = Some(principal.environment().id.clone());
        let finishing = self.completed(via, output);
        self.finish(Finish { id, environment_id, finishing, hand_to: self.inner.hand_to() }).await
    }

    /// Checks a callback URL: the token `id` exists and `hash` proves the caller was handed
    /// its URL. Nothing else about the request needs reading before this passes.
    pub async fn verify_callback(&self, id: &str, hash: &str) -> Result<VerifiedCallback> {
        let id = parse_id(id)?;
        let waitpoint = self.inner.store.waitpoint_get(&id).await.map_err(|error| match error {
            StorageError::NotFound => not_found(),
            other => other.into(),
        })?;
        let environment =
            self.inner.environment_by_id(&waitpoint.environment_id).await.map_err(|error| match error {
                EngineError::NotFound(_) => not_found(),
                other => other,
            })?;
        if !auth::callback_hash_matches(&environment.signing_secret, &id, hash) {
            return Err(EngineError::Unauthenticated("Invalid URL, hash doesn't match".into()));
        }
        Ok(VerifiedCallback { waitpoint, environment })
    }

    /// Completes the token of a verified callback URL with `output`. No other credential is
    /// needed; completing a finished token changes nothing.
    pub async fn complete_via_callback(&self, callback: VerifiedCallback, output: Output) -> Result<Waitpoint> {
        let VerifiedCallback { waitpoint, environment } = callback;
        if waitpoint.status() != WaitpointStatus::Waiting {
            return Ok(waitpoint);
        }
        let finishing = self.completed(CompletedVia::CallbackUrl, Some(output));
        let finish =
            Finish { id: waitpoint.id, environment_id: Some(environment.id), finishing, hand_to: self.inner.hand_to() };
        self.finish(finish).await
    }

    /// The token `id` of `environment`.
    pub async fn get_token(&self, environment: &Environment, id: &str) -> Result<Waitpoint> {
        let id = parse_id(id)?;
        match self.inner.store.waitpoint_get(&id).await {
            Ok(waitpoint) if waitpoint.belongs_to(environment) => Ok(waitpoint),
            Ok(_) | Err(StorageError::NotFound) => Err(not_found()),
            Err(error) => Err(error.into()),
        }
    }

    /// A page of `environment`'s tokens, newest first.
    pub async fn list_tokens(&self, environment: &Environment, request: &ListTokens) -> Result<TokenPage> {
        validate::filter_values("filter[tags]", &request.tags)?;
        let pager = request.page.pager(self.inner.clock.now(), |cursor| {
            WaitpointId::parse(cursor).ok().map(|id| id.internal().to_owned())
        })?;
        let query = ListQuery {
            environment_id: environment.id.clone(),
            statuses: stored_statuses(&request.statuses),
            idempotency_key: request.idempotency_key.clone(),
            tags: request.tags.clone(),
            window: pager.window.clone(),
        };
        let rows = self.inner.store.waitpoint_list(&query).await?;
        let page = pager.page(rows, |w: &Waitpoint| w.id.internal().to_owned());
        Ok(TokenPage { tokens: page.items, next: page.next, previous: page.previous })
    }

    /// The callback URL of token `id`: POST any JSON to it to complete the token.
    pub fn callback_url(&self, environment: &Environment, id: &WaitpointId) -> String {
        format!(
            "{}/api/v1/waitpoints/tokens/{id}/callback/{}",
            self.inner.config.public_url,
            auth::callback_hash(&environment.signing_secret, id)
        )
    }

    fn completed(&self, via: CompletedVia, output: Option<Output>) -> Finishing {
        Finishing::Complete { at: self.inner.clock.now(), via, output }
    }

    async fn finish(&self, finish: Finish) -> Result<Waitpoint> {
        match self.finish_waitpoint(finish).await? {
            Finished::Now(waitpoint) | Finished::Before(waitpoint) => Ok(waitpoint),
            Finished::NotFound => Err(not_found()),
        }
    }

    /// Applies `finish`; a waitpoint it finishes tells the runs it resumes (and whoever
    /// listens) at once. An output that does not fit the waitpoint's output schema is refused
    /// (`Unprocessable`, 422, naming where) and changes nothing.
    pub(crate) async fn finish_waitpoint(&self, finish: Finish) -> Result<Finished> {
        Ok(match self.inner.writer.write(WriteOp::Finish(finish)).await? {
            FinishOutcome::Finished(waitpoint, resumed) => {
                self.inner.finished(waitpoint.clone(), resumed);
                Finished::Now(waitpoint)
            }
            FinishOutcome::Unchanged(waitpoint) => Finished::Before(waitpoint),
            FinishOutcome::NotFound => Finished::NotFound,
            FinishOutcome::Refused(_, reason) => {
                return Err(EngineError::Unprocessable(format!(
                    "The output does not fit the token's outputSchema, {reason}; the token still waits"
                )));
            }
        })
    }
}

/// What [`Engine::finish_waitpoint`] came to.
pub(crate) enum Finished {
    /// The waitpoint finished now.
    Now(Waitpoint),
    /// Nothing changed: it had finished before (or its deadline has not come).
    Before(Waitpoint),
    /// No such waitpoint (in that environment).
    NotFound,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timeouts_are_durations_future_dates_or_none() {
        let now = Timestamp::parse_iso8601("2025-04-01T10:00:00Z").unwrap();
        assert_eq!(parse_timeout("10m", now).unwrap(), Some(now.saturating_add(Duration::from_secs(600))));
        assert_eq!(
            parse_timeout("2025-04-01T11:00:00.000Z", now).unwrap(),
            Timestamp::parse_iso8601("2025-04-01T11:00:00Z")
        );
        assert_eq!(parse_timeout("none", now).unwrap(), None);
        let past = parse_timeout("2025-04-01T09:00:00Z", now).unwrap_err().to_string();
        assert!(past.contains("in the past"), "{past}");
        let far = parse_timeout("2932000d", now).unwrap_err().to_string();
        assert!(far.contains("9999-12-30T22:00:00.999Z"), "{far}");
        let garbage = parse_timeout("soon", now).unwrap_err().to_string();
        assert!(garbage.contains("\"10m\"") && garbage.contains("ISO 8601"), "{garbage}");
        assert!(parse_timeout("0s", now).is_err());
    }
}
