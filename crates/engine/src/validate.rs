//! Validation shared by tokens and runs: tags and idempotency keys.

use std::time::Duration;

use waitpoint_types::Timestamp;
use waitpoint_types::time::parse_duration;

use crate::error::{EngineError, Result};

/// The most tags a token or run may have.
pub const MAX_TAGS: usize = 10;
/// Tags must be shorter than this many characters.
pub const MAX_TAG_CHARS: usize = 128;
/// The longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 2048;
/// The most values a list filter (`filter[tags]`, `filter[taskIdentifier]`) may hold.
pub const MAX_FILTER_VALUES: usize = 100;
/// The word that turns a default off: `"timeout": "none"` waits forever.
pub(crate) const NONE: &str = "none";

/// At most [`MAX_TAGS`] tags (else 422, with Trigger.dev's message naming `what`), each
/// shorter than [`MAX_TAG_CHARS`] characters and without NUL.
pub(crate) fn tags(tags: &[String], what: &str) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(EngineError::Unprocessable(format!(
            "{what} can only have {MAX_TAGS} tags, you're trying to set {}.",
            tags.len()
        )));
    }
    if let Some((i, tag)) = tags.iter().enumerate().find(|(_, tag)| tag.chars().count() >= MAX_TAG_CHARS) {
        return Err(EngineError::Invalid(format!(
            "Tags must be less than {MAX_TAG_CHARS} characters: tags[{i}] has {}",
            tag.chars().count()
        )));
    }
    if let Some((i, _)) = tags.iter().enumerate().find(|(_, tag)| tag.contains('\0')) {
        return Err(EngineError::Invalid(format!("tags[{i}] contains a NUL character, which tags cannot hold")));
    }
    Ok(())
}

/// An idempotency key and its time to live: the key (non-empty, at most
/// [`MAX_IDEMPOTENCY_KEY_CHARS`] characters, no NUL) and when it expires (`ttl`, else
/// `default_ttl`, from `now`; `"none"` never). A TTL without a key is refused.
pub(crate) fn idempotency(
    key: Option<&str>,
    ttl: Option<&str>,
    default_ttl: Option<Duration>,
    now: Timestamp,
) -> Result<(Option<String>, Option<Timestamp>)> {
    match key {
        Some(k) if k.contains('\0') => {
            return Err(EngineError::Invalid("idempotencyKey contains a NUL character, which keys cannot hold".into()));
        }
        Some("") => return Err(EngineError::Invalid("idempotencyKey must not be empty; leave it out instead".into())),
        Some(k) if k.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS => {
            return Err(EngineError::Invalid(format!(
                "idempotencyKey must be {MAX_IDEMPOTENCY_KEY_CHARS} characters or less (it has {})",
                k.chars().count()
            )));
        }
        _ => {}
    }
    let expires_at = match (ttl, key) {
        (Some(_), None) => {
            return Err(EngineError::Invalid(
                "idempotencyKeyTTL was given without an idempotencyKey: add the key or leave the TTL out".into(),
            ));
        }
        (_, None) | (Some(NONE), Some(_)) => None,
        (Some(text), Some(_)) => {
            let ttl = parse_duration(text).map_err(|error| {
                EngineError::Invalid(format!("idempotencyKeyTTL {error}, or \"none\" for a key that never expires"))
            })?;
            Some(end_of(ttl, now, "idempotencyKeyTTL", text)?)
        }
        (None, Some(_)) => default_ttl.map(|ttl| now.saturating_add(ttl)),
    };
    Ok((key.map(str::to_owned), expires_at))
}

/// When `duration` (given by the caller as `field` = `text`) ends, counted from `now`; a 400
/// when that is past the latest date waitpoint represents, rather than a date quietly moved.
pub(crate) fn end_of(duration: Duration, now: Timestamp, field: &str, text: &str) -> Result<Timestamp> {
    now.checked_add(duration).ok_or_else(|| {
        EngineError::Invalid(format!(
            "{field} {text:?} ends after {}, the latest date waitpoint can represent: give a shorter one",
            Timestamp::MAX
        ))
    })
}

/// A list filter of at most [`MAX_FILTER_VALUES`] values (`parameter` names it for the caller).
pub(crate) fn filter_values(parameter: &str, values: &[String]) -> Result<()> {
    if values.len() > MAX_FILTER_VALUES {
        return Err(EngineError::Invalid(format!(
            "{parameter} holds {} values; a list filter takes at most {MAX_FILTER_VALUES}",
            values.len()
        )));
    }
    Ok(())
}
