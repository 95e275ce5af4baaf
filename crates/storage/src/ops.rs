//! The write operations of [`Store::write_batch`](crate::Store::write_batch) and what each did.
//!
//! Run operations that act for a worker carry the run's `epoch` as the worker last saw it
//! (from its claim): when the run has moved on (another worker took it, it was canceled), the
//! outcome is a [`LeaseRefusal::Stale`] and nothing changes. That fences out a worker presumed
//! dead that is in fact still running.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use waitpoint_types::{
    CompletedVia, EnvironmentId, JournalEntry, JournalKind, Output, Rejection, Run, RunError, RunId, Timestamp,
    Waitpoint, WaitpointId, WorkerId,
};

/// One write in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Create a waitpoint, honouring its idempotency key.
    Create(Waitpoint),
    /// Move a waiting waitpoint to a final state, resuming the runs that wait on it.
    Finish(Finish),
    /// Keep a waiting token alive longer: a heartbeat, or an extend of its timeout.
    Prolong(Prolong),
    /// Create a run, honouring its idempotency key: [`RunCreateOutcome::Created`] or
    /// [`RunCreateOutcome::Existing`], exactly as [`WriteOp::Create`] for waitpoints. The run
    /// is `QUEUED`, or `EXECUTING` when it is handed to a worker as it is created (as
    /// [`transitions::run_claimed`](crate::transitions::run_claimed) makes it): then it goes
    /// to that worker only if created, and an existing run named by the key stays as it is.
    /// No other state is created.
    RunCreate(Run),
    /// Hand queued runs to a worker.
    RunClaim(RunClaim),
    /// Record the result of an operation the run performed.
    RunRecord(RunRecord),
    /// Create a token for a run and record it.
    RunCreateToken(RunCreateToken),
    /// Make a run wait on one waitpoint, or on several.
    RunWait(RunWait),
    /// Complete or fail a run's attempt.
    RunFinish(RunFinish),
    /// Cancel a run that has not finished: [`RunEndOutcome::Ended`], or
    /// [`RunEndOutcome::Unchanged`] if it had finished, or [`LeaseRefusal::NotFound`] (also
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
    /// Note that a worker is alive: [`WorkerOutcome::Done`].
    WorkerSeen(WorkerSeen),
    /// Forget a worker that stopped, so that nothing is handed or reserved to it any more:
    /// [`WorkerOutcome::Done`]. A session older than the worker's newest changes nothing (its
    /// successor took the worker over): [`WorkerOutcome::Replaced`].
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
    /// How it is to finish.
    pub finishing: Finishing,
    /// A resumed run whose sticky worker is one of these is handed straight to that worker
    /// (`EXECUTING` with `epoch + 1`, as a claim would) instead of being queued: it continues in
    /// that worker's memory without waiting for another claim. Any other is queued, still
    /// reserved a while for its sticky worker (see [`RunClaim`]).
    pub hand_to: Takers,
}

/// The workers that take resumed runs handed straight to them, and how many: on the node that
/// applies the write, each waits for runs now, with a slot free for the run's task. A run
/// handed to a worker that is busy, or that polls another node, would sit undelivered; such a
/// run is queued instead, and its worker claims it when it has room, through whichever node it
/// polls. A backend asks [`Slots::has_room`] once per run it would hand, as it decides, and
/// hands the run only on a yes; how slots are counted is the caller's (one may count the slot
/// as it answers, and a write that then fails leaves it counted).
#[derive(Debug, Clone, Default)]
pub struct Takers(Option<Arc<dyn Slots>>);

/// The slots [`Takers`] answer from.
pub trait Slots: fmt::Debug + Send + Sync {
    /// Whether `worker` of `environment` has room for a run of `task` handed to it: `false`
    /// when it has no slot free for it, or takes no runs handed to it.
    fn has_room(&self, environment: &EnvironmentId, worker: &WorkerId, task: &str) -> bool;
}

impl Takers {
    /// The takers whose slots `slots` keeps.
    pub fn new(slots: Arc<dyn Slots>) -> Self {
        Self(Some(slots))
    }

    /// These workers, each of its environment, each with room for any number of runs.
    pub fn unlimited(workers: impl IntoIterator<Item = (EnvironmentId, WorkerId)>) -> Self {
        Self::new(Arc::new(Unlimited(workers.into_iter().collect())))
    }

