//! Credentials: secret keys, public access tokens (JWTs), callback URL and approval page
//! signatures, and the dashboard's sessions.
//!
//! Callback hashes, approval page signatures, public access tokens and sessions are signed with
//! the environment's signing secret, not its API key, so rotating a key leaves URLs and tokens
//! already handed out working. Each kind of signature has a domain of its own (a label the
//! HMAC covers before the signed text), so one kind can never stand for another. Public access
//! tokens that the official SDK signs itself with the secret key (`auth.createPublicToken`)
//! are accepted too, while that key is current. A session is bound to a fingerprint of the
//! key it was opened with: rotating the key ends it.

use aws_lc_rs::hmac;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use waitpoint_types::id::random_alphanumeric;
use waitpoint_types::{CompletedVia, Environment, Secret, Timestamp, WaitpointId};

use crate::error::EngineError;

/// `iss` of public access tokens, as Trigger.dev issues them.
const ISSUER: &str = "https://id.trigger.dev";
/// `aud` of public access tokens, as Trigger.dev issues them.
const AUDIENCE: &str = "https://api.trigger.dev";
/// How long a public access token is valid.
const PUBLIC_TOKEN_LIFETIME_SECS: i64 = 24 * 60 * 60;
/// How far ahead of this server's clock a token's `nbf` and `iat` may be (clocks differ).
const CLOCK_LEEWAY_SECS: i64 = 60;
/// Characters after the prefix of a secret key (`tr_dev_` + 24).
const API_KEY_LEN: usize = 24;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The holder of an environment's secret key: may do anything in it.
    SecretKey(Environment),
    /// The holder of a public access token: may do what its scopes allow.
    PublicAccessToken {
        /// The environment that issued the token.
        environment: Environment,
        /// Its scopes, such as `write:waitpoints:waitpoint_…`.
        scopes: Vec<String>,
    },
}

impl Principal {
    /// The environment the caller acts in.
    pub fn environment(&self) -> &Environment {
        match self {
            Self::SecretKey(environment) | Self::PublicAccessToken { environment, .. } => environment,
        }
    }

    /// Whether the caller may act on waitpoint `id` (complete, reject, heartbeat: `doing`
    /// names it in the error): a secret key may, a public access token if its scopes allow
    /// writing `id` (403 otherwise). The way the act is recorded as done.
    pub(crate) fn may_write(&self, id: &WaitpointId, doing: &str) -> Result<CompletedVia, EngineError> {
        match self {
            Self::SecretKey(_) => Ok(CompletedVia::SecretKey),
            Self::PublicAccessToken { scopes, .. } if scopes_allow_write(scopes, id) => {
                Ok(CompletedVia::PublicAccessToken)
            }
            Self::PublicAccessToken { .. } => Err(EngineError::Forbidden(format!(
                "Unauthorized: this Public Access Token does not grant {doing} {id}"
            ))),
        }
    }
}

/// The claims of a public access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PublicClaims {
    pub sub: String,
    #[serde(rename = "pub")]
    pub public: bool,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// A new secret key for an environment: `tr_<kind>_` and 24 alphanumerics, where kind is
/// `dev`, `stg`, `preview` or `prod` after the environment's name (as Trigger.dev's keys).
pub fn new_api_key(environment_name: &str) -> Secret {
    let kind = match environment_name {
        "dev" | "development" => "dev",
        "stg" | "staging" => "stg",
        "preview" => "preview",
        _ => "prod",
    };
    Secret::new(format!("tr_{kind}_{}", random_alphanumeric(API_KEY_LEN)))
}

/// A new signing secret.
pub fn new_signing_secret() -> Secret {
    Secret::new(random_alphanumeric(48))
}

/// The callback URL's hash: lowercase hex HMAC-SHA256 of the internal id.
pub(crate) fn callback_hash(signing_secret: &Secret, id: &WaitpointId) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_secret.expose().as_bytes());
    hex(hmac::sign(&key, id.internal().as_bytes()).as_ref())
}

/// Whether `hash` (hex, any case) is the callback hash of `id`; compared in constant time.
pub(crate) fn callback_hash_matches(signing_secret: &Secret, id: &WaitpointId, hash: &str) -> bool {
    let Some(tag) = unhex(hash) else { return false };
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_secret.expose().as_bytes());
    hmac::verify(&key, id.internal().as_bytes(), &tag).is_ok()
}

