//! Typed identifiers.
//!
//! A waitpoint's internal id is 25 characters of `[0-9a-z]`: `c`, nine base-36 digits of the
//! creation time in milliseconds, four of a per-millisecond sequence and eleven random ones.
//! Ids made by one process therefore sort in creation order, which keyset pagination relies
//! on. The public form adds a prefix (`waitpoint_…`); cursors use the bare internal id, as
//! Trigger.dev's do.

use std::fmt;
use std::sync::Mutex;

use crate::time::Timestamp;

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const ALPHANUMERIC: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TIME_DIGITS: usize = 9;
const SEQUENCE_DIGITS: usize = 4;
const RANDOM_DIGITS: usize = 11;
const MAX_SEQUENCE: u64 = 36u64.pow(SEQUENCE_DIGITS as u32);
/// The longest bare id accepted from callers (ids we make are 25 characters).
const MAX_ID_LEN: usize = 64;

/// A string that is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {value:?}: expected {prefix} followed by lowercase letters{also} and digits")]
pub struct InvalidId {
    kind: &'static str,
    prefix: &'static str,
    also: &'static str,
    value: String,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        prefixed_id!($(#[$doc])* $name, $prefix, $kind, b"", "");
    };
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal, $also:literal, $also_text:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The prefix of the public form.
            pub const PREFIX: &'static str = $prefix;

            /// Parses the public form (`prefix` + internal id) or a bare internal id.
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                let bare = value.strip_prefix(Self::PREFIX).unwrap_or(value);
                if bare.is_empty()
                    || bare.len() > MAX_ID_LEN
                    || !bare.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || $also.contains(&b))
                {
                    return Err(InvalidId {
                        kind: $kind,
                        prefix: Self::PREFIX,
                        also: $also_text,
                        value: value.to_owned(),
                    });
                }
                Ok(Self(bare.to_owned()))
            }

            /// Wraps an internal id read back from storage, where it was validated on the way in.
            pub fn from_internal(internal: String) -> Self {
                Self(internal)
            }

            /// The internal id, without prefix: what storage keys and cursors use.
            pub fn internal(&self) -> &str {
                &self.0
            }

            /// The public form, with prefix.
            pub fn public(&self) -> String {
                format!("{}{}", Self::PREFIX, self.0)
            }

            /// When an id made by [`IdGenerator`] was made; `None` for other ids.
            pub fn created_at(&self) -> Option<Timestamp> {
                time_of_internal(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", Self::PREFIX, self.0)
            }
        }
    };
}

prefixed_id!(
    /// Identifies a waitpoint token. Public form `waitpoint_<internal id>`.
    WaitpointId,
    "waitpoint_",
    "waitpoint"
);

prefixed_id!(
    /// Identifies an environment. Public form `env_<internal id>`; it is the `sub` of public access tokens.
    EnvironmentId,
    "env_",
    "environment"
);

prefixed_id!(
    /// Identifies a task run. Public form `run_<internal id>`.
    RunId,
    "run_",
    "run"
);

prefixed_id!(
    /// Identifies a worker: a process for as long as it runs, or an instance its operator
    /// named (lowercase letters, digits and `-`), which keeps its id across restarts. Public
    /// form `worker_<id>`.
    WorkerId,
    "worker_",
    "worker",
    b"-",
    ", '-'"
);

prefixed_id!(
    /// Identifies an outbound webhook subscription. Public form `webhook_<internal id>`.
    WebhookId,
    "webhook_",
    "webhook"
);

/// Makes time-ordered internal ids.
///
/// The caller passes the time (from the injected clock). Ids from one generator are strictly
/// increasing, even when the clock stands still or steps back.
#[derive(Debug, Default)]
pub struct IdGenerator {
    last: Mutex<(u64, u64)>,
}

impl IdGenerator {
    /// A generator with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next internal id for something created at `now`.
    pub fn next_internal(&self, now: Timestamp) -> String {
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(0);
        let (ms, sequence) = {
            let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if now_ms > last.0 {
                *last = (now_ms, 0);
            } else if last.1 + 1 < MAX_SEQUENCE {
                last.1 += 1;
            } else {
                *last = (last.0 + 1, 0);
            }
            *last
        };
        let mut id = String::with_capacity(1 + TIME_DIGITS + SEQUENCE_DIGITS + RANDOM_DIGITS);
        id.push('c');
        push_base36(&mut id, ms, TIME_DIGITS);
        push_base36(&mut id, sequence, SEQUENCE_DIGITS);
        push_base36(&mut id, random_u64() % 36u64.pow(RANDOM_DIGITS as u32), RANDOM_DIGITS);
        id
    }