    /// Whether `worker` of `environment` takes a run of `task` handed to it (see
    /// [`Slots::has_room`]).
    pub fn takes(&self, environment: &EnvironmentId, worker: &WorkerId, task: &str) -> bool {
        self.0.as_ref().is_some_and(|slots| slots.has_room(environment, worker, task))
    }
}

/// Two takers are equal when they answer from the same slots.
impl PartialEq for Takers {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Takers {}

/// The slots of [`Takers::unlimited`].
#[derive(Debug)]
struct Unlimited(HashSet<(EnvironmentId, WorkerId)>);

impl Slots for Unlimited {
    fn has_room(&self, environment: &EnvironmentId, worker: &WorkerId, _task: &str) -> bool {
        self.0.contains(&(environment.clone(), worker.clone()))
    }
}

/// How a waiting waitpoint is to finish ([`crate::transitions::waitpoint_finished`] decides
/// the state it then takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finishing {
    /// Completed at `at`, this way, with this output (`None`: completed without one).
    Complete {
        /// When the completion was accepted.
        at: Timestamp,
        /// Which way.
        via: CompletedVia,
        /// The output.
        output: Option<Output>,
    },
    /// Its deadline, as the timeout loop sees it at `at`: applies only once `timeout_at` is at
    /// or before `at`. A token times out; a datetime waitpoint completes.
    Deadline {
        /// When the loop applies it.
        at: Timestamp,
    },
    /// Ended now by a person, this way, before its deadline: a token times out (a forced
    /// timeout), a datetime waitpoint completes (a skipped wait).
    Force {
        /// When.
        at: Timestamp,
        /// Which way (the dashboard).
        via: CompletedVia,
    },
    /// Rejected at `at`, this way, with this error: a token only (a datetime waitpoint is not
    /// rejected, and stays as it is).
    Reject {
        /// When the rejection was accepted.
        at: Timestamp,
        /// Which way.
        via: CompletedVia,
        /// The error.
        error: Rejection,
    },
}

/// Keeps a waiting token alive longer ([`crate::transitions::waitpoint_prolonged`] decides):
/// [`ProlongOutcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prolong {
    /// The token.
    pub id: WaitpointId,
    /// Its environment: a token of another environment counts as not found.
    pub environment_id: EnvironmentId,
    /// When the request was accepted.
    pub at: Timestamp,
    /// How.
    pub prolonging: Prolonging,
}

/// How a token is kept alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prolonging {
    /// A heartbeat: its heartbeat deadline becomes `at` plus its interval. `timeout_at` stays.
    Heartbeat,
    /// An extend: its `timeout_at` becomes this later moment. The heartbeat stays as it is.
    Extend {
        /// The new `timeout_at`.
        timeout_at: Timestamp,
    },
}

/// What a [`Prolong`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProlongOutcome {
    /// The token as it now is.
    Prolonged(Waitpoint),
    /// Nothing changed, for this reason. The token as it is.
    Refused(Waitpoint, ProlongRefusal),
    /// No such token (in that environment); datetime waitpoints count as not found.
    NotFound,
}

/// Why a [`Prolong`] changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProlongRefusal {
    /// The token is no longer waiting.
    Finished,
    /// A heartbeat for a token created without a heartbeat interval.
    NoHeartbeat,
    /// It came when the token was already due (its `timeout_at` or heartbeat deadline at or
    /// before the request): the token times out as soon as the timeout loop sees it, and
    /// nothing late revives it.
    Missed,
    /// An extend to a moment not later than the token's `timeout_at` (or of a token that
    /// waits forever).
    NotLater,
}

/// The runs a finished waitpoint resumed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Queued again, for any worker to claim.
    pub queued: Vec<RunId>,
    /// Handed to the worker that suspended them (see [`Finish::hand_to`]).
    pub handed: Vec<Claim>,
}

impl Resumed {
    /// Every run resumed, queued or handed.
    pub fn runs(&self) -> Vec<RunId> {
        self.queued.iter().cloned().chain(self.handed.iter().map(|claim| claim.run.id.clone())).collect()
    }
}

