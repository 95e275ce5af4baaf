//! Keeping a waiting token alive: heartbeats (by a caller with the secret key or the token's
//! public access token, or through the token's heartbeat URL) push its heartbeat deadline, and
//! an extend (secret key only, logged for audit) moves its `timeout_at` later. Neither ever
//! revives a token whose time has come; [`transitions::waitpoint_prolonged`] decides.
//!
//! Heartbeats go through the writer like any write, so thousands a second share a few group
//! commits instead of costing an fsync each.
//!
//! [`transitions::waitpoint_prolonged`]: waitpoint_storage::transitions::waitpoint_prolonged

use waitpoint_storage::{Prolong, ProlongOutcome, ProlongRefusal, Prolonging, WriteOp};
use waitpoint_types::{CompletedVia, Environment, Waitpoint, WaitpointId};

use crate::auth::{Principal, SignedUrl};
use crate::error::{EngineError, Result};
use crate::tokens::{VerifiedCallback, parse_deadline};
use crate::{Engine, metrics};

impl Engine {
    /// A heartbeat for token `id` from `principal` (a secret key of its environment, or a
    /// public access token scoped to it): the token's heartbeat deadline moves to now plus its
    /// heartbeat interval. Returns the token as it now is.
    pub async fn heartbeat_token(&self, principal: &Principal, id: &str) -> Result<Waitpoint> {
        let id = WaitpointId::parse(id).map_err(|error| EngineError::Invalid(error.to_string()))?;
        principal.may_write(&id, "sending heartbeats to")?;
        self.prolong(principal.environment(), id, Prolonging::Heartbeat).await
    }

    /// The heartbeat URL of token `id`: POST to it, with no credentials, to send a heartbeat.
    pub fn heartbeat_url(&self, environment: &Environment, id: &WaitpointId) -> String {
        self.signed_url(SignedUrl::Heartbeat, environment, id)
    }

    /// Checks a heartbeat URL: the token `id` exists, is a token, and `signature` is its
    /// heartbeat signature.
    pub async fn verify_heartbeat_url(&self, id: &str, signature: &str) -> Result<VerifiedCallback> {
        self.verify_signed_url(SignedUrl::Heartbeat, id, signature).await
    }

    /// A heartbeat through a verified heartbeat URL.
    pub async fn heartbeat_via_url(&self, verified: VerifiedCallback) -> Result<Waitpoint> {
        self.prolong(&verified.environment, verified.waitpoint.id, Prolonging::Heartbeat).await
    }

    /// Moves the `timeout_at` of token `id` in `environment` later, to `timeout` (a duration
    /// from now, `"1h"`, or an ISO 8601 date), which must be later than it is. Only a secret
    /// key may, and every extend is logged (target `waitpoint::audit`) with its `via`.
    pub async fn extend_token(
        &self,
        environment: &Environment,
        id: &str,
        timeout: &str,
        via: CompletedVia,
    ) -> Result<Waitpoint> {
        let id = WaitpointId::parse(id).map_err(|error| EngineError::Invalid(error.to_string()))?;
        let now = self.inner.clock.now();
        let timeout_at = parse_deadline("timeout", timeout, now, "")?;
        let before = self.inner.store.waitpoint_get(&id).await.ok().and_then(|token| token.timeout_at);
        let extended = self.prolong(environment, id, Prolonging::Extend { timeout_at }).await?;
        tracing::info!(
            target: "waitpoint::audit",
            environment = %environment.name,
            token = %extended.id,
            via = via.as_str(),
            from = ?before.map(|at| at.to_string()),
            to = %timeout_at,
            "token timeout extended"
        );
        Ok(extended)
    }

    async fn prolong(&self, environment: &Environment, id: WaitpointId, prolonging: Prolonging) -> Result<Waitpoint> {
        let op = Prolong { id, environment_id: environment.id.clone(), at: self.inner.clock.now(), prolonging };
        match self.inner.writer.write(WriteOp::Prolong(op)).await? {
            ProlongOutcome::Prolonged(token) => {
                metrics::token_prolonged(prolonging == Prolonging::Heartbeat);
                Ok(token)
            }
            ProlongOutcome::Refused(token, refusal) => Err(refused(&token, prolonging, refusal)),
            ProlongOutcome::NotFound => Err(EngineError::NotFound("Waitpoint not found".into())),
        }
    }
}

/// The error a refused heartbeat or extend answers with, telling the caller what to do.
fn refused(token: &Waitpoint, prolonging: Prolonging, refusal: ProlongRefusal) -> EngineError {
    let what = match prolonging {
        Prolonging::Heartbeat => "a heartbeat",
        Prolonging::Extend { .. } => "an extend",
    };
    match refusal {
        ProlongRefusal::Finished => EngineError::Conflict(format!(
            "The token is {} ({}): {what} keeps only a waiting token alive",
            token.status().as_str(),
            token.completed_via().map_or("its deadline passed", CompletedVia::as_str)
        )),
        ProlongRefusal::Missed => EngineError::Conflict(format!(
            "The token's time came at {} before {what} arrived: it times out, and nothing late revives it",
            token.due_at().map_or_else(|| "its deadline".to_owned(), |at| at.to_string())
        )),
        ProlongRefusal::NoHeartbeat => EngineError::Invalid(
            "The token has no heartbeatTimeout: create it with one (such as \"heartbeatTimeout\": \"30s\") to send \
             heartbeats"
                .into(),
        ),
        ProlongRefusal::NotLater => match (prolonging, token.timeout_at) {
            (Prolonging::Extend { timeout_at }, Some(current)) => EngineError::Invalid(format!(
                "An extend moves the timeout later: the token times out at {current}, and {timeout_at} is not later"
            )),
            _ => EngineError::Invalid(
                "The token has no timeout (it waits until completed): there is nothing to extend".into(),
            ),
        },
    }
}
