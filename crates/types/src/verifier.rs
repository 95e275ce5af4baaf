//! How a token's callback URL checks who sent a delivery: waitpoint's own `callbackVerifier`,
//! given at create. The URL alone proves the sender was handed it; a verifier also proves the
//! body came from the service that holds the shared secret, signed as that service signs its
//! webhooks.

use std::fmt;

use crate::environment::Secret;

/// The signature schemes a callback URL can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum VerifierScheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp` (within 5 minutes) and
    /// `webhook-signature` (`v1,<base64>`, HMAC-SHA256 of `id.timestamp.body` keyed with the
    /// base64 secret after its `whsec_` prefix).
    #[serde(rename = "standard-webhooks")]
    StandardWebhooks,
    /// Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>` (within 5 minutes), HMAC-SHA256
    /// of `t.body` keyed with the endpoint secret as given.
    #[serde(rename = "stripe")]
    Stripe,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body.
    #[serde(rename = "github")]
    GitHub,
    /// Any sender: the hex HMAC-SHA256 of the raw body (`sha256=` prefix optional) in a header,
    /// `X-Signature` unless the verifier names another.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

impl VerifierScheme {
    /// Every scheme, in the order the docs list them.
    pub const ALL: [VerifierScheme; 4] = [Self::StandardWebhooks, Self::Stripe, Self::GitHub, Self::HmacSha256];

    /// `standard-webhooks`, `stripe`, `github` or `hmac-sha256`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Stripe => "stripe",
            Self::GitHub => "github",
            Self::HmacSha256 => "hmac-sha256",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scheme| scheme.as_str() == text)
    }
}

impl fmt::Display for VerifierScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token's callback verifier: its scheme, the shared secret (never shown or logged), and for
/// [`VerifierScheme::HmacSha256`] the header that carries the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackVerifier {
    /// How deliveries are signed.
    pub scheme: VerifierScheme,
    /// The secret the sender signs with.
    pub secret: Secret,
    /// The signature's header, lowercase (`hmac-sha256` only; `None` means `x-signature`).
    pub header: Option<String>,
}

/// The header a [`VerifierScheme::HmacSha256`] verifier reads unless told another.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-signature";

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    scheme: VerifierScheme,
    secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
}

impl CallbackVerifier {
    /// The verifier as storage keeps it: JSON text holding the secret.
    pub fn to_stored(&self) -> String {
        let stored =
            Stored { scheme: self.scheme, secret: self.secret.expose().to_owned(), header: self.header.clone() };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// The inverse of [`to_stored`](Self::to_stored); `None` for text that is not a verifier.
    pub fn from_stored(text: &str) -> Option<Self> {
        let stored: Stored = serde_json::from_str(text).ok()?;
        Some(Self { scheme: stored.scheme, secret: Secret::new(stored.secret), header: stored.header })
    }

    /// The header that carries the signature of an [`VerifierScheme::HmacSha256`] delivery.
    pub fn signature_header(&self) -> &str {
        self.header.as_deref().unwrap_or(DEFAULT_SIGNATURE_HEADER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_reads_back_from_storage_and_never_prints_its_secret() {
        let verifier = CallbackVerifier {
            scheme: VerifierScheme::HmacSha256,
            secret: Secret::new("s3cret".into()),
            header: Some("x-acme-signature".into()),
        };
        let stored = verifier.to_stored();
        assert_eq!(stored, r#"{"scheme":"hmac-sha256","secret":"s3cret","header":"x-acme-signature"}"#);
        assert_eq!(CallbackVerifier::from_stored(&stored), Some(verifier.clone()));
        assert!(!format!("{verifier:?}").contains("s3cret"));
        assert_eq!(CallbackVerifier::from_stored(r#"{"scheme":"md5","secret":"x"}"#), None);
        assert_eq!(VerifierScheme::parse("standard-webhooks"), Some(VerifierScheme::StandardWebhooks));
    }
}
