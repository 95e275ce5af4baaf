//! The part of the conformance suite about runs that wait on several waitpoints: any, all, or
//! k of them, decided by the finish that decides them, once.

use waitpoint_types::{
    CompletedVia, IdGenerator, JournalKind, Rejection, Run, RunState, Timestamp, Waitpoint, WaitpointId, WaitpointKind,
    WaitpointState,
};

use super::runs::{claim_one, create_run, run, worker};
use super::{TestDatabase, at, completed, create, finish, new_env, waitpoint, write_one};
use crate::{FinishOutcome, Finishing, JournalOutcome, Resumed, RunWait, Store, Takers, WriteOp, WriteOutcome};

/// A wait of `run` at position `seq` for `needed` of `waitpoints`, creating `create` first.
fn set_wait(run: &Run, seq: u32, needed: u32, waitpoints: &[&Waitpoint], create: Vec<Waitpoint>) -> RunWait {
    RunWait {
        run: run.id.clone(),
        environment_id: run.environment_id.clone(),
        epoch: run.epoch,
        seq,
        kind: JournalKind::WaitSet,
        name: waitpoint_types::run::wait_set_name(needed, waitpoints.len()),
        waitpoints: waitpoints.iter().map(|w| w.id.clone()).collect(),
        needed,
        create,
        at: at(10),
    }
}

/// A fresh run of a new environment, held by a worker, and `n` waiting tokens of that
/// environment.
async fn held_run_and_tokens(store: &dyn Store, ids: &IdGenerator, n: usize) -> (Run, Vec<Waitpoint>) {
    let env = new_env(store, ids, "dev").await;
    create_run(store, &run(ids, &env, "t", at(0))).await;
    let held = claim_one(store, &env, &worker(ids), "t", at(1)).await.run;
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(create(store, &waitpoint(ids, &env, at(2))).await);
    }
    (held, tokens)
}

/// What the set's entry records: `ok`, then each waitpoint's `ok`, or `None` while pending.
fn decided(entry_result: &str) -> (bool, Vec<Option<bool>>) {
    let result: serde_json::Value = serde_json::from_str(entry_result).expect("a JSON result");
    let each = result["waitpoints"]
        .as_array()
        .expect("the waitpoints")
        .iter()
        .map(|w| if w["pending"] == true { None } else { w["ok"].as_bool() })
        .collect();
    (result["ok"].as_bool().expect("ok"), each)
}

async fn wait_result(store: &dyn Store, run: &Run, seq: u32) -> Option<String> {
    super::journal(store, &run.id).await.unwrap().into_iter().find(|e| e.seq == seq).and_then(|e| e.result)
}

