//! The write operations of [`Store::write_batch`](crate::Store::write_batch) and what each did.
//!
//! Run operations that act for a worker carry the run's `epoch` as the worker last saw it
//! (from its claim): when the run has moved on (another worker took it, it was canceled), the
//! outcome is [`WriteOutcome::Stale`] and nothing changes. That fences out a worker presumed
//! dead that is in fact still running.

use std::time::Duration;

use waitpoint_types::{
    EnvironmentId, JournalEntry, JournalKind, Run, RunError, RunId, Timestamp, Waitpoint, WaitpointId, WaitpointState,
    WorkerId,
};

/// One write in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Create a waitpoint, honouring its idempotency key.
    Create(Waitpoint),
    /// Move a waiting waitpoint to a final state, resuming the runs that wait on it.
    Finish(Finish),
    /// Create a run, honouring its idempotency key: [`WriteOutcome::RunCreated`] or
    /// [`WriteOutcome::RunExisting`], exactly as [`WriteOp::Create`] for waitpoints.
    RunCreate(Run),
    /// Hand queued runs to a worker.
    RunClaim(RunClaim),
    /// Record the result of an operation the run performed.
    RunRecord(RunRecord),
    /// Create a token for a run and record it.
    RunCreateToken(RunCreateToken),
    /// Make a run wait on a waitpoint.
    RunWait(RunWait),
    /// Complete or fail a run's attempt.
    RunFinish(RunFinish),
    /// Cancel a run that has not finished: [`WriteOutcome::RunFinished`], or
    /// [`WriteOutcome::RunUnchanged`] if it had finished, or [`WriteOutcome::NotFound`] (also
    /// for a run of another environment).
    RunCancel {
        /// The run.
        run: RunId,
        /// Its environment.
        environment_id: EnvironmentId,
        /// When.
        at: Timestamp,
    },
    /// Give back the runs of workers that stopped: [`WriteOutcome::Released`].
    RunsRelease(RunsRelease),
    /// Note that a worker is alive: [`WriteOutcome::Done`].
    WorkerSeen(WorkerSeen),
    /// Forget a worker that stopped, so that nothing is handed or reserved to it any more:
    /// [`WriteOutcome::Done`]. A session older than the worker's newest changes nothing (its
    /// successor took the worker over): [`WriteOutcome::WorkerReplaced`].
    WorkerLeft {
        /// The worker's environment: a worker is known by its environment and its id, so the
        /// same id in another environment is another worker.
        environment_id: EnvironmentId,
        /// The worker.
        worker: WorkerId,
        /// The session that leaves (see [`RunClaim::session`]).
        session: Option<String>,
    },
}

/// Moves a waitpoint out of `WAITING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// The waitpoint.
    pub id: WaitpointId,
    /// When set, a waitpoint of another environment counts as not found.
    pub environment_id: Option<EnvironmentId>,
    /// [`WaitpointState::Completed`], or [`WaitpointState::TimedOut`] to ask for the deadline
    /// transition ([`Waitpoint::deadline_state`]: a token times out, a datetime waitpoint
    /// completes). Without a `via`, that applies only once `timeout_at` is at or before the
    /// state's `at`; with one (a timeout forced, a wait skipped), at once.
    pub state: WaitpointState,
    /// When set, a resumed run whose sticky worker was seen at or after this time is handed
    /// straight to that worker (`EXECUTING` with `epoch + 1`, as a claim would) instead of being
    /// queued: it continues in that worker's memory without waiting for another claim.
    pub workers_alive_since: Option<Timestamp>,
}

/// The runs a finished waitpoint resumed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Queued again, for any worker to claim.
    pub queued: Vec<RunId>,
    /// Handed to the live worker that suspended them (see [`Finish::workers_alive_since`]).
    pub handed: Vec<Claim>,
}

impl Resumed {
    /// Every run resumed, queued or handed.
    pub fn runs(&self) -> Vec<RunId> {
        self.queued.iter().cloned().chain(self.handed.iter().map(|claim| claim.run.id.clone())).collect()
    }
}

