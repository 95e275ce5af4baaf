//! The run context: the spec's API inside a run, journaled.
//!
//! Every operation takes the next position of the run's journal. Live, it is performed and its
//! result recorded on the server before it returns; on replay (a run resumed on another worker,
//! or after a crash) the recorded result is returned instead and nothing is performed again.
//! An operation that does not match the journal at its position (another kind, another name;
//! a datetime wait matches by kind alone) is non-determinism: the run fails, naming both.
//!
//! # Layout
//! - `journal`: positions, replayed and recorded results, poison.
//! - `steps`: `step`, `try_step`, and the recorded values `now`, `random_u64`, `uuid`.
//! - `tokens`: create, complete, retrieve and list tokens.
//! - `waits`: wait on a token, for a duration, until a time; suspension.
//! - `sets`: wait on any, all, or at least some of several waitpoints at once.
//! - `log`: the replay-aware logger.

#[cfg(test)]
mod fixtures;
mod journal;
mod log;
mod sets;
mod steps;
mod tokens;
mod waits;

use std::sync::Arc;

pub(crate) use journal::{Cursor, Poison, RunShared};
pub use sets::{MemberState, WaitSetMember, WaitSetResult};
pub use steps::StepError;
pub use waits::{Wait, WaitError, WaitResult, WaitpointRejectedError, WaitpointTimeoutError};

/// The context of a run: the spec's API inside a task. Pass it around inside the task's
/// function.
///
/// # Replay
///
/// A run that resumes on a worker that does not hold it in memory (another worker, a restart,
/// an eviction) runs its code again from the start; each operation through the context returns
/// what it returned the first time, without doing it again. Hence two rules:
///
/// - **Clocks, randomness and I/O go through `ctx`**: [`now`](Self::now) for the time,
///   [`uuid`](Self::uuid) and [`random_u64`](Self::random_u64) for random values,
///   [`step`](Self::step) or [`try_step`](Self::try_step) for any other side effect or read
///   whose result may differ the next time (an HTTP call, a database query). Code that reads
///   them directly sees other values on replay and may take another path: non-determinism.
/// - **Code between operations runs again on replay.** Keep it free of side effects:
///   `println!` prints twice; [`info`](Self::info) and its siblings stay quiet while the run
///   replays ([`is_replaying`](Self::is_replaying) tells).
///
/// Operations must be awaited one at a time (no `join!` of two waits): to wait on several
/// waitpoints at once, wait on the set ([`wait_for_any`](Self::wait_for_any),
/// [`wait_for_all`](Self::wait_for_all), [`wait_for_at_least`](Self::wait_for_at_least)).
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) run: Arc<RunShared>,
}

impl Context {
    /// The run's id (`run_…`).
    pub fn run_id(&self) -> &str {
        &self.run.run_id
    }

    /// The run's task.
    pub fn task_id(&self) -> &str {
        &self.run.task_id
    }

    /// The attempt (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.run.attempt
    }
}