/// Signs a public access token that may complete the waitpoint `id`.
pub(crate) fn sign_public_token(environment: &Environment, id: &WaitpointId, now: Timestamp) -> String {
    let iat = now.as_millis() / 1000;
    let claims = PublicClaims {
        sub: environment.id.public(),
        public: true,
        scopes: vec![format!("write:waitpoints:{id}")],
        exp: Some(iat + PUBLIC_TOKEN_LIFETIME_SECS),
        iat: Some(iat),
        nbf: None,
        iss: Some(ISSUER.to_owned()),
        aud: Some(AUDIENCE.to_owned()),
    };
    // Signing secrets are never empty and HS256 over serializable claims cannot fail.
    EncodingKey::from_secret(environment.signing_secret.expose().as_bytes())
        .and_then(|key| jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key))
        .unwrap_or_default()
}

/// The claimed environment (`sub`) of something shaped like a public access token, before
/// any verification; `None` when it is not one (then it may be a secret key).
pub(crate) fn public_token_subject(token: &str) -> Option<String> {
    if token.split('.').count() != 3 {
        return None;
    }
    let claims = jsonwebtoken::dangerous::insecure_decode::<PublicClaims>(token).ok()?.claims;
    claims.public.then_some(claims.sub)
}

/// Verifies a public access token of `environment`: signed (HS256) with its signing secret or
/// its current secret key, right issuer and audience, with an expiry (`exp`) that has not
/// passed at `now`, and neither valid only later (`nbf`) nor issued later (`iat`) than `now`
/// give or take [`CLOCK_LEEWAY_SECS`].
pub(crate) fn verify_public_token(token: &str, environment: &Environment, now: Timestamp) -> Option<PublicClaims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["iss", "aud", "exp"]);
    // Times are checked against the injected clock below.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = [&environment.signing_secret, &environment.api_key].into_iter().find_map(|secret| {
        let key = DecodingKey::from_secret(secret.expose().as_bytes()).ok()?;
        jsonwebtoken::decode::<PublicClaims>(token, &key, &validation).ok().map(|data| data.claims)
    })?;
    let now = now.as_millis() / 1000;
    let current = claims.exp.is_some_and(|exp| now < exp)
        && claims.nbf.is_none_or(|nbf| nbf <= now + CLOCK_LEEWAY_SECS)
        && claims.iat.is_none_or(|iat| iat <= now + CLOCK_LEEWAY_SECS);
    (current && claims.public).then_some(claims)
}

/// Whether `scopes` allow completing (`write`) the waitpoint `id`: `admin`, or
/// `write|*` on `all`, on `waitpoints`, or on `waitpoints:<id>` (prefixed or bare).
pub(crate) fn scopes_allow_write(scopes: &[String], id: &WaitpointId) -> bool {
    scopes.iter().any(|scope| {
        if scope == "admin" {
            return true;
        }
        let mut parts = scope.splitn(3, ':');
        let (Some(action), Some(kind)) = (parts.next(), parts.next()) else { return false };
        if action != "write" && action != "*" {
            return false;
        }
        match (kind, parts.next()) {
            ("all", _) | ("waitpoints", None) => true,
            ("waitpoints", Some(scoped)) => WaitpointId::parse(scoped).is_ok_and(|scoped| scoped == *id),
            _ => false,
        }
    })
}

/// The HMAC domain of sessions.
const SESSION_DOMAIN: &str = "waitpoint session\n";
/// The HMAC domain of a secret key's fingerprint in a session.
const FINGERPRINT_DOMAIN: &str = "waitpoint key fingerprint\n";
/// The HMAC domain of the CSRF token of a session's forms.
const CSRF_DOMAIN: &str = "waitpoint csrf\n";

fn sign(secret: &Secret, domain: &str, message: &str) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(domain.as_bytes());
    context.update(message.as_bytes());
    context.sign()
}

fn verify(secret: &Secret, domain: &str, message: &str, hex_tag: &str) -> bool {
    let Some(tag) = unhex(hex_tag) else { return false };
    let expected = sign(secret, domain, message);
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_ref(), &tag).is_ok()
}

