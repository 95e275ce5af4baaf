//! Environments: isolated spaces of tokens, each with its own secret key.

use std::fmt;

use crate::id::EnvironmentId;
use crate::time::Timestamp;

/// A secret string whose `Debug` output never shows it, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself. Call only where it must leave the process (a response, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An environment. Tokens are isolated per environment; its secret key authenticates API
/// calls and its signing secret signs callback URLs and public access tokens (so rotating the
/// key does not break URLs already handed out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Its id; the `sub` of its public access tokens.
    pub id: EnvironmentId,
    /// Its unique name (`dev`, `prod`, …).
    pub name: String,
    /// The secret API key (`tr_dev_…`).
    pub api_key: Secret,
    /// The HMAC key for callback URLs and public access tokens; never leaves the server.
    pub signing_secret: Secret,
    /// When it was created.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let secret = Secret::new("tr_dev_abc".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(secret.expose(), "tr_dev_abc");
    }
}
