//! Request bodies: read within a size limit, then parsed strictly. Anything unexpected is a
//! 4xx that shows the expected shape, never silently dropped.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use serde_json::value::RawValue;
use waitpoint_engine::checked_rejection;
use waitpoint_types::api::{CreateTokenRequest, TriggerOptions};
use waitpoint_types::{Output, Rejection};

use crate::error::ApiError;
use crate::strict_json;

/// The largest create body: 10 KiB, as Trigger.dev.
pub(crate) const CREATE_LIMIT: usize = 10 * 1024;
/// The largest completion body (and so output): 3 MiB, as Trigger.dev.
pub(crate) const OUTPUT_LIMIT: usize = 3 * 1024 * 1024;

const CREATE_SHAPE: &str = r#"{"timeout": "10m", "idempotencyKey": "...", "idempotencyKeyTTL": "1h", "tags": ["..."], "approval": {"title": "..."}, "outputSchema": {"type": "object"}, "heartbeatTimeout": "30s", "callbackVerifier": {"scheme": "github", "secret": "..."}} (every field optional)"#;
const CALLBACK_SHAPE: &str =
    r#"{"status": "succeeded", ...} (any JSON becomes the output; other text is kept as text)"#;
const COMPLETE_SHAPE: &str = r#"{"data": <output>} or {"output": <output>}, or {} to complete without output"#;

/// Whether a body must announce its length. The callback route requires it (411 otherwise),
/// as Trigger.dev's does; the others also take chunked bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    Required,
    Optional,
}

/// A body that must be refused is still read, and thrown away, up to this many bytes, so the
/// client can finish sending and read the refusal instead of a broken connection (which
/// Trigger.dev's SDK would retry). Beyond it the connection is closed.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Reads the whole body. More than `limit` bytes (declared by `Content-Length`, or sent) is a
/// 413; a missing `Content-Length` where it is required is a 411.
pub(crate) async fn read(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
    length: Length,
) -> Result<Vec<u8>, ApiError> {
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("Request body too large: the limit is {limit} bytes"));
    let refusal = match headers.get(header::CONTENT_LENGTH) {
        Some(value) => match value.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()) {
            Some(declared) if declared > limit => Some(too_large()),
            Some(_) => None,
            None => Some(ApiError::bad_request("Content-Length header is not a number")),
        },
        None if length == Length::Required => {
            Some(ApiError::new(StatusCode::LENGTH_REQUIRED, "Content-Length header is required"))
        }
        None => None,
    };
    let mut bytes = Vec::new();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|error| ApiError::bad_request(format!("could not read the request body: {error}")))?;
        let Ok(data) = frame.into_data() else { continue };
        received += data.len();
        if received > DRAIN_LIMIT {
            break;
        }
        if refusal.is_none() && received <= limit {
            bytes.extend_from_slice(&data);
        }
    }
    match refusal {
        Some(error) => Err(error),
        None if received > limit => Err(too_large()),
        None => Ok(bytes),
    }
}

fn not_empty(bytes: &[u8], shape: &str) -> Result<(), ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!("Request body is empty: send a JSON object such as {shape}")));
    }
    Ok(())
}

fn invalid_json(error: &serde_json::Error, shape: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid JSON ({error}): send a JSON object such as {shape}"))
}

/// A body that is not JSON, or is JSON that would not come back as sent (see
/// [`strict_json`]), is a 400 saying why and where.
fn strict(bytes: &[u8], shape: &str) -> Result<(), ApiError> {
    strict_json::check(bytes).map_err(|error| invalid_json(&error, shape))
}

fn not_an_object(value: &Value, shape: &str) -> ApiError {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ApiError::bad_request(format!("Request body must be a JSON object, not {kind}: send {shape}"))
}

