//! Signed inbound webhooks: a token's `callbackVerifier` checked against each delivery to its
//! callback URL, before anything else about the delivery is used. A delivery that does not
//! verify is refused (401) and changes nothing; one that does completes the token like any
//! callback, and since a token completes once, a provider's repeated delivery (the same
//! `webhook-id`, Stripe event or GitHub delivery) answers 200 and changes nothing.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use waitpoint_types::api::CallbackVerifierRequest;
use waitpoint_types::{CallbackVerifier, Secret, Timestamp, VerifierScheme};

use crate::Engine;
use crate::auth::unhex;
use crate::error::{EngineError, Result};
use crate::tokens::VerifiedCallback;

/// How far a signed timestamp may be from the server's clock (Stripe's and Standard Webhooks'
/// default tolerance), in seconds.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;
/// The longest secret a verifier takes, in characters.
pub const MAX_VERIFIER_SECRET: usize = 1024;

/// Checks a create's `callbackVerifier`: a secret of 1 to [`MAX_VERIFIER_SECRET`] printable
/// characters (for Standard Webhooks, base64 after an optional `whsec_`), and a header name
/// for `hmac-sha256` only.
pub(crate) fn checked_verifier(request: &CallbackVerifierRequest) -> Result<CallbackVerifier> {
    let invalid = |message: String| Err(EngineError::Invalid(format!("callbackVerifier.{message}")));
    let length = request.secret.chars().count();
    if length == 0 || length > MAX_VERIFIER_SECRET || request.secret.chars().any(char::is_control) {
        return invalid(format!(
            "secret must be 1 to {MAX_VERIFIER_SECRET} characters without control characters: the secret the sender \
             signs with"
        ));
    }
    if request.scheme == VerifierScheme::StandardWebhooks && standard_webhooks_key(&request.secret).is_none() {
        return invalid(
            "secret must be a Standard Webhooks secret: base64, with or without its \"whsec_\" prefix".to_owned(),
        );
    }
    let header = match (&request.header, request.scheme) {
        (None, _) => None,
        (Some(header), VerifierScheme::HmacSha256) => {
            if header.is_empty()
                || header.len() > 100
                || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return invalid(format!("header {header:?} is not a header name such as \"X-Signature\""));
            }
            Some(header.to_ascii_lowercase())
        }
        (Some(_), scheme) => {
            return invalid(format!("header applies to hmac-sha256 only; {scheme} says where its signature is"));
        }
    };
    Ok(CallbackVerifier { scheme: request.scheme, secret: Secret::new(request.secret.clone()), header })
}

/// The HMAC key of a Standard Webhooks secret: the base64 after `whsec_`.
fn standard_webhooks_key(secret: &str) -> Option<Vec<u8>> {
    BASE64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok().filter(|key| !key.is_empty())
}

/// Whether `tag` is the HMAC-SHA256 under `key` of the concatenation of `parts` (constant time).
fn signed(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    aws_lc_rs::constant_time::verify_slices_are_equal(context.sign().as_ref(), tag).is_ok()
}