/// Hands queued runs to a worker: [`WriteOutcome::Claimed`].
///
/// A worker is known by its environment and its id: the same id in another environment is
/// another worker, whose runs a claim neither takes back nor sees.
///
/// A claim made by a session older than the worker's newest (a process that another one took
/// over) is refused, [`WriteOutcome::WorkerReplaced`], and changes nothing. A newer session
/// becomes the worker's, and its claim (whose `holding` lists nothing of the older session's)
/// gives back at once what the older session held.
///
/// First, every run `EXECUTING` for this worker that is not in `holding` is queued again at
/// `now` (the worker does not know it has it: a claim whose answer was lost, a run it gave
/// up). Then, for each task, up to its count of `QUEUED` runs with `available_at <= now` are taken,
/// earliest `available_at` first, and become `EXECUTING` for this worker with `epoch + 1`,
/// `attempt` at least 1 and `started_at` set if unset. A run whose `sticky_worker` is another
/// worker is skipped while that worker is alive (seen at or after `alive_since`) and the run
/// became available less than `sticky_for` ago: it resumes where it is parked in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunClaim {
    /// Whose runs.
    pub environment_id: EnvironmentId,
    /// The worker.
    pub worker: WorkerId,
    /// Task ids, each with the most runs of it to take.
    pub tasks: Vec<(String, usize)>,
    /// The time of the claim.
    pub now: Timestamp,
    /// Workers seen before this are presumed gone.
    pub alive_since: Timestamp,
    /// How long a resumed run stays reserved for the worker that suspended it.
    pub sticky_for: Duration,
    /// The runs the worker is executing.
    pub holding: Vec<RunId>,
    /// The worker process's session, ordered by [`transitions::session_current`]; `None` for a
    /// worker whose id is its whole identity.
    ///
    /// [`transitions::session_current`]: crate::transitions::session_current
    pub session: Option<String>,
}

/// A run handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The run, now `EXECUTING` for the worker.
    pub run: Run,
    /// How many entries its journal has: 0 for a fresh run, else the worker replays them.
    pub journal_length: u32,
    /// When the run resumes from a wait: the journal entry of that wait, with its result. The
    /// worker that suspended the run continues it in memory with this; any other replays the
    /// journal.
    pub resumed: Option<JournalEntry>,
}

/// Records the result of an operation a run performed live: [`WriteOutcome::Recorded`].
///
/// The entry's `seq` must be the journal's length (append) or an existing position: an
/// existing entry of the same kind and name is returned as it is (a retried call records
/// nothing twice); one of another kind or name is [`WriteOutcome::Diverged`]; a position past
/// the end is [`WriteOutcome::OutOfOrder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The run.
    pub run: RunId,
    /// Its environment: a run of another one counts as not found.
    pub environment_id: EnvironmentId,
    /// Its epoch as the worker knows it.
    pub epoch: u64,
    /// The entry, with its result.
    pub entry: JournalEntry,
}

/// Creates a token for a run and records it at `seq` in one step: [`WriteOutcome::Recorded`]
/// with a `CREATE_TOKEN` entry whose result is `{"id": "waitpoint_…", "isCached": bool}`. On
/// a retried call, or on replay, the recorded token is returned and nothing is created. The
/// token honours its idempotency key as [`WriteOp::Create`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCreateToken {
    /// The run.
    pub run: RunId,
    /// Its environment: a run of another one counts as not found.
    pub environment_id: EnvironmentId,
    /// Its epoch as the worker knows it.
    pub epoch: u64,
    /// The journal position.
    pub seq: u32,
    /// The token to create.
    pub waitpoint: Waitpoint,
}

