//! [`RawJson`]: JSON text carried as written, from the database to the wire and back, without
//! being parsed into a tree and printed again at every hop.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One JSON value, kept as its text. Known to be valid JSON (it is checked when made), and
/// compared by its text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// `text`, if it is one JSON value.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// Text a store kept as JSON. Text that is not JSON (which waitpoint never writes) reads as
    /// a JSON string holding it, rather than failing the read.
    pub fn from_stored(text: &str) -> Self {
        Self::parse(text.to_owned()).unwrap_or_else(|_| Self::string(text))
    }

    /// `value` as JSON.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// JSON's `null`.
    pub fn null() -> Self {
        Self::from_stored("null")
    }

    /// The JSON string holding `text`.
    fn string(text: &str) -> Self {
        let quoted = serde_json::Value::String(text.to_owned()).to_string();
        Self::parse(quoted).unwrap_or_else(|_| Self::null())
    }

    /// The text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        String::from(Box::<str>::from(self.0))
    }

    /// The value as a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl From<serde_json::Value> for RawJson {
    fn from(value: serde_json::Value) -> Self {
        Self::from_stored(&value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_is_kept_as_written_and_checked_when_made() {
        let json = RawJson::parse(r#"{"b":1, "a":[1.50]}"#.to_owned()).unwrap();
        assert_eq!(json.get(), r#"{"b":1, "a":[1.50]}"#, "not reordered, not reformatted");
        assert_eq!(serde_json::to_string(&json).unwrap(), r#"{"b":1, "a":[1.50]}"#);
        assert!(RawJson::parse("{".to_owned()).is_err());
        assert!(RawJson::parse("1 2".to_owned()).is_err());
        assert_eq!(RawJson::from_stored("not json").get(), r#""not json""#);
        assert_eq!(RawJson::null().get(), "null");
        assert_eq!(RawJson::from(serde_json::json!({"a": 1})).decode::<serde_json::Value>().unwrap()["a"], 1);
        let nested: Vec<RawJson> = serde_json::from_str(r#"[ {"x": 1} , null ]"#).unwrap();
        assert_eq!(nested[0].get(), r#"{"x": 1}"#);
        assert_eq!(nested[1], RawJson::null());
        assert_eq!(nested[0].clone().into_string(), r#"{"x": 1}"#);
    }
}
