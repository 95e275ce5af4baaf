//! Mapping between SQLite rows and domain types.

use std::time::Duration;

use rusqlite::Row;
use waitpoint_storage::{Result, StorageError};
use waitpoint_types::waitpoint::APPLICATION_JSON;
use waitpoint_types::{
    CallbackVerifier, CompletedVia, Environment, EnvironmentId, Heartbeat, JournalEntry, JournalKind, Output,
    Rejection, Run, RunId, RunState, Secret, Timestamp, Waitpoint, WaitpointId, WaitpointKind, WaitpointState,
    WorkerId,
};

/// The columns [`waitpoint_from_row`] reads, in order, of the table aliased `w`.
pub(crate) const WAITPOINT_COLUMNS: &str = "w.id, w.environment_id, w.status, w.idempotency_key, \
     w.inactive_idempotency_key, w.idempotency_key_expires_at, w.timeout_at, w.tags, w.output, w.output_type, \
     w.completed_at, w.completed_via, w.created_at, w.kind, w.approval, w.output_schema, \
     w.heartbeat_every, w.heartbeat_deadline, w.callback_verifier";

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
    let kind: String = row.get(13)?;
    let approval: Option<String> = row.get(14)?;
    let output_schema: Option<String> = row.get(15)?;
    let heartbeat: (Option<i64>, Option<i64>) = (row.get(16)?, row.get(17)?);
    let callback_verifier: Option<String> = row.get(18)?;
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
            ("TIMED_OUT", Some(at), via) => WaitpointState::TimedOut {
                at: Timestamp::from_millis(at),
                via: via
                    .map(|via| CompletedVia::parse(via).ok_or_else(|| corrupt("unknown completed_via")))
                    .transpose()?,
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
        let approval =
            approval.map(|text| serde_json::from_str(&text).map_err(|_| corrupt("unreadable approval"))).transpose()?;
        let heartbeat = match heartbeat {
            (Some(every), Some(deadline)) => Some(Heartbeat {
                every: Duration::from_millis(u64::try_from(every).map_err(|_| corrupt("negative heartbeat"))?),
                deadline: Timestamp::from_millis(deadline),
            }),
            (None, None) => None,
            _ => return Err(corrupt("heartbeat interval without deadline")),
        };
        let callback_verifier = callback_verifier
            .map(|text| CallbackVerifier::from_stored(&text).ok_or_else(|| corrupt("unreadable callback verifier")))
            .transpose()?;
        let (environment_id, idempotency_key, inactive_idempotency_key, created_at): (String, _, _, _) = fields;
        Ok(Waitpoint {
            id: WaitpointId::from_internal(id.clone()),
            kind: WaitpointKind::parse(&kind).ok_or_else(|| corrupt("unknown kind"))?,
            environment_id: EnvironmentId::from_internal(environment_id),
            state,
            idempotency_key,
            inactive_idempotency_key,
            idempotency_key_expires_at,
            timeout_at,
            heartbeat,
            callback_verifier,
            tags,
            created_at: Timestamp::from_millis(created_at),
            approval,
            output_schema,
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
            output: Some(error.to_json()),
            output_type: Some(APPLICATION_JSON.to_owned()),
        },
    }
}

/// The columns [`run_from_row`] reads, in order, of the table aliased `r`.
pub(crate) const RUN_COLUMNS: &str = "r.id, r.environment_id, r.task_id, r.payload, r.status, r.available_at, \
     r.worker_id, r.waiting_needed, r.waiting_seq, r.output, r.error, r.finished_at, r.attempt, r.max_attempts, r.epoch, \
     r.sticky_worker, r.tags, r.idempotency_key, r.inactive_idempotency_key, r.idempotency_key_expires_at, \
     r.created_at, r.started_at, r.updated_at";

