//! The run half of the conformance suite: creation, claims, the journal, waits and resumes,
//! retries, cancel, release and lists.

use std::time::Duration;

use waitpoint_types::{
    CompletedVia, Environment, IdGenerator, JournalEntry, JournalKind, Run, RunError, RunId, RunState, RunStatus,
    Timestamp, Waitpoint, WaitpointKind, WaitpointState, WorkerId,
};

use super::{TestDatabase, at, completed, create, finish, new_env, waitpoint, write_one};
use crate::{
    Claim, ClaimOutcome, Cursor, Finish, FinishOutcome, Finishing, HeldRun, JournalOutcome, LeaseRefusal, RunClaim,
    RunCreateOutcome, RunCreateToken, RunEndOutcome, RunFinish, RunJournal, RunListQuery, RunOutcome, RunRecord,
    RunWait, RunsRelease, Store, Takers, Window, WorkerOutcome, WorkerSeen, WriteOp, WriteOutcome,
};

const STICKY: Duration = Duration::from_secs(2);

pub fn run(ids: &IdGenerator, env: &Environment, task: &str, created_at: Timestamp) -> Run {
    Run {
        id: ids.run(created_at),
        environment_id: env.id.clone(),
        task_id: task.to_owned(),
        payload: r#"{"n":1}"#.to_owned(),
        state: RunState::Queued { available_at: created_at },
        attempt: 0,
        max_attempts: 3,
        epoch: 0,
        sticky_worker: None,
        tags: Vec::new(),
        idempotency_key: None,
        inactive_idempotency_key: None,
        idempotency_key_expires_at: None,
        created_at,
        started_at: None,
        updated_at: created_at,
    }
}

pub(crate) async fn create_run(store: &dyn Store, new: &Run) -> Run {
    match write_one(store, WriteOp::RunCreate(new.clone())).await {
        RunCreateOutcome::Created(created) => created,
        other => panic!("expected RunCreated, got {other:?}"),
    }
}

pub(crate) fn worker(ids: &IdGenerator) -> WorkerId {
    ids.worker(at(0))
}

async fn seen(store: &dyn Store, env: &Environment, worker: &WorkerId, when: Timestamp) {
    let op = WriteOp::WorkerSeen(WorkerSeen {
        worker: worker.clone(),
        environment_id: env.id.clone(),
        at: when,
        tasks: vec!["t".into()],
    });
    assert_eq!(write_one::<WorkerOutcome>(store, op).await, WorkerOutcome::Done);
}

async fn claim(
    store: &dyn Store,
    env: &Environment,
    worker: &WorkerId,
    tasks: &[(&str, usize)],
    now: Timestamp,
) -> Vec<Claim> {
    claim_holding(store, env, worker, tasks, now, None).await
}

/// A claim by a worker that executes `holding` (by default, everything it holds).
async fn claim_holding(
    store: &dyn Store,
    env: &Environment,
    worker: &WorkerId,
    tasks: &[(&str, usize)],
    now: Timestamp,
    holding: Option<Vec<RunId>>,
) -> Vec<Claim> {
    let holding = match holding {
        Some(holding) => holding,
        None => {
            let query = RunListQuery {
                environment_id: env.id.clone(),
                statuses: vec![RunStatus::Executing],
                task_ids: Vec::new(),
                idempotency_key: None,
                tags: Vec::new(),
                window: Window::newest(1_000),
                now,
            };
            let held = store.run_list(&query).await.expect("run_list failed");
            held.into_iter()
                .filter(|r| r.state == RunState::Executing { worker: worker.clone() })
                .map(|r| r.id)
                .collect()
        }
    };
    let holding = holding.into_iter().map(HeldRun::any_epoch).collect();
    match write_one(store, claim_op(env, worker, tasks, now, Some(holding), None)).await {
        ClaimOutcome::Claimed { claims, .. } => claims,
        other => panic!("expected Claimed, got {other:?}"),
    }
}

/// A claim by `worker` (of `session`) of `tasks` at `now`, executing `holding`; workers seen in
/// the 30 s before `now` count as alive.
fn claim_op(
    env: &Environment,
    worker: &WorkerId,
    tasks: &[(&str, usize)],
    now: Timestamp,
    holding: Option<Vec<HeldRun>>,
    session: Option<&str>,
) -> WriteOp {
    WriteOp::RunClaim(RunClaim {
        environment_id: env.id.clone(),
        worker: worker.clone(),
        tasks: tasks.iter().map(|(task, n)| ((*task).to_owned(), *n)).collect(),
        now,
        alive_since: now.saturating_sub(Duration::from_secs(30)),
        sticky_for: STICKY,
        holding,
        handed_by: now,
        unread: Vec::new(),
        session: session.map(str::to_owned),
    })
}

pub(crate) async fn claim_one(
    store: &dyn Store,
    env: &Environment,
    worker: &WorkerId,
    task: &str,
    now: Timestamp,
) -> Claim {
    let mut claims = claim(store, env, worker, &[(task, 1)], now).await;
    assert_eq!(claims.len(), 1, "expected one run to claim");
    claims.remove(0)
}

pub(crate) fn entry(seq: u32, kind: JournalKind, name: &str, result: Option<&str>) -> JournalEntry {
    JournalEntry { seq, kind, name: name.to_owned(), result: result.map(str::to_owned) }
}

pub(crate) async fn record(store: &dyn Store, run: &Run, entry: JournalEntry) -> JournalOutcome {
    write_one(
        store,
        WriteOp::RunRecord(RunRecord {
            run: run.id.clone(),
            environment_id: run.environment_id.clone(),
            epoch: run.epoch,
            entry,
        }),
    )
    .await
}

pub(crate) async fn wait(
    store: &dyn Store,
    run: &Run,
    seq: u32,
    waitpoint: &waitpoint_types::WaitpointId,
    now: Timestamp,
) -> JournalOutcome {
    let op = RunWait {
        run: run.id.clone(),
        environment_id: run.environment_id.clone(),
        epoch: run.epoch,
        seq,
        kind: JournalKind::WaitToken,
        name: waitpoint.public(),
        waitpoints: vec![waitpoint.clone()],
        needed: 1,
        create: Vec::new(),
        at: now,
    };
    write_one(store, WriteOp::RunWait(op)).await
}

pub(crate) async fn end(store: &dyn Store, run: &Run, outcome: RunOutcome, when: Timestamp) -> RunEndOutcome {
    write_one(
        store,
        WriteOp::RunFinish(RunFinish {
            run: run.id.clone(),
            environment_id: run.environment_id.clone(),
            epoch: run.epoch,
            outcome,
            at: when,
        }),
    )
    .await
}

async fn get(store: &dyn Store, id: &RunId) -> Run {
    store.run_get(id).await.expect("run_get failed")
}

/// Runs read back as created; an active idempotency key (per task) returns the first run, an
/// expired one is deactivated and replaced.
pub async fn runs_are_created_read_back_and_honour_idempotency_keys(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let mut first = run(&ids, &env, "email", at(0));
    first.tags = vec!["b".into(), "a".into(), "b".into()];
    first.idempotency_key = Some("k".into());
    first.idempotency_key_expires_at = Some(at(1_000));
    first.state = RunState::Queued { available_at: at(500) };
    assert_eq!(create_run(&*store, &first).await, first);
    assert_eq!(get(&*store, &first.id).await, first);
    assert!(matches!(store.run_get(&ids.run(at(0))).await, Err(crate::StorageError::NotFound)));

    let mut again = run(&ids, &env, "email", at(1_000));
    again.idempotency_key = Some("k".into());
    assert_eq!(
        write_one::<RunCreateOutcome>(&*store, WriteOp::RunCreate(again.clone())).await,
        RunCreateOutcome::Existing(first.clone())
    );
    let mut other_task = run(&ids, &env, "sms", at(1_000));
    other_task.idempotency_key = Some("k".into());
    create_run(&*store, &other_task).await;
    let mut later = run(&ids, &env, "email", at(1_001));
    later.idempotency_key = Some("k".into());
    create_run(&*store, &later).await;
    let old = get(&*store, &first.id).await;
    assert_eq!((old.idempotency_key.as_deref(), old.inactive_idempotency_key.as_deref()), (None, Some("k")));
}