    /// A new waitpoint id.
    pub fn waitpoint(&self, now: Timestamp) -> WaitpointId {
        WaitpointId(self.next_internal(now))
    }

    /// A new environment id.
    pub fn environment(&self, now: Timestamp) -> EnvironmentId {
        EnvironmentId(self.next_internal(now))
    }

    /// A new run id.
    pub fn run(&self, now: Timestamp) -> RunId {
        RunId(self.next_internal(now))
    }

    /// A new worker id.
    pub fn worker(&self, now: Timestamp) -> WorkerId {
        WorkerId(self.next_internal(now))
    }

    /// A new webhook id.
    pub fn webhook(&self, now: Timestamp) -> WebhookId {
        WebhookId(self.next_internal(now))
    }
}

/// The smallest internal id that [`IdGenerator`] can make at `at` or later. Ids made before
/// `at` sort below it, so creation-time bounds become id bounds.
pub fn internal_floor(at: Timestamp) -> String {
    let mut floor = String::with_capacity(1 + TIME_DIGITS);
    floor.push('c');
    push_base36(&mut floor, u64::try_from(at.as_millis()).unwrap_or(0), TIME_DIGITS);
    floor
}

/// The smallest internal id above `id`: as an exclusive upper bound, it keeps `id` and every id
/// below it. (Internal ids hold only `0-9a-z`, so nothing sorts between `id` and `id` + `0`.)
pub fn internal_successor(id: &str) -> String {
    format!("{id}0")
}

fn time_of_internal(id: &str) -> Option<Timestamp> {
    let digits = id.strip_prefix('c')?.get(..TIME_DIGITS)?;
    if id.len() != 1 + TIME_DIGITS + SEQUENCE_DIGITS + RANDOM_DIGITS {
        return None;
    }
    let millis = u64::from_str_radix(digits, 36).ok()?;
    Some(Timestamp::from_millis(i64::try_from(millis).ok()?))
}

fn push_base36(out: &mut String, mut value: u64, digits: usize) {
    let mut buf = [b'0'; 16];
    for slot in buf[..digits].iter_mut().rev() {
        *slot = BASE36[(value % 36) as usize];
        value /= 36;
    }
    out.extend(buf[..digits].iter().map(|&b| b as char));
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    fill_random(&mut bytes);
    u64::from_le_bytes(bytes)
}

fn fill_random(buf: &mut [u8]) {
    // The operating system's generator failing is not something a caller can recover from.
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// `len` characters drawn uniformly from `[0-9A-Za-z]` with the operating system's generator.
/// Secret keys and signing secrets are made of these.
pub fn random_alphanumeric(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHANUMERIC[(b % 62) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_cuid_shape_and_sort_by_creation() {
        let ids = IdGenerator::new();
        let now = Timestamp::from_millis(1_764_000_000_000);
        let a = ids.next_internal(now);
        let b = ids.next_internal(now);
        let c = ids.next_internal(Timestamp::from_millis(now.as_millis() - 5));
        let d = ids.next_internal(Timestamp::from_millis(now.as_millis() + 1));
        for id in [&a, &b, &c, &d] {
            assert_eq!(id.len(), 25);
            assert!(id.starts_with('c'));
            assert!(id.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        }
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        let id = WaitpointId::from_internal(c);
        assert_eq!(id.created_at(), Some(now), "a clock that stepped back does not move creation back");
        assert!(internal_floor(now) <= a && a < internal_floor(Timestamp::from_millis(now.as_millis() + 1)));
        assert!(d >= internal_floor(Timestamp::from_millis(now.as_millis() + 1)));
        assert_eq!(WaitpointId::from_internal("cfoo".into()).created_at(), None);
    }

    #[test]
    fn parse_accepts_public_and_bare_forms_and_rejects_the_rest() {
        let id = WaitpointId::parse("waitpoint_cm8zq1x2y0000abcd1234efgh").unwrap();
        assert_eq!(id.internal(), "cm8zq1x2y0000abcd1234efgh");
        assert_eq!(id.to_string(), "waitpoint_cm8zq1x2y0000abcd1234efgh");
        assert_eq!(WaitpointId::parse("cm8zq1x2y0000abcd1234efgh").unwrap(), id);
        for bad in ["", "waitpoint_", "waitpoint_a_b", "UPPER", "a/b", &"a".repeat(65)] {
            let err = WaitpointId::parse(bad).unwrap_err();
            assert!(err.to_string().contains("waitpoint_"), "{err}");
        }
    }

    #[test]
    fn random_alphanumeric_has_the_requested_length_and_alphabet() {
        let key = random_alphanumeric(24);
        assert_eq!(key.len(), 24);
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(key, random_alphanumeric(24));
    }
}
