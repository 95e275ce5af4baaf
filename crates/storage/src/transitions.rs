//! The state transitions of waitpoints and runs, as pure functions. A backend loads the
//! record (locked, inside its transaction), asks here what it becomes, and stores the answer:
//! both backends decide alike because neither decides.

use std::collections::HashSet;

use waitpoint_types::wait::{SetMember, SetResult, WaitDecided};
use waitpoint_types::{
    EnvironmentId, JournalEntry, JournalKind, Run, RunId, RunState, Timestamp, Waitpoint, WaitpointId, WaitpointKind,
    WaitpointState, WorkerId,
};

use crate::ops::{Finishing, HeldRun, LeaseRefusal, ProlongRefusal, Prolonging, RunOutcome, Takers};

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
            if current.timeout_at.is_some_and(|deadline| deadline <= *at) {
                Some(current.deadline_state(*at, None))
            } else {
                current.heartbeat.is_some_and(|heartbeat| heartbeat.deadline <= *at).then_some(
                    WaitpointState::TimedOut { at: *at, via: Some(waitpoint_types::CompletedVia::MissedHeartbeat) },
                )
            }
        }
        Finishing::Force { at, via } => Some(current.deadline_state(*at, Some(*via))),
        Finishing::Reject { at, via, error } => (current.kind == WaitpointKind::Manual)
            .then(|| WaitpointState::Rejected { at: *at, via: *via, error: error.clone() }),
    }
}

/// What `current` becomes when `prolonging` arrives at `at`, or why nothing changes (see
/// [`ProlongRefusal`]).
pub fn waitpoint_prolonged(
    current: &Waitpoint,
    prolonging: Prolonging,
    at: Timestamp,
) -> Result<Waitpoint, ProlongRefusal> {
    if current.state != WaitpointState::Waiting {
        return Err(ProlongRefusal::Finished);
    }
    if current.due_at().is_some_and(|due| due <= at) {
        return Err(ProlongRefusal::Missed);
    }
    let mut next = current.clone();
    match prolonging {
        Prolonging::Heartbeat => {
            let heartbeat = next.heartbeat.as_mut().ok_or(ProlongRefusal::NoHeartbeat)?;
            heartbeat.deadline = at.saturating_add(heartbeat.every);
        }
        Prolonging::Extend { timeout_at } => {
            if current.timeout_at.is_none_or(|current| timeout_at <= current) {
                return Err(ProlongRefusal::NotLater);
            }
            next.timeout_at = Some(timeout_at);
        }
    }
    Ok(next)
}

/// Why a completion may not apply to `current`, which still waits: its output does not fit the
/// token's output schema (see [`crate::schema`]). `None` when it may, and for every other
/// finishing, and once `current` has finished (then nothing applies anyway).
pub fn completion_refused(current: &Waitpoint, finishing: &Finishing) -> Option<String> {
    match (finishing, &current.output_schema, &current.state) {
        (Finishing::Complete { output, .. }, Some(schema), WaitpointState::Waiting) => {
            crate::schema::output_fits(schema, output.as_ref()).err()
        }
        _ => None,
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
    let result = waitpoint_types::run::TokenCreated::new(token, is_cached).to_json();
    JournalEntry { seq, kind: JournalKind::CreateToken, name: String::new(), result: Some(result) }
}

/// Whether `run` may be created as it is: `QUEUED`, or `EXECUTING` when it is handed to a
/// worker as it is created ([`run_claimed`]); a run is created in no other state.
pub fn creatable(run: &Run) -> crate::Result<()> {
    match run.state {
        RunState::Queued { .. } | RunState::Executing { .. } => Ok(()),
        _ => Err(crate::StorageError::Corrupt(format!(
            "run {} created in a state other than QUEUED or EXECUTING",
            run.id
        ))),
    }
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

/// `run`, suspended at `now` on the wait at journal position `seq`, for `needed` of its
/// waitpoints; the worker that held it becomes its sticky worker.
pub fn run_suspended(run: &Run, seq: u32, needed: u32, now: Timestamp) -> Run {
    let sticky_worker = match &run.state {
        RunState::Executing { worker } => Some(worker.clone()),
        _ => run.sticky_worker.clone(),
    };
    Run { state: RunState::Waiting { seq, needed }, sticky_worker, updated_at: now, ..run.clone() }
}

/// `run`, queued again at `now` because its wait finished.
pub fn run_resumed(run: &Run, now: Timestamp) -> Run {
    Run { state: RunState::Queued { available_at: now }, updated_at: now, ..run.clone() }
}

/// Which of `held` (the runs `EXECUTING` for a worker, each with its epoch) a worker whose
/// claim lists `holding` does not hold, in `held`'s order: those not listed, and those listed
/// under another epoch than theirs (handed to the worker again, by a resume through another
/// node, after it made the list: given back, the same claim can take them again). A run listed
/// without an epoch is held under whatever epoch it has. Linear in both lists: a worker may
/// hold thousands of runs.
pub fn given_back<'a>(holding: &[HeldRun], held: &'a [(RunId, u64)]) -> Vec<&'a RunId> {
    let listed: HashSet<(&RunId, Option<u64>)> = holding.iter().map(|held| (&held.run, held.epoch)).collect();
    held.iter()
        .filter(|(id, epoch)| !listed.contains(&(id, None)) && !listed.contains(&(id, Some(*epoch))))
        .map(|(id, _)| id)
        .collect()
}