/// A run created `EXECUTING` (handed to a worker as it is created) is that worker's as if it
/// had claimed it: no claim takes it again, the worker records in its journal under epoch 1,
/// and a claim that does not list it gives it back. An existing run named by the idempotency
/// key stays as it is.
pub async fn a_run_created_for_a_worker_is_its_as_if_claimed(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    seen(&*store, &env, &me, at(5)).await;
    let handed = crate::transitions::run_claimed(&run(&ids, &env, "t", at(5)), &me, at(5));
    assert_eq!(create_run(&*store, &handed).await, handed);
    let stored = get(&*store, &handed.id).await;
    assert_eq!(stored, handed);
    assert_eq!(stored.state, RunState::Executing { worker: me.clone() });
    assert_eq!((stored.epoch, stored.attempt, stored.started_at), (1, 1, Some(at(5))));
    assert!(claim(&*store, &env, &me, &[("t", 5)], at(6)).await.is_empty(), "not queued");
    let step = entry(0, JournalKind::Step, "s", Some("1"));
    assert_eq!(record(&*store, &stored, step.clone()).await, JournalOutcome::Recorded(step));

    let mut keyed = run(&ids, &env, "t", at(7));
    keyed.idempotency_key = Some("k".into());
    let queued = create_run(&*store, &keyed).await;
    let mut again = run(&ids, &env, "t", at(8));
    again.idempotency_key = Some("k".into());
    let again = crate::transitions::run_claimed(&again, &me, at(8));
    assert_eq!(
        write_one::<RunCreateOutcome>(&*store, WriteOp::RunCreate(again)).await,
        RunCreateOutcome::Existing(queued.clone())
    );
    assert_eq!(get(&*store, &queued.id).await, queued, "the key's run stays queued");
    let mut keyed = run(&ids, &env, "u", at(8));
    keyed.idempotency_key = Some("k".into());
    let keyed = crate::transitions::run_claimed(&keyed, &me, at(8));
    assert_eq!(create_run(&*store, &keyed).await, keyed, "a new key's run is handed too");
    assert_eq!(get(&*store, &keyed.id).await, keyed);

    let holding = Some(vec![HeldRun::any_epoch(keyed.id.clone())]);
    let given_back: ClaimOutcome = write_one(&*store, claim_op(&env, &me, &[("t", 0)], at(9), holding, None)).await;
    assert_eq!(given_back, ClaimOutcome::Claimed { claims: Vec::new(), released: vec![handed.id.clone()] });
    assert_eq!(get(&*store, &handed.id).await.state, RunState::Queued { available_at: at(9) });
}

/// A claim takes up to the asked number of available runs per task, earliest first; delayed
/// runs, other tasks and other environments are left alone. Claimed runs are `EXECUTING` for
/// the worker with a new epoch, attempt 1 and a start time.
pub async fn claims_take_available_runs_of_the_workers_tasks_in_order(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let prod = new_env(&*store, &ids, "prod").await;
    let a = create_run(&*store, &run(&ids, &env, "a", at(2))).await;
    let b = create_run(&*store, &run(&ids, &env, "a", at(1))).await;
    let mut later = run(&ids, &env, "a", at(0));
    later.state = RunState::Queued { available_at: at(10_000) };
    let later = create_run(&*store, &later).await;
    let other_task = create_run(&*store, &run(&ids, &env, "b", at(0))).await;
    create_run(&*store, &run(&ids, &prod, "a", at(0))).await;

    let me = worker(&ids);
    seen(&*store, &env, &me, at(5)).await;
    let claims = claim(&*store, &env, &me, &[("a", 1)], at(5)).await;
    assert_eq!(claims.len(), 1);
    let claimed = &claims[0].run;
    assert_eq!(claimed.id, b.id, "the earliest available first");
    assert_eq!(claimed.state, RunState::Executing { worker: me.clone() });
    assert_eq!((claimed.epoch, claimed.attempt, claimed.started_at), (1, 1, Some(at(5))));
    assert_eq!((claims[0].resumed.clone(), claims[0].journal_length), (None, 0));
    assert_eq!(get(&*store, &b.id).await, *claimed);

    let claims = claim(&*store, &env, &me, &[("a", 5), ("b", 0)], at(6)).await;
    assert_eq!(claims.iter().map(|c| c.run.id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&a.id));
    assert!(claim(&*store, &env, &me, &[("a", 5)], at(7)).await.is_empty(), "the delayed run is not due");
    let claims = claim(&*store, &env, &me, &[("a", 5), ("b", 5)], at(10_000)).await;
    let mut claimed: Vec<_> = claims.into_iter().map(|c| c.run.id).collect();
    claimed.sort();
    let mut expected = vec![later.id, other_task.id];
    expected.sort();
    assert_eq!(claimed, expected);
}

