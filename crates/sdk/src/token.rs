//! A retrieved token and its decoded output.

use serde::de::DeserializeOwned;
use waitpoint_types::Output;
use waitpoint_types::api::TokenDetail;

use crate::{Error, Result};

/// A token as retrieved, with helpers to read its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Everything the API returned.
    pub detail: TokenDetail,
}

impl Token {
    /// The output the token was completed with, decoded as `T`; `None` while it waits, when it
    /// was completed without output, or when it timed out.
    pub fn output<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        if self.timed_out() {
            return Ok(None);
        }
        self.decoded().map(|value| serde_json::from_value(value).map_err(|e| Error::Decode(e.to_string()))).transpose()
    }

    /// The timeout error's message (`Waitpoint timed out at …`) if the token timed out.
    pub fn timeout_error(&self) -> Option<String> {
        if !self.timed_out() {
            return None;
        }
        let value = self.decoded()?;
        Some(value.get("message").and_then(|m| m.as_str()).map_or_else(|| value.to_string(), str::to_owned))
    }

    fn timed_out(&self) -> bool {
        self.detail.output_is_error == Some(true)
    }

    fn decoded(&self) -> Option<serde_json::Value> {
        let data = self.detail.output.clone()?;
        let data_type = self.detail.output_type.clone().unwrap_or_else(|| "application/json".into());
        Some(Output { data, data_type }.decode())
    }
}
