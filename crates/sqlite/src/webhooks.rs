//! Outbound webhook subscriptions and how far their delivery got.

use rusqlite::{Connection, Row, params};
use waitpoint_storage::{Result, StorageError};
use waitpoint_types::event::EventKind;
use waitpoint_types::webhook::{Delivery, Webhook};
use waitpoint_types::{EnvironmentId, Secret, Timestamp, WebhookId};

use crate::map_error;

const COLUMNS: &str =
    "id, environment_id, url, secret, kinds, tags, created_at, delivered_through, attempts, retry_at, last_error";

pub(crate) fn create(conn: &Connection, webhook: &Webhook) -> Result<()> {
    let kinds: Vec<&str> = webhook.kinds.iter().map(|kind| kind.as_str()).collect();
    let kinds = serde_json::to_string(&kinds).map_err(StorageError::database)?;
    let tags = serde_json::to_string(&webhook.tags).map_err(StorageError::database)?;
    conn.prepare_cached(&format!(
        "INSERT INTO webhooks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))
    .and_then(|mut stmt| {
        stmt.execute(params![
            webhook.id.internal(),
            webhook.environment_id.internal(),
            webhook.url,
            webhook.secret.expose(),
            kinds,
            tags,
            webhook.created_at.as_millis(),
            i64::try_from(webhook.delivery.through).unwrap_or(i64::MAX),
            webhook.delivery.attempts,
            webhook.delivery.retry_at.map(Timestamp::as_millis),
            webhook.delivery.last_error,
        ])
    })
    .map_err(map_error)?;
    Ok(())
}

pub(crate) fn list(conn: &Connection, environment_id: Option<&EnvironmentId>) -> Result<Vec<Webhook>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE ?1 IS NULL OR environment_id = ?1 ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let rows = stmt.query_map([environment_id.map(EnvironmentId::internal)], from_row).map_err(map_error)?;
    rows.map(|row| row.map_err(map_error)?).collect()
}

pub(crate) fn delete(conn: &Connection, environment_id: &EnvironmentId, id: &WebhookId) -> Result<()> {
    let deleted = conn
        .prepare_cached("DELETE FROM webhooks WHERE id = ?1 AND environment_id = ?2")
        .and_then(|mut stmt| stmt.execute(params![id.internal(), environment_id.internal()]))
        .map_err(map_error)?;
    if deleted == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

pub(crate) fn delivered(conn: &Connection, id: &WebhookId, delivery: &Delivery) -> Result<()> {
    conn.prepare_cached(
        "UPDATE webhooks SET delivered_through = ?2, attempts = ?3, retry_at = ?4, last_error = ?5 WHERE id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            id.internal(),
            i64::try_from(delivery.through).unwrap_or(i64::MAX),
            delivery.attempts,
            delivery.retry_at.map(Timestamp::as_millis),
            delivery.last_error,
        ])
    })
    .map_err(map_error)?;
    Ok(())
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Result<Webhook>> {
    let id: String = row.get(0)?;
    let (kinds, tags): (String, String) = (row.get(4)?, row.get(5)?);
    let through: i64 = row.get(7)?;
    let fields = (row.get::<_, String>(1)?, row.get(2)?, row.get::<_, String>(3)?, row.get::<_, i64>(6)?);
    let (attempts, retry_at, last_error): (u32, Option<i64>, Option<String>) = (row.get(8)?, row.get(9)?, row.get(10)?);
    Ok((|| {
        let corrupt = |what: &str| StorageError::Corrupt(format!("webhook {id}: {what}"));
        let kinds: Vec<String> = serde_json::from_str(&kinds).map_err(|_| corrupt("kinds are not a JSON array"))?;
        let kinds = kinds
            .iter()
            .map(|kind| EventKind::parse(kind).ok_or_else(|| corrupt("unknown event kind")))
            .collect::<Result<_>>()?;
        let tags = serde_json::from_str(&tags).map_err(|_| corrupt("tags are not a JSON array"))?;
        let (environment_id, url, secret, created_at) = fields;
        Ok(Webhook {
            id: WebhookId::from_internal(id.clone()),
            environment_id: EnvironmentId::from_internal(environment_id),
            url,
            secret: Secret::new(secret),
            kinds,
            tags,
            created_at: Timestamp::from_millis(created_at),
            delivery: Delivery {
                through: u64::try_from(through).map_err(|_| corrupt("negative position"))?,
                attempts,
                retry_at: retry_at.map(Timestamp::from_millis),
                last_error,
            },
        })
    })())
}
