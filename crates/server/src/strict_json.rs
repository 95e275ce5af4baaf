//! The JSON every stored body must be: what is kept comes back exactly as it was sent.
//!
//! Bodies are stored as the client wrote them and parsed again when they are read back (by the
//! API, a worker, the official SDK). So a body is refused at the door (400) unless every part
//! of it parses back to the same value:
//! - arrays and objects nest at most [`MAX_DEPTH`] levels deep (parsers, serde_json's
//!   included, stop at some depth; beyond it a stored payload could no longer be read);
//! - every number is one a double holds (`1e400` is not);
//! - no object repeats a key (parsers keep only one of them, so a repeated key would be
//!   silently ignored: `{"timeout":"1m","timeout":"none"}`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

/// The deepest nesting of arrays and objects in a body, the body itself counting as one level.
pub(crate) const MAX_DEPTH: usize = 100;

/// Objects with more keys than this check repeats with a hash set rather than a scan.
const SCAN_KEYS: usize = 16;

/// Checks that `bytes` is one JSON value that round-trips (see the module's rules). The error
/// says what is wrong and where (line and column).
pub(crate) fn check(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Level { depth: 0 }.deserialize(&mut deserializer)?;
    deserializer.end()
}

/// One value at `depth` (the number of arrays and objects around it).
#[derive(Clone, Copy)]
struct Level {
    depth: usize,
}

impl Level {
    /// The level inside an array or object at this level, if it may exist.
    fn inner<E: serde::de::Error>(self) -> Result<Level, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("arrays and objects nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(Level { depth: self.depth + 1 })
    }
}

impl<'de> DeserializeSeed<'de> for Level {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<(), E> {
        // serde_json refuses numbers beyond a double's range before this; kept as the rule.
        if value.is_finite() { Ok(()) } else { Err(E::custom("a number out of a double's range")) }
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        let mut many: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(key) = map.next_key_seed(Key)? {
            let repeated = match &mut many {
                Some(set) => !set.insert(key.clone()),
                None if keys.len() < SCAN_KEYS => keys.contains(&key),
                None => {
                    let set = many.insert(keys.drain(..).collect());
                    !set.insert(key.clone())
                }
            };
            if repeated {
                return Err(A::Error::custom(format!("the key {key:?} appears twice in one object")));
            }
            if many.is_none() {
                keys.push(key);
            }
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn values_that_round_trip_pass() {
        for body in [
            &br#"{"a":[1,2.5,-3e10,true,null,"x\"y"],"b":{"c":{}}}"#[..],
            b"1.7976931348623157e308",
            br#""\ud83d\ude00""#,
            br#"{"a":1,"A":2,"a\u0062":3,"ab ":4}"#,
            nested(MAX_DEPTH).as_bytes(),
        ] {
            check(body).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(body)));
        }
        let many: Vec<String> = (0..1_000).map(|i| format!("\"k{i}\":{i}")).collect();
        check(format!("{{{}}}", many.join(",")).as_bytes()).unwrap();
    }

    #[test]
    fn values_that_would_not_round_trip_are_refused_saying_why() {
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).chain(["\"k7\":0".into()]).collect();
        let many = format!("{{{}}}", many.join(","));
        let deep = nested(MAX_DEPTH + 1);
        for (body, hint) in [
            (&br#"{"timeout":"1m","timeout":"none"}"#[..], "\"timeout\" appears twice"),
            (br#"{"a":{"b":1,"b":2}}"#, "\"b\" appears twice"),
            (br#"{"a":1,"\u0061":2}"#, "\"a\" appears twice"),
            (many.as_bytes(), "\"k7\" appears twice"),
            (b"[1e400]", "out of range"),
            (b"-1e400", "out of range"),
            (deep.as_bytes(), "deeper than 100 levels"),
            (br#""\ud800""#, "hex escape"),
            (b"{} {}", "trailing characters"),
        ] {
            let error = check(body).unwrap_err().to_string();
            assert!(error.contains(hint), "{}: {error}", String::from_utf8_lossy(body));
        }
    }
}