/// Entries are appended at the journal's end; recording a position again returns what is
/// there (a different operation there is a divergence); a worker without the lease is refused.
pub async fn the_journal_records_in_order_and_only_once(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    create_run(&*store, &run(&ids, &env, "t", at(0))).await;
    let held = claim_one(&*store, &env, &me, "t", at(1)).await.run;

    let first = entry(0, JournalKind::Step, "charge card", Some(r#"{"charged":true}"#));
    assert_eq!(record(&*store, &held, first.clone()).await, JournalOutcome::Recorded(first.clone()));
    let retried = entry(0, JournalKind::Step, "charge card", Some(r#"{"charged":"twice?"}"#));
    assert_eq!(
        record(&*store, &held, retried).await,
        JournalOutcome::Recorded(first.clone()),
        "the first result stays"
    );
    let other = entry(0, JournalKind::Step, "refund", Some("null"));
    assert_eq!(record(&*store, &held, other).await, JournalOutcome::Diverged(first.clone()));
    let other_kind = entry(0, JournalKind::CompleteToken, "charge card", Some("null"));
    assert_eq!(record(&*store, &held, other_kind).await, JournalOutcome::Diverged(first.clone()));
    assert_eq!(
        record(&*store, &held, entry(2, JournalKind::Step, "x", Some("1"))).await,
        JournalOutcome::OutOfOrder(1)
    );
    let second = entry(1, JournalKind::Step, "send mail", Some("\"sent\""));
    assert_eq!(record(&*store, &held, second.clone()).await, JournalOutcome::Recorded(second.clone()));
    assert_eq!(super::journal(&*store, &held.id).await.unwrap(), [first, second]);

    let mut stale = held.clone();
    stale.epoch -= 1;
    let refused = record(&*store, &stale, entry(2, JournalKind::Step, "y", Some("1"))).await;
    assert_eq!(refused, JournalOutcome::Refused(LeaseRefusal::Stale(Box::new(held.clone()))));
    assert!(super::journal(&*store, &ids.run(at(0))).await.is_none());
    let mut foreign = held.clone();
    foreign.environment_id = new_env(&*store, &ids, "prod").await.id;
    assert_eq!(
        record(&*store, &foreign, entry(2, JournalKind::Step, "y", Some("1"))).await,
        JournalOutcome::Refused(LeaseRefusal::NotFound)
    );
}

/// Waiting on a pending waitpoint suspends the run (no worker, the waiter as sticky worker);
/// its finish fills in the wait's result, queues the run, and the next claim hands over the
/// resumed entry with a new epoch.
pub async fn a_wait_on_a_pending_waitpoint_suspends_until_it_finishes(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    seen(&*store, &env, &me, at(1)).await;
    let token = create(&*store, &waitpoint(&ids, &env, at(0))).await;
    create_run(&*store, &run(&ids, &env, "t", at(0))).await;
    let held = claim_one(&*store, &env, &me, "t", at(1)).await.run;

    let JournalOutcome::Suspended(suspended) = wait(&*store, &held, 0, &token.id, at(2)).await else {
        panic!("the run did not suspend");
    };
    assert_eq!(suspended.state, RunState::Waiting { seq: 0, needed: 1 });
    assert_eq!(suspended.sticky_worker.as_ref(), Some(&me));
    assert_eq!(suspended.status(at(2)), RunStatus::Waiting);
    assert_eq!(get(&*store, &held.id).await, *suspended);
    let pending = entry(0, JournalKind::WaitToken, &token.id.public(), None);
    assert_eq!(super::journal(&*store, &held.id).await.unwrap(), [pending]);
    assert!(claim(&*store, &env, &me, &[("t", 5)], at(3)).await.is_empty(), "a waiting run is not claimable");
    assert!(matches!(
        record(&*store, &held, entry(1, JournalKind::Step, "s", Some("1"))).await,
        JournalOutcome::Refused(LeaseRefusal::Stale(_))
    ));

    let FinishOutcome::Finished(_, resumed) = finish(&*store, &token.id, completed(10, r#"{"approved":true}"#)).await
    else {
        panic!("the token did not finish");
    };
    assert_eq!(resumed.queued, std::slice::from_ref(&held.id));
    let queued = get(&*store, &held.id).await;
    assert_eq!(queued.state, RunState::Queued { available_at: at(10) });
    let result = r#"{"ok":true,"output":{"approved":true}}"#;
    let done = entry(0, JournalKind::WaitToken, &token.id.public(), Some(result));
    assert_eq!(super::journal(&*store, &held.id).await.unwrap(), std::slice::from_ref(&done));
    let resumed_claim = claim_one(&*store, &env, &me, "t", at(11)).await;
    assert_eq!((resumed_claim.resumed, resumed_claim.journal_length), (Some(done), 1));
    assert_eq!((resumed_claim.run.epoch, resumed_claim.run.attempt), (2, 1));
    let replayed = wait(&*store, &resumed_claim.run, 0, &token.id, at(12)).await;
    assert!(matches!(replayed, JournalOutcome::Recorded(ref e) if e.result.as_deref() == Some(result)));
}

/// A waitpoint that finished before the run waits gives its result at once; the run goes on.
pub async fn a_wait_on_a_finished_waitpoint_records_its_result_at_once(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    let mut token = waitpoint(&ids, &env, at(0));
    token.timeout_at = Some(at(5));
    create(&*store, &token).await;
    finish(&*store, &token.id, Finishing::Deadline { at: at(5) }).await;
    create_run(&*store, &run(&ids, &env, "t", at(0))).await;
    let held = claim_one(&*store, &env, &me, "t", at(6)).await.run;
    let JournalOutcome::Recorded(recorded) = wait(&*store, &held, 0, &token.id, at(7)).await else {
        panic!("the finished wait was not recorded");
    };
    let result: serde_json::Value = serde_json::from_str(recorded.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"]["code"], "TRIGGER_WAITPOINT_TIMEOUT");
    assert!(matches!(get(&*store, &held.id).await.state, RunState::Executing { .. }));
    let foreign_env = new_env(&*store, &ids, "prod").await;
    let foreign = create(&*store, &waitpoint(&ids, &foreign_env, at(0))).await;
    assert_eq!(wait(&*store, &held, 1, &foreign.id, at(8)).await, JournalOutcome::WaitpointNotFound);
}

/// One waitpoint releases every run waiting on it, exactly once.
pub async fn one_waitpoint_resumes_every_run_waiting_on_it_once(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    let token = create(&*store, &waitpoint(&ids, &env, at(0))).await;
    let mut waiting = Vec::new();
    for i in 0..3 {
        create_run(&*store, &run(&ids, &env, "t", at(i))).await;
    }
    for claimed in claim(&*store, &env, &me, &[("t", 3)], at(5)).await {
        assert!(matches!(wait(&*store, &claimed.run, 0, &token.id, at(6)).await, JournalOutcome::Suspended(_)));
        waiting.push(claimed.run.id);
    }
    let FinishOutcome::Finished(_, resumed) = finish(&*store, &token.id, completed(7, "\"go\"")).await else {
        panic!("the token did not finish");
    };
    let mut resumed = resumed.queued;
    resumed.sort();
    waiting.sort();
    assert_eq!(resumed, waiting);
    assert!(matches!(finish(&*store, &token.id, completed(8, "\"again\"")).await, FinishOutcome::Unchanged(_)));
    for id in &waiting {
        let journal = super::journal(&*store, id).await.unwrap();
        assert_eq!(journal[0].result.as_deref(), Some(r#"{"ok":true,"output":"go"}"#));
    }
    assert_eq!(claim(&*store, &env, &me, &[("t", 10)], at(9)).await.len(), 3);
}

/// A finish hands a resumed run straight back to its sticky worker when its `hand_to` takes
/// that worker: `EXECUTING` with the next epoch and the wait's entry, as a claim would;
/// otherwise the run is queued.
pub async fn a_resumed_run_goes_straight_to_its_worker_when_that_one_takes_runs(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    seen(&*store, &env, &me, at(10)).await;
    let tokens =
        [create(&*store, &waitpoint(&ids, &env, at(0))).await, create(&*store, &waitpoint(&ids, &env, at(0))).await];
    let mut held = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        create_run(&*store, &run(&ids, &env, "t", at(i as i64))).await;
        let claimed = claim_one(&*store, &env, &me, "t", at(10)).await.run;
        wait(&*store, &claimed, 0, &token.id, at(11)).await;
        held.push(claimed);
    }
    let finish_with = |token: &waitpoint_types::WaitpointId, hand_to: Takers| {
        WriteOp::Finish(crate::Finish {
            id: token.clone(),
            environment_id: None,
            finishing: completed(20, r#""yes""#),
            hand_to,
        })
    };
    let takers = Takers::unlimited([(env.id.clone(), me.clone())]);
    let FinishOutcome::Finished(_, resumed) = write_one(&*store, finish_with(&tokens[0].id, takers)).await else {
        panic!()
    };
    assert!(resumed.queued.is_empty());
    let [handed] = resumed.handed.as_slice() else { panic!("expected one hand-off: {resumed:?}") };
    assert_eq!(handed.run.state, RunState::Executing { worker: me.clone() });
    assert_eq!((handed.run.epoch, handed.journal_length), (held[0].epoch + 1, 1));
    let entry_ = entry(0, JournalKind::WaitToken, &tokens[0].id.public(), Some(r#"{"ok":true,"output":"yes"}"#));
    assert_eq!(handed.resumed.as_ref(), Some(&entry_));
    assert_eq!(get(&*store, &held[0].id).await, handed.run);

    // Takers that are other workers, or the same id in another environment, get nothing: the
    // run is queued, still reserved for its worker.
    let other_env = new_env(&*store, &ids, "prod").await;
    let others = Takers::unlimited([(env.id.clone(), worker(&ids)), (other_env.id.clone(), me.clone())]);
    let FinishOutcome::Finished(_, resumed) = write_one(&*store, finish_with(&tokens[1].id, others)).await else {
        panic!()
    };
    assert_eq!(resumed.queued, std::slice::from_ref(&held[1].id));
    assert!(resumed.handed.is_empty());
    assert_eq!(get(&*store, &held[1].id).await.sticky_worker.as_ref(), Some(&me));
}

/// Slots of one worker for test: `free` runs of any task, each counted as a backend asks.
#[derive(Debug)]
struct Counted {
    worker: WorkerId,
    free: std::sync::Mutex<usize>,
}

impl crate::Slots for Counted {
    fn has_room(&self, _environment: &waitpoint_types::EnvironmentId, worker: &WorkerId, _task: &str) -> bool {
        let mut free = self.free.lock().unwrap();
        let took = *worker == self.worker && *free > 0;
        *free -= usize::from(took);
        took
    }
}

/// A worker is handed no more resumed runs than its takers have slots for it, whether one
/// finish resumes them or several in one batch; the others are queued.
pub async fn a_worker_is_handed_no_more_resumed_runs_than_it_has_slots(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    seen(&*store, &env, &me, at(10)).await;
    let shared = create(&*store, &waitpoint(&ids, &env, at(0))).await;
    let apart =
        [create(&*store, &waitpoint(&ids, &env, at(0))).await, create(&*store, &waitpoint(&ids, &env, at(0))).await];
    for (i, token) in [&shared, &shared, &apart[0], &apart[1]].into_iter().enumerate() {
        create_run(&*store, &run(&ids, &env, "t", at(i as i64))).await;
        let claimed = claim_one(&*store, &env, &me, "t", at(10)).await.run;
        assert!(matches!(wait(&*store, &claimed, 0, &token.id, at(11)).await, JournalOutcome::Suspended(_)));
    }
    let one_slot = || Takers::new(std::sync::Arc::new(Counted { worker: me.clone(), free: std::sync::Mutex::new(1) }));
    let finish_with = |token: &waitpoint_types::WaitpointId, hand_to: Takers| {
        WriteOp::Finish(crate::Finish {
            id: token.clone(),
            environment_id: None,
            finishing: completed(20, "1"),
            hand_to,
        })
    };
    let FinishOutcome::Finished(_, resumed) = write_one(&*store, finish_with(&shared.id, one_slot())).await else {
        panic!()
    };
    assert_eq!((resumed.handed.len(), resumed.queued.len()), (1, 1), "{resumed:?}");

    let takers = one_slot();
    let batch = apart.iter().map(|token| finish_with(&token.id, takers.clone())).collect();
    let outcomes = store.write_batch(batch).await.expect("write_batch failed");
    let (mut handed, mut queued) = (0, 0);
    for outcome in outcomes {
        let WriteOutcome::Finish(FinishOutcome::Finished(_, resumed)) = outcome else { panic!("{outcome:?}") };
        (handed, queued) = (handed + resumed.handed.len(), queued + resumed.queued.len());
    }
    assert_eq!((handed, queued), (1, 1), "one slot across the batch");
}

/// A resumed run is held for the worker that suspended it while that worker is alive, for
/// `sticky_for`; then, or at once if that worker is gone, any worker may take it.
pub async fn resumed_runs_stay_with_their_live_worker_for_a_while(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let (parker, other) = (ids.worker(at(0)), ids.worker(at(0)));
    let mut held = Vec::new();
    for i in 0..2 {
        create_run(&*store, &run(&ids, &env, "t", at(i))).await;
    }
    let tokens =
        [create(&*store, &waitpoint(&ids, &env, at(0))).await, create(&*store, &waitpoint(&ids, &env, at(0))).await];
    seen(&*store, &env, &parker, at(10)).await;
    for (claimed, token) in claim(&*store, &env, &parker, &[("t", 2)], at(10)).await.into_iter().zip(&tokens) {
        wait(&*store, &claimed.run, 0, &token.id, at(11)).await;
        held.push(claimed.run.id);
    }
    finish(&*store, &tokens[0].id, completed(100, "1")).await;
    seen(&*store, &env, &other, at(100)).await;
    assert!(claim(&*store, &env, &other, &[("t", 5)], at(101)).await.is_empty(), "reserved for its live worker");
    let sticky_passed = at(100).saturating_add(STICKY);
    let taken = claim(&*store, &env, &other, &[("t", 5)], sticky_passed).await;
    assert_eq!(taken.iter().map(|c| c.run.id.clone()).collect::<Vec<_>>(), [held[0].clone()]);

    // The parker was last seen at 10: once it counts as gone, its runs are free at once.
    let late = at(100_000);
    finish(&*store, &tokens[1].id, completed(late.as_millis() - at(0).as_millis(), "2")).await;
    let taken = claim(&*store, &env, &other, &[("t", 5)], late).await;
    assert_eq!(taken.iter().map(|c| c.run.id.clone()).collect::<Vec<_>>(), [held[1].clone()]);
}

/// `wait.for`: the wait creates its datetime waitpoint, which completes (not times out) at its
/// deadline, resuming the run with `{"ok":true,"output":null}`; datetime waitpoints are not
/// tokens and stay out of token lists.
pub async fn datetime_waits_complete_at_their_deadline(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    create_run(&*store, &run(&ids, &env, "t", at(0))).await;
    let held = claim_one(&*store, &env, &me, "t", at(1)).await.run;
    let (datetime, op) = datetime_wait(&ids, &env, &held, "for 60s", at(1), at(60_000));
    assert!(matches!(write_one(&*store, WriteOp::RunWait(op)).await, JournalOutcome::Suspended(_)));
    assert_eq!(store.waitpoint_get(&datetime.id).await.unwrap(), datetime);
    assert_eq!(store.waitpoint_timeouts_next().await.unwrap(), Some(at(60_000)));
    assert!(super::list_ids(&*store, &super::query(&env)).await.is_empty(), "not a token");

    let FinishOutcome::Finished(done, resumed) =
        finish(&*store, &datetime.id, Finishing::Deadline { at: at(60_001) }).await
    else {
        panic!("the datetime waitpoint did not finish");
    };
    assert_eq!(done.state, WaitpointState::Completed { at: at(60_001), via: CompletedVia::Datetime, output: None });
    assert_eq!(resumed.queued, std::slice::from_ref(&held.id));
    let journal = super::journal(&*store, &held.id).await.unwrap();
    let recorded = entry(0, JournalKind::WaitDatetime, "for 60s", Some(r#"{"ok":true,"output":null}"#));
    assert_eq!(journal, std::slice::from_ref(&recorded));

    // On replay the code may ask for another instant (a deadline computed from the clock): the
    // datetime wait at that position is the one recorded, whatever instant it names now.
    let replaying = claim_one(&*store, &env, &me, "t", at(60_002)).await.run;
    let (later, op) = datetime_wait(&ids, &env, &replaying, "until 1970-01-01T00:02:00.002Z", at(60_002), at(120_002));
    assert_eq!(write_one::<JournalOutcome>(&*store, WriteOp::RunWait(op)).await, JournalOutcome::Recorded(recorded));
    assert!(store.waitpoint_get(&later.id).await.is_err(), "no second datetime waitpoint is made");
    let step = RunRecord {
        run: replaying.id.clone(),
        environment_id: env.id.clone(),
        epoch: replaying.epoch,
        entry: entry(0, JournalKind::Step, "for 60s", Some("1")),
    };
    assert!(
        matches!(write_one(&*store, WriteOp::RunRecord(step)).await, JournalOutcome::Diverged(_)),
        "kinds still count"
    );
}

/// A wait of `run` (of `env`) at position 0, named `name`, on a new datetime waitpoint made at
/// `now` for `deadline`: the waitpoint and the operation.
pub(crate) fn datetime_wait(
    ids: &IdGenerator,
    env: &Environment,
    run: &Run,
    name: &str,
    now: Timestamp,
    deadline: Timestamp,
) -> (Waitpoint, RunWait) {
    let mut datetime = waitpoint(ids, env, now);
    datetime.kind = WaitpointKind::Datetime;
    datetime.timeout_at = Some(deadline);
    let op = RunWait {
        run: run.id.clone(),
        environment_id: run.environment_id.clone(),
        epoch: run.epoch,
        seq: 0,
        kind: JournalKind::WaitDatetime,
        name: name.into(),
        waitpoints: vec![datetime.id.clone()],
        needed: 1,
        create: vec![datetime.clone()],
        at: now,
    };
    (datetime, op)
}

/// Creating a token for a run records it and answers the token as stored; the same position
/// again returns the recorded entry and creates nothing.
pub async fn a_token_created_by_a_run_is_created_once(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    create_run(&*store, &run(&ids, &env, "t", at(0))).await;
    let held = claim_one(&*store, &env, &me, "t", at(1)).await.run;
    let token = waitpoint(&ids, &env, at(2));
    let op = |waitpoint| RunCreateToken {
        run: held.id.clone(),
        environment_id: env.id.clone(),
        epoch: held.epoch,
        seq: 0,
        waitpoint,
    };
    let JournalOutcome::TokenCreated(first, created) =
        write_one(&*store, WriteOp::RunCreateToken(op(token.clone()))).await
    else {
        panic!("the token was not created");
    };
    let result = format!(r#"{{"id":"{}","isCached":false}}"#, token.id);
    assert_eq!(first, entry(0, JournalKind::CreateToken, "", Some(&result)));
    assert_eq!(*created, token);
    assert_eq!(store.waitpoint_get(&token.id).await.unwrap(), token, "answered as stored");
    let again: JournalOutcome = write_one(&*store, WriteOp::RunCreateToken(op(waitpoint(&ids, &env, at(3))))).await;
    assert_eq!(again, JournalOutcome::Recorded(first));
    assert_eq!(super::list_ids(&*store, &super::query(&env)).await, std::slice::from_ref(&token.id));

    // A token whose idempotency key another one holds is that one, cached.
    let holder =
        super::create(&*store, &Waitpoint { idempotency_key: Some("k".into()), ..waitpoint(&ids, &env, at(4)) }).await;
    let keyed = Waitpoint { idempotency_key: Some("k".into()), ..waitpoint(&ids, &env, at(5)) };
    let op = RunCreateToken { seq: 1, ..op(keyed) };
    let JournalOutcome::TokenCreated(cached, answered) = write_one(&*store, WriteOp::RunCreateToken(op)).await else {
        panic!("the keyed token was not recorded");
    };
    let result = format!(r#"{{"id":"{}","isCached":true}}"#, holder.id);
    assert_eq!(cached, entry(1, JournalKind::CreateToken, "", Some(&result)));
    assert_eq!(*answered, holder);
}

/// Journals of many runs come from one read, in the order asked, each with its run's
/// environment; a run that does not exist has none, and an empty journal is empty.
pub async fn journals_are_read_together_in_the_order_asked(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let (dev, prod) = (new_env(&*store, &ids, "dev").await, new_env(&*store, &ids, "prod").await);
    let me = worker(&ids);
    create_run(&*store, &run(&ids, &dev, "t", at(0))).await;
    let recorded = claim_one(&*store, &dev, &me, "t", at(1)).await.run;
    let steps = [entry(0, JournalKind::Step, "a", Some("1")), entry(1, JournalKind::Step, "b", Some("2"))];
    for step in &steps {
        assert_eq!(record(&*store, &recorded, step.clone()).await, JournalOutcome::Recorded(step.clone()));
    }
    let empty = create_run(&*store, &run(&ids, &prod, "t", at(2))).await;
    let missing = ids.run(at(3));

    let asked = [empty.id.clone(), missing, recorded.id.clone(), empty.id.clone()];
    let journals = store.run_journals(&asked).await.expect("run_journals failed");
    let with_steps = RunJournal { environment_id: dev.id.clone(), entries: steps.to_vec() };
    let without = RunJournal { environment_id: prod.id.clone(), entries: Vec::new() };
    assert_eq!(journals, [Some(without.clone()), None, Some(with_steps), Some(without)]);
    assert_eq!(store.run_journals(&[]).await.expect("run_journals failed"), []);
}

/// A failed attempt with attempts left queues the run again at `retry_at` with the next attempt
/// number; the last failure, or one without `retry_at`, fails the run; a completion completes it.
pub async fn failed_attempts_retry_until_attempts_run_out(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    let mut flaky = run(&ids, &env, "t", at(0));
    flaky.max_attempts = 2;
    create_run(&*store, &flaky).await;
    let error = RunError::new("TaskError", "boom");
    let failed = || RunOutcome::Failed { error: error.clone(), retry_at: Some(at(5_000)) };

    let first = claim_one(&*store, &env, &me, "t", at(1)).await.run;
    let RunEndOutcome::Ended(retrying) = end(&*store, &first, failed(), at(2)).await else { panic!("no retry") };
    assert_eq!((retrying.state.clone(), retrying.attempt), (RunState::Queued { available_at: at(5_000) }, 2));
    assert_eq!(retrying.status(at(3)), RunStatus::Delayed);
    assert!(claim(&*store, &env, &me, &[("t", 1)], at(4_999)).await.is_empty());
    let second = claim_one(&*store, &env, &me, "t", at(5_000)).await.run;
    assert_eq!((second.attempt, second.epoch), (2, 2));
    assert_eq!(
        end(&*store, &first, failed(), at(5_001)).await,
        RunEndOutcome::Refused(LeaseRefusal::Stale(Box::new(second.clone()))),
        "an old epoch"
    );
    let RunEndOutcome::Ended(dead) = end(&*store, &second, failed(), at(5_002)).await else { panic!("no failure") };
    assert_eq!(dead.state, RunState::Failed { at: at(5_002), error: error.clone() });
    assert_eq!(get(&*store, &dead.id).await, dead);

    create_run(&*store, &run(&ids, &env, "u", at(0))).await;
    let fatal = claim_one(&*store, &env, &me, "u", at(1)).await.run;
    let outcome = RunOutcome::Failed { error: RunError::new("NonDeterminism", "diverged"), retry_at: None };
    let RunEndOutcome::Ended(failed_now) = end(&*store, &fatal, outcome, at(2)).await else { panic!() };
    assert!(matches!(failed_now.state, RunState::Failed { .. }));

    create_run(&*store, &run(&ids, &env, "v", at(0))).await;
    let good = claim_one(&*store, &env, &me, "v", at(1)).await.run;
    let RunEndOutcome::Ended(completed_run) =
        end(&*store, &good, RunOutcome::Completed { output: r#"{"sum":3}"#.into() }, at(2)).await
    else {
        panic!()
    };
    assert_eq!(completed_run.state, RunState::Completed { at: at(2), output: r#"{"sum":3}"#.into() });
    assert_eq!(completed_run.finished_at(), Some(at(2)));
}

/// Cancel ends queued, executing and waiting runs; a canceled waiter is not resumed; the worker
/// that held a canceled run is refused; finished runs and other environments are untouched.
pub async fn cancel_stops_a_run_that_has_not_finished(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let prod = new_env(&*store, &ids, "prod").await;
    let me = worker(&ids);
    let cancel = |run: &RunId, env: &Environment, when: i64| WriteOp::RunCancel {
        run: run.clone(),
        environment_id: env.id.clone(),
        at: at(when),
    };
    let queued = create_run(&*store, &run(&ids, &env, "q", at(0))).await;
    create_run(&*store, &run(&ids, &env, "e", at(0))).await;
    create_run(&*store, &run(&ids, &env, "w", at(0))).await;
    let executing = claim_one(&*store, &env, &me, "e", at(1)).await.run;
    let waiter = claim_one(&*store, &env, &me, "w", at(1)).await.run;
    let token = create(&*store, &waitpoint(&ids, &env, at(0))).await;
    wait(&*store, &waiter, 0, &token.id, at(2)).await;

    assert_eq!(
        write_one::<RunEndOutcome>(&*store, cancel(&queued.id, &prod, 3)).await,
        RunEndOutcome::Refused(LeaseRefusal::NotFound)
    );
    for id in [&queued.id, &executing.id, &waiter.id] {
        let RunEndOutcome::Ended(canceled) = write_one(&*store, cancel(id, &env, 3)).await else {
            panic!("not canceled");
        };
        assert_eq!(canceled.state, RunState::Canceled { at: at(3) });
        assert_eq!(write_one::<RunEndOutcome>(&*store, cancel(id, &env, 4)).await, RunEndOutcome::Unchanged(canceled));
    }
    assert!(matches!(
        record(&*store, &executing, entry(0, JournalKind::Step, "s", Some("1"))).await,
        JournalOutcome::Refused(LeaseRefusal::Stale(_))
    ));
    let FinishOutcome::Finished(_, resumed) = finish(&*store, &token.id, completed(5, "1")).await else { panic!() };
    assert_eq!(resumed, crate::Resumed::default(), "a canceled run does not resume");
    assert!(claim(&*store, &env, &me, &[("q", 5), ("e", 5), ("w", 5)], at(6)).await.is_empty());
}

/// Runs held by a worker not seen since `alive_since` are queued again, without a sticky
/// worker and with their epoch intact (the next claim moves it on); live workers keep theirs.
pub async fn runs_of_stopped_workers_are_released(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let (gone, alive) = (ids.worker(at(0)), ids.worker(at(0)));
    create_run(&*store, &run(&ids, &env, "t", at(0))).await;
    create_run(&*store, &run(&ids, &env, "t", at(0))).await;
    seen(&*store, &env, &gone, at(1)).await;
    let orphan = claim_one(&*store, &env, &gone, "t", at(1)).await.run;
    seen(&*store, &env, &alive, at(1)).await;
    let kept = claim_one(&*store, &env, &alive, "t", at(1)).await.run;
    seen(&*store, &env, &alive, at(50_000)).await;
    seen(&*store, &env, &gone, at(10)).await;

    let release = WriteOp::RunsRelease(RunsRelease { alive_since: at(20_000), now: at(50_001) });
    assert_eq!(write_one::<Vec<RunId>>(&*store, release.clone()).await, std::slice::from_ref(&orphan.id));
    let released = get(&*store, &orphan.id).await;
    assert_eq!(released.state, RunState::Queued { available_at: at(50_001) });
    assert_eq!(released.sticky_worker, None);
    assert!(matches!(get(&*store, &kept.id).await.state, RunState::Executing { .. }));
    assert!(write_one::<Vec<RunId>>(&*store, release).await.is_empty());
    let retaken = claim_one(&*store, &env, &alive, "t", at(50_002)).await.run;
    assert_eq!((retaken.id.clone(), retaken.epoch, retaken.attempt), (orphan.id.clone(), orphan.epoch + 1, 1));
    let late = end(&*store, &orphan, RunOutcome::Completed { output: "1".into() }, at(50_003)).await;
    assert_eq!(
        late,
        RunEndOutcome::Refused(LeaseRefusal::Stale(Box::new(retaken))),
        "the presumed-dead worker is fenced out"
    );
}

/// A worker is known by its environment and its id: the same id used with another
/// environment's key is another worker, which neither gives back, keeps alive, forgets nor
/// receives the first one's runs.
pub async fn a_worker_is_known_by_its_environment_and_id(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let (env, other_env) = (new_env(&*store, &ids, "dev").await, new_env(&*store, &ids, "prod").await);
    let shared = worker(&ids);
    let tokens =
        [create(&*store, &waitpoint(&ids, &env, at(0))).await, create(&*store, &waitpoint(&ids, &env, at(0))).await];
    for i in 0..3 {
        create_run(&*store, &run(&ids, &env, "t", at(i))).await;
    }
    seen(&*store, &env, &shared, at(10)).await;
    let held = claim(&*store, &env, &shared, &[("t", 3)], at(10)).await;
    let [executing, parked, resumed] = [&held[0].run, &held[1].run, &held[2].run];
    wait(&*store, parked, 0, &tokens[0].id, at(11)).await;
    wait(&*store, resumed, 0, &tokens[1].id, at(11)).await;

    // The same id in the other environment holds nothing, so its claim gives nothing back.
    seen(&*store, &other_env, &shared, at(20)).await;
    assert!(claim_holding(&*store, &other_env, &shared, &[], at(20), Some(Vec::new())).await.is_empty());
    assert_eq!(get(&*store, &executing.id).await, *executing, "another environment's claim released the run");

    // The same id taking runs in the other environment takes none of this one's: a resumed run
    // is handed to this environment's worker only.
    let finish_taken_in = |token: &Waitpoint, environment: &Environment| {
        WriteOp::Finish(Finish {
            id: token.id.clone(),
            environment_id: None,
            finishing: completed(21, "1"),
            hand_to: Takers::unlimited([(environment.id.clone(), shared.clone())]),
        })
    };
    let finish_op = finish_taken_in(&tokens[0], &other_env);
    let FinishOutcome::Finished(_, queued) = write_one(&*store, finish_op).await else { panic!("not finished") };
    assert_eq!(queued.queued, std::slice::from_ref(&parked.id));

    // Forgetting the other environment's worker does not forget this one, which still takes the
    // run it parked.
    let left = WriteOp::WorkerLeft { environment_id: other_env.id.clone(), worker: shared.clone(), session: None };
    assert_eq!(write_one::<WorkerOutcome>(&*store, left).await, WorkerOutcome::Done);
    let finish_op = finish_taken_in(&tokens[1], &env);
    let FinishOutcome::Finished(_, handed) = write_one(&*store, finish_op).await else { panic!("not finished") };
    assert_eq!(handed.runs(), std::slice::from_ref(&resumed.id));
    assert_eq!(handed.handed[0].run.state, RunState::Executing { worker: shared.clone() });

    // Seen in the other environment, the worker of this one is still gone once its own last
    // sighting is old: its runs are released, and what it parked is free to any worker at once.
    seen(&*store, &other_env, &shared, at(50_000)).await;
    let release = WriteOp::RunsRelease(RunsRelease { alive_since: at(20_000), now: at(50_001) });
    let mut released: Vec<RunId> = write_one(&*store, release).await;
    released.sort();
    let mut expected = vec![executing.id.clone(), resumed.id.clone()];
    expected.sort();
    assert_eq!(released, expected);
    finish(&*store, &tokens[0].id, completed(50_002, "2")).await;
    let newcomer = ids.worker(at(0));
    let taken = claim(&*store, &env, &newcomer, &[("t", 3)], at(50_003)).await;
    assert_eq!(taken.len(), 3, "the parked run waited for a worker that is gone: {taken:?}");
}

/// A claim of `worker` by `session` holding nothing: what it answers.
async fn session_claim(
    store: &dyn Store,
    env: &Environment,
    worker: &WorkerId,
    session: Option<&str>,
    tasks: &[(&str, usize)],
    now: Timestamp,
) -> ClaimOutcome {
    write_one(store, claim_op(env, worker, tasks, now, Some(Vec::new()), session)).await
}

/// A worker restarted under the same id with a newer session takes the worker over: its first
/// claim gives back, and takes again, what the older session held, and resumed runs are still
/// handed to the worker. The older session's claims and its leaving are refused and change
/// nothing; a claim without a session is the id's alone.
pub async fn a_newer_session_takes_the_worker_over(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    let token = create(&*store, &waitpoint(&ids, &env, at(0))).await;
    for i in 0..3 {
        create_run(&*store, &run(&ids, &env, "t", at(i))).await;
    }
    let ClaimOutcome::Claimed { claims, .. } = session_claim(&*store, &env, &me, Some("s1"), &[("t", 3)], at(10)).await
    else {
        panic!("the first session could not claim");
    };
    let (held, parked) = (claims[0].run.clone(), claims[2].run.clone());
    wait(&*store, &parked, 0, &token.id, at(11)).await;

    let ClaimOutcome::Claimed { claims, released } =
        session_claim(&*store, &env, &me, Some("s2"), &[("t", 5)], at(20)).await
    else {
        panic!("the newer session could not claim");
    };
    let mut taken: Vec<RunId> = claims.iter().map(|c| c.run.id.clone()).collect();
    taken.sort();
    let mut expected = released.clone();
    expected.sort();
    assert_eq!(released.len(), 2, "what the older session executed is given back at once: {released:?}");
    assert_eq!(taken, expected, "and taken again by the newer one");
    assert!(claims.iter().all(|c| c.run.epoch > held.epoch), "the older session is fenced out");

    let before = get(&*store, &held.id).await;
    assert_eq!(session_claim(&*store, &env, &me, Some("s1"), &[("t", 5)], at(21)).await, ClaimOutcome::WorkerReplaced);
    let left = WriteOp::WorkerLeft { environment_id: env.id.clone(), worker: me.clone(), session: Some("s1".into()) };
    assert_eq!(write_one::<WorkerOutcome>(&*store, left).await, WorkerOutcome::Replaced);
    assert_eq!(get(&*store, &held.id).await, before, "a refused session changes nothing");

    seen(&*store, &env, &me, at(30)).await;
    let finish_op = WriteOp::Finish(Finish {
        id: token.id.clone(),
        environment_id: None,
        finishing: completed(31, "1"),
        hand_to: Takers::unlimited([(env.id.clone(), me.clone())]),
    });
    let FinishOutcome::Finished(_, resumed) = write_one(&*store, finish_op).await else { panic!("not finished") };
    let handed: Vec<RunId> = resumed.handed.iter().map(|c| c.run.id.clone()).collect();
    assert_eq!(handed, std::slice::from_ref(&parked.id));

    assert!(matches!(session_claim(&*store, &env, &me, None, &[], at(32)).await, ClaimOutcome::Claimed { .. }));
    let left = WriteOp::WorkerLeft { environment_id: env.id.clone(), worker: me.clone(), session: Some("s2".into()) };
    assert_eq!(write_one::<WorkerOutcome>(&*store, left).await, WorkerOutcome::Done);
    assert_eq!(store.worker_last_seen(&env.id, &me).await.unwrap(), None, "the worker is forgotten");
}

/// Workers say which tasks they run; a task is served while a worker of its environment that
/// runs it is alive, and the last sighting of each worker can be read.
pub async fn workers_say_which_tasks_they_serve(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let (env, prod) = (new_env(&*store, &ids, "dev").await, new_env(&*store, &ids, "prod").await);
    let me = worker(&ids);
    assert_eq!(store.worker_last_seen(&env.id, &me).await.unwrap(), None);
    assert!(!store.task_served(&env.id, "t", at(0)).await.unwrap());
    let op = WorkerSeen {
        worker: me.clone(),
        environment_id: env.id.clone(),
        at: at(100),
        tasks: vec!["a".into(), "b".into()],
    };
    assert_eq!(write_one::<WorkerOutcome>(&*store, WriteOp::WorkerSeen(op.clone())).await, WorkerOutcome::Done);
    assert_eq!(store.worker_last_seen(&env.id, &me).await.unwrap(), Some(at(100)));
    assert_eq!(store.worker_last_seen(&prod.id, &me).await.unwrap(), None);
    assert!(store.task_served(&env.id, "a", at(50)).await.unwrap());
    assert!(store.task_served(&env.id, "b", at(100)).await.unwrap());
    assert!(!store.task_served(&env.id, "c", at(50)).await.unwrap(), "a task nobody runs");
    assert!(!store.task_served(&env.id, "a", at(101)).await.unwrap(), "a worker not seen since");
    assert!(!store.task_served(&prod.id, "a", at(50)).await.unwrap(), "another environment's worker");
    let later = WorkerSeen { at: at(200), tasks: vec!["c".into()], ..op };
    write_one::<WorkerOutcome>(&*store, WriteOp::WorkerSeen(later)).await;
    assert!(store.task_served(&env.id, "c", at(150)).await.unwrap());
    assert!(!store.task_served(&env.id, "a", at(0)).await.unwrap(), "the worker's tasks are its latest");
    assert_eq!(store.worker_last_seen(&env.id, &me).await.unwrap(), Some(at(200)));
}

/// A claim gives back the runs its worker holds but does not know about (a lost answer): those
/// handed to it by its `handed_by`, and those it did not read.
pub async fn claims_give_back_runs_the_worker_does_not_know_it_holds(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    for i in 0..2 {
        create_run(&*store, &run(&ids, &env, "t", at(i))).await;
    }
    let claimed = claim(&*store, &env, &me, &[("t", 2)], at(5)).await;
    let (known, lost) = (claimed[0].run.clone(), claimed[1].run.clone());
    let holding = Some(vec![HeldRun::any_epoch(known.id.clone())]);
    let WriteOp::RunClaim(mut early) = claim_op(&env, &me, &[("t", 0)], at(6), holding, None) else { unreachable!() };
    early.handed_by = at(4);
    let kept: ClaimOutcome = write_one(&*store, WriteOp::RunClaim(early.clone())).await;
    let nothing = ClaimOutcome::Claimed { claims: Vec::new(), released: Vec::new() };
    assert_eq!(kept, nothing, "handed to it after `handed_by`, the run may be on its way");
    early.unread = vec![lost.id.clone()];
    let again: ClaimOutcome = write_one(&*store, WriteOp::RunClaim(early)).await;
    assert_eq!(again, ClaimOutcome::Claimed { claims: Vec::new(), released: vec![lost.id.clone()] }, "unread");
    assert_eq!(get(&*store, &known.id).await, known, "a run the worker knows stays");
    let released = get(&*store, &lost.id).await;
    assert_eq!(released.state, RunState::Queued { available_at: at(6) });
    let retaken = claim_holding(&*store, &env, &me, &[("t", 1)], at(7), Some(vec![known.id.clone()])).await;
    assert_eq!(retaken[0].run.id, lost.id);
    assert_eq!(retaken[0].run.epoch, lost.epoch + 1);
}

/// A claim whose worker lists a run under an older epoch than the run now has (handed to the
/// worker again, through another node, after the worker made its list) gives the run back and
/// takes it again, with a newer epoch; listed under the epoch it has, the run stays as it is.
pub async fn claims_take_again_a_run_listed_under_an_older_epoch(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    create_run(&*store, &run(&ids, &env, "t", at(0))).await;
    let run = claim(&*store, &env, &me, &[("t", 1)], at(1)).await[0].run.clone();
    let listed = |epoch| Some(vec![HeldRun { run: run.id.clone(), epoch: Some(epoch) }]);
    let current: ClaimOutcome =
        write_one(&*store, claim_op(&env, &me, &[("t", 1)], at(2), listed(run.epoch), None)).await;
    assert_eq!(current, ClaimOutcome::Claimed { claims: Vec::new(), released: Vec::new() });
    assert_eq!(get(&*store, &run.id).await, run, "held under its epoch, it stays");
    let older: ClaimOutcome =
        write_one(&*store, claim_op(&env, &me, &[("t", 1)], at(3), listed(run.epoch - 1), None)).await;
    let ClaimOutcome::Claimed { claims, released } = older else { panic!("expected Claimed, got {older:?}") };
    assert_eq!(released, vec![run.id.clone()], "listed under an older epoch, it is given back");
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!((&claims[0].run.id, claims[0].run.epoch), (&run.id, run.epoch + 1), "and taken again");
}

/// A claim that lists nothing of what its worker holds (`holding: None`) gives nothing back:
/// it only takes runs.
pub async fn a_claim_without_a_holding_list_gives_nothing_back(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    for i in 0..2 {
        create_run(&*store, &run(&ids, &env, "t", at(i))).await;
    }
    let first = claim(&*store, &env, &me, &[("t", 1)], at(2)).await[0].run.clone();
    let outcome: ClaimOutcome = write_one(&*store, claim_op(&env, &me, &[("t", 1)], at(3), None, None)).await;
    let ClaimOutcome::Claimed { claims, released } = outcome else { panic!("expected Claimed, got {outcome:?}") };
    assert!(released.is_empty(), "{released:?}");
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_ne!(claims[0].run.id, first.id);
    assert_eq!(get(&*store, &first.id).await, first, "the run it did not list stays with it");
}

/// Run lists filter by status (QUEUED and DELAYED told apart at `now`), task, tag, idempotency
/// key and id bounds, page newest first both ways, and stay within their environment.
pub async fn run_lists_filter_and_page(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let prod = new_env(&*store, &ids, "prod").await;
    let me = worker(&ids);
    let mut made = Vec::new();
    for (i, (task, tag)) in [("a", "x"), ("b", "y"), ("a", "y"), ("b", "x"), ("a", "z")].into_iter().enumerate() {
        let mut r = run(&ids, &env, task, at(i as i64 * 10));
        r.tags = vec![tag.into()];
        if i == 4 {
            r.state = RunState::Queued { available_at: at(1_000_000) };
            r.idempotency_key = Some("key-4".into());
        }
        made.push(create_run(&*store, &r).await.id);
    }
    create_run(&*store, &run(&ids, &prod, "a", at(5))).await;
    let executing = claim_one(&*store, &env, &me, "b", at(100)).await.run;
    assert_eq!(executing.id, made[1]);

    let query = |q: &dyn Fn(&mut RunListQuery)| {
        let mut query = RunListQuery {
            environment_id: env.id.clone(),
            statuses: Vec::new(),
            task_ids: Vec::new(),
            idempotency_key: None,
            tags: Vec::new(),
            window: Window::newest(100),
            now: at(200),
        };
        q(&mut query);
        query
    };
    let list = |q: RunListQuery| {
        let store = store.clone();
        async move { store.run_list(&q).await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    let newest: Vec<RunId> = made.iter().rev().cloned().collect();
    assert_eq!(list(query(&|_| {})).await, newest);
    assert_eq!(list(query(&|q| q.statuses = vec![RunStatus::Delayed])).await, [made[4].clone()]);
    assert_eq!(list(query(&|q| q.statuses = vec![RunStatus::Executing])).await, [made[1].clone()]);
    let queued = list(query(&|q| q.statuses = vec![RunStatus::Queued])).await;
    assert_eq!(queued, [made[3].clone(), made[2].clone(), made[0].clone()]);
    let both = list(query(&|q| {
        q.statuses = vec![RunStatus::Queued, RunStatus::Delayed];
        q.window.limit = 2;
    }))
    .await;
    assert_eq!(both, [made[4].clone(), made[3].clone()]);
    assert_eq!(list(query(&|q| q.task_ids = vec!["b".into()])).await, [made[3].clone(), made[1].clone()]);
    let two_tasks = list(query(&|q| {
        q.task_ids = vec!["a".into(), "b".into()];
        q.window.cursor = Cursor::After(made[3].internal().to_owned());
        q.window.limit = 2;
    }))
    .await;
    assert_eq!(two_tasks, [made[2].clone(), made[1].clone()]);
    let tagged = list(query(&|q| {
        q.tags = vec!["x".into(), "z".into()];
        q.statuses = vec![RunStatus::Queued];
    }))
    .await;
    assert_eq!(tagged, [made[3].clone(), made[0].clone()]);
    assert_eq!(list(query(&|q| q.idempotency_key = Some("key-4".into()))).await, [made[4].clone()]);
    let bounded = list(query(&|q| {
        q.window.id_at_least = Some(made[1].internal().to_owned());
        q.window.id_below = Some(made[3].internal().to_owned());
    }))
    .await;
    assert_eq!(bounded, [made[2].clone(), made[1].clone()]);
    let before = list(query(&|q| {
        q.window.cursor = Cursor::Before(made[1].internal().to_owned());
        q.window.limit = 2;
    }))
    .await;
    assert_eq!(before, [made[2].clone(), made[3].clone()]);
}

/// The next time a worker of some tasks has something to claim.
pub async fn next_available_is_the_earliest_future_run(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let tasks = ["a".to_owned(), "b".to_owned()];
    assert_eq!(store.run_next_available(&env.id, &tasks, at(0)).await.unwrap(), None);
    for (task, available) in [("a", 500), ("b", 300), ("c", 100), ("a", 0)] {
        let mut r = run(&ids, &env, task, at(0));
        r.state = RunState::Queued { available_at: at(available) };
        create_run(&*store, &r).await;
    }
    assert_eq!(store.run_next_available(&env.id, &tasks, at(0)).await.unwrap(), Some(at(300)));
    assert_eq!(store.run_next_available(&env.id, &tasks, at(300)).await.unwrap(), Some(at(500)));
    assert_eq!(store.run_next_available(&env.id, &tasks[..1], at(600)).await.unwrap(), None);
}

/// Run operations sent in one batch (as concurrent requests are) get what each gets alone, in
/// the batch's order: successive records of one run, a divergence and a stale epoch among
/// them, a token created and waited on, a wait on a waitpoint the same batch finishes, a run
/// ended then written to, and a new run.
pub async fn a_batch_of_run_operations_does_what_they_do_one_at_a_time(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let me = worker(&ids);
    seen(&*store, &env, &me, at(1)).await;
    for _ in 0..4 {
        create_run(&*store, &run(&ids, &env, "t", at(0))).await;
    }
    let held: Vec<Run> = claim(&*store, &env, &me, &[("t", 4)], at(2)).await.into_iter().map(|c| c.run).collect();
    let [a, b, c, d] = [&held[0], &held[1], &held[2], &held[3]];
    let pending = create(&*store, &waitpoint(&ids, &env, at(0))).await;
    let token = waitpoint(&ids, &env, at(3));
    let fresh = run(&ids, &env, "t", at(3));

    let record = |run: &Run, epoch: u64, entry: JournalEntry| {
        WriteOp::RunRecord(RunRecord { run: run.id.clone(), environment_id: env.id.clone(), epoch, entry })
    };
    let wait_on = |run: &Run, seq: u32, waitpoint: &waitpoint_types::WaitpointId| {
        WriteOp::RunWait(RunWait {
            run: run.id.clone(),
            environment_id: env.id.clone(),
            epoch: run.epoch,
            seq,
            kind: JournalKind::WaitToken,
            name: waitpoint.public(),
            waitpoints: vec![waitpoint.clone()],
            needed: 1,
            create: Vec::new(),
            at: at(4),
        })
    };
    let ops = vec![
        record(a, a.epoch, entry(0, JournalKind::Step, "one", Some("1"))),
        record(a, a.epoch, entry(1, JournalKind::Step, "two", Some("2"))),
        record(a, a.epoch, entry(1, JournalKind::Step, "other", Some("3"))),
        record(b, b.epoch - 1, entry(0, JournalKind::Step, "one", Some("1"))),
        WriteOp::RunCreateToken(RunCreateToken {
            run: b.id.clone(),
            environment_id: env.id.clone(),
            epoch: b.epoch,
            seq: 0,
            waitpoint: token.clone(),
        }),
        wait_on(b, 1, &token.id),
        record(c, c.epoch, entry(5, JournalKind::Step, "late", Some("5"))),
        WriteOp::Finish(Finish {
            id: pending.id.clone(),
            environment_id: Some(env.id.clone()),
            finishing: completed(4, r#"{"done":true}"#),
            hand_to: Takers::unlimited([(env.id.clone(), me.clone())]),
        }),
        wait_on(c, 0, &pending.id),
        WriteOp::RunFinish(RunFinish {
            run: d.id.clone(),
            environment_id: env.id.clone(),
            epoch: d.epoch,
            outcome: RunOutcome::Completed { output: r#"{"d":4}"#.into() },
            at: at(4),
        }),
        record(d, d.epoch, entry(0, JournalKind::Step, "after", Some("0"))),
        WriteOp::RunCreate(fresh.clone()),
    ];
    let outcomes = store.write_batch(ops).await.expect("write_batch failed");
    assert_eq!(outcomes.len(), 12, "one outcome per operation");

    assert_eq!(
        outcomes[0],
        WriteOutcome::Journal(JournalOutcome::Recorded(entry(0, JournalKind::Step, "one", Some("1"))))
    );
    assert_eq!(
        outcomes[1],
        WriteOutcome::Journal(JournalOutcome::Recorded(entry(1, JournalKind::Step, "two", Some("2"))))
    );
    assert_eq!(
        outcomes[2],
        WriteOutcome::Journal(JournalOutcome::Diverged(entry(1, JournalKind::Step, "two", Some("2"))))
    );
    assert!(
        matches!(&outcomes[3], WriteOutcome::Journal(JournalOutcome::Refused(LeaseRefusal::Stale(run))) if run.id == b.id),
        "{:?}",
        outcomes[3]
    );
    let token_entry = entry(
        0,
        JournalKind::CreateToken,
        "",
        Some(&serde_json::json!({ "id": token.id.public(), "isCached": false }).to_string()),
    );
    assert_eq!(outcomes[4], WriteOutcome::Journal(JournalOutcome::TokenCreated(token_entry, Box::new(token.clone()))));
    let WriteOutcome::Journal(JournalOutcome::Suspended(suspended)) = &outcomes[5] else {
        panic!("not suspended: {:?}", outcomes[5])
    };
    assert_eq!(suspended.state, RunState::Waiting { seq: 1, needed: 1 });
    assert_eq!(outcomes[6], WriteOutcome::Journal(JournalOutcome::OutOfOrder(0)));
    assert!(
        matches!(&outcomes[7], WriteOutcome::Finish(FinishOutcome::Finished(w, _)) if w.id == pending.id),
        "{:?}",
        outcomes[7]
    );
    let WriteOutcome::Journal(JournalOutcome::Recorded(waited)) = &outcomes[8] else {
        panic!("not recorded: {:?}", outcomes[8])
    };
    assert!(waited.result.as_deref().is_some_and(|r| r.contains(r#""ok":true"#)), "{waited:?}");
    let WriteOutcome::RunEnd(RunEndOutcome::Ended(ended)) = &outcomes[9] else {
        panic!("not finished: {:?}", outcomes[9])
    };
    assert!(matches!(ended.state, RunState::Completed { .. }));
    assert!(
        matches!(&outcomes[10], WriteOutcome::Journal(JournalOutcome::Refused(LeaseRefusal::Stale(run))) if run.id == d.id),
        "{:?}",
        outcomes[10]
    );
    assert_eq!(outcomes[11], WriteOutcome::RunCreate(RunCreateOutcome::Created(fresh.clone())));

    assert_eq!(super::journal(&*store, &a.id).await.unwrap().len(), 2);
    assert_eq!(get(&*store, &b.id).await, **suspended);
    assert_eq!(super::journal(&*store, &b.id).await.unwrap().len(), 2);
    assert!(matches!(store.waitpoint_get(&token.id).await.unwrap().state, WaitpointState::Waiting));
    assert_eq!(super::journal(&*store, &c.id).await.unwrap(), vec![waited.clone()]);
    assert_eq!(get(&*store, &d.id).await, *ended);
    assert!(super::journal(&*store, &d.id).await.unwrap().is_empty());
    assert_eq!(get(&*store, &fresh.id).await, fresh);
}
