//! The part of the conformance suite about keeping tokens alive: heartbeats push a token's
//! heartbeat deadline, extends its `timeout_at`, and the timeout loop finds whichever comes
//! first.

use std::time::Duration;

use waitpoint_types::{CompletedVia, Environment, Heartbeat, IdGenerator, Waitpoint, WaitpointId, WaitpointState};

use super::{TestDatabase, at, completed, create, finish, new_env, waitpoint, write_one};
use crate::{FinishOutcome, Finishing, Prolong, ProlongOutcome, ProlongRefusal, Prolonging, Store, WriteOp};

const EVERY: Duration = Duration::from_secs(10);

/// A waiting token of `env` created at `at(0)` with a heartbeat every [`EVERY`] (first due at
/// `at(10_000)`) and `timeout_at` at `at(100_000)`.
fn beating(ids: &IdGenerator, env: &Environment) -> Waitpoint {
    Waitpoint {
        timeout_at: Some(at(100_000)),
        heartbeat: Some(Heartbeat { every: EVERY, deadline: at(10_000) }),
        ..waitpoint(ids, env, at(0))
    }
}

fn prolong(env: &Environment, id: &WaitpointId, at_ms: i64, prolonging: Prolonging) -> WriteOp {
    WriteOp::Prolong(Prolong { id: id.clone(), environment_id: env.id.clone(), at: at(at_ms), prolonging })
}

async fn beat(store: &dyn Store, env: &Environment, id: &WaitpointId, at_ms: i64) -> ProlongOutcome {
    write_one(store, prolong(env, id, at_ms, Prolonging::Heartbeat)).await
}

/// A heartbeat moves the heartbeat deadline to its moment plus the interval, and nothing else;
/// it reads back; a token of another environment is not found; a token without a heartbeat
/// refuses one.
pub async fn a_heartbeat_moves_only_the_heartbeat_deadline(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let token = create(&*store, &beating(&ids, &env)).await;
    assert_eq!(store.waitpoint_get(&token.id).await.unwrap(), token, "the heartbeat reads back");

    let ProlongOutcome::Prolonged(beaten) = beat(&*store, &env, &token.id, 4_000).await else {
        panic!("a heartbeat in time was refused");
    };
    assert_eq!(
        beaten,
        Waitpoint { heartbeat: Some(Heartbeat { every: EVERY, deadline: at(14_000) }), ..token.clone() }
    );
    assert_eq!(store.waitpoint_get(&token.id).await.unwrap(), beaten, "the new deadline is stored");

    let other = new_env(&*store, &ids, "prod").await;
    assert_eq!(beat(&*store, &other, &token.id, 5_000).await, ProlongOutcome::NotFound);
    let plain = create(&*store, &waitpoint(&ids, &env, at(0))).await;
    assert_eq!(
        beat(&*store, &env, &plain.id, 5_000).await,
        ProlongOutcome::Refused(plain, ProlongRefusal::NoHeartbeat)
    );
}

/// A token whose heartbeat deadline passed is found by the timeout loop and times out as having
/// missed its heartbeat; a heartbeat that comes late changes nothing, before the loop and after.
pub async fn a_missed_heartbeat_times_the_token_out(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let token = create(&*store, &beating(&ids, &env)).await;
    assert_eq!(store.waitpoint_timeouts_next().await.unwrap(), Some(at(10_000)), "the heartbeat comes first");
    assert_eq!(store.waitpoint_timeouts_due(at(9_999), 10).await.unwrap(), Vec::<WaitpointId>::new());
    assert_eq!(store.waitpoint_timeouts_due(at(10_000), 10).await.unwrap(), std::slice::from_ref(&token.id));

    let late = beat(&*store, &env, &token.id, 10_000).await;
    assert_eq!(late, ProlongOutcome::Refused(token.clone(), ProlongRefusal::Missed));
    let FinishOutcome::Finished(timed_out, _) =
        finish(&*store, &token.id, Finishing::Deadline { at: at(10_003) }).await
    else {
        panic!("the missed heartbeat did not time the token out");
    };
    assert_eq!(timed_out.state, WaitpointState::TimedOut { at: at(10_003), via: Some(CompletedVia::MissedHeartbeat) });
    assert_eq!(store.waitpoint_timeouts_next().await.unwrap(), None);
    let after = beat(&*store, &env, &token.id, 10_004).await;
    assert_eq!(after, ProlongOutcome::Refused(timed_out, ProlongRefusal::Finished));
}