/// Hands queued runs to a worker: [`ClaimOutcome::Claimed`].
///
/// A worker is known by its environment and its id: the same id in another environment is
/// another worker, whose runs a claim neither takes back nor sees.
///
/// A claim made by a session older than the worker's newest (a process that another one took
/// over) is refused, [`ClaimOutcome::WorkerReplaced`], and changes nothing. A newer session
/// becomes the worker's, and its claim (whose `holding` lists nothing of the older session's)
/// gives back at once what the older session held.
///
/// First, when the claim lists `holding`, every run `EXECUTING` for this worker since
/// `handed_by` or before that it does not hold
/// ([`transitions::given_back`](crate::transitions::given_back)) is queued again at `now`: the
/// worker does not know it has it (a claim whose answer was lost, a run it gave up, a run
/// handed to it again after it listed what it holds). One handed to it later may
/// still be on its way (committed, not yet in the node's mailbox): a later claim compares it,
/// unless it is `unread`. Then, for each task, up to its count of `QUEUED` runs with
/// `available_at <= now` are taken, earliest `available_at` first, and become `EXECUTING` for
/// this worker with `epoch + 1`, `attempt` at least 1 and `started_at` set if unset. A run whose `sticky_worker` is another
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
    /// The runs the worker is executing, when the claim is to give back the others; `None`
    /// gives nothing back.
    pub holding: Option<Vec<HeldRun>>,
    /// Only runs last changed at or before this are given back, or listed in `unread`.
    pub handed_by: Timestamp,
    /// Runs an answer to the worker carried that `holding` leaves out: it did not read that
    /// answer, and they are given back whenever they were handed.
    pub unread: Vec<RunId>,
    /// The worker process's session, ordered by [`transitions::session_current`]; `None` for a
    /// worker whose id is its whole identity.
    ///
    /// [`transitions::session_current`]: crate::transitions::session_current
    pub session: Option<String>,
}

/// A run a worker says it executes, and the epoch it holds it under, when it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRun {
    /// The run.
    pub run: RunId,
    /// The epoch; `None`: whatever epoch the run has.
    pub epoch: Option<u64>,
}

impl HeldRun {
    /// `run`, under whatever epoch it has.
    pub fn any_epoch(run: RunId) -> Self {
        Self { run, epoch: None }
    }
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

/// Records the result of an operation a run performed live: [`JournalOutcome::Recorded`].
///
/// The entry's `seq` must be the journal's length (append) or an existing position: an
/// existing entry of the same kind and name is returned as it is (a retried call records
/// nothing twice); one of another kind or name is [`JournalOutcome::Diverged`]; a position past
/// the end is [`JournalOutcome::OutOfOrder`].
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

/// Creates a token for a run and records it at `seq` in one step:
/// [`JournalOutcome::TokenCreated`] with the token and a `CREATE_TOKEN` entry whose result is
/// `{"id": "waitpoint_…", "isCached": bool}`. On a retried call, or on replay, the recorded
/// entry is returned ([`JournalOutcome::Recorded`]) and nothing is created. The token honours
/// its idempotency key as [`WriteOp::Create`] does (the token of the key's holder, cached).
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

/// Makes a run wait at journal position `seq` for `needed` of `waitpoints`, which the store
/// keeps as the run's waits at that position (in order).
///
/// If the wait is decided already ([`transitions::wait_decided`](crate::transitions::wait_decided)),
/// the entry is recorded with its result and the run goes on: [`JournalOutcome::Recorded`].
/// Otherwise the entry is recorded without result, the run becomes `WAITING` with the worker
/// as its `sticky_worker`: [`JournalOutcome::Suspended`]. When a finish decides the wait, the
/// result is filled in and the run resumes (once). A waitpoint missing or of another
/// environment is [`JournalOutcome::WaitpointNotFound`], and nothing is written.
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
    /// `WAIT_TOKEN`, `WAIT_DATETIME` (one waitpoint) or `WAIT_SET`.
    pub kind: JournalKind,
    /// The entry's name.
    pub name: String,
    /// What to wait on, in order (at least one; distinct).
    pub waitpoints: Vec<WaitpointId>,
    /// How many of them must complete (from 1 to their number).
    pub needed: u32,
    /// Waitpoints to create first (the datetime waitpoints of `wait.for`), unless the journal
    /// already has this position.
    pub create: Vec<Waitpoint>,
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

/// Ends a run's attempt: [`RunEndOutcome::Ended`] with the run as it now is.
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

/// What one [`WriteOp`] did, in the order of the batch: one outcome type per family of
/// operations, so that a caller matches exhaustively on the outcomes its operation can have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Of [`WriteOp::Create`].
    Create(CreateOutcome),
    /// Of [`WriteOp::Finish`].
    Finish(FinishOutcome),
    /// Of [`WriteOp::Prolong`].
    Prolong(ProlongOutcome),
    /// Of [`WriteOp::RunCreate`].
    RunCreate(RunCreateOutcome),
    /// Of [`WriteOp::RunClaim`].
    Claim(ClaimOutcome),
    /// Of [`WriteOp::RunRecord`], [`WriteOp::RunCreateToken`] and [`WriteOp::RunWait`].
    Journal(JournalOutcome),
    /// Of [`WriteOp::RunFinish`] and [`WriteOp::RunCancel`].
    RunEnd(RunEndOutcome),
    /// Of [`WriteOp::RunsRelease`]: these runs were given back.
    Released(Vec<RunId>),
    /// Of [`WriteOp::WorkerSeen`] and [`WriteOp::WorkerLeft`].
    Worker(WorkerOutcome),
}

