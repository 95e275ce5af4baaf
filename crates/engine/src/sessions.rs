//! Signing in to the dashboard, and its sessions.
//!
//! A person signs in with an environment's secret key, or with a one-time link (`serve` prints
//! one for `dev`): a random secret, used once, within [`SIGN_IN_LINK_LIFETIME`], on the node
//! that made it. Either opens a session: a cookie value signed with the environment's signing
//! secret (see `auth`), valid for [`SESSION_LIFETIME`] while the environment's secret key stays
//! the one it was opened with. Nothing about sessions is stored: a session ends when it
//! expires, when its cookie is dropped (sign-out), or when the key is rotated.

use std::time::Duration;

use waitpoint_types::id::random_alphanumeric;
use waitpoint_types::{Environment, EnvironmentId, Timestamp};

use crate::error::{EngineError, Result};
use crate::{Engine, auth};

/// How long a session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a one-time sign-in link may wait to be used.
pub const SIGN_IN_LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Characters of a sign-in link's secret.
const LINK_SECRET_LEN: usize = 32;

/// A session just opened.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The environment it shows.
    pub environment: Environment,
    /// The session cookie's value.
    pub cookie: String,
    /// When it ends.
    pub expires_at: Timestamp,
}

/// A session that checked out.
#[derive(Debug, Clone)]
pub struct Session {
    /// The environment it shows, and nothing else.
    pub environment: Environment,
    /// The token every form of the session carries (CSRF).
    pub csrf_token: String,
    /// When it ends.
    pub expires_at: Timestamp,
}

impl Session {
    /// Whether a form's `token` is this session's, compared in constant time.
    pub fn csrf_matches(&self, token: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.csrf_token.as_bytes(), token.as_bytes()).is_ok()
    }
}

fn signed_out() -> EngineError {
    EngineError::Unauthenticated("Not signed in, or the session ended: sign in again".into())
}

impl Engine {
    /// Opens a session for the environment whose secret key is `secret_key`.
    pub async fn sign_in(&self, secret_key: &str) -> Result<SignedIn> {
        let secret_key = secret_key.trim();
        if secret_key.is_empty() || auth::public_token_subject(secret_key).is_some() {
            return Err(EngineError::Unauthenticated("Sign in with an environment's secret key".into()));
        }
        let environment = self.inner.environment_by_api_key(secret_key).await.map_err(|error| match error {
            EngineError::Unauthenticated(_) => EngineError::Unauthenticated("That is not a secret key here".into()),
            other => other,
        })?;
        Ok(self.open_session(environment))
    }

    /// Makes a one-time sign-in link's secret for `environment`: it opens a session once,
    /// within [`SIGN_IN_LINK_LIFETIME`], on this node.
    pub fn sign_in_link(&self, environment: &Environment) -> String {
        let secret = random_alphanumeric(LINK_SECRET_LEN);
        let expires_at = self.inner.clock.now().saturating_add(SIGN_IN_LINK_LIFETIME);
        let mut links = self.inner.sign_in_links.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.inner.clock.now();
        links.retain(|_, (_, expires)| *expires > now);
        links.insert(auth::link_digest(&secret), (environment.id.clone(), expires_at));
        secret
    }

    /// Opens a session with a one-time link's secret, which is then used up.
    pub async fn redeem_sign_in_link(&self, secret: &str) -> Result<SignedIn> {
        let now = self.inner.clock.now();
        let found: Option<(EnvironmentId, Timestamp)> =
            self.inner.sign_in_links.lock().unwrap_or_else(|p| p.into_inner()).remove(&auth::link_digest(secret));
        let environment_id = match found {
            Some((environment_id, expires_at)) if now < expires_at => environment_id,
            _ => {
                return Err(EngineError::Unauthenticated(
                    "This sign-in link was used already, has expired, or was made by another server: sign in with the \
                     secret key, or restart the server for a new link"
                        .into(),
                ));
            }
        };
        let environment = self.inner.environment_by_id(&environment_id).await?;
        Ok(self.open_session(environment))
    }

    fn open_session(&self, environment: Environment) -> SignedIn {
        let expires_at = self.inner.clock.now().saturating_add(SESSION_LIFETIME);
        let cookie = auth::sign_session(&environment, expires_at);
        SignedIn { environment, cookie, expires_at }
    }

    /// The session a cookie holds, if it is signed, unexpired and its environment's key has not
    /// been rotated since it was opened (checked against a key cached for at most 5 s).
    pub async fn session(&self, cookie: &str) -> Result<Session> {
        let id =
            auth::session_environment(cookie).and_then(|id| EnvironmentId::parse(id).ok()).ok_or_else(signed_out)?;
        let environment = self.inner.environment_by_id(&id).await.map_err(|error| match error {
            EngineError::NotFound(_) => signed_out(),
            other => other,
        })?;
        let claims = auth::verify_session(cookie, &environment, self.inner.clock.now()).ok_or_else(signed_out)?;
        Ok(Session { csrf_token: auth::csrf_token(&environment, &claims), expires_at: claims.expires_at, environment })
    }
}