/// Reads a run. The outer error is SQLite's; the inner one a record this version cannot read.
pub(crate) fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Run>> {
    let id: String = row.get(0)?;
    let status: String = row.get(4)?;
    let millis = |i: usize| row.get::<_, Option<i64>>(i).map(|v| v.map(Timestamp::from_millis));
    let (available_at, finished_at) = (millis(5)?, millis(11)?);
    let worker: Option<String> = row.get(6)?;
    let waiting_needed: Option<u32> = row.get(7)?;
    let waiting_seq: Option<u32> = row.get(8)?;
    let output: Option<String> = row.get(9)?;
    let error: Option<String> = row.get(10)?;
    let sticky_worker: Option<String> = row.get(15)?;
    let tags: String = row.get(16)?;
    let run = Run {
        id: RunId::from_internal(id.clone()),
        environment_id: EnvironmentId::from_internal(row.get(1)?),
        task_id: row.get(2)?,
        payload: row.get(3)?,
        state: RunState::Canceled { at: Timestamp::from_millis(0) },
        attempt: row.get(12)?,
        max_attempts: row.get(13)?,
        epoch: row.get::<_, i64>(14)?.try_into().unwrap_or_default(),
        sticky_worker: sticky_worker.map(WorkerId::from_internal),
        tags: Vec::new(),
        idempotency_key: row.get(17)?,
        inactive_idempotency_key: row.get(18)?,
        idempotency_key_expires_at: millis(19)?,
        created_at: Timestamp::from_millis(row.get(20)?),
        started_at: millis(21)?,
        updated_at: Timestamp::from_millis(row.get(22)?),
    };
    Ok((move || {
        let corrupt = |what: &str| StorageError::Corrupt(format!("run {id}: {what}"));
        let state = match (status.as_str(), available_at, worker, waiting_needed, waiting_seq, finished_at) {
            ("QUEUED", Some(available_at), ..) => RunState::Queued { available_at },
            ("EXECUTING", _, Some(worker), ..) => RunState::Executing { worker: WorkerId::from_internal(worker) },
            ("WAITING", _, _, Some(needed), Some(seq), _) => RunState::Waiting { seq, needed },
            ("COMPLETED", .., Some(at)) => {
                RunState::Completed { at, output: output.ok_or_else(|| corrupt("completed without output"))? }
            }
            ("FAILED", .., Some(at)) => {
                let error = error.ok_or_else(|| corrupt("failed without error"))?;
                RunState::Failed { at, error: serde_json::from_str(&error).map_err(|_| corrupt("unreadable error"))? }
            }
            ("CANCELED", .., Some(at)) => RunState::Canceled { at },
            _ => return Err(corrupt("inconsistent status")),
        };
        let tags = serde_json::from_str(&tags).map_err(|_| corrupt("tags are not a JSON array"))?;
        Ok(Run { state, tags, ..run })
    })())
}

/// The columns that record a run's state.
pub(crate) struct RunStateColumns {
    pub status: &'static str,
    pub available_at: Option<i64>,
    pub worker_id: Option<String>,
    pub waiting_needed: Option<u32>,
    pub waiting_seq: Option<u32>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub finished_at: Option<i64>,
}

/// The column values of a run's state.
pub(crate) fn run_state_columns(state: &RunState) -> RunStateColumns {
    let mut columns = RunStateColumns {
        status: "",
        available_at: None,
        worker_id: None,
        waiting_needed: None,
        waiting_seq: None,
        output: None,
        error: None,
        finished_at: None,
    };
    match state {
        RunState::Queued { available_at } => {
            columns.status = "QUEUED";
            columns.available_at = Some(available_at.as_millis());
        }
        RunState::Executing { worker } => {
            columns.status = "EXECUTING";
            columns.worker_id = Some(worker.internal().to_owned());
        }
        RunState::Waiting { seq, needed } => {
            columns.status = "WAITING";
            columns.waiting_needed = Some(*needed);
            columns.waiting_seq = Some(*seq);
        }
        RunState::Completed { at, output } => {
            columns.status = "COMPLETED";
            columns.output = Some(output.clone());
            columns.finished_at = Some(at.as_millis());
        }
        RunState::Failed { at, error } => {
            columns.status = "FAILED";
            columns.error = serde_json::to_string(error).ok();
            columns.finished_at = Some(at.as_millis());
        }
        RunState::Canceled { at } => {
            columns.status = "CANCELED";
            columns.finished_at = Some(at.as_millis());
        }
    }
    columns
}

/// Reads a journal entry from `seq, kind, name, result`.
pub(crate) fn journal_entry_from_row(row: &Row<'_>) -> rusqlite::Result<Result<JournalEntry>> {
    journal_entry_at(row, 0)
}

/// Reads a journal entry from `seq, kind, name, result` starting at column `base`.
pub(crate) fn journal_entry_at(row: &Row<'_>, base: usize) -> rusqlite::Result<Result<JournalEntry>> {
    let seq: u32 = row.get(base)?;
    let kind: String = row.get(base + 1)?;
    let name: String = row.get(base + 2)?;
    let result: Option<String> = row.get(base + 3)?;
    Ok(JournalKind::parse(&kind)
        .map(|kind| JournalEntry { seq, kind, name, result })
        .ok_or_else(|| StorageError::Corrupt(format!("journal entry {seq}: unknown kind {kind}"))))
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