/// Makes a run wait on a waitpoint at journal position `seq`.
///
/// If the waitpoint has finished, the entry is recorded with the waitpoint's
/// [`wait_result`](Waitpoint::wait_result) and the run goes on: [`WriteOutcome::Recorded`].
/// Otherwise the entry is recorded without result, the run becomes `WAITING` with the worker
/// as its `sticky_worker`: [`WriteOutcome::Suspended`]. When the waitpoint finishes, the result
/// is filled in and the run is `QUEUED` again. A waitpoint of another environment is
/// [`WriteOutcome::NotFound`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunWait {
    /// The run.
    pub run: RunId,
    /// Its environment: a run of another one counts as not found.
    pub environment_id: EnvironmentId,
    /// Its epoch as the worker knows it.
    pub epoch: u64,
    /// The journal position.
    pub seq: u32,
    /// `WAIT_TOKEN` or `WAIT_DATETIME`.
    pub kind: JournalKind,
    /// The entry's name.
    pub name: String,
    /// What to wait on.
    pub waitpoint: WaitpointId,
    /// A waitpoint to create first (the datetime waitpoint of `wait.for`), unless the journal
    /// already has this position.
    pub create: Option<Waitpoint>,
    /// When.
    pub at: Timestamp,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The task returned this output (JSON text): the run is `COMPLETED`.
    Completed {
        /// The output.
        output: String,
    },
    /// The attempt failed. If the run has attempts left (`attempt < max_attempts`) and
    /// `retry_at` is given, it is `QUEUED` again from `retry_at` with `attempt + 1`; otherwise
    /// it is `FAILED`.
    Failed {
        /// Why.
        error: RunError,
        /// When to retry; `None` for an error that retrying cannot fix.
        retry_at: Option<Timestamp>,
    },
}

/// Ends a run's attempt: [`WriteOutcome::RunFinished`] with the run as it now is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFinish {
    /// The run.
    pub run: RunId,
    /// Its environment: a run of another one counts as not found.
    pub environment_id: EnvironmentId,
    /// Its epoch as the worker knows it.
    pub epoch: u64,
    /// How the attempt ended.
    pub outcome: RunOutcome,
    /// When.
    pub at: Timestamp,
}

/// Gives back the runs held by workers that stopped: every `EXECUTING` run whose worker (of the
/// run's environment) was last seen before `alive_since` (or never) becomes `QUEUED` at `now`,
/// without a sticky worker, and replays on whichever worker takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsRelease {
    /// Workers seen before this are presumed gone.
    pub alive_since: Timestamp,
    /// The time of the release.
    pub now: Timestamp,
}

/// Records that a worker (of `environment_id`) was alive at `at`, serving `tasks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSeen {
    /// The worker.
    pub worker: WorkerId,
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// When.
    pub at: Timestamp,
    /// The task ids it runs (see [`Store::task_served`](crate::Store::task_served)).
    pub tasks: Vec<String>,
}

/// What one [`WriteOp`] did, in the order of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The waitpoint was created as given.
    Created(Waitpoint),
    /// An active idempotency key matched: this existing waitpoint (in whatever state) is the
    /// answer and nothing was written.
    Existing(Waitpoint),
    /// The waitpoint moved to the requested final state; these runs, which waited on it,
    /// resumed.
    Finished(Waitpoint, Resumed),
    /// Nothing changed: the waitpoint had already finished (the first completion wins) or,
    /// for a timeout, its deadline has not come. The current record is returned.
    Unchanged(Waitpoint),
    /// No such waitpoint or run (in that environment).
    NotFound,
    /// The run was created as given.
    RunCreated(Run),
    /// An active idempotency key matched this existing run.
    RunExisting(Run),
    /// These runs were handed to the worker, after it gave back `released`: the runs it held
    /// without knowing (queued again for any worker).
    Claimed { claims: Vec<Claim>, released: Vec<RunId> },
    /// This entry is in the journal (just recorded, or recorded before).
    Recorded(JournalEntry),
    /// The run waits; it holds no worker.
    Suspended(Run),
    /// The journal holds another operation at that position: the run's code no longer matches.
    Diverged(JournalEntry),
    /// The position is past the end of the journal (which has this many entries).
    OutOfOrder(u32),
    /// The run's epoch moved on, or it is not executing: the worker lost it. The run as it is.
    Stale(Run),
    /// The run moved to this state.
    RunFinished(Run),
    /// Nothing changed: the run had finished. The run as it is.
    RunUnchanged(Run),
    /// These runs were given back.
    Released(Vec<RunId>),
    /// A newer session of the worker took it over; nothing changed.
    WorkerReplaced,
    /// Done; nothing to report.
    Done,
}