/// Each family's outcome is taken out of a [`WriteOutcome`] with `try_from`; the error is the
/// outcome of another family, which a backend answering an operation of this family never gives.
macro_rules! outcome_family {
    ($($variant:ident => $family:ty),* $(,)?) => {$(
        impl TryFrom<WriteOutcome> for $family {
            type Error = WriteOutcome;

            fn try_from(outcome: WriteOutcome) -> std::result::Result<Self, WriteOutcome> {
                match outcome {
                    WriteOutcome::$variant(family) => Ok(family),
                    other => Err(other),
                }
            }
        }
    )*};
}

outcome_family! {
    Create => CreateOutcome,
    Finish => FinishOutcome,
    Prolong => ProlongOutcome,
    RunCreate => RunCreateOutcome,
    Claim => ClaimOutcome,
    Journal => JournalOutcome,
    RunEnd => RunEndOutcome,
    Released => Vec<RunId>,
    Worker => WorkerOutcome,
}

/// What a waitpoint create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The waitpoint was created as given.
    Created(Waitpoint),
    /// An active idempotency key matched: this existing waitpoint (in whatever state) is the
    /// answer and nothing was written.
    Existing(Waitpoint),
}

/// What a finish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishOutcome {
    /// The waitpoint moved to its final state; these runs, which waited on it, resumed.
    Finished(Waitpoint, Resumed),
    /// Nothing changed: the waitpoint had already finished (the first completion wins) or,
    /// for a deadline, it has not come. The current record is returned.
    Unchanged(Waitpoint),
    /// No such waitpoint (in that environment).
    NotFound,
    /// The completion's output does not fit the waitpoint's output schema, for this reason;
    /// nothing changed. The current record is returned.
    Refused(Waitpoint, String),
}

/// What a run create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCreateOutcome {
    /// The run was created as given.
    Created(Run),
    /// An active idempotency key matched this existing run.
    Existing(Run),
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// These runs were handed to the worker, after it gave back `released`: the runs it held
    /// without knowing (queued again for any worker).
    Claimed {
        /// The runs now the worker's.
        claims: Vec<Claim>,
        /// The runs given back.
        released: Vec<RunId>,
    },
    /// A newer session of the worker took it over; nothing changed.
    WorkerReplaced,
}

/// What a call about a run's journal (record, token, wait) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalOutcome {
    /// This entry is in the journal (just recorded, or recorded before).
    Recorded(JournalEntry),
    /// The run's token was created, or found by its idempotency key, and recorded now at this
    /// `CREATE_TOKEN` entry ([`RunCreateToken`] only): the token as stored.
    TokenCreated(JournalEntry, Box<Waitpoint>),
    /// The run waits (a wait only); it holds no worker.
    Suspended(Box<Run>),
    /// The journal holds another operation at that position: the run's code no longer matches.
    Diverged(JournalEntry),
    /// The position is past the end of the journal (which has this many entries).
    OutOfOrder(u32),
    /// The worker no longer holds the run (see [`LeaseRefusal`]).
    Refused(LeaseRefusal),
    /// The waitpoint to wait on does not exist in the run's environment.
    WaitpointNotFound,
}

/// What ending a run's attempt, or canceling a run, did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEndOutcome {
    /// The run moved to this state.
    Ended(Run),
    /// Nothing changed (a cancel of a run that had finished). The run as it is.
    Unchanged(Run),
    /// The worker no longer holds the run (an attempt's end), or the run is not found.
    Refused(LeaseRefusal),
}

/// Why a call made for a worker about a run is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseRefusal {
    /// No such run in the caller's environment.
    NotFound,
    /// The run's epoch moved on, or it is not executing: the worker lost it. The run as it is.
    Stale(Box<Run>),
}

/// What a worker's note (seen, left) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerOutcome {
    /// Done.
    Done,
    /// A newer session of the worker took it over; nothing changed.
    Replaced,
}
