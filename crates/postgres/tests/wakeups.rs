//! Wake-ups across nodes: one `NOTIFY` per committed batch that wakes something, heard by every
//! subscription on the schema, and a listening connection that comes back after it is lost.

use std::time::Duration;

use futures_util::StreamExt;
use waitpoint_postgres::testing::PostgresSchema;
use waitpoint_postgres::{PostgresStore, WakeupMode};
use waitpoint_storage::conformance::{self, at};
use waitpoint_storage::{Store, Wakeup, WakeupStream, WriteOp};
use waitpoint_types::{Environment, IdGenerator, Waitpoint};

/// Longer than any wake-up takes to arrive; reached only when one never comes.
const ARRIVES_WITHIN: Duration = Duration::from_secs(10);

/// A fresh schema with a store on it and an environment, or `None` when the test is skipped.
async fn setup() -> Option<(PostgresSchema, PostgresStore, IdGenerator, Environment)> {
    let db = PostgresSchema::fresh().await?;
    let store = db.store().await;
    let ids = IdGenerator::new();
    let env = conformance::environment(&ids, "dev");
    store.environment_create(&env).await.expect("environment_create failed");
    Some((db, store, ids, env))
}

/// The next item of `wakeups`, which must come.
async fn next(wakeups: &mut WakeupStream) -> waitpoint_storage::Result<Wakeup> {
    tokio::time::timeout(ARRIVES_WITHIN, wakeups.next()).await.expect("no wake-up arrived").expect("the wake-ups ended")
}

fn token(ids: &IdGenerator, env: &Environment, timeout_ms: Option<i64>) -> WriteOp {
    WriteOp::Create(Waitpoint { timeout_at: timeout_ms.map(at), ..conformance::waitpoint(ids, env, at(0)) })
}

fn run(ids: &IdGenerator, env: &Environment) -> WriteOp {
    WriteOp::RunCreate(conformance::run(ids, env, "t", at(0)))
}

#[tokio::test]
async fn a_batch_that_wakes_something_notifies_once_when_it_commits() {
    let Some((db, store, ids, env)) = setup().await else { return };
    let mut wakeups = store.wakeups().expect("a store that listens has wake-ups");
    assert_eq!(next(&mut wakeups).await.unwrap(), Wakeup::Reconcile, "a subscription starts with a reconcile");

    let mut many = (0..10).map(|_| run(&ids, &env)).collect::<Vec<_>>();
    many.push(token(&ids, &env, None));
    store.write_batch(many).await.unwrap();
    store.write_batch(vec![token(&ids, &env, None)]).await.unwrap();
    let twice = conformance::waitpoint(&ids, &env, at(0));
    let failing = vec![run(&ids, &env), WriteOp::Create(twice.clone()), WriteOp::Create(twice)];
    assert!(store.write_batch(failing).await.is_err(), "a duplicate id fails the batch");
    let polling = PostgresStore::connect_with(&db.url(), WakeupMode::Poll).await.unwrap();
    assert!(polling.wakeups().is_none(), "a store that polls has no wake-ups");
    polling.write_batch(vec![run(&ids, &env)]).await.unwrap();
    store.write_batch(vec![token(&ids, &env, Some(500)), token(&ids, &env, Some(300))]).await.unwrap();
    store.write_batch(vec![token(&ids, &env, Some(700)), run(&ids, &env)]).await.unwrap();

    // Nothing of the batches that woke nothing, failed, or went through the store that polls.
    let mut arrived = Vec::new();
    for _ in 0..4 {
        arrived.push(next(&mut wakeups).await.unwrap());
    }
    assert_eq!(
        arrived,
        [Wakeup::RunsReady, Wakeup::DeadlineMoved(at(300)), Wakeup::RunsReady, Wakeup::DeadlineMoved(at(700))]
    );

    let other = PostgresSchema::fresh().await.expect("a second schema");
    let elsewhere = other.store().await;
    let other_env = conformance::environment(&ids, "dev");
    elsewhere.environment_create(&other_env).await.unwrap();
    elsewhere.write_batch(vec![run(&ids, &other_env)]).await.unwrap();
    store.write_batch(vec![token(&ids, &env, Some(900))]).await.unwrap();
    assert_eq!(next(&mut wakeups).await.unwrap(), Wakeup::DeadlineMoved(at(900)), "another schema wakes nothing here");
}

#[tokio::test]
async fn a_lost_listening_connection_comes_back_and_asks_for_a_reconcile() {
    let Some((db, store, ids, env)) = setup().await else { return };
    let mut wakeups = store.wakeups().expect("a store that listens has wake-ups");
    assert_eq!(next(&mut wakeups).await.unwrap(), Wakeup::Reconcile);
    assert_eq!(db.listeners().await, 1);

    assert_eq!(db.end_listeners().await, 1);
    assert!(next(&mut wakeups).await.is_err(), "the loss is told");
    assert_eq!(next(&mut wakeups).await.unwrap(), Wakeup::Reconcile, "what was sent meanwhile is lost");
    assert_eq!(db.listeners().await, 1);
    store.write_batch(vec![run(&ids, &env)]).await.unwrap();
    assert_eq!(next(&mut wakeups).await.unwrap(), Wakeup::RunsReady, "wake-ups arrive again");

    drop(wakeups);
    let closed = async {
        while db.listeners().await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(ARRIVES_WITHIN, closed).await.expect("dropping the stream closes its connection");
}