/// Parses a create body. Every field is optional; unknown fields, `null`s and wrong types
/// are rejected.
pub(crate) fn parse_create(bytes: &[u8]) -> Result<CreateTokenRequest, ApiError> {
    not_empty(bytes, CREATE_SHAPE)?;
    strict(bytes, CREATE_SHAPE)?;
    let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid_json(&e, CREATE_SHAPE))?;
    let Value::Object(fields) = value else { return Err(not_an_object(&value, CREATE_SHAPE)) };
    let mut request = CreateTokenRequest::default();
    for (name, value) in fields {
        match name.as_str() {
            "timeout" => {
                request.timeout =
                    Some(string_field(&name, value, "a duration such as \"10m\", an ISO 8601 date, or \"none\"")?)
            }
            "idempotencyKey" => request.idempotency_key = Some(string_field(&name, value, "a string")?),
            "idempotencyKeyTTL" => {
                request.idempotency_key_ttl =
                    Some(string_field(&name, value, "a duration such as \"1h\", or \"none\"")?)
            }
            "tags" => request.tags = Some(tags(value)?),
            "approval" => request.approval = Some(approval(value)?),
            "outputSchema" => request.output_schema = Some(output_schema(value)?),
            "heartbeatTimeout" => {
                request.heartbeat_timeout = Some(string_field(&name, value, "a duration such as \"30s\"")?)
            }
            "callbackVerifier" => request.callback_verifier = Some(callback_verifier(value)?),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Unknown field {name:?}: a token takes timeout, idempotencyKey, idempotencyKeyTTL, tags, \
                     approval, outputSchema, heartbeatTimeout and callbackVerifier, as in {CREATE_SHAPE}"
                )));
            }
        }
    }
    Ok(request)
}

const APPROVAL_SHAPE: &str = r#"{"title": "...", "description": "...", "fields": [{"name": "amount", "label": "Amount", "type": "number", "required": true, "min": 0, "max": 100}, {"name": "note", "type": "text", "multiline": true}, {"name": "tier", "type": "choice", "options": ["a", "b"]}, {"name": "notify", "type": "boolean"}]} (every key optional but a field's name and type)"#;

/// An output schema: a JSON Schema object (whether it compiles, the engine checks).
fn output_schema(value: Value) -> Result<Value, ApiError> {
    match value {
        Value::Object(_) => Ok(value),
        other => Err(ApiError::bad_request(format!(
            "outputSchema must be a JSON Schema (an object such as {{\"type\": \"object\"}}), not {other}"
        ))),
    }
}

const VERIFIER_SHAPE: &str = r#"{"scheme": "standard-webhooks" | "stripe" | "github" | "hmac-sha256", "secret": "...", "header": "X-Signature"} (header for hmac-sha256 only, optional)"#;

/// A callback verifier, with its shape in the error when it does not fit.
fn callback_verifier(value: Value) -> Result<waitpoint_types::api::CallbackVerifierRequest, ApiError> {
    if value.is_null() {
        return Err(ApiError::bad_request(
            "callbackVerifier must be an object; null is not accepted (leave it out instead)",
        ));
    }
    serde_json::from_value(value).map_err(|error| {
        ApiError::bad_request(format!("callbackVerifier is not valid ({error}): send {VERIFIER_SHAPE}"))
    })
}

/// The approval page's description, with its shape in the error when it does not fit.
fn approval(value: Value) -> Result<waitpoint_types::Approval, ApiError> {
    if value.is_null() {
        return Err(ApiError::bad_request("approval must be an object; null is not accepted (leave it out instead)"));
    }
    serde_json::from_value(value)
        .map_err(|error| ApiError::bad_request(format!("approval is not valid ({error}): send {APPROVAL_SHAPE}")))
}

fn string_field(name: &str, value: Value, expected: &str) -> Result<String, ApiError> {
    match value {
        Value::String(text) => Ok(text),
        Value::Null => Err(ApiError::bad_request(format!(
            "{name} must be {expected}; null is not accepted (leave the field out instead)"
        ))),
        other => Err(ApiError::bad_request(format!("{name} must be {expected}, not {other}"))),
    }
}

fn tags(value: Value) -> Result<Vec<String>, ApiError> {
    match value {
        Value::String(tag) => Ok(vec![tag]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(tag) => Ok(tag),
                other => Err(ApiError::bad_request(format!("tags[{i}] must be a string, not {other}"))),
            })
            .collect(),
        other => Err(ApiError::bad_request(format!("tags must be a string or an array of strings, not {other}"))),
    }
}

