//! The state transitions of waitpoints and runs, as pure functions. A backend loads the
//! record (locked, inside its transaction), asks here what it becomes, and stores the answer:
//! both backends decide alike because neither decides.

use waitpoint_types::{
    EnvironmentId, JournalEntry, JournalKind, Run, RunState, Timestamp, Waitpoint, WaitpointId, WaitpointState,
};

use crate::ops::{Finishing, LeaseRefusal, RunOutcome};

/// The state `current` moves to when `finishing` arrives, or `None` when nothing changes: it
/// already finished (the first completion wins), or its deadline is not due yet.
pub fn waitpoint_finished(current: &Waitpoint, finishing: &Finishing) -> Option<WaitpointState> {
    if current.state != WaitpointState::Waiting {
        return None;
    }
    match finishing {
        Finishing::Complete { at, via, output } => {
            Some(WaitpointState::Completed { at: *at, via: *via, output: output.clone() })
        }
        Finishing::Deadline { at } => {
            current.timeout_at.is_some_and(|deadline| deadline <= *at).then(|| current.deadline_state(*at, None))
        }
        Finishing::Force { at, via } => Some(current.deadline_state(*at, Some(*via))),
    }
}

/// Whether a worker's call made by session `incoming` may act for a worker whose newest session
/// is `stored`: sessions sort as strings (a process makes a time-ordered one when it starts),
/// and without a session on either side the worker id is the whole identity.
pub fn session_current(stored: Option<&str>, incoming: Option<&str>) -> bool {
    match (stored, incoming) {
        (Some(stored), Some(incoming)) => incoming >= stored,
        _ => true,
    }
}

/// Whether a worker that knows `run` at `epoch` still holds it.
pub fn run_holds_lease(run: &Run, epoch: u64) -> bool {
    matches!(run.state, RunState::Executing { .. }) && run.epoch == epoch
}

/// Why a worker's write about `run` is refused instead of applied: `NotFound` when the run is
/// another environment's than `environment_id`, `Stale` when `epoch` no longer holds it.
pub fn lease_refusal(run: &Run, environment_id: &EnvironmentId, epoch: u64) -> Option<LeaseRefusal> {
    if run.environment_id != *environment_id {
        Some(LeaseRefusal::NotFound)
    } else if !run_holds_lease(run, epoch) {
        Some(LeaseRefusal::Stale(Box::new(run.clone())))
    } else {
        None
    }
}

/// The journal entry at `seq` of a run that created (or, with an active idempotency key,
/// found: `is_cached`) the token `token`.
pub fn token_created(seq: u32, token: &WaitpointId, is_cached: bool) -> JournalEntry {
    let result = serde_json::json!({ "id": token.public(), "isCached": is_cached });
    JournalEntry { seq, kind: JournalKind::CreateToken, name: String::new(), result: Some(result.to_string()) }
}

/// `run`, taken by `worker` at `now`.
pub fn run_claimed(run: &Run, worker: &waitpoint_types::WorkerId, now: Timestamp) -> Run {
    Run {
        state: RunState::Executing { worker: worker.clone() },
        epoch: run.epoch + 1,
        attempt: run.attempt.max(1),
        started_at: run.started_at.or(Some(now)),
        updated_at: now,
        ..run.clone()
    }
}

/// `run`, suspended at `now` on `waitpoint` at journal position `seq`; the worker that held
/// it becomes its sticky worker.
pub fn run_suspended(run: &Run, waitpoint: &WaitpointId, seq: u32, now: Timestamp) -> Run {
    let sticky_worker = match &run.state {
        RunState::Executing { worker } => Some(worker.clone()),
        _ => run.sticky_worker.clone(),
    };
    Run {
        state: RunState::Waiting { waitpoint: waitpoint.clone(), seq },
        sticky_worker,
        updated_at: now,
        ..run.clone()
    }
}

/// `run`, queued again at `now` because its wait finished.
pub fn run_resumed(run: &Run, now: Timestamp) -> Run {
    Run { state: RunState::Queued { available_at: now }, updated_at: now, ..run.clone() }
}

/// `run`, queued again at `now` because its worker stopped: it replays on whichever worker
/// takes it.
pub fn run_released(run: &Run, now: Timestamp) -> Run {
    Run { state: RunState::Queued { available_at: now }, sticky_worker: None, updated_at: now, ..run.clone() }
}

/// `run` after an attempt ended with `outcome` at `at`.
pub fn run_finished(run: &Run, outcome: &RunOutcome, at: Timestamp) -> Run {
    let (state, attempt, sticky_worker) = match outcome {
        RunOutcome::Completed { output } => {
            (RunState::Completed { at, output: output.clone() }, run.attempt, run.sticky_worker.clone())
        }
        RunOutcome::Failed { retry_at: Some(retry_at), .. } if run.attempt < run.max_attempts => {
            (RunState::Queued { available_at: *retry_at }, run.attempt + 1, None)
        }
        RunOutcome::Failed { error, .. } => {
            (RunState::Failed { at, error: error.clone() }, run.attempt, run.sticky_worker.clone())
        }
    };
    Run { state, attempt, sticky_worker, updated_at: at, ..run.clone() }
}

/// `run` canceled at `at`, or `None` if it had finished.
pub fn run_canceled(run: &Run, at: Timestamp) -> Option<Run> {
    let finished =
        matches!(run.state, RunState::Completed { .. } | RunState::Failed { .. } | RunState::Canceled { .. });
    (!finished).then(|| Run { state: RunState::Canceled { at }, updated_at: at, ..run.clone() })
}

/// Whether `existing` records a different operation than one of `kind` named `name`.
///
/// A datetime wait is matched by its kind alone: the deadline it recorded is the truth, so code
/// that computes its deadline from the clock (and asks for another instant on replay) resumes
/// where it stopped, as timers are matched by their position, not their time.
pub fn journal_diverges(existing: &JournalEntry, kind: JournalKind, name: &str) -> bool {
    existing.kind != kind || (kind != JournalKind::WaitDatetime && existing.name != name)
}

/// The wait a claim resumes from: the journal's last entry, when it is a finished wait.
pub fn resumed_from(last: Option<JournalEntry>) -> Option<JournalEntry> {
    last.filter(|entry| {
        matches!(entry.kind, JournalKind::WaitToken | JournalKind::WaitDatetime) && entry.result.is_some()
    })
}
