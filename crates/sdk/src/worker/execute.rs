//! Executing the runs the server hands over: a new execution (replaying the journal, if the
//! run has one) or the resume of a run suspended in memory, and the report of how the attempt
//! ended.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use waitpoint_types::RawJson;
use waitpoint_types::api::RunErrorBody;
use waitpoint_types::api::worker::ClaimedRun;

use super::Shared;
use crate::context::{Cursor, Poison, RunShared};
use crate::parking::{Permits, Resume};
use crate::task::TaskError;
use crate::{Context, Error};

/// Starts (or resumes) a run the server handed over. A resumed run can arrive when every slot
/// is taken (the server hands it back to the worker that suspended it); it is then deferred
/// until a slot frees, or, when as many runs as there are slots wait already, left out: the
/// next poll, not counting it as held, gives it back for any worker to take.
pub(super) fn dispatch(shared: &Arc<Shared>, claimed: ClaimedRun) {
    if shared.parking.superseded(&claimed.id, claimed.epoch) {
        // A late copy of a hand-off the server has since replaced (it gave the run back and
        // handed it over again, with a newer epoch): the execution here is the current one.
        tracing::debug!(run = %claimed.id, epoch = claimed.epoch, "ignoring a superseded claim");
        return;
    }
    let Some(permits) = acquire(shared, &claimed.task_id) else {
        if let Some(claimed) = shared.parking.defer(claimed, shared.config.concurrency.max(1)) {
            tracing::debug!(run = %claimed.id, "no free slot for a resumed run; handing it back");
        }
        return;
    };
    if let Some(resumed) = &claimed.resumed
        && let Some(sender) = shared.parking.take_resume(&claimed.id, resumed.seq, claimed.epoch)
    {
        let resume =
            Resume { result: resumed.result.clone().unwrap_or_else(RawJson::null), epoch: claimed.epoch, permits };
        match sender.send(resume) {
            Ok(()) => return,
            Err(resume) => return start(shared, claimed, resume.permits),
        }
    }
    start(shared, claimed, permits);
}

/// A worker slot and, if the task has a limit, one of the task's; `None` if one is not free.
fn acquire(shared: &Shared, task_id: &str) -> Option<Permits> {
    let worker = shared.slots.clone().try_acquire_owned().ok()?;
    let task = match shared.task_slots.get(task_id) {
        Some(slots) => Some(slots.clone().try_acquire_owned().ok()?),
        None => None,
    };
    Some(Permits { _worker: worker, _task: task })
}

/// Executes a run from its start, replaying its journal if it has one.
fn start(shared: &Arc<Shared>, claimed: ClaimedRun, permits: Permits) {
    let generation = shared.parking.begin(&claimed.id, claimed.epoch);
    let handle = tokio::spawn(execute(shared.clone(), claimed.clone(), permits, generation));
    shared.parking.set_abort(&claimed.id, generation, handle.abort_handle());
}

async fn execute(shared: Arc<Shared>, claimed: ClaimedRun, permits: Permits, generation: u64) {
    let run_id = claimed.id.clone();
    let journal = if claimed.journal_length > 0 {
        match shared.channel.journal(&run_id).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, run = %run_id, "could not read the journal; the run resumes elsewhere");
                shared.parking.end(&run_id, generation);
                return;
            }
        }
    } else {
        Vec::new()
    };
    let replayed = journal.len();
    let run = Arc::new(RunShared {
        client: shared.client.clone(),
        channel: shared.channel.clone(),
        clock: shared.config.clock.clone(),
        run_id: run_id.clone(),
        task_id: claimed.task_id.clone(),
        attempt: claimed.attempt,
        cursor: tokio::sync::Mutex::new(Cursor { epoch: claimed.epoch, next_seq: 0, journal }),
        poison: Mutex::new(None),
        permits: Mutex::new(Some(permits)),
        parking: shared.parking.clone(),
    });
    let outcome = match shared.tasks.get(&claimed.task_id) {
        Some(task) => {
            let body = (task.handler)(Context { run: run.clone() }, claimed.payload.clone());
            match AssertUnwindSafe(body).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Err(TaskError::named("Panic", panic_message(&panic), true)),
            }
        }
        None => Err(TaskError::named("TaskNotFound", format!("this worker has no task {:?}", claimed.task_id), false)),
    };
    let (epoch, unreplayed) = {
        let cursor = run.cursor.lock().await;
        (cursor.epoch, (cursor.next_seq as usize) < replayed)
    };
    // The code returned: its slots go to other runs while the outcome is reported. The run
    // stays held (polls list it) until the report is answered, and a stopping worker waits
    // for that.
    let permits = run.permits.lock().unwrap_or_else(|p| p.into_inner()).take();
    shared.parking.returned(&run_id, generation, permits);
    let report = match (run.poisoned(), outcome) {
        (Some(Poison::MovedOn(reason)), _) => {
            tracing::info!(run = %run_id, reason, "the run moved on; dropping it");
            Ok(())
        }
        (Some(Poison::NonDeterminism(message)), _) => {
            let error = RunErrorBody { name: "NonDeterminism".into(), message };
            shared.channel.fail_attempt(&run_id, epoch, error, None).await
        }
        (None, Ok(_)) if unreplayed => {
            let message = format!("the run's code returned before replaying its journal ({replayed} entries)");
            let error = RunErrorBody { name: "NonDeterminism".into(), message };
            shared.channel.fail_attempt(&run_id, epoch, error, None).await
        }
        (None, Ok(output)) => shared.channel.complete_attempt(&run_id, epoch, output).await,
        (None, Err(error)) => {
            let task = shared.tasks.get(&claimed.task_id);
            let retry_after = (error.is_retryable() && claimed.attempt < claimed.max_attempts)
                .then(|| task.map(|t| t.retry.delay(claimed.attempt)))
                .flatten();
            let body = RunErrorBody { name: error.name().into(), message: error.message().into() };
            shared.channel.fail_attempt(&run_id, epoch, body, retry_after).await
        }
    };
    match report {
        Ok(()) | Err(Error::Api { status: 409, .. }) => {}
        Err(error) => tracing::warn!(%error, run = %run_id, "could not report the attempt; it resumes elsewhere"),
    }
    shared.parking.end(&run_id, generation);
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .map_or_else(|| "the task panicked".to_owned(), |message| format!("the task panicked: {message}"))
}