/// The timeout loop finds tokens by whichever of their deadlines comes first, each once, in
/// that order.
pub async fn timeouts_are_found_by_the_earlier_of_timeout_and_heartbeat(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let by_heartbeat = create(&*store, &beating(&ids, &env)).await;
    let by_timeout = create(&*store, &Waitpoint { timeout_at: Some(at(5_000)), ..waitpoint(&ids, &env, at(0)) }).await;
    let both_due = Waitpoint {
        timeout_at: Some(at(7_000)),
        heartbeat: Some(Heartbeat { every: EVERY, deadline: at(6_000) }),
        ..waitpoint(&ids, &env, at(0))
    };
    let both_due = create(&*store, &both_due).await;

    assert_eq!(store.waitpoint_timeouts_next().await.unwrap(), Some(at(5_000)));
    assert_eq!(
        store.waitpoint_timeouts_due(at(20_000), 10).await.unwrap(),
        [by_timeout.id.clone(), both_due.id.clone(), by_heartbeat.id.clone()]
    );
    assert_eq!(store.waitpoint_timeouts_due(at(20_000), 2).await.unwrap(), [by_timeout.id, both_due.id.clone()]);
    let FinishOutcome::Finished(done, _) = finish(&*store, &both_due.id, Finishing::Deadline { at: at(7_000) }).await
    else {
        panic!("not timed out");
    };
    assert_eq!(done.state, WaitpointState::TimedOut { at: at(7_000), via: None }, "the hard timeout says so");
}

/// An extend moves `timeout_at` later, never earlier, and only while the token waits and is
/// not due; its heartbeat stays as it is.
pub async fn an_extend_moves_the_timeout_only_later(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let token = create(&*store, &beating(&ids, &env)).await;
    let extend = |at_ms, to| prolong(&env, &token.id, at_ms, Prolonging::Extend { timeout_at: at(to) });

    let ProlongOutcome::Prolonged(extended) = write_one(&*store, extend(1_000, 500_000)).await else {
        panic!("an extend was refused");
    };
    assert_eq!(extended, Waitpoint { timeout_at: Some(at(500_000)), ..token.clone() });
    let earlier: ProlongOutcome = write_one(&*store, extend(2_000, 400_000)).await;
    assert_eq!(earlier, ProlongOutcome::Refused(extended.clone(), ProlongRefusal::NotLater));
    let forever = create(&*store, &waitpoint(&ids, &env, at(0))).await;
    let op = prolong(&env, &forever.id, 2_000, Prolonging::Extend { timeout_at: at(9_000) });
    assert_eq!(
        write_one::<ProlongOutcome>(&*store, op).await,
        ProlongOutcome::Refused(forever, ProlongRefusal::NotLater)
    );

    finish(&*store, &token.id, completed(3_000, "1")).await;
    let finished = store.waitpoint_get(&token.id).await.unwrap();
    let after: ProlongOutcome = write_one(&*store, extend(4_000, 900_000)).await;
    assert_eq!(after, ProlongOutcome::Refused(finished, ProlongRefusal::Finished));
}

/// Heartbeats in one batch apply one after the other, as they would alone: the last one's
/// deadline stands, and each is answered with the token as it made it.
pub async fn heartbeats_in_one_batch_apply_in_order(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let a = create(&*store, &beating(&ids, &env)).await;
    let b = create(&*store, &beating(&ids, &env)).await;
    let ops = vec![
        prolong(&env, &a.id, 1_000, Prolonging::Heartbeat),
        prolong(&env, &b.id, 1_500, Prolonging::Heartbeat),
        prolong(&env, &a.id, 2_000, Prolonging::Heartbeat),
    ];
    let outcomes: Vec<ProlongOutcome> = store
        .write_batch(ops)
        .await
        .unwrap()
        .into_iter()
        .map(|outcome| ProlongOutcome::try_from(outcome).unwrap())
        .collect();
    let deadline = |outcome: &ProlongOutcome| match outcome {
        ProlongOutcome::Prolonged(token) => token.heartbeat.map(|heartbeat| heartbeat.deadline),
        other => panic!("refused: {other:?}"),
    };
    let deadlines: Vec<_> = outcomes.iter().map(deadline).collect();
    assert_eq!(deadlines, [Some(at(11_000)), Some(at(11_500)), Some(at(12_000))]);
    let stored = store.waitpoint_get(&a.id).await.unwrap();
    assert_eq!(stored.heartbeat.map(|heartbeat| heartbeat.deadline), Some(at(12_000)));
}