/// Parses a completion body: `{"data": X}` or `{"output": X}` (X kept byte for byte), or `{}`
/// for no output.
pub(crate) fn parse_complete(bytes: &[u8]) -> Result<Option<Output>, ApiError> {
    not_empty(bytes, COMPLETE_SHAPE)?;
    strict(bytes, COMPLETE_SHAPE)?;
    let fields: BTreeMap<String, Box<RawValue>> = match serde_json::from_slice(bytes) {
        Ok(fields) => fields,
        Err(error) => {
            let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid_json(&e, COMPLETE_SHAPE))?;
            return Err(match value {
                Value::Object(_) => invalid_json(&error, COMPLETE_SHAPE),
                other => not_an_object(&other, COMPLETE_SHAPE),
            });
        }
    };
    let mut output = None;
    for (name, raw) in fields {
        match name.as_str() {
            "data" | "output" if output.is_some() => {
                return Err(ApiError::bad_request(format!(
                    "Both \"data\" and \"output\" were given; send only one: {COMPLETE_SHAPE}"
                )));
            }
            "data" | "output" => output = Some(output_of(&raw)),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Unknown field {name:?}: wrap the output as {COMPLETE_SHAPE}"
                )));
            }
        }
    }
    Ok(output)
}

/// The output of a callback: the whole body. No body is `{}`; a JSON body is its value; any
/// other UTF-8 body is kept as text rather than thrown away. A body that opens an object or an
/// array must be JSON that comes back as sent (see [`strict_json`]).
pub(crate) fn parse_callback(bytes: &[u8]) -> Result<Output, ApiError> {
    let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Ok(Output::from_json_text("{}"));
    };
    match strict_json::check(bytes) {
        Ok(()) => {
            let raw = serde_json::from_slice::<&RawValue>(bytes).map_err(|e| invalid_json(&e, CALLBACK_SHAPE))?;
            return Ok(output_of(raw));
        }
        Err(error) if matches!(first, b'{' | b'[') => return Err(invalid_json(&error, CALLBACK_SHAPE)),
        Err(_) => {}
    }
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Ok(Output::from_text(text)),
        Err(_) => Err(ApiError::bad_request("Callback body must be JSON or UTF-8 text")),
    }
}

/// A JSON string becomes a text output (as the official SDK encodes strings); any other value
/// is kept verbatim in a superjson envelope.
fn output_of(raw: &RawValue) -> Output {
    match serde_json::from_str::<String>(raw.get()) {
        Ok(text) => Output::from_text(text),
        Err(_) => Output::from_json_text(raw.get()),
    }
}

const REJECT_SHAPE: &str =
    r#"{"error": {"message": "why", "code": "PAYMENT_DECLINED", "data": <any JSON>}} (code and data optional)"#;

/// Parses a reject body into a checked rejection (see [`checked_rejection`]): `error.message`
/// is required, `code` and `data` optional; unknown fields are refused. `data` is kept as sent.
pub(crate) fn parse_reject(bytes: &[u8]) -> Result<Rejection, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body<'a> {
        #[serde(borrow)]
        error: Error<'a>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Error<'a> {
        message: String,
        code: Option<String>,
        #[serde(borrow)]
        data: Option<&'a RawValue>,
    }
    not_empty(bytes, REJECT_SHAPE)?;
    strict(bytes, REJECT_SHAPE)?;
    let body: Body<'_> = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::bad_request(format!("The rejection does not fit ({error}): send {REJECT_SHAPE}")))?;
    let Error { message, code, data } = body.error;
    Ok(checked_rejection(message, code, data.map(|data| data.get().to_owned()))?)
}

/// The data of a rejection through a reject URL, as JSON text: a JSON body as sent, other
/// UTF-8 text as a JSON string, no body as none. A body that opens an object or an array must
/// be JSON that comes back as sent (see [`strict_json`]).
pub(crate) fn parse_reject_url(bytes: &[u8]) -> Result<Option<String>, ApiError> {
    let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Ok(None);
    };
    match strict_json::check(bytes) {
        Ok(()) => {
            let raw = serde_json::from_slice::<&RawValue>(bytes).map_err(|e| invalid_json(&e, CALLBACK_SHAPE))?;
            return Ok(Some(raw.get().to_owned()));
        }
        Err(error) if matches!(first, b'{' | b'[') => return Err(invalid_json(&error, CALLBACK_SHAPE)),
        Err(_) => {}
    }
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Ok(Some(Value::String(text).to_string())),
        Err(_) => Err(ApiError::bad_request("A reject URL's body must be JSON or UTF-8 text")),
    }
}

