//! Waitpoints in the API's JSON shapes.

use waitpoint_engine::{CreatedToken, Engine, RunView};
use waitpoint_storage::Claim;
use waitpoint_types::api::worker::{ClaimedRun, JournalEntryBody};
use waitpoint_types::api::{
    CallbackVerifierInfo, CreateTokenResponse, RunDetail, RunErrorBody, RunWorker, TokenDetail, TokenItem, WaitingOn,
};
use waitpoint_types::{
    Environment, JournalEntry, RawJson, RunState, Timestamp, Waitpoint, WaitpointState, WaitpointStatus,
};

/// A waitpoint as the list shows it: tags sorted, no output.
pub(crate) fn item(engine: &Engine, environment: &Environment, waitpoint: &Waitpoint) -> TokenItem {
    let mut tags = waitpoint.tags.clone();
    tags.sort();
    TokenItem {
        id: waitpoint.id.public(),
        url: engine.callback_url(environment, &waitpoint.id),
        status: waitpoint.status().trigger_shaped(),
        outcome: outcome(waitpoint),
        completed_at: waitpoint.completed_at(),
        timeout_at: waitpoint.timeout_at,
        completed_after: waitpoint.timeout_at,
        idempotency_key: waitpoint.user_idempotency_key().map(str::to_owned),
        idempotency_key_expires_at: waitpoint.idempotency_key_expires_at,
        tags,
        created_at: waitpoint.created_at,
    }
}

/// How a waitpoint finished, once it did (waitpoint's own `outcome`).
fn outcome(waitpoint: &Waitpoint) -> Option<WaitpointStatus> {
    Some(waitpoint.status()).filter(|status| *status != WaitpointStatus::Waiting)
}

/// A waitpoint as retrieve shows it: with output (or the timeout's or rejection's error) and
/// how it finished.
pub(crate) fn detail(engine: &Engine, environment: &Environment, waitpoint: &Waitpoint) -> TokenDetail {
    let output = waitpoint.output();
    TokenDetail {
        id: waitpoint.id.public(),
        kind: "MANUAL".to_owned(),
        url: engine.callback_url(environment, &waitpoint.id),
        status: waitpoint.status().trigger_shaped(),
        outcome: outcome(waitpoint),
        idempotency_key: waitpoint.user_idempotency_key().map(str::to_owned),
        idempotency_key_expires_at: waitpoint.idempotency_key_expires_at,
        output_type: output.as_ref().map(|o| o.data_type.clone()),
        output: output.map(|o| o.data),
        output_is_error: Some(matches!(
            waitpoint.state,
            WaitpointState::TimedOut { .. } | WaitpointState::Rejected { .. }
        )),
        timeout_at: waitpoint.timeout_at,
        completed_after: waitpoint.timeout_at,
        completed_at: waitpoint.completed_at(),
        completed_via: waitpoint.completed_via_name().map(str::to_owned),
        output_schema: waitpoint.output_schema.as_deref().map(json_value),
        heartbeat_timeout: waitpoint.heartbeat.map(|heartbeat| format!("{}s", heartbeat.every.as_secs())),
        heartbeat_deadline: waitpoint.heartbeat.map(|heartbeat| heartbeat.deadline),
        callback_verifier: waitpoint
            .callback_verifier
            .as_ref()
            .map(|verifier| CallbackVerifierInfo { scheme: verifier.scheme, header: verifier.header.clone() }),
        created_at: waitpoint.created_at,
        tags: waitpoint.tags.clone(),
    }
}

/// JSON text stored by the engine, as a value; text that is not JSON (which the engine never
/// stores) becomes a JSON string rather than an error.
fn json_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// A run as retrieve shows it (`full`: with payload and output) or as a list shows it.
pub(crate) fn run(view: &RunView, now: Timestamp, full: bool) -> RunDetail {
    let run = &view.run;
    let (output, error, delayed_until) = match &run.state {
        RunState::Completed { output, .. } => (full.then(|| json_value(output)), None, None),
        RunState::Failed { error, .. } => {
            (None, Some(RunErrorBody { name: error.name.clone(), message: error.message.clone() }), None)
        }
        RunState::Queued { available_at } if *available_at > now => (None, None, Some(*available_at)),
        _ => (None, None, None),
    };
    let waiting_on = view
        .waiting_on
        .iter()
        .map(|w| WaitingOn {
            id: w.id.public(),
            kind: w.kind.as_str().to_owned(),
            status: w.status(),
            timeout_at: w.timeout_at,
        })
        .collect();
    let waiting_needed = match run.state {
        RunState::Waiting { needed, .. } => Some(needed),
        _ => None,
    };
    RunDetail {
        id: run.id.public(),
        task_id: run.task_id.clone(),
        status: run.status(now),
        payload: full.then(|| json_value(&run.payload)),
        output,
        error,
        attempt: run.attempt,
        max_attempts: run.max_attempts,
        tags: run.tags.clone(),
        idempotency_key: run.user_idempotency_key().map(str::to_owned),
        idempotency_key_expires_at: run.idempotency_key_expires_at,
        delayed_until,
        waiting_on,
        waiting_needed,
        created_at: run.created_at,
        started_at: run.started_at,
        updated_at: run.updated_at,
        finished_at: run.finished_at(),
        worker: view
            .held_by
            .as_ref()
            .map(|(id, last_seen_at)| RunWorker { id: id.public(), last_seen_at: *last_seen_at }),
        hint: view.hint.clone(),
    }
}

/// A journal entry on the wire.
pub(crate) fn entry(entry: &JournalEntry) -> JournalEntryBody {
    JournalEntryBody {
        seq: entry.seq,
        kind: entry.kind.as_str().to_owned(),
        name: entry.name.clone(),
        result: entry.result.as_deref().map(RawJson::from_stored),
    }
}

/// A created token as the create routes answer with it (the API's and a run's).
pub(crate) fn created_token(created: CreatedToken) -> CreateTokenResponse {
    CreateTokenResponse {
        id: created.waitpoint.id.public(),
        is_cached: created.is_cached,
        url: created.url,
        public_access_token: created.public_access_token,
        approval_url: Some(created.approval_url),
        reject_url: Some(created.reject_url),
        heartbeat_url: created.heartbeat_url,
    }
}

/// A claim on the wire.
pub(crate) fn claim(claim: &Claim) -> ClaimedRun {
    ClaimedRun {
        id: claim.run.id.public(),
        task_id: claim.run.task_id.clone(),
        payload: RawJson::from_stored(&claim.run.payload),
        epoch: claim.run.epoch,
        attempt: claim.run.attempt,
        max_attempts: claim.run.max_attempts,
        journal_length: claim.journal_length,
        resumed: claim.resumed.as_ref().map(entry),
    }
}
