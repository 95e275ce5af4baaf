//! Mapping between SQLite rows and domain types.

use rusqlite::Row;
use waitpoint_storage::{Result, StorageError};
use waitpoint_types::{
    CompletedVia, Environment, EnvironmentId, Output, Secret, Timestamp, Waitpoint, WaitpointId, WaitpointState,
};

/// The columns [`waitpoint_from_row`] reads, in order, of the table aliased `w`.
pub(crate) const WAITPOINT_COLUMNS: &str = "w.id, w.environment_id, w.status, w.idempotency_key, \
     w.inactive_idempotency_key, w.idempotency_key_expires_at, w.timeout_at, w.tags, w.output, w.output_type, \
     w.completed_at, w.completed_via, w.created_at";

/// Reads a waitpoint. The outer error is SQLite's; the inner one a record this version cannot read.
pub(crate) fn waitpoint_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Waitpoint>> {
    let id: String = row.get(0)?;
    let status: String = row.get(2)?;
    let tags: String = row.get(7)?;
    let output: Option<String> = row.get(8)?;
    let output_type: Option<String> = row.get(9)?;
    let completed_at: Option<i64> = row.get(10)?;
    let completed_via: Option<String> = row.get(11)?;
    let millis = |i: usize| row.get::<_, Option<i64>>(i).map(|v| v.map(Timestamp::from_millis));
    let (idempotency_key_expires_at, timeout_at) = (millis(5)?, millis(6)?);
    let fields = (row.get(1)?, row.get(3)?, row.get(4)?, row.get::<_, i64>(12)?);
    Ok((|| {
        let corrupt = |what: &str| StorageError::Corrupt(format!("waitpoint {id}: {what}"));
        let tags: Vec<String> = serde_json::from_str(&tags).map_err(|_| corrupt("tags are not a JSON array"))?;
        let output = match (output, output_type) {
            (Some(data), Some(data_type)) => Some(Output { data, data_type }),
            (None, None) => None,
            _ => return Err(corrupt("output without output type")),
        };
        let state = match (status.as_str(), completed_at, completed_via.as_deref()) {
            ("WAITING", None, None) => WaitpointState::Waiting,
            ("COMPLETED", Some(at), Some(via)) => WaitpointState::Completed {
                at: Timestamp::from_millis(at),
                via: CompletedVia::parse(via).ok_or_else(|| corrupt("unknown completed_via"))?,
                output,
            },
            ("TIMED_OUT", Some(at), None) => WaitpointState::TimedOut { at: Timestamp::from_millis(at) },
            _ => return Err(corrupt("inconsistent status")),
        };
        let (environment_id, idempotency_key, inactive_idempotency_key, created_at): (String, _, _, _) = fields;
        Ok(Waitpoint {
            id: WaitpointId::from_internal(id.clone()),
            environment_id: EnvironmentId::from_internal(environment_id),
            state,
            idempotency_key,
            inactive_idempotency_key,
            idempotency_key_expires_at,
            timeout_at,
            tags,
            created_at: Timestamp::from_millis(created_at),
        })
    })())
}

/// The columns that record a waitpoint's state.
pub(crate) struct StateColumns {
    pub status: &'static str,
    pub completed_at: Option<i64>,
    pub completed_via: Option<&'static str>,
    pub output: Option<String>,
    pub output_type: Option<String>,
}

/// The column values of `state`.
pub(crate) fn state_columns(state: &WaitpointState) -> StateColumns {
    match state {
        WaitpointState::Waiting => {
            StateColumns { status: "WAITING", completed_at: None, completed_via: None, output: None, output_type: None }
        }
        WaitpointState::Completed { at, via, output } => StateColumns {
            status: "COMPLETED",
            completed_at: Some(at.as_millis()),
            completed_via: Some(via.as_str()),
            output: output.as_ref().map(|o| o.data.clone()),
            output_type: output.as_ref().map(|o| o.data_type.clone()),
        },
        WaitpointState::TimedOut { at } => StateColumns {
            status: "TIMED_OUT",
            completed_at: Some(at.as_millis()),
            completed_via: None,
            output: None,
            output_type: None,
        },
    }
}

/// Reads an environment from `id, name, api_key, signing_secret, created_at`.
pub(crate) fn environment_from_row(row: &Row<'_>) -> rusqlite::Result<Environment> {
    Ok(Environment {
        id: EnvironmentId::from_internal(row.get(0)?),
        name: row.get(1)?,
        api_key: Secret::new(row.get(2)?),
        signing_secret: Secret::new(row.get(3)?),
        created_at: Timestamp::from_millis(row.get(4)?),
    })
}