/// The largest heartbeat or extend body.
pub(crate) const PROLONG_LIMIT: usize = 1024;

/// A heartbeat carries nothing: no body, or `{}`. Anything else is a 400, never ignored.
pub(crate) fn parse_heartbeat(bytes: &[u8]) -> Result<(), ApiError> {
    let shape = "no body, or {}";
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    strict(bytes, shape)?;
    match serde_json::from_slice::<Value>(bytes).map_err(|error| invalid_json(&error, shape))? {
        Value::Object(fields) if fields.is_empty() => Ok(()),
        Value::Object(fields) => Err(ApiError::bad_request(format!(
            "A heartbeat carries nothing, yet this one has {}: send {shape}",
            fields.keys().map(|key| format!("{key:?}")).collect::<Vec<_>>().join(", ")
        ))),
        other => Err(not_an_object(&other, shape)),
    }
}

const EXTEND_SHAPE: &str = r#"{"timeout": "1h"} (a duration from now, or an ISO 8601 date)"#;

/// Parses an extend: `{"timeout": <duration or date>}`, nothing else.
pub(crate) fn parse_extend(bytes: &[u8]) -> Result<String, ApiError> {
    not_empty(bytes, EXTEND_SHAPE)?;
    strict(bytes, EXTEND_SHAPE)?;
    let value: Value = serde_json::from_slice(bytes).map_err(|error| invalid_json(&error, EXTEND_SHAPE))?;
    let Value::Object(fields) = value else { return Err(not_an_object(&value, EXTEND_SHAPE)) };
    let mut timeout = None;
    for (name, value) in fields {
        match name.as_str() {
            "timeout" => timeout = Some(string_field(&name, value, "a duration such as \"1h\", or an ISO 8601 date")?),
            _ => return Err(ApiError::bad_request(format!("Unknown field {name:?}: send {EXTEND_SHAPE}"))),
        }
    }
    timeout.ok_or_else(|| ApiError::bad_request(format!("timeout is missing: send {EXTEND_SHAPE}")))
}

const WEBHOOK_SHAPE: &str = r#"{"url": "https://example.com/hooks", "kinds": ["waitpoint.completed"], "tags": ["..."]} (kinds and tags optional)"#;

/// Parses a webhook subscription: `url`, and optional `kinds` and `tags` arrays; nothing else.
pub(crate) fn parse_webhook(bytes: &[u8]) -> Result<waitpoint_types::api::CreateWebhookRequest, ApiError> {
    not_empty(bytes, WEBHOOK_SHAPE)?;
    strict(bytes, WEBHOOK_SHAPE)?;
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request(format!("The subscription does not fit ({error}): send {WEBHOOK_SHAPE}"))
    })
}

const TRIGGER_SHAPE: &str = r#"{"payload": <any JSON>, "options": {"idempotencyKey": "...", "idempotencyKeyTTL": "1h", "tags": ["..."], "maxAttempts": 3, "delay": "10m"}} (all optional)"#;