/// 2 of 3: the first completion leaves the run waiting, the second resumes it with every
/// waitpoint's standing, in order; the third changes nothing. The set is kept as the run's
/// waits, and each waitpoint finds the run.
pub async fn a_set_wait_resumes_once_when_enough_complete(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let (held, tokens) = held_run_and_tokens(&*store, &ids, 3).await;
    let wait = set_wait(&held, 0, 2, &[&tokens[0], &tokens[1], &tokens[2]], Vec::new());
    let JournalOutcome::Suspended(suspended) = write_one(&*store, WriteOp::RunWait(wait)).await else {
        panic!("the run did not suspend");
    };
    assert_eq!(suspended.state, RunState::Waiting { seq: 0, needed: 2 });
    let waits: Vec<WaitpointId> = store.run_waits(&held.id, 0).await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(waits, tokens.iter().map(|t| t.id.clone()).collect::<Vec<_>>());

    let FinishOutcome::Finished(_, none) = finish(&*store, &tokens[2].id, completed(20, r#""c""#)).await else {
        panic!("not finished");
    };
    assert_eq!(none, Resumed::default(), "one of two is not enough");
    assert_eq!(wait_result(&*store, &held, 0).await, None);
    let FinishOutcome::Finished(_, resumed) = finish(&*store, &tokens[0].id, completed(30, r#""a""#)).await else {
        panic!("not finished");
    };
    assert_eq!(resumed.queued, std::slice::from_ref(&held.id));
    assert_eq!(store.run_get(&held.id).await.unwrap().state, RunState::Queued { available_at: at(30) });
    let result = wait_result(&*store, &held, 0).await.expect("decided");
    assert_eq!(decided(&result), (true, vec![Some(true), None, Some(true)]));
    let parsed: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(parsed["waitpoints"][0]["id"], tokens[0].id.public());
    assert_eq!(parsed["waitpoints"][0]["output"], "a");

    let FinishOutcome::Finished(_, later) = finish(&*store, &tokens[1].id, completed(40, "1")).await else {
        panic!("not finished");
    };
    assert_eq!(later, Resumed::default(), "a decided wait does not resume again");
    assert_eq!(wait_result(&*store, &held, 0).await, Some(result), "nor change its result");
    for token in &tokens {
        let found = store.waitpoint_waiters(&token.id, 10).await.unwrap();
        assert_eq!(found.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&held.id));
    }
}

/// All of 2: a timeout makes success impossible, so the wait is decided at once, not ok, with
/// the other waitpoint pending. Any of 2: a timeout leaves it waiting for the other, whose
/// rejection then decides it, not ok.
pub async fn a_set_wait_fails_once_it_no_longer_can_succeed(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let (held, tokens) = held_run_and_tokens(&*store, &ids, 2).await;
    let env = store.environment_by_id(&held.environment_id).await.unwrap();
    let mut expiring = Vec::new();
    for _ in 0..2 {
        let token = Waitpoint { timeout_at: Some(at(100)), ..waitpoint(&ids, &env, at(3)) };
        expiring.push(create(&*store, &token).await);
    }
    let all = set_wait(&held, 0, 2, &[&expiring[0], &tokens[0]], Vec::new());
    assert!(matches!(write_one(&*store, WriteOp::RunWait(all)).await, JournalOutcome::Suspended(_)));
    let FinishOutcome::Finished(_, resumed) =
        finish(&*store, &expiring[0].id, Finishing::Deadline { at: at(100) }).await
    else {
        panic!("the deadline did not apply");
    };
    assert_eq!(resumed.queued, std::slice::from_ref(&held.id));
    let result = wait_result(&*store, &held, 0).await.expect("decided");
    assert_eq!(decided(&result), (false, vec![Some(false), None]));

    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["waitpoints"][0]["error"]["code"], "TRIGGER_WAITPOINT_TIMEOUT");

    let again = claim_one(&*store, &env, &worker(&ids), "t", at(101)).await.run;
    let any = set_wait(&again, 1, 1, &[&expiring[1], &tokens[1]], Vec::new());
    assert!(matches!(write_one(&*store, WriteOp::RunWait(any)).await, JournalOutcome::Suspended(_)));
    let FinishOutcome::Finished(_, none) = finish(&*store, &expiring[1].id, Finishing::Deadline { at: at(102) }).await
    else {
        panic!("the deadline did not apply");
    };
    assert_eq!(none, Resumed::default(), "any of 2 still has the other");
    let rejection = Rejection { message: "no".into(), code: "NO".into(), data: None };
    let rejecting = Finishing::Reject { at: at(103), via: CompletedVia::SecretKey, error: rejection };
    let FinishOutcome::Finished(_, resumed) = finish(&*store, &tokens[1].id, rejecting).await else {
        panic!("not finished");
    };
    assert_eq!(resumed.queued, std::slice::from_ref(&held.id), "a rejection fails the other way");
    let result = wait_result(&*store, &held, 1).await.unwrap();
    assert_eq!(decided(&result), (false, vec![Some(false), Some(false)]));
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(
        (result["waitpoints"][1]["rejected"].clone(), result["waitpoints"][1]["error"]["code"].clone()),
        (true.into(), "NO".into())
    );
}

/// A set wait that is decided when it is made records its result and the run goes on; on
/// replay the same position returns the same entry. A set with a waitpoint that does not
/// exist, or belongs to another environment, is refused and writes nothing.
pub async fn a_set_wait_decided_when_made_records_its_result(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let (held, tokens) = held_run_and_tokens(&*store, &ids, 2).await;
    finish(&*store, &tokens[1].id, completed(5, "1")).await;

    let foreign_env = new_env(&*store, &ids, "prod").await;
    let foreign = create(&*store, &waitpoint(&ids, &foreign_env, at(2))).await;
    let unknown = Waitpoint { id: ids.waitpoint(at(2)), ..tokens[0].clone() };
    for stranger in [&foreign, &unknown] {
        let refused = set_wait(&held, 0, 1, &[&tokens[0], stranger], Vec::new());
        assert_eq!(
            write_one::<JournalOutcome>(&*store, WriteOp::RunWait(refused)).await,
            JournalOutcome::WaitpointNotFound
        );
    }
    assert!(super::journal(&*store, &held.id).await.unwrap().is_empty(), "nothing is written");
    assert!(store.run_waits(&held.id, 0).await.unwrap().is_empty());

    let any = set_wait(&held, 0, 1, &[&tokens[0], &tokens[1]], Vec::new());
    let JournalOutcome::Recorded(entry) = write_one(&*store, WriteOp::RunWait(any.clone())).await else {
        panic!("the decided wait was not recorded");
    };
    assert_eq!((entry.kind, entry.name.as_str()), (JournalKind::WaitSet, "any of 2"));
    assert_eq!(decided(entry.result.as_deref().unwrap()), (true, vec![None, Some(true)]));
    assert!(matches!(store.run_get(&held.id).await.unwrap().state, RunState::Executing { .. }));
    assert_eq!(write_one::<JournalOutcome>(&*store, WriteOp::RunWait(any)).await, JournalOutcome::Recorded(entry));
    let other = set_wait(&held, 0, 2, &[&tokens[0], &tokens[1]], Vec::new());
    assert!(
        matches!(write_one(&*store, WriteOp::RunWait(other)).await, JournalOutcome::Diverged(_)),
        "the condition is part of the operation"
    );
}

