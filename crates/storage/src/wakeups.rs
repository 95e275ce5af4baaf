//! Wake-ups between server nodes that share a database: what a committed batch tells the
//! waiting loops of every node (decided here once, from the batch's operations and outcomes, for
//! every backend that tells other nodes), and what [`Store::wakeups`](crate::Store::wakeups)
//! yields.

use futures_util::stream::BoxStream;
use waitpoint_types::{RunState, Timestamp, Waitpoint};

use crate::ops::{
    ClaimOutcome, CreateOutcome, FinishOutcome, JournalOutcome, RunEndOutcome, RunWait, WriteOp, WriteOutcome,
};

/// Something a node's waiting loops should look at again, because of a write that may have gone
/// through another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// Runs became ready for workers: queued (triggered, resumed, retried, given back) or handed
    /// to a worker. Held polls should claim again.
    RunsReady,
    /// A waitpoint got this deadline: the timeout loop should look again if it sleeps past it.
    DeadlineMoved(Timestamp),
    /// Wake-ups may have been missed (the subscription started or was restored after a loss, or
    /// one could not be read): every loop should look at everything.
    Reconcile,
}

/// The wake-ups of a subscription, in commit order. An `Err` says that the subscription failed
/// or was lost; the stream goes on (it subscribes again) and yields [`Wakeup::Reconcile`] once it
/// receives wake-ups again.
pub type WakeupStream = BoxStream<'static, crate::Result<Wakeup>>;

/// What one committed batch wakes: whether it made runs ready, and the earliest deadline it gave
/// a waitpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchWake {
    /// Runs became ready for workers ([`Wakeup::RunsReady`]).
    pub runs_ready: bool,
    /// The earliest deadline among the waitpoints the batch created ([`Wakeup::DeadlineMoved`]).
    pub earliest_deadline: Option<Timestamp>,
}

impl BatchWake {
    /// What the batch of `ops`, whose outcomes are `outcomes` (in the same order), wakes.
    ///
    /// Runs are ready when one was created (available now or later: polls work out when), a
    /// finish resumed some, a claim gave some back, an attempt's end queued its run for a retry,
    /// or a release gave runs back. Deadlines come from created waitpoints: tokens, tokens a run
    /// created (or found by its idempotency key: a wake-up too many is harmless),
    /// and the datetime waitpoints of a wait that suspended its run. Heartbeats and extends only
    /// move deadlines later, which wakes nothing.
    pub fn of_batch(ops: &[WriteOp], outcomes: &[WriteOutcome]) -> Self {
        let mut wake = Self::default();
        for (op, outcome) in ops.iter().zip(outcomes) {
            wake.runs_ready |= makes_runs_ready(outcome);
            let deadline = match (op, outcome) {
                (WriteOp::Create(_), WriteOutcome::Create(CreateOutcome::Created(waitpoint))) => waitpoint.due_at(),
                (WriteOp::RunCreateToken(_), WriteOutcome::Journal(JournalOutcome::TokenCreated(_, token))) => {
                    token.due_at()
                }
                (WriteOp::RunWait(RunWait { create, .. }), WriteOutcome::Journal(JournalOutcome::Suspended(_))) => {
                    create.iter().filter_map(Waitpoint::due_at).min()
                }
                _ => None,
            };
            wake.earliest_deadline = match (wake.earliest_deadline, deadline) {
                (Some(earliest), Some(deadline)) => Some(earliest.min(deadline)),
                (earliest, deadline) => earliest.or(deadline),
            };
        }
        wake
    }

    /// Whether the batch wakes nothing.
    pub fn is_empty(&self) -> bool {
        !self.runs_ready && self.earliest_deadline.is_none()
    }

    /// The wake-ups it stands for.
    pub fn wakeups(&self) -> impl Iterator<Item = Wakeup> + use<> {
        let runs = self.runs_ready.then_some(Wakeup::RunsReady);
        runs.into_iter().chain(self.earliest_deadline.map(Wakeup::DeadlineMoved))
    }
}

