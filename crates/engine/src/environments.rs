//! Managing environments: create, re-key, and make sure the `dev` environment exists.
//!
//! These work on a store directly, without a running engine, so the CLI's `env` commands
//! can use them against the database of a server that is running.

use waitpoint_storage::{StorageError, Store};
use waitpoint_types::{Environment, IdGenerator, Secret};

use crate::auth::{new_api_key, new_signing_secret};
use crate::error::{EngineError, Result};
use waitpoint_clock::Clock;

/// The environment created on first start.
pub const DEV_ENVIRONMENT: &str = "dev";

/// Creates the environment `name` with a new secret key and signing secret.
pub async fn create_environment(store: &dyn Store, clock: &dyn Clock, name: &str) -> Result<Environment> {
    validate_name(name)?;
    insert(store, clock, name, new_api_key(name)).await
}

/// Gives the environment `name` a new secret key; the old one stops working at once.
/// Callback URLs and public access tokens already handed out keep working.
pub async fn rotate_api_key(store: &dyn Store, name: &str) -> Result<Environment> {
    set_api_key(store, name, &new_api_key(name)).await
}

/// Makes sure the environment `name` exists, with `api_key` when given. Returns it and
/// whether it was created.
pub async fn ensure_environment(
    store: &dyn Store,
    clock: &dyn Clock,
    name: &str,
    api_key: Option<&Secret>,
) -> Result<(Environment, bool)> {
    validate_name(name)?;
    match store.environment_by_name(name).await {
        Ok(existing) => match api_key {
            Some(key) if existing.api_key != *key => Ok((set_api_key(store, name, key).await?, false)),
            _ => Ok((existing, false)),
        },
        Err(StorageError::NotFound) => {
            let key = api_key.cloned().unwrap_or_else(|| new_api_key(name));
            Ok((insert(store, clock, name, key).await?, true))
        }
        Err(error) => Err(error.into()),
    }
}

async fn insert(store: &dyn Store, clock: &dyn Clock, name: &str, api_key: Secret) -> Result<Environment> {
    let now = clock.now();
    let environment = Environment {
        id: IdGenerator::new().environment(now),
        name: name.to_owned(),
        api_key,
        signing_secret: new_signing_secret(),
        created_at: now,
    };
    store.environment_create(&environment).await.map_err(|error| match error {
        StorageError::Conflict(_) => EngineError::Conflict(format!("environment {name:?} already exists")),
        other => other.into(),
    })?;
    Ok(environment)
}

async fn set_api_key(store: &dyn Store, name: &str, api_key: &Secret) -> Result<Environment> {
    store.environment_set_api_key(name, api_key).await.map_err(|error| match error {
        StorageError::NotFound => EngineError::NotFound(format!("no environment named {name:?}")),
        StorageError::Conflict(_) => EngineError::Conflict("another environment already uses that secret key".into()),
        other => other.into(),
    })
}

/// Environment names: 1–63 characters of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit.
fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "invalid environment name {name:?}: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_are_checked() {
        for good in ["dev", "prod", "eu-west_2", "9lives"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Dev", "-x", "has space", &"a".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