/// What a signed token URL (other than the callback URL) lets anyone who holds it do. Each is
/// signed in a domain of its own, so no URL can be turned into another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignedUrl {
    /// Open the token's approval page.
    Approval,
    /// Reject the token.
    Reject,
    /// Send the token a heartbeat.
    Heartbeat,
}

impl SignedUrl {
    /// The HMAC domain of this URL's signatures.
    const fn domain(self) -> &'static str {
        match self {
            Self::Approval => "waitpoint approval page\n",
            Self::Reject => "waitpoint reject url\n",
            Self::Heartbeat => "waitpoint heartbeat url\n",
        }
    }

    /// Where this URL of token `id` points below the public URL, before its signature.
    pub(crate) fn path(self, id: &WaitpointId) -> String {
        match self {
            Self::Approval => format!("/approve/{id}"),
            Self::Reject => format!("/api/v1/waitpoints/tokens/{id}/reject"),
            Self::Heartbeat => format!("/api/v1/waitpoints/tokens/{id}/heartbeat"),
        }
    }

    /// The signature in this URL of token `id`: lowercase hex HMAC-SHA256 of the internal id
    /// in this URL's domain (never equal to the callback hash).
    pub(crate) fn signature(self, signing_secret: &Secret, id: &WaitpointId) -> String {
        hex(sign(signing_secret, self.domain(), id.internal()).as_ref())
    }

    /// Whether `signature` (hex) is this URL's signature of `id`; compared in constant time.
    pub(crate) fn matches(self, signing_secret: &Secret, id: &WaitpointId, signature: &str) -> bool {
        verify(signing_secret, self.domain(), id.internal(), signature)
    }
}

/// A session's claims, as its cookie carries them: `<env>.<expires ms>.<nonce>.<key fingerprint>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionClaims {
    pub environment: String,
    pub expires_at: Timestamp,
    pub nonce: String,
}

/// The fingerprint of `environment`'s current secret key: sessions carry it, so a rotated key
/// no longer matches them.
fn key_fingerprint(environment: &Environment) -> String {
    hex(&sign(&environment.signing_secret, FINGERPRINT_DOMAIN, environment.api_key.expose()).as_ref()[..16])
}

/// A session cookie's value for `environment`, valid until `expires_at`: the claims and their
/// signature, all of `[0-9a-z.]`.
pub(crate) fn sign_session(environment: &Environment, expires_at: Timestamp) -> String {
    let claims = format!(
        "{}.{}.{}.{}",
        environment.id.internal(),
        expires_at.as_millis(),
        random_alphanumeric(24).to_ascii_lowercase(),
        key_fingerprint(environment)
    );
    let signature = hex(sign(&environment.signing_secret, SESSION_DOMAIN, &claims).as_ref());
    format!("{claims}.{signature}")
}

/// The environment a session cookie claims, before any verification.
pub(crate) fn session_environment(cookie: &str) -> Option<&str> {
    cookie.split('.').next().filter(|id| !id.is_empty())
}

/// Verifies a session cookie of `environment` at `now`: signed with its signing secret, not
/// expired, and opened with its current secret key.
pub(crate) fn verify_session(cookie: &str, environment: &Environment, now: Timestamp) -> Option<SessionClaims> {
    let (claims, signature) = cookie.rsplit_once('.')?;
    if !verify(&environment.signing_secret, SESSION_DOMAIN, claims, signature) {
        return None;
    }
    let mut parts = claims.split('.');
    let (env, expires, nonce, fingerprint) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let expires_at = Timestamp::from_millis(expires.parse().ok()?);
    let current = env == environment.id.internal()
        && parts.next().is_none()
        && now < expires_at
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            fingerprint.as_bytes(),
            key_fingerprint(environment).as_bytes(),
        )
        .is_ok();
    current.then(|| SessionClaims { environment: env.to_owned(), expires_at, nonce: nonce.to_owned() })
}

/// The CSRF token of a session's forms (hex), derived from its nonce.
pub(crate) fn csrf_token(environment: &Environment, claims: &SessionClaims) -> String {
    hex(&sign(&environment.signing_secret, CSRF_DOMAIN, &claims.nonce).as_ref()[..16])
}

