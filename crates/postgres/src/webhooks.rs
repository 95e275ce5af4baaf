//! Outbound webhook subscriptions and how far their delivery got.

use tokio_postgres::Row;
use waitpoint_storage::{Result, StorageError};
use waitpoint_types::event::EventKind;
use waitpoint_types::webhook::{Delivery, Webhook};
use waitpoint_types::{EnvironmentId, Secret, Timestamp, WebhookId};

use crate::rows::column;

macro_rules! webhook_columns {
    () => {
        "id, environment_id, url, secret, kinds, tags, created_at, delivered_through, attempts, retry_at, last_error"
    };
}

pub(crate) const INSERT: &str =
    concat!("INSERT INTO webhooks (", webhook_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");

/// `$1`: the environment, or null for every one.
pub(crate) const LIST: &str =
    concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE $1::text IS NULL OR environment_id = $1 ORDER BY id");

pub(crate) const DELETE: &str = "DELETE FROM webhooks WHERE id = $1 AND environment_id = $2";

pub(crate) const DELIVERED: &str =
    "UPDATE webhooks SET delivered_through = $2, attempts = $3, retry_at = $4, last_error = $5 WHERE id = $1";

/// The JSON texts of a webhook's kinds and tags, as stored.
pub(crate) fn filters(webhook: &Webhook) -> Result<(String, String)> {
    let kinds: Vec<&str> = webhook.kinds.iter().map(|kind| kind.as_str()).collect();
    Ok((
        serde_json::to_string(&kinds).map_err(StorageError::database)?,
        serde_json::to_string(&webhook.tags).map_err(StorageError::database)?,
    ))
}

pub(crate) fn from_row(row: &Row) -> Result<Webhook> {
    let id: String = column(row, 0)?;
    let corrupt = |what: &str| StorageError::Corrupt(format!("webhook {id}: {what}"));
    let kinds: Vec<String> =
        serde_json::from_str(&column::<String>(row, 4)?).map_err(|_| corrupt("kinds are not a JSON array"))?;
    let kinds = kinds
        .iter()
        .map(|kind| EventKind::parse(kind).ok_or_else(|| corrupt("unknown event kind")))
        .collect::<Result<_>>()?;
    let tags = serde_json::from_str(&column::<String>(row, 5)?).map_err(|_| corrupt("tags are not a JSON array"))?;
    let through: i64 = column(row, 7)?;
    let attempts: i32 = column(row, 8)?;
    Ok(Webhook {
        environment_id: EnvironmentId::from_internal(column(row, 1)?),
        url: column(row, 2)?,
        secret: Secret::new(column(row, 3)?),
        kinds,
        tags,
        created_at: Timestamp::from_millis(column(row, 6)?),
        delivery: Delivery {
            through: u64::try_from(through).map_err(|_| corrupt("negative position"))?,
            attempts: u32::try_from(attempts).map_err(|_| corrupt("negative attempts"))?,
            retry_at: column::<Option<i64>>(row, 9)?.map(Timestamp::from_millis),
            last_error: column(row, 10)?,
        },
        id: WebhookId::from_internal(id),
    })
}