/// Whether `outcome` made runs ready for workers.
fn makes_runs_ready(outcome: &WriteOutcome) -> bool {
    match outcome {
        // A run handed to a worker as it is created waits for no poll.
        WriteOutcome::RunCreate(crate::RunCreateOutcome::Created(run)) => matches!(run.state, RunState::Queued { .. }),
        WriteOutcome::Finish(FinishOutcome::Finished(_, resumed)) => {
            !resumed.queued.is_empty() || !resumed.handed.is_empty()
        }
        WriteOutcome::Claim(ClaimOutcome::Claimed { released, .. }) | WriteOutcome::Released(released) => {
            !released.is_empty()
        }
        WriteOutcome::RunEnd(RunEndOutcome::Ended(run)) => matches!(run.state, RunState::Queued { .. }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use waitpoint_types::{
        EnvironmentId, JournalEntry, JournalKind, Run, RunError, RunId, WaitpointId, WaitpointKind, WaitpointState,
        WorkerId,
    };

    use super::*;
    use crate::{Finish, Finishing, Resumed, RunCreateOutcome, Takers};

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    fn waitpoint(id: &str, timeout_at: Option<i64>) -> Waitpoint {
        Waitpoint {
            id: WaitpointId::from_internal(id.into()),
            kind: WaitpointKind::Manual,
            environment_id: EnvironmentId::from_internal("env".into()),
            state: WaitpointState::Waiting,
            idempotency_key: None,
            inactive_idempotency_key: None,
            idempotency_key_expires_at: None,
            timeout_at: timeout_at.map(at),
            heartbeat: None,
            callback_verifier: None,
            tags: Vec::new(),
            created_at: at(0),
            approval: None,
            output_schema: None,
        }
    }

    fn run(id: &str, state: RunState) -> Run {
        Run {
            id: RunId::from_internal(id.into()),
            environment_id: EnvironmentId::from_internal("env".into()),
            task_id: "t".into(),
            payload: "{}".into(),
            state,
            attempt: 1,
            max_attempts: 3,
            epoch: 1,
            sticky_worker: None,
            tags: Vec::new(),
            idempotency_key: None,
            inactive_idempotency_key: None,
            idempotency_key_expires_at: None,
            created_at: at(0),
            started_at: None,
            updated_at: at(0),
        }
    }

    fn wait(create: Vec<Waitpoint>) -> WriteOp {
        WriteOp::RunWait(RunWait {
            run: RunId::from_internal("r".into()),
            environment_id: EnvironmentId::from_internal("env".into()),
            epoch: 1,
            seq: 0,
            kind: JournalKind::WaitDatetime,
            name: "w".into(),
            waitpoints: create.iter().map(|waitpoint| waitpoint.id.clone()).collect(),
            needed: 1,
            create,
            at: at(0),
        })
    }

    fn finish(id: &str) -> WriteOp {
        let finishing = Finishing::Deadline { at: at(0) };
        WriteOp::Finish(Finish {
            id: WaitpointId::from_internal(id.into()),
            environment_id: None,
            finishing,
            hand_to: Takers::default(),
        })
    }

    #[test]
    fn a_batch_wakes_for_ready_runs_and_its_earliest_new_deadline_only() {
        let token = waitpoint("a", Some(500));
        let create_token = |waitpoint: Waitpoint| {
            WriteOp::RunCreateToken(crate::RunCreateToken {
                run: RunId::from_internal("r".into()),
                environment_id: EnvironmentId::from_internal("env".into()),
                epoch: 1,
                seq: 0,
                waitpoint,
            })
        };
        let token_entry = JournalEntry { seq: 0, kind: JournalKind::CreateToken, name: String::new(), result: None };
        let handed = run("h", RunState::Executing { worker: WorkerId::from_internal("w".into()) });
        let quiet = [
            (
                create_token(waitpoint("f", Some(50))),
                WriteOutcome::Journal(JournalOutcome::Recorded(token_entry.clone())),
            ),
            (WriteOp::Create(waitpoint("b", None)), WriteOutcome::Create(CreateOutcome::Created(waitpoint("b", None)))),
            (WriteOp::Create(token.clone()), WriteOutcome::Create(CreateOutcome::Existing(token.clone()))),
            (finish("a"), WriteOutcome::Finish(FinishOutcome::Finished(token.clone(), Resumed::default()))),
            (
                WriteOp::RunCancel {
                    run: RunId::from_internal("r".into()),
                    environment_id: EnvironmentId::from_internal("env".into()),
                    at: at(0),
                },
                WriteOutcome::RunEnd(RunEndOutcome::Ended(run("r", RunState::Canceled { at: at(0) }))),
            ),
            (
                WriteOp::RunsRelease(crate::RunsRelease { alive_since: at(0), now: at(0) }),
                WriteOutcome::Released(Vec::new()),
            ),
            (WriteOp::RunCreate(handed.clone()), WriteOutcome::RunCreate(RunCreateOutcome::Created(handed))),
        ];
        let (ops, outcomes): (Vec<_>, Vec<_>) = quiet.into_iter().unzip();
        let wake = BatchWake::of_batch(&ops, &outcomes);
        assert!(wake.is_empty(), "{wake:?}");
        assert_eq!(wake.wakeups().count(), 0);

        let suspended = WriteOutcome::Journal(JournalOutcome::Suspended(Box::new(run(
            "r",
            RunState::Waiting { seq: 0, needed: 1 },
        ))));
        let recorded = WriteOutcome::Journal(JournalOutcome::Recorded(JournalEntry {
            seq: 0,
            kind: JournalKind::WaitDatetime,
            name: "w".into(),
            result: Some("{}".into()),
        }));
        let deadlines = [
            (WriteOp::Create(token.clone()), WriteOutcome::Create(CreateOutcome::Created(token.clone()))),
            (wait(vec![waitpoint("c", Some(300)), waitpoint("d", Some(200))]), suspended),
            (wait(vec![waitpoint("e", Some(100))]), recorded),
            (
                create_token(waitpoint("g", Some(150))),
                WriteOutcome::Journal(JournalOutcome::TokenCreated(token_entry, Box::new(waitpoint("g", Some(150))))),
            ),
        ];
        let (ops, outcomes): (Vec<_>, Vec<_>) = deadlines.into_iter().unzip();
        let wake = BatchWake::of_batch(&ops, &outcomes);
        assert_eq!(
            wake,
            BatchWake { runs_ready: false, earliest_deadline: Some(at(150)) },
            "a decided wait creates none"
        );
        assert_eq!(wake.wakeups().collect::<Vec<_>>(), [Wakeup::DeadlineMoved(at(150))]);

        let queued = run("r", RunState::Queued { available_at: at(9) });
        let retry = WriteOp::RunFinish(crate::RunFinish {
            run: queued.id.clone(),
            environment_id: queued.environment_id.clone(),
            epoch: 1,
            outcome: crate::RunOutcome::Failed { error: RunError::new("TaskError", "no"), retry_at: Some(at(9)) },
            at: at(0),
        });
        let release = WriteOp::RunsRelease(crate::RunsRelease { alive_since: at(0), now: at(0) });
        for (op, outcome) in [
            (retry, WriteOutcome::RunEnd(RunEndOutcome::Ended(queued.clone()))),
            (release, WriteOutcome::Released(vec![queued.id.clone()])),
        ] {
            let wake = BatchWake::of_batch(&[op], std::slice::from_ref(&outcome));
            assert_eq!(wake, BatchWake { runs_ready: true, earliest_deadline: None }, "{outcome:?}");
        }

        let both = [
            (WriteOp::RunCreate(queued.clone()), WriteOutcome::RunCreate(RunCreateOutcome::Created(queued))),
            (WriteOp::Create(token.clone()), WriteOutcome::Create(CreateOutcome::Created(token))),
        ];
        let (ops, outcomes): (Vec<_>, Vec<_>) = both.into_iter().unzip();
        let wake = BatchWake::of_batch(&ops, &outcomes);
        assert_eq!(wake.wakeups().collect::<Vec<_>>(), [Wakeup::RunsReady, Wakeup::DeadlineMoved(at(500))]);
    }
}
