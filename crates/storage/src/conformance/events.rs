//! The part of the conformance suite about the event log: each committed change that tells of
//! a token or a run ending appends one event, in order, and nothing else does.

use waitpoint_types::event::{Event, EventKind};
use waitpoint_types::{CompletedVia, Environment, IdGenerator, Rejection, Waitpoint};

use super::runs::{claim_one, create_run, end, run, worker};
use super::{TestDatabase, at, completed, create, finish, new_env, waitpoint};
use crate::{Finishing, RunOutcome, Store, WriteOp};

async fn all(store: &dyn Store, env: &Environment) -> Vec<Event> {
    store.events_after(&env.id, 0, &[], 1_000).await.expect("events_after failed")
}

fn kinds(events: &[Event]) -> Vec<(EventKind, String)> {
    events.iter().map(|event| (event.event.kind, event.event.subject.clone())).collect()
}

/// Creates, finishes of every kind and run ends append their events in order, with the
/// subject's tags; what changed nothing (an idempotent create, a repeated completion, a
/// deadline not yet due) appends none; another environment sees none of them.
pub async fn changes_append_their_events_in_order(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let other = new_env(&*store, &ids, "prod").await;
    assert_eq!(store.events_head().await.unwrap(), 0);

    let keyed =
        Waitpoint { idempotency_key: Some("k".into()), tags: vec!["order:1".into()], ..waitpoint(&ids, &env, at(0)) };
    let keyed = create(&*store, &keyed).await;
    let again = Waitpoint { idempotency_key: Some("k".into()), ..waitpoint(&ids, &env, at(1)) };
    store.write_batch(vec![WriteOp::Create(again)]).await.unwrap();
    finish(&*store, &keyed.id, completed(2, "1")).await;
    finish(&*store, &keyed.id, completed(3, "2")).await;

    let due = create(&*store, &Waitpoint { timeout_at: Some(at(10)), ..waitpoint(&ids, &env, at(4)) }).await;
    finish(&*store, &due.id, Finishing::Deadline { at: at(9) }).await;
    finish(&*store, &due.id, Finishing::Deadline { at: at(10) }).await;
    let rejected = create(&*store, &waitpoint(&ids, &env, at(11))).await;
    let error = Rejection { message: "no".into(), code: "NO".into(), data: None };
    finish(&*store, &rejected.id, Finishing::Reject { at: at(12), via: CompletedVia::SecretKey, error }).await;
    create(&*store, &waitpoint(&ids, &other, at(13))).await;

    let task = create_run(&*store, &run(&ids, &env, "t", at(14))).await;
    let held = claim_one(&*store, &env, &worker(&ids), "t", at(15)).await.run;
    end(&*store, &held, RunOutcome::Completed { output: "1".into() }, at(16)).await;

    let events = all(&*store, &env).await;
    let (k, d, r, t) = (keyed.id.public(), due.id.public(), rejected.id.public(), task.id.public());
    assert_eq!(
        kinds(&events),
        [
            (EventKind::WaitpointCreated, k.clone()),
            (EventKind::WaitpointCompleted, k),
            (EventKind::WaitpointCreated, d.clone()),
            (EventKind::WaitpointTimedOut, d),
            (EventKind::WaitpointCreated, r.clone()),
            (EventKind::WaitpointRejected, r),
            (EventKind::RunCompleted, t),
        ]
    );
    assert!(events.windows(2).all(|pair| pair[0].seq < pair[1].seq), "positions grow");
    assert_eq!(events[0].event.tags, ["order:1"]);
    assert_eq!(events[1].event.data["status"], "COMPLETED", "{}", events[1].event.data);
    assert_eq!(events[1].event.at, at(2));
    assert!(store.events_head().await.unwrap() >= events[6].seq);
    assert_eq!(kinds(&all(&*store, &other).await).len(), 1, "each environment sees its own");

    let later = store.events_after(&env.id, events[3].seq, &[], 2).await.unwrap();
    assert_eq!(later.iter().map(|event| event.seq).collect::<Vec<_>>(), [events[4].seq, events[5].seq]);
    let finished = [EventKind::WaitpointCompleted, EventKind::RunCompleted];
    let only = store.events_after(&env.id, 0, &finished, 100).await.unwrap();
    assert_eq!(only.iter().map(|event| event.seq).collect::<Vec<_>>(), [events[1].seq, events[6].seq]);
}

/// A batch that fails appends nothing: the log tells only of changes that committed.
pub async fn a_failed_batch_appends_no_event(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    let token = waitpoint(&ids, &env, at(0));
    let ops =
        vec![WriteOp::Create(waitpoint(&ids, &env, at(0))), WriteOp::Create(token.clone()), WriteOp::Create(token)];
    assert!(store.write_batch(ops).await.is_err(), "a duplicate id fails the batch");
    assert_eq!(all(&*store, &env).await, Vec::new());
}

/// A purge deletes, from the head of the log, the events appended before its cutoff, at most
/// `limit` of them, and nothing newer.
pub async fn old_events_are_purged_from_the_head_of_the_log(db: &dyn TestDatabase) {
    let store = db.open().await;
    let ids = IdGenerator::new();
    let env = new_env(&*store, &ids, "dev").await;
    for n in 0..5 {
        create(&*store, &waitpoint(&ids, &env, at(n * 1_000))).await;
    }
    assert_eq!(store.events_purge(at(2_500), 2).await.unwrap(), 2, "at most limit");
    assert_eq!(store.events_purge(at(2_500), 10).await.unwrap(), 1);
    assert_eq!(store.events_purge(at(2_500), 10).await.unwrap(), 0);
    let left: Vec<_> = all(&*store, &env).await.into_iter().map(|event| event.event.at).collect();
    assert_eq!(left, [at(3_000), at(4_000)]);
}