/// Whether `claim`, which finds `run` among the runs its worker does not hold, gives it back
/// now: when the run was last changed at or before the claim's `handed_by`, or is `unread`.
pub fn gives_back(run: &Run, claim: &crate::RunClaim) -> bool {
    run.updated_at <= claim.handed_by || claim.unread.contains(&run.id)
}

/// The worker that a run a finish resumes is handed to: its sticky worker, if `hand_to` has
/// room in it for the run's task; `None`: the run is queued. Called once per resumed run.
pub fn hand_off(run: &Run, hand_to: &Takers) -> Option<WorkerId> {
    run.sticky_worker.as_ref().filter(|worker| hand_to.takes(&run.environment_id, worker, &run.task_id)).cloned()
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
    last.filter(|entry| entry.kind.is_wait() && entry.result.is_some())
}

/// The result of a wait of `kind` for `needed` of `waitpoints` (in the wait's order, as they
/// are now) once it is decided; `None` while it is not.
///
/// A token or datetime wait has one waitpoint and is decided when it finishes, with its
/// [`Waitpoint::wait_result`]. A set wait is decided once `needed` of its waitpoints completed
/// (`ok`) or once so many timed out or were rejected that `needed` no longer can (not `ok`),
/// and records where each one stood then, in order: its result, or pending. What finishes
/// later does not change a decided wait.
pub fn wait_decided(kind: JournalKind, needed: u32, waitpoints: &[Waitpoint]) -> Option<WaitDecided> {
    if kind != JournalKind::WaitSet {
        return waitpoints.first().and_then(Waitpoint::wait_result).map(WaitDecided::One);
    }
    let count = |finished: fn(&WaitpointState) -> bool| waitpoints.iter().filter(|w| finished(&w.state)).count();
    let completed = count(|state| matches!(state, WaitpointState::Completed { .. }));
    let failed = count(|state| matches!(state, WaitpointState::TimedOut { .. } | WaitpointState::Rejected { .. }));
    let needed = usize::try_from(needed).unwrap_or(usize::MAX);
    let ok = if completed >= needed {
        true
    } else if failed > waitpoints.len().saturating_sub(needed) {
        false
    } else {
        return None;
    };
    let waitpoints = waitpoints
        .iter()
        .map(|waitpoint| SetMember { id: waitpoint.id.public(), result: waitpoint.wait_result() })
        .collect();
    Some(WaitDecided::Set(SetResult { ok, waitpoints }))
}

