//! Which events a write appends to the log ([`Store::write_batch`](crate::Store::write_batch)
//! writes them in the same transaction): decided here once, from each operation's outcome, for
//! every backend.

use waitpoint_types::event::NewEvent;

use crate::ops::{CreateOutcome, FinishOutcome, RunEndOutcome, WriteOutcome};

/// Whether `outcome` tells of an event ([`of_outcome`] gives it), without building it: a token
/// created or finished, or a run ended.
pub fn tells(outcome: &WriteOutcome) -> bool {
    match outcome {
        WriteOutcome::Create(CreateOutcome::Created(waitpoint))
        | WriteOutcome::Finish(FinishOutcome::Finished(waitpoint, _)) => {
            waitpoint.kind == waitpoint_types::WaitpointKind::Manual
        }
        WriteOutcome::RunEnd(RunEndOutcome::Ended(run)) => run.finished_at().is_some(),
        _ => false,
    }
}

/// The events an operation's `outcome` tells of: a token created or finished, a run ended.
/// Nothing for what changed nothing (an idempotent create, a repeated completion).
pub fn of_outcome(outcome: &WriteOutcome) -> Option<NewEvent> {
    match outcome {
        WriteOutcome::Create(CreateOutcome::Created(waitpoint)) => NewEvent::of_waitpoint(waitpoint, true),
        WriteOutcome::Finish(FinishOutcome::Finished(waitpoint, _)) => NewEvent::of_waitpoint(waitpoint, false),
        WriteOutcome::RunEnd(RunEndOutcome::Ended(run)) => NewEvent::of_run(run),
        _ => None,
    }
}