/// Parses a trigger body: the payload (kept verbatim as JSON text; `null` when absent) and the
/// options. Unknown fields, `null`s and wrong types are rejected.
pub(crate) fn parse_trigger(bytes: &[u8]) -> Result<(String, TriggerOptions), ApiError> {
    not_empty(bytes, TRIGGER_SHAPE)?;
    strict(bytes, TRIGGER_SHAPE)?;
    let fields: BTreeMap<String, Box<RawValue>> = match serde_json::from_slice(bytes) {
        Ok(fields) => fields,
        Err(error) => {
            let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid_json(&e, TRIGGER_SHAPE))?;
            return Err(match value {
                Value::Object(_) => invalid_json(&error, TRIGGER_SHAPE),
                other => not_an_object(&other, TRIGGER_SHAPE),
            });
        }
    };
    let mut payload = "null".to_owned();
    let mut options = TriggerOptions::default();
    for (name, raw) in fields {
        match name.as_str() {
            "payload" => payload = raw.get().trim().to_owned(),
            "options" => {
                let Value::Object(fields) =
                    serde_json::from_str(raw.get()).map_err(|e| invalid_json(&e, TRIGGER_SHAPE))?
                else {
                    return Err(ApiError::bad_request(format!("options must be an object: send {TRIGGER_SHAPE}")));
                };
                for (name, value) in fields {
                    match name.as_str() {
                        "idempotencyKey" => options.idempotency_key = Some(string_field(&name, value, "a string")?),
                        "idempotencyKeyTTL" => {
                            options.idempotency_key_ttl =
                                Some(string_field(&name, value, "a duration such as \"1h\", or \"none\"")?);
                        }
                        "tags" => options.tags = Some(tags(value)?),
                        "maxAttempts" => {
                            options.max_attempts =
                                Some(value.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                                    ApiError::bad_request(format!(
                                        "options.maxAttempts must be a whole number, not {value}"
                                    ))
                                })?);
                        }
                        "delay" => {
                            options.delay =
                                Some(string_field(&name, value, "a duration such as \"10m\" or an ISO 8601 date")?);
                        }
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "Unknown option {name:?}: a trigger takes idempotencyKey, idempotencyKeyTTL, tags, maxAttempts and delay"
                            )));
                        }
                    }
                }
            }
            _ => return Err(ApiError::bad_request(format!("Unknown field {name:?}: send {TRIGGER_SHAPE}"))),
        }
    }
    Ok((payload, options))
}

/// Parses a worker protocol body into `T` (whose type refuses unknown fields); the SDK writes
/// these, so serde's own message (which names the field and position) is detailed enough.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "Request body is empty: this route takes a JSON object (see the worker protocol)",
        ));
    }
    let invalid = |error: serde_json::Error| ApiError::bad_request(format!("Invalid request body: {error}"));
    strict_json::check(bytes).map_err(invalid)?;
    serde_json::from_slice(bytes).map_err(invalid)
}