/// A fingerprint of a one-time sign-in link's secret, which is all that is kept of it.
pub(crate) fn link_digest(secret: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref().to_vec()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[(b >> 4) as usize] as char, DIGITS[(b & 15) as usize] as char]).collect()
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes().chunks(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use waitpoint_types::EnvironmentId;

    use super::*;

    fn environment() -> Environment {
        Environment {
            id: EnvironmentId::parse("env_c123").unwrap(),
            name: "dev".into(),
            api_key: Secret::new("tr_dev_ABCDEFGHIJKLMNOPQRSTUVWX".into()),
            signing_secret: Secret::new("signing".into()),
            created_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn callback_hash_is_hmac_sha256_hex_of_the_internal_id() {
        // The test vector of Trigger.dev's contract (there the key is the API key).
        let id = WaitpointId::parse("waitpoint_cm8zq1x2y0000abcd1234efgh").unwrap();
        let key = Secret::new("tr_dev_ABCDEFGHIJKLMNOPQRSTUVWX".into());
        let hash = callback_hash(&key, &id);
        assert_eq!(hash, "c090473e20dc7e43c3bcc42ef9731bfe59b740d2aaed049c912baa282eb1c74b");
        assert!(callback_hash_matches(&key, &id, &hash));
        assert!(callback_hash_matches(&key, &id, &hash.to_uppercase()));
        assert!(!callback_hash_matches(&key, &id, &hash[..62]));
        assert!(!callback_hash_matches(&key, &id, &"zz".repeat(32)));
        assert!(!callback_hash_matches(&Secret::new("other".into()), &id, &hash));
    }

    #[test]
    fn public_tokens_verify_until_they_expire_and_only_for_their_environment() {
        let env = environment();
        let id = WaitpointId::parse("waitpoint_c1").unwrap();
        let now = Timestamp::from_millis(1_764_000_000_000);
        let token = sign_public_token(&env, &id, now);
        assert_eq!(public_token_subject(&token).as_deref(), Some("env_c123"));
        let claims = verify_public_token(&token, &env, now).unwrap();
        assert!(scopes_allow_write(&claims.scopes, &id));
        assert!(!scopes_allow_write(&claims.scopes, &WaitpointId::parse("waitpoint_c2").unwrap()));
        let next_day = now.saturating_add(std::time::Duration::from_secs(86_400));
        assert!(verify_public_token(&token, &env, next_day).is_none());
        let mut other = env;
        other.signing_secret = Secret::new("another".into());
        other.api_key = Secret::new("tr_dev_another".into());
        assert!(verify_public_token(&token, &other, now).is_none());
        assert_eq!(public_token_subject("tr_dev_ABCDEFGHIJKLMNOPQRSTUVWX"), None);
    }

    /// Regression: a token signed with the secret key and no `exp` never expired, and `nbf` and
    /// `iat` in the future were ignored.
    #[test]
    fn tokens_signed_with_the_secret_key_need_an_expiry_and_a_present_start() {
        let env = environment();
        let now = Timestamp::from_millis(1_764_000_000_000);
        let secs = now.as_millis() / 1000;
        let sign = |exp: Option<i64>, nbf: Option<i64>, iat: Option<i64>| {
            let claims = PublicClaims {
                sub: env.id.public(),
                public: true,
                scopes: vec!["write:waitpoints".into()],
                exp,
                iat,
                nbf,
                iss: Some(ISSUER.to_owned()),
                aud: Some(AUDIENCE.to_owned()),
            };
            let key = EncodingKey::from_secret(env.api_key.expose().as_bytes()).unwrap();
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
        };
        let hour = Some(secs + 3_600);
        assert!(verify_public_token(&sign(hour, None, Some(secs)), &env, now).is_some());
        assert!(verify_public_token(&sign(None, None, Some(secs)), &env, now).is_none(), "no exp");
        assert!(verify_public_token(&sign(Some(secs), None, None), &env, now).is_none(), "expired");
        assert!(verify_public_token(&sign(hour, Some(secs + 600), None), &env, now).is_none(), "not yet valid");
        assert!(verify_public_token(&sign(hour, Some(secs + 30), None), &env, now).is_some(), "within the leeway");
        assert!(verify_public_token(&sign(hour, None, Some(secs + 600)), &env, now).is_none(), "issued later");
        assert!(verify_public_token(&sign(hour, None, Some(secs + 30)), &env, now).is_some(), "within the leeway");
    }

    #[test]
    fn scopes_follow_trigger_dev_grammar() {
        let id = WaitpointId::parse("waitpoint_cx").unwrap();
        for allowed in ["admin", "write:all", "write:waitpoints", "*:waitpoints:waitpoint_cx", "write:waitpoints:cx"] {
            assert!(scopes_allow_write(&[allowed.to_owned()], &id), "{allowed}");
        }
        for denied in ["read:waitpoints", "write:runs", "write:waitpoints:waitpoint_cy", "write", ""] {
            assert!(!scopes_allow_write(&[denied.to_owned()], &id), "{denied}");
        }
    }

    #[test]
    fn approval_signatures_are_not_callback_hashes() {
        let env = environment();
        let id = WaitpointId::parse("waitpoint_cm8zq1x2y0000abcd1234efgh").unwrap();
        let signature = SignedUrl::Approval.signature(&env.signing_secret, &id);
        assert_eq!(signature.len(), 64);
        assert_ne!(signature, callback_hash(&env.signing_secret, &id));
        assert!(SignedUrl::Approval.matches(&env.signing_secret, &id, &signature));
        assert!(!SignedUrl::Approval.matches(&env.signing_secret, &id, &callback_hash(&env.signing_secret, &id)));
        let other = WaitpointId::parse("waitpoint_c2").unwrap();
        assert!(!SignedUrl::Approval.matches(&env.signing_secret, &other, &signature), "one token only");
        assert!(!SignedUrl::Approval.matches(&Secret::new("other".into()), &id, &signature));
    }

    #[test]
    fn no_signed_url_can_be_turned_into_another() {
        let env = environment();
        let id = WaitpointId::parse("waitpoint_cm8zq1x2y0000abcd1234efgh").unwrap();
        let kinds = [SignedUrl::Approval, SignedUrl::Reject, SignedUrl::Heartbeat];
        for kind in kinds {
            let signature = kind.signature(&env.signing_secret, &id);
            assert!(kind.matches(&env.signing_secret, &id, &signature));
            assert!(!kind.matches(&env.signing_secret, &id, &callback_hash(&env.signing_secret, &id)));
            for other in kinds.into_iter().filter(|other| *other != kind) {
                assert!(!other.matches(&env.signing_secret, &id, &signature), "{kind:?} is not {other:?}");
            }
            let other = WaitpointId::parse("waitpoint_c2").unwrap();
            assert!(!kind.matches(&env.signing_secret, &other, &signature), "one token only");
        }
    }

    #[test]
    fn sessions_verify_until_they_expire_or_the_key_rotates() {
        let env = environment();
        let now = Timestamp::from_millis(1_764_000_000_000);
        let expires = now.saturating_add(std::time::Duration::from_secs(3_600));
        let cookie = sign_session(&env, expires);
        assert!(cookie.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.'), "{cookie}");
        assert_eq!(session_environment(&cookie), Some("c123"));
        let claims = verify_session(&cookie, &env, now).unwrap();
        assert_eq!(claims.expires_at, expires);
        assert!(verify_session(&cookie, &env, expires).is_none(), "expired");
        let mut rotated = env.clone();
        rotated.api_key = Secret::new("tr_dev_rotatedrotatedrotated1".into());
        assert!(verify_session(&cookie, &rotated, now).is_none(), "a rotated key ends its sessions");
        let forged = cookie.replacen(&expires.as_millis().to_string(), &(expires.as_millis() + 1).to_string(), 1);
        assert!(verify_session(&forged, &env, now).is_none(), "claims are signed");
        let csrf = csrf_token(&env, &claims);
        let other = verify_session(&sign_session(&env, expires), &env, now).unwrap();
        assert_ne!(csrf, csrf_token(&env, &other), "each session has its own CSRF token");
    }

    #[test]
    fn api_keys_are_shaped_like_trigger_dev_keys() {
        let key = new_api_key("dev");
        assert!(key.expose().starts_with("tr_dev_"));
        assert_eq!(key.expose().len(), "tr_dev_".len() + 24);
        assert!(new_api_key("production").expose().starts_with("tr_prod_"));
        assert!(new_api_key("staging").expose().starts_with("tr_stg_"));
    }
}