/// Why a delivery of `body`, with headers read by `header` (a lowercase name gives the value),
/// does not verify under `verifier` at `now`; `None` when it does. The reason never includes
/// what the signature should have been.
pub(crate) fn delivery_refusal<'h>(
    verifier: &CallbackVerifier,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now: Timestamp,
) -> Option<String> {
    let secret = verifier.secret.expose().as_bytes();
    let missing = |name: &str| Some(format!("no {name} header"));
    let fresh = |seconds: &str| -> std::result::Result<(), String> {
        let at: i64 = seconds.trim().parse().map_err(|_| format!("the timestamp {seconds:?} is not unix seconds"))?;
        let skew = (now.as_millis() / 1000 - at).abs();
        if skew > SIGNATURE_TOLERANCE_SECS {
            return Err(format!(
                "the signed timestamp is {skew} s from the server's clock (at most {SIGNATURE_TOLERANCE_SECS})"
            ));
        }
        Ok(())
    };
    match verifier.scheme {
        VerifierScheme::GitHub => {
            let Some(value) = header("x-hub-signature-256") else { return missing("X-Hub-Signature-256") };
            let tag = value.strip_prefix("sha256=").and_then(unhex);
            (!tag.is_some_and(|tag| signed(secret, &[body], &tag))).then(|| "the signature does not match".to_owned())
        }
        VerifierScheme::HmacSha256 => {
            let name = verifier.signature_header();
            let Some(value) = header(name) else { return missing(name) };
            let tag = unhex(value.trim().strip_prefix("sha256=").unwrap_or(value.trim()));
            (!tag.is_some_and(|tag| signed(secret, &[body], &tag))).then(|| "the signature does not match".to_owned())
        }
        VerifierScheme::Stripe => {
            let Some(value) = header("stripe-signature") else { return missing("Stripe-Signature") };
            let items = value.split(',').filter_map(|item| item.trim().split_once('='));
            let (mut at, mut tags) = (None, Vec::new());
            for (key, item) in items {
                match key {
                    "t" => at = Some(item),
                    "v1" => tags.extend(unhex(item)),
                    _ => {}
                }
            }
            let Some(at) = at else { return Some("the Stripe-Signature header has no t=".to_owned()) };
            if let Err(reason) = fresh(at) {
                return Some(reason);
            }
            let parts: [&[u8]; 3] = [at.as_bytes(), b".", body];
            (!tags.iter().any(|tag| signed(secret, &parts, tag))).then(|| "no v1 signature matches".to_owned())
        }
        VerifierScheme::StandardWebhooks => {
            let Some(id) = header("webhook-id") else { return missing("webhook-id") };
            let Some(at) = header("webhook-timestamp") else { return missing("webhook-timestamp") };
            let Some(signatures) = header("webhook-signature") else { return missing("webhook-signature") };
            if let Err(reason) = fresh(at) {
                return Some(reason);
            }
            let key = standard_webhooks_key(verifier.secret.expose())?;
            let parts: [&[u8]; 5] = [id.as_bytes(), b".", at.as_bytes(), b".", body];
            let matches = signatures
                .split(' ')
                .filter_map(|signature| signature.strip_prefix("v1,"))
                .filter_map(|tag| BASE64.decode(tag).ok())
                .any(|tag| signed(&key, &parts, &tag));
            (!matches).then(|| "no v1 signature matches".to_owned())
        }
    }
}