/// A worker protocol body: a `T` as JSON, at most `LIMIT` bytes.
pub(crate) struct Protocol<T, const LIMIT: usize>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned, const LIMIT: usize> FromRequest<S> for Protocol<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = read(&parts.headers, body, LIMIT, Length::Optional).await?;
        parse_json(&bytes).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_carry_nothing_and_extends_only_a_timeout() {
        assert!(parse_heartbeat(b"").is_ok());
        assert!(parse_heartbeat(b" {} ").is_ok());
        assert!(parse_heartbeat(br#"{"progress":1}"#).unwrap_err().message().contains("\"progress\""));
        assert!(parse_heartbeat(b"[]").is_err());
        assert!(parse_heartbeat(b"{").is_err());
        assert_eq!(parse_extend(br#"{"timeout":"1h"}"#).unwrap(), "1h");
        assert!(parse_extend(b"{}").unwrap_err().message().contains("timeout is missing"));
        assert!(parse_extend(br#"{"timeout":"1h","why":"x"}"#).is_err());
        assert!(parse_extend(br#"{"timeout":3600}"#).is_err());
        assert!(parse_extend(b"").is_err());
    }

    #[test]
    fn create_bodies_are_parsed_strictly() {
        let request =
            parse_create(br#"{"timeout":"1h","idempotencyKey":"k","idempotencyKeyTTL":"2h","tags":"one"}"#).unwrap();
        assert_eq!(request.tags, Some(vec!["one".to_owned()]));
        assert_eq!(parse_create(b"{}").unwrap(), CreateTokenRequest::default());
        for (body, hint) in [
            (&b""[..], "empty"),
            (b"  ", "empty"),
            (b"nope", "Invalid JSON"),
            (b"null", "not null"),
            (b"[]", "not an array"),
            (br#"{"timeout":5}"#, "timeout must be"),
            (br#"{"timeout":null}"#, "null is not accepted"),
            (br#"{"tags":[1]}"#, "tags[0]"),
            (br#"{"tag":["a"]}"#, "Unknown field \"tag\""),
            (br#"{"timeout":"1m","timeout":"none"}"#, "\"timeout\" appears twice"),
        ] {
            let error = parse_create(body).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
            assert!(error.message().contains(hint), "{:?}: {}", String::from_utf8_lossy(body), error.message());
        }
    }

    #[test]
    fn completion_bodies_take_data_or_output_and_nothing_else() {
        let data = parse_complete(br#"{"data":{"status":"approved","n":1.50}}"#).unwrap().unwrap();
        assert_eq!(data.data, r#"{"json":{"status":"approved","n":1.50}}"#);
        assert_eq!(parse_complete(br#"{"output":{"status":"approved","n":1.50}}"#).unwrap(), Some(data));
        assert_eq!(parse_complete(br#"{"data":"hi"}"#).unwrap(), Some(Output::from_text("hi".into())));
        assert_eq!(parse_complete(br#"{"data":null}"#).unwrap(), Some(Output::from_json_text("null")));
        assert_eq!(parse_complete(b"{}").unwrap(), None);
        for (body, hint) in [
            (&br#"{"data":1,"output":2}"#[..], "Both"),
            (br#"{"status":"approved"}"#, "Unknown field \"status\""),
            (b"[1]", "not an array"),
            (b"null", "not null"),
            (b"", "empty"),
            (b"{", "Invalid JSON"),
        ] {
            let error = parse_complete(body).unwrap_err();
            assert!(error.message().contains(hint), "{:?}: {}", String::from_utf8_lossy(body), error.message());
        }
    }

    #[test]
    fn callback_bodies_are_the_output_whole() {
        assert_eq!(parse_callback(b"").unwrap(), Output::from_json_text("{}"));
        assert_eq!(
            parse_callback(br#" {"id":"p1","status":"succeeded"} "#).unwrap().data,
            r#"{"json":{"id":"p1","status":"succeeded"}}"#
        );
        assert_eq!(parse_callback(b"status=ok").unwrap(), Output::from_text("status=ok".into()));
        assert_eq!(parse_callback(b"1e400").unwrap(), Output::from_text("1e400".into()));
        assert!(parse_callback(&[0xff, 0xfe]).is_err());
        for (body, hint) in
            [(&br#"{"a":1,"a":2}"#[..], "appears twice"), (b" [1e400]", "out of range"), (b"{\"id\": ", "EOF")]
        {
            let error = parse_callback(body).unwrap_err();
            assert!(error.message().contains(hint), "{:?}: {}", String::from_utf8_lossy(body), error.message());
        }
    }

    #[test]
    fn trigger_bodies_keep_the_payload_verbatim_and_check_every_option() {
        let (payload, options) = parse_trigger(
            br#"{"payload": {"n": 1.50}, "options": {"tags": "a", "maxAttempts": 2, "delay": "1m", "idempotencyKey": "k"}}"#,
        )
        .unwrap();
        assert_eq!(payload, r#"{"n": 1.50}"#);
        assert_eq!(
            (options.tags, options.max_attempts, options.delay),
            (Some(vec!["a".into()]), Some(2), Some("1m".into()))
        );
        assert_eq!(parse_trigger(b"{}").unwrap().0, "null");
        for (body, hint) in [
            (&br#"{"payload":1,"extra":2}"#[..], "Unknown field \"extra\""),
            (br#"{"options":{"retries":3}}"#, "Unknown option \"retries\""),
            (br#"{"options":{"maxAttempts":-1}}"#, "whole number"),
            (br#"{"options":[]}"#, "must be an object"),
            (b"[]", "JSON object"),
            (br#"{"payload":{"n":1e400}}"#, "out of range"),
            (br#"{"payload":{"a":1,"a":2}}"#, "\"a\" appears twice"),
            (br#"{"options":{"tags":"a"},"options":{}}"#, "\"options\" appears twice"),
        ] {
            let error = parse_trigger(body).unwrap_err();
            assert!(error.message().contains(hint), "{}", error.message());
        }
    }
}