/// [`wait_decided`] for a wait some of whose `waitpoints` (as they are now) finished in one
/// batch, by the finishes of `finished` (waitpoint ids, in the batch's order): decided as those
/// finishes, applied one at a time, would decide it. Each is judged with the later ones still
/// waiting, so the result records what the deciding finish saw, the same whether a backend
/// decides after each finish or after all of them. The result, and the position in `finished`
/// of the finish that decided it; `None` when none did.
pub fn wait_decided_in_order(
    kind: JournalKind,
    needed: u32,
    waitpoints: &[Waitpoint],
    finished: &[&WaitpointId],
) -> Option<(WaitDecided, usize)> {
    let mut seen: Vec<Waitpoint> = waitpoints.to_vec();
    for waitpoint in &mut seen {
        if finished.contains(&&waitpoint.id) {
            waitpoint.state = WaitpointState::Waiting;
        }
    }
    for (position, id) in finished.iter().enumerate() {
        let Some(member) = waitpoints.iter().position(|waitpoint| waitpoint.id == **id) else { continue };
        seen[member].state = waitpoints[member].state.clone();
        if let Some(result) = wait_decided(kind, needed, &seen) {
            return Some((result, position));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use waitpoint_types::{CompletedVia, EnvironmentId};

    use super::*;

    fn waitpoint(n: u32, state: WaitpointState) -> Waitpoint {
        Waitpoint {
            id: WaitpointId::from_internal(format!("w{n}")),
            kind: WaitpointKind::Manual,
            environment_id: EnvironmentId::from_internal("env".into()),
            state,
            idempotency_key: None,
            inactive_idempotency_key: None,
            idempotency_key_expires_at: None,
            timeout_at: None,
            heartbeat: None,
            callback_verifier: None,
            tags: Vec::new(),
            created_at: Timestamp::from_millis(0),
            approval: None,
            output_schema: None,
        }
    }

    #[test]
    fn a_claim_gives_back_what_its_worker_does_not_list_or_lists_under_another_epoch() {
        let run = |n: u32| RunId::from_internal(format!("run{n}"));
        let held: Vec<(RunId, u64)> = (0..4).map(|n| (run(n), 2)).collect();
        let holding = vec![
            HeldRun::any_epoch(run(0)),
            HeldRun { run: run(1), epoch: Some(2) },
            HeldRun { run: run(2), epoch: Some(1) },
            HeldRun { run: run(9), epoch: None },
        ];
        assert_eq!(given_back(&holding, &held), vec![&run(2), &run(3)]);
        assert_eq!(given_back(&[], &held).len(), 4);
    }

    #[test]
    fn a_heartbeat_moves_only_the_heartbeat_deadline_and_an_extend_only_the_timeout() {
        let at = |millis| Timestamp::from_millis(millis);
        let mut token = waitpoint(1, WaitpointState::Waiting);
        token.timeout_at = Some(at(100_000));
        let every = std::time::Duration::from_secs(10);
        token.heartbeat = Some(waitpoint_types::Heartbeat { every, deadline: at(10_000) });

        let beaten = waitpoint_prolonged(&token, Prolonging::Heartbeat, at(9_000)).unwrap();
        assert_eq!(beaten.heartbeat.unwrap().deadline, at(19_000));
        assert_eq!(beaten.timeout_at, token.timeout_at, "a heartbeat never moves the timeout");
        let late = waitpoint_prolonged(&token, Prolonging::Heartbeat, at(10_000));
        assert_eq!(late, Err(ProlongRefusal::Missed), "a heartbeat at the deadline is too late");

        let extended = waitpoint_prolonged(&token, Prolonging::Extend { timeout_at: at(200_000) }, at(9_000)).unwrap();
        assert_eq!((extended.timeout_at, extended.heartbeat), (Some(at(200_000)), token.heartbeat));
        let shorter = waitpoint_prolonged(&token, Prolonging::Extend { timeout_at: at(100_000) }, at(9_000));
        assert_eq!(shorter, Err(ProlongRefusal::NotLater));

        let mut plain = waitpoint(2, WaitpointState::Waiting);
        assert_eq!(waitpoint_prolonged(&plain, Prolonging::Heartbeat, at(1)), Err(ProlongRefusal::NoHeartbeat));
        let forever = waitpoint_prolonged(&plain, Prolonging::Extend { timeout_at: at(5) }, at(1));
        assert_eq!(forever, Err(ProlongRefusal::NotLater), "a token that waits forever has nothing to extend");
        plain.state = WaitpointState::Completed { at: at(1), via: CompletedVia::SecretKey, output: None };
        assert_eq!(waitpoint_prolonged(&plain, Prolonging::Heartbeat, at(2)), Err(ProlongRefusal::Finished));
    }

    #[test]
    fn a_deadline_times_out_a_token_whose_heartbeat_was_missed_and_says_so() {
        let at = |millis| Timestamp::from_millis(millis);
        let mut token = waitpoint(1, WaitpointState::Waiting);
        token.timeout_at = Some(at(100_000));
        token.heartbeat =
            Some(waitpoint_types::Heartbeat { every: std::time::Duration::from_secs(10), deadline: at(10_000) });
        assert_eq!(waitpoint_finished(&token, &Finishing::Deadline { at: at(9_999) }), None);
        assert_eq!(
            waitpoint_finished(&token, &Finishing::Deadline { at: at(10_000) }),
            Some(WaitpointState::TimedOut { at: at(10_000), via: Some(CompletedVia::MissedHeartbeat) })
        );
        token.heartbeat =
            Some(waitpoint_types::Heartbeat { every: std::time::Duration::from_secs(10), deadline: at(200_000) });
        assert_eq!(
            waitpoint_finished(&token, &Finishing::Deadline { at: at(100_000) }),
            Some(WaitpointState::TimedOut { at: at(100_000), via: None }),
            "the hard timeout applies whatever the heartbeats"
        );
    }

    /// A set of waitpoints in these states, `c` completed, `t` timed out, `w` waiting.
    fn set(states: &str) -> Vec<Waitpoint> {
        (0..)
            .zip(states.chars())
            .map(|(n, state)| {
                let at = Timestamp::from_millis(1);
                waitpoint(
                    n,
                    match state {
                        'c' => WaitpointState::Completed { at, via: CompletedVia::SecretKey, output: None },
                        't' => WaitpointState::TimedOut { at, via: None },
                        _ => WaitpointState::Waiting,
                    },
                )
            })
            .collect()
    }

    fn ok(needed: u32, states: &str) -> Option<bool> {
        match wait_decided(JournalKind::WaitSet, needed, &set(states))? {
            WaitDecided::Set(set) => Some(set.ok),
            WaitDecided::One(_) => panic!("a set wait decided as a wait on one"),
        }
    }

    #[test]
    fn a_set_is_decided_when_enough_completed_or_too_many_timed_out() {
        assert_eq!(ok(1, "www"), None);
        assert_eq!(ok(1, "wcw"), Some(true), "any: the first completion");
        assert_eq!(ok(1, "ttw"), None, "any: one may still complete");
        assert_eq!(ok(1, "ttt"), Some(false));
        assert_eq!(ok(3, "ccw"), None);
        assert_eq!(ok(3, "wtw"), Some(false), "all: the first timeout");
        assert_eq!(ok(3, "ccc"), Some(true));
        assert_eq!(ok(2, "ctw"), None, "2 of 3: one completed, one may");
        assert_eq!(ok(2, "ttc"), Some(false));
        assert_eq!(ok(2, "cwc"), Some(true));
    }

    #[test]
    fn a_decided_set_says_where_each_waitpoint_stood() {
        let result = wait_decided(JournalKind::WaitSet, 1, &set("tcw")).unwrap();
        assert_eq!(
            result.to_json(),
            concat!(
                r#"{"ok":true,"waitpoints":[{"id":"waitpoint_w0","ok":false,"error":{"code":"TRIGGER_WAITPOINT_TIMEOUT","#,
                r#""message":"Waitpoint timed out at 1970-01-01T00:00:00.001Z"}},"#,
                r#"{"id":"waitpoint_w1","ok":true,"output":null},{"id":"waitpoint_w2","pending":true}]}"#
            )
        );
        let single = wait_decided(JournalKind::WaitToken, 1, &set("c")).unwrap();
        assert_eq!(single.to_json(), r#"{"ok":true,"output":null}"#, "a wait on one keeps its own shape");
    }

    #[test]
    fn finishes_of_one_batch_decide_a_set_as_they_would_one_at_a_time() {
        let now = set("ccc");
        let ids: Vec<&WaitpointId> = [2, 0, 1].iter().map(|n| &now[*n].id).collect();
        let (result, position) = wait_decided_in_order(JournalKind::WaitSet, 2, &now, &ids).unwrap();
        assert_eq!(position, 1, "the second finish decides 2 of 3");
        let one_at_a_time = wait_decided(JournalKind::WaitSet, 2, &set("cwc")).unwrap();
        assert_eq!(result, one_at_a_time, "the third stays pending, as it was when the set was decided");
        let other = WaitpointId::from_internal("elsewhere".into());
        let (_, position) = wait_decided_in_order(JournalKind::WaitSet, 1, &now, &[&other, &now[1].id]).unwrap();
        assert_eq!(position, 1, "finishes of other waitpoints decide nothing");
        assert_eq!(wait_decided_in_order(JournalKind::WaitSet, 3, &set("ccw"), &[&now[0].id]), None);
    }
}