/// Both waitpoints of an all-of-2 wait finish in one batch: the run resumes once, with both
/// results.
pub async fn waitpoints_finishing_together_resume_their_run_once(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let (held, tokens) = held_run_and_tokens(&*store, &ids, 2).await;
    let all = set_wait(&held, 0, 2, &[&tokens[0], &tokens[1]], Vec::new());
    assert!(matches!(write_one(&*store, WriteOp::RunWait(all)).await, JournalOutcome::Suspended(_)));
    let finishes = tokens
        .iter()
        .map(|t| {
            WriteOp::Finish(crate::Finish {
                id: t.id.clone(),
                environment_id: None,
                finishing: completed(20, "1"),
                hand_to: Takers::default(),
            })
        })
        .collect();
    let outcomes = store.write_batch(finishes).await.unwrap();
    let resumed: Vec<&Resumed> = outcomes
        .iter()
        .map(|o| match o {
            WriteOutcome::Finish(FinishOutcome::Finished(_, resumed)) => resumed,
            other => panic!("not finished: {other:?}"),
        })
        .collect();
    let runs: Vec<_> = resumed.iter().flat_map(|r| r.runs()).collect();
    assert_eq!(runs, std::slice::from_ref(&held.id), "resumed once");
    assert_eq!(decided(&wait_result(&*store, &held, 0).await.unwrap()), (true, vec![Some(true), Some(true)]));
}

/// A set may hold points in time: any of a token and a datetime waitpoint the wait creates
/// resumes at the deadline with the datetime's completion.
pub async fn a_set_wait_on_a_token_or_a_deadline_resumes_at_the_deadline(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let (held, tokens) = held_run_and_tokens(&*store, &ids, 1).await;
    let env = store.environment_by_id(&held.environment_id).await.unwrap();
    let deadline: Timestamp = at(60_000);
    let datetime =
        Waitpoint { kind: WaitpointKind::Datetime, timeout_at: Some(deadline), ..waitpoint(&ids, &env, at(10)) };
    let wait = set_wait(&held, 0, 1, &[&tokens[0], &datetime], vec![datetime.clone()]);
    assert!(matches!(write_one(&*store, WriteOp::RunWait(wait)).await, JournalOutcome::Suspended(_)));
    assert_eq!(store.waitpoint_get(&datetime.id).await.unwrap(), datetime, "created by the wait");
    assert_eq!(store.waitpoint_timeouts_next().await.unwrap(), Some(deadline));
    let FinishOutcome::Finished(done, resumed) =
        finish(&*store, &datetime.id, Finishing::Deadline { at: deadline }).await
    else {
        panic!("the deadline did not apply");
    };
    assert_eq!(done.state, WaitpointState::Completed { at: deadline, via: CompletedVia::Datetime, output: None });
    assert_eq!(resumed.queued, std::slice::from_ref(&held.id));
    assert_eq!(decided(&wait_result(&*store, &held, 0).await.unwrap()), (true, vec![None, Some(true)]));
}

/// Finishes in one batch decide a set as they would one at a time: 2 of 3 all completed
/// together resumes at the second, which reports the resume, and the third is recorded as
/// still pending, whatever order the tokens' ids are in.
pub async fn finishes_in_one_batch_decide_a_set_in_the_batchs_order(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let (held, tokens) = held_run_and_tokens(&*store, &ids, 3).await;
    let wait = set_wait(&held, 0, 2, &[&tokens[0], &tokens[1], &tokens[2]], Vec::new());
    assert!(matches!(write_one(&*store, WriteOp::RunWait(wait)).await, JournalOutcome::Suspended(_)));
    let finishes = [2, 0, 1]
        .into_iter()
        .map(|n| {
            WriteOp::Finish(crate::Finish {
                id: tokens[n].id.clone(),
                environment_id: None,
                finishing: completed(20, "1"),
                hand_to: Takers::default(),
            })
        })
        .collect();
    let outcomes = store.write_batch(finishes).await.unwrap();
    let resumed: Vec<Vec<_>> = outcomes
        .iter()
        .map(|o| match o {
            WriteOutcome::Finish(FinishOutcome::Finished(_, resumed)) => resumed.runs(),
            other => panic!("not finished: {other:?}"),
        })
        .collect();
    assert_eq!(resumed, [vec![], vec![held.id.clone()], vec![]], "the second finish decides");
    let result = decided(&wait_result(&*store, &held, 0).await.unwrap());
    assert_eq!(result, (true, vec![Some(true), None, Some(true)]), "token 1 finished after the set was decided");
}
