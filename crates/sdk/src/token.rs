//! A retrieved token and its decoded output, and the ways to name a token.

use serde::de::DeserializeOwned;
use waitpoint_types::Output;
use waitpoint_types::api::{CreateTokenResponse, TokenDetail, TokenItem};

use crate::Result;
use crate::error::decode;

/// A token as retrieved, with helpers to read its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Everything the API returned.
    pub detail: TokenDetail,
}

impl Token {
    /// The output the token was completed with, decoded as `T`; `None` while it waits, when it
    /// was completed without output, or when it timed out. An output that does not decode is
    /// an [`Error::OutputType`](crate::Error::OutputType) naming the token and `T`.
    pub fn output<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        if self.timed_out() {
            return Ok(None);
        }
        self.decoded().map(|value| decode(value, || format!("the output of token {}", self.detail.id))).transpose()
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

/// Anything that names a token, as the spec's `string | { id: string }`: an id (`&str`,
/// `String`), or a token as created, retrieved or listed. Pass it by value or by reference.
///
/// ```
/// use waitpoint_sdk::AsTokenId;
///
/// assert_eq!("waitpoint_c1".token_id(), "waitpoint_c1");
/// assert_eq!((&String::from("waitpoint_c1")).token_id(), "waitpoint_c1");
/// ```
pub trait AsTokenId {
    /// The token's id (`waitpoint_…`).
    fn token_id(&self) -> &str;
}

impl AsTokenId for str {
    fn token_id(&self) -> &str {
        self
    }
}

impl AsTokenId for String {
    fn token_id(&self) -> &str {
        self
    }
}

impl AsTokenId for CreateTokenResponse {
    fn token_id(&self) -> &str {
        &self.id
    }
}

impl AsTokenId for Token {
    fn token_id(&self) -> &str {
        &self.detail.id
    }
}

impl AsTokenId for TokenDetail {
    fn token_id(&self) -> &str {
        &self.id
    }
}

impl AsTokenId for TokenItem {
    fn token_id(&self) -> &str {
        &self.id
    }
}

impl<T: AsTokenId + ?Sized> AsTokenId for &T {
    fn token_id(&self) -> &str {
        (**self).token_id()
    }
}
