//! Mapping between PostgreSQL rows and domain types.

use std::borrow::Cow;
use std::time::Duration;

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;
use waitpoint_storage::{Result, StorageError};
use waitpoint_types::waitpoint::APPLICATION_JSON;
use waitpoint_types::{
    CallbackVerifier, CompletedVia, Environment, EnvironmentId, Heartbeat, Output, Rejection, Secret, Timestamp,
    Waitpoint, WaitpointId, WaitpointKind, WaitpointState,
};

/// The columns [`waitpoint_from_row`] reads, in order, as a literal for `concat!`.
macro_rules! waitpoint_columns {
    () => {
        "id, environment_id, status, idempotency_key, inactive_idempotency_key, idempotency_key_expires_at, \
         timeout_at, tags, output, output_type, completed_at, completed_via, created_at, kind, approval, \
         output_schema, heartbeat_every, heartbeat_deadline, callback_verifier"
    };
    (w) => {
        "w.id, w.environment_id, w.status, w.idempotency_key, w.inactive_idempotency_key, \
         w.idempotency_key_expires_at, w.timeout_at, w.tags, w.output, w.output_type, w.completed_at, \
         w.completed_via, w.created_at, w.kind, w.approval, w.output_schema, w.heartbeat_every, \
         w.heartbeat_deadline, w.callback_verifier"
    };
}
pub(crate) use waitpoint_columns;

/// How many columns [`waitpoint_columns!`] names; what a query selects after them starts here.
pub(crate) const WAITPOINT_COLUMNS: usize = 19;

/// The columns [`environment_from_row`] reads, in order, as a literal for `concat!`.
macro_rules! environment_columns {
    () => {
        "id, name, api_key, signing_secret, created_at"
    };
}
pub(crate) use environment_columns;

/// Reads column `index`; a value of an unexpected type is a record this version cannot read.
pub(crate) fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    row.try_get(index).map_err(|error| {
        let cause = std::error::Error::source(&error).map(|cause| format!(": {cause}")).unwrap_or_default();
        StorageError::Corrupt(format!("{error}{cause}"))
    })
}

/// Reads a waitpoint from the columns of [`waitpoint_columns!`].
pub(crate) fn waitpoint_from_row(row: &Row) -> Result<Waitpoint> {
    let id: String = column(row, 0)?;
    let corrupt = |what: &str| StorageError::Corrupt(format!("waitpoint {id}: {what}"));
    let status: String = column(row, 2)?;
    let millis = |index: usize| column::<Option<i64>>(row, index).map(|v| v.map(Timestamp::from_millis));
    let output = match (column::<Option<String>>(row, 8)?, column::<Option<String>>(row, 9)?) {
        (Some(data), Some(data_type)) => Some(Output { data, data_type }),
        (None, None) => None,
        _ => return Err(corrupt("output without output type")),
    };
    let completed_at: Option<i64> = column(row, 10)?;
    let completed_via: Option<String> = column(row, 11)?;
    let state = match (status.as_str(), completed_at, completed_via.as_deref()) {
        ("WAITING", None, None) => WaitpointState::Waiting,
        ("COMPLETED", Some(at), Some(via)) => WaitpointState::Completed {
            at: Timestamp::from_millis(at),
            via: CompletedVia::parse(via).ok_or_else(|| corrupt("unknown completed_via"))?,
            output,
        },
        ("TIMED_OUT", Some(at), via) => WaitpointState::TimedOut {
            at: Timestamp::from_millis(at),
            via: via.map(|via| CompletedVia::parse(via).ok_or_else(|| corrupt("unknown completed_via"))).transpose()?,
        },
        ("REJECTED", Some(at), Some(via)) => WaitpointState::Rejected {
            at: Timestamp::from_millis(at),
            via: CompletedVia::parse(via).ok_or_else(|| corrupt("unknown completed_via"))?,
            error: output
                .as_ref()
                .and_then(|output| Rejection::from_json(&output.data))
                .ok_or_else(|| corrupt("rejected without its error"))?,
        },
        _ => return Err(corrupt("inconsistent status")),
    };
    let kind: String = column(row, 13)?;
    let approval = column::<Option<String>>(row, 14)?
        .map(|text| serde_json::from_str(&text).map_err(|_| corrupt("unreadable approval")))
        .transpose()?;
    let heartbeat = match (column::<Option<i64>>(row, 16)?, millis(17)?) {
        (Some(every), Some(deadline)) => Some(Heartbeat {
            every: Duration::from_millis(u64::try_from(every).map_err(|_| corrupt("negative heartbeat"))?),
            deadline,
        }),
        (None, None) => None,
        _ => return Err(corrupt("heartbeat interval without deadline")),
    };
    let callback_verifier = column::<Option<String>>(row, 18)?
        .map(|text| CallbackVerifier::from_stored(&text).ok_or_else(|| corrupt("unreadable callback verifier")))
        .transpose()?;
    Ok(Waitpoint {
        approval,
        heartbeat,
        callback_verifier,
        kind: WaitpointKind::parse(&kind).ok_or_else(|| corrupt("unknown kind"))?,
        environment_id: EnvironmentId::from_internal(column(row, 1)?),
        state,
        idempotency_key: column(row, 3)?,
        inactive_idempotency_key: column(row, 4)?,
        idempotency_key_expires_at: millis(5)?,
        timeout_at: millis(6)?,
        tags: column(row, 7)?,
        created_at: Timestamp::from_millis(column(row, 12)?),
        output_schema: column(row, 15)?,
        id: WaitpointId::from_internal(id),
    })
}

/// The columns that record a waitpoint's state.
pub(crate) struct StateColumns<'a> {
    pub status: &'static str,
    pub completed_at: Option<i64>,
    pub completed_via: Option<&'static str>,
    pub output: Option<Cow<'a, str>>,
    pub output_type: Option<&'a str>,
}

/// The column values of `state`.
pub(crate) fn state_columns(state: &WaitpointState) -> StateColumns<'_> {
    match state {
        WaitpointState::Waiting => {
            StateColumns { status: "WAITING", completed_at: None, completed_via: None, output: None, output_type: None }
        }
        WaitpointState::Completed { at, via, output } => StateColumns {
            status: "COMPLETED",
            completed_at: Some(at.as_millis()),
            completed_via: Some(via.as_str()),
            output: output.as_ref().map(|o| Cow::Borrowed(o.data.as_str())),
            output_type: output.as_ref().map(|o| o.data_type.as_str()),
        },
        WaitpointState::TimedOut { at, via } => StateColumns {
            status: "TIMED_OUT",
            completed_at: Some(at.as_millis()),
            completed_via: via.map(CompletedVia::as_str),
            output: None,
            output_type: None,
        },
        WaitpointState::Rejected { at, via, error } => StateColumns {
            status: "REJECTED",
            completed_at: Some(at.as_millis()),
            completed_via: Some(via.as_str()),
            output: Some(Cow::Owned(error.to_json())),
            output_type: Some(APPLICATION_JSON),
        },
    }
}

/// Reads an environment from the columns of [`environment_columns!`].
pub(crate) fn environment_from_row(row: &Row) -> Result<Environment> {
    Ok(Environment {
        id: EnvironmentId::from_internal(column(row, 0)?),
        name: column(row, 1)?,
        api_key: Secret::new(column(row, 2)?),
        signing_secret: Secret::new(column(row, 3)?),
        created_at: Timestamp::from_millis(column(row, 4)?),
    })
}