impl Engine {
    /// Checks a delivery to a verified callback URL against its token's `callbackVerifier`, if
    /// it has one: `header` reads the request's headers by lowercase name, `body` is the raw
    /// body. A delivery that does not verify is `Unauthenticated` (401), saying why.
    pub fn verify_delivery<'h>(
        &self,
        callback: &VerifiedCallback,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
    ) -> Result<()> {
        let Some(verifier) = &callback.waitpoint.callback_verifier else { return Ok(()) };
        match delivery_refusal(verifier, header, body, self.inner.clock.now()) {
            None => Ok(()),
            Some(reason) => Err(EngineError::Unauthenticated(format!(
                "The delivery's {} signature does not verify: {reason}",
                verifier.scheme
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn verifier(scheme: VerifierScheme, secret: &str) -> CallbackVerifier {
        checked_verifier(&CallbackVerifierRequest { scheme, secret: secret.into(), header: None }).unwrap()
    }

    fn check(verifier: &CallbackVerifier, headers: &[(&str, &str)], body: &str, now_secs: i64) -> Option<String> {
        let headers: HashMap<&str, &str> = headers.iter().copied().collect();
        delivery_refusal(
            verifier,
            |name| headers.get(name).copied(),
            body.as_bytes(),
            Timestamp::from_millis(now_secs * 1000),
        )
    }

    #[test]
    fn standard_webhooks_verifies_the_specs_example_within_five_minutes() {
        let verifier = verifier(VerifierScheme::StandardWebhooks, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = r#"{"test": 2432232314}"#;
        let headers = [
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", "v1,bm90IGl0 v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ];
        assert_eq!(check(&verifier, &headers, body, 1_614_265_330), None);
        assert_eq!(check(&verifier, &headers, body, 1_614_265_330 + 300), None);
        let late = check(&verifier, &headers, body, 1_614_265_330 + 301).unwrap();
        assert!(late.contains("301 s"), "{late}");
        assert!(check(&verifier, &headers, r#"{"test": 2432232315}"#, 1_614_265_330).is_some(), "another body");
        assert_eq!(
            check(&verifier, &headers[..2], body, 1_614_265_330).as_deref(),
            Some("no webhook-signature header")
        );
    }

    #[test]
    fn github_verifies_its_documented_example() {
        let verifier = verifier(VerifierScheme::GitHub, "It's a Secret to Everybody");
        let good = [("x-hub-signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")];
        assert_eq!(check(&verifier, &good, "Hello, World!", 0), None);
        assert!(check(&verifier, &good, "Hello, World?", 0).is_some());
        let unprefixed = [("x-hub-signature-256", "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")];
        assert!(check(&verifier, &unprefixed, "Hello, World!", 0).is_some());
    }

    #[test]
    fn stripe_checks_the_timestamp_and_any_v1_signature() {
        let verifier = verifier(VerifierScheme::Stripe, "whsec_test");
        let at = 1_700_000_000;
        let body = r#"{"id":"evt_1"}"#;
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_test");
        let tag = crate::auth::hex(hmac::sign(&key, format!("{at}.{body}").as_bytes()).as_ref());
        let header = format!("t={at},v1=00ff,v1={tag},v0=ignored");
        assert_eq!(check(&verifier, &[("stripe-signature", &header)], body, at + 10), None);
        assert!(check(&verifier, &[("stripe-signature", &header)], body, at + 301).is_some(), "too old");
        assert!(check(&verifier, &[("stripe-signature", &format!("v1={tag}"))], body, at).is_some(), "no t=");
    }

    #[test]
    fn hmac_sha256_reads_its_header_with_or_without_a_prefix() {
        let request = CallbackVerifierRequest {
            scheme: VerifierScheme::HmacSha256,
            secret: "s".into(),
            header: Some("X-Acme-Signature".into()),
        };
        let verifier = checked_verifier(&request).unwrap();
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"s");
        let tag = crate::auth::hex(hmac::sign(&key, b"body").as_ref());
        assert_eq!(check(&verifier, &[("x-acme-signature", &tag)], "body", 0), None);
        assert_eq!(check(&verifier, &[("x-acme-signature", &format!("sha256={tag}"))], "body", 0), None);
        assert_eq!(
            check(&verifier, &[("x-signature", &tag)], "body", 0).as_deref(),
            Some("no x-acme-signature header")
        );
    }

    #[test]
    fn verifiers_are_checked_when_given() {
        let request = |scheme, secret: &str, header: Option<&str>| CallbackVerifierRequest {
            scheme,
            secret: secret.into(),
            header: header.map(Into::into),
        };
        for (bad, hint) in [
            (request(VerifierScheme::GitHub, "", None), "secret"),
            (request(VerifierScheme::StandardWebhooks, "whsec_not base64!", None), "base64"),
            (request(VerifierScheme::Stripe, "s", Some("X-Sig")), "hmac-sha256 only"),
            (request(VerifierScheme::HmacSha256, "s", Some("X Sig")), "header name"),
            (request(VerifierScheme::GitHub, &"s".repeat(MAX_VERIFIER_SECRET + 1), None), "secret"),
        ] {
            match checked_verifier(&bad) {
                Err(EngineError::Invalid(message)) => assert!(message.contains(hint), "{message}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
