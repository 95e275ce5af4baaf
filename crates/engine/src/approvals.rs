//! The hosted approval pages: every token has one, at a URL signed with its environment's
//! signing secret (in a domain of its own, so neither the callback hash nor any other signature
//! opens it). The URL is the only credential: it opens that one token's page and nothing else.
//! The first answer wins, as any completion.

use waitpoint_storage::{Finish, Finishing};
use waitpoint_types::{Approval, ApprovalAnswer, CompletedVia, Environment, Output, Waitpoint, WaitpointId};

use crate::error::{EngineError, Result};
use crate::tokens::{Finished, VerifiedCallback};
use crate::{Engine, auth};

/// An approval page URL that checked out: its token as read then.
#[derive(Debug, Clone)]
pub struct VerifiedApproval {
    /// The token.
    pub waitpoint: Waitpoint,
    environment: Environment,
}

impl VerifiedApproval {
    /// What the page asks: the token's own, or the default page.
    pub fn approval(&self) -> Approval {
        self.waitpoint.approval.clone().unwrap_or_default()
    }
}

fn no_such_page() -> EngineError {
    EngineError::NotFound("There is no approval page at this address".into())
}

impl Engine {
    /// The URL of the approval page of token `id`.
    pub fn approval_url(&self, environment: &Environment, id: &WaitpointId) -> String {
        self.signed_url(auth::SignedUrl::Approval, environment, id)
    }

    /// Checks an approval page's URL: `signature` must be the one of token `id`. Any mismatch,
    /// or an unknown token, is the same `NotFound`.
    pub async fn verify_approval(&self, id: &str, signature: &str) -> Result<VerifiedApproval> {
        match self.verify_signed_url(auth::SignedUrl::Approval, id, signature).await {
            Ok(VerifiedCallback { waitpoint, environment }) => Ok(VerifiedApproval { waitpoint, environment }),
            Err(EngineError::Invalid(_) | EngineError::NotFound(_) | EngineError::Unauthenticated(_)) => {
                Err(no_such_page())
            }
            Err(other) => Err(other),
        }
    }

    /// Answers a verified approval page: completes its token with the answer's output
    /// (`{"status", "comment", …fields}`), recorded as done by the approval page. An answer
    /// that does not fit the page is refused (400) and changes nothing; a token that finished
    /// before is returned as it is (the first answer wins).
    pub async fn answer_approval(&self, page: &VerifiedApproval, answer: &ApprovalAnswer) -> Result<Waitpoint> {
        let output = page.approval().output(answer).map_err(|error| EngineError::Invalid(error.0))?;
        let finishing = Finishing::Complete {
            at: self.inner.clock.now(),
            via: CompletedVia::ApprovalPage,
            output: Some(Output::from_json_text(&output.to_string())),
        };
        let finish = Finish {
            id: page.waitpoint.id.clone(),
            environment_id: Some(page.environment.id.clone()),
            finishing,
            hand_to: self.inner.hand_to(),
        };
        match self.finish_waitpoint(finish).await? {
            Finished::Now(waitpoint) | Finished::Before(waitpoint) => Ok(waitpoint),
            Finished::NotFound => Err(no_such_page()),
        }
    }
}
