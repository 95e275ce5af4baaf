//! What the conformance suite does not reach: batches racing each other on several
//! connections, as the engine runs them (`write_concurrency() > 1`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use waitpoint_postgres::PostgresStore;
use waitpoint_postgres::testing::PostgresSchema;
use waitpoint_storage::conformance::{self, at};
use waitpoint_storage::{
    ClaimOutcome, CreateOutcome, Finish, FinishOutcome, Finishing, JournalOutcome, ListQuery, RunClaim, RunWait,
    StorageError, Store, Takers, WriteOp, WriteOutcome,
};
use waitpoint_types::run::wait_set_name;
use waitpoint_types::{Environment, IdGenerator, JournalKind, Timestamp, Waitpoint};

const RACERS: usize = 8;

/// A fresh schema with a store on it and an environment, or `None` when the test is skipped.
async fn setup() -> Option<(PostgresSchema, Arc<PostgresStore>, IdGenerator, Environment)> {
    let db = PostgresSchema::fresh().await?;
    let store = Arc::new(db.store().await);
    let ids = IdGenerator::new();
    let env = conformance::environment(&ids, "dev");
    store.environment_create(&env).await.expect("environment_create failed");
    Some((db, store, ids, env))
}

/// A waiting token tagged `t`.
fn waitpoint(ids: &IdGenerator, env: &Environment, created_at: Timestamp) -> Waitpoint {
    Waitpoint { tags: vec!["t".into()], ..conformance::waitpoint(ids, env, created_at) }
}

fn finish(w: &Waitpoint, finishing: Finishing) -> WriteOp {
    WriteOp::Finish(Finish { id: w.id.clone(), environment_id: None, finishing, hand_to: Takers::default() })
}

fn completed(at_ms: i64) -> Finishing {
    conformance::completed(at_ms, "1")
}

/// Runs each create in a batch of its own, all at once, and returns the outcomes.
async fn race_creates(store: &Arc<PostgresStore>, creates: Vec<Waitpoint>) -> Vec<WriteOutcome> {
    let tasks: Vec<_> = creates
        .into_iter()
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move { store.write_batch(vec![WriteOp::Create(w)]).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("task panicked").expect("write_batch failed"));
    }
    outcomes
}

/// Exactly one outcome is `Created`; every other is `Existing` with that waitpoint.
fn assert_one_created(outcomes: &[WriteOutcome]) -> Waitpoint {
    let created: Vec<_> = outcomes
        .iter()
        .filter_map(|o| if let WriteOutcome::Create(CreateOutcome::Created(w)) = o { Some(w) } else { None })
        .collect();
    assert_eq!(created.len(), 1, "exactly one create wins: {outcomes:?}");
    let winner = created[0].clone();
    for outcome in outcomes {
        assert!(
            matches!(outcome, WriteOutcome::Create(CreateOutcome::Created(_)))
                || *outcome == WriteOutcome::Create(CreateOutcome::Existing(winner.clone())),
            "{outcome:?}"
        );
    }
    winner
}

fn by_key(env: &Environment, key: &str) -> ListQuery {
    ListQuery {
        environment_id: env.id.clone(),
        statuses: Vec::new(),
        idempotency_key: Some(key.into()),
        tags: Vec::new(),
        window: waitpoint_storage::Window::newest(100),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_with_one_key_make_one_waitpoint() {
    let Some((_db, store, ids, env)) = setup().await else { return };
    let creates = (0..RACERS)
        .map(|_| {
            let mut w = waitpoint(&ids, &env, at(0));
            w.idempotency_key = Some("same".into());
            w
        })
        .collect();
    let winner = assert_one_created(&race_creates(&store, creates).await);
    assert_eq!(store.waitpoint_list(&by_key(&env, "same")).await.unwrap(), [winner]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_replace_an_expired_key_once() {
    let Some((_db, store, ids, env)) = setup().await else { return };
    let mut old = waitpoint(&ids, &env, at(0));
    old.idempotency_key = Some("k".into());
    old.idempotency_key_expires_at = Some(at(1_000));
    store.write_batch(vec![WriteOp::Create(old.clone())]).await.unwrap();

    let creates = (0..RACERS)
        .map(|_| {
            let mut w = waitpoint(&ids, &env, at(2_000));
            w.idempotency_key = Some("k".into());
            w.idempotency_key_expires_at = Some(at(60_000));
            w
        })
        .collect();
    let winner = assert_one_created(&race_creates(&store, creates).await);
    let old_now = store.waitpoint_get(&old.id).await.unwrap();
    assert_eq!((old_now.idempotency_key, old_now.inactive_idempotency_key.as_deref()), (None, Some("k")));
    let listed: Vec<_> = store.waitpoint_list(&by_key(&env, "k")).await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(listed, [winner.id, old.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completion_racing_a_timeout_has_one_outcome() {
    let Some((_db, store, ids, env)) = setup().await else { return };
    for round in 0..20 {
        let mut w = waitpoint(&ids, &env, at(0));
        w.timeout_at = Some(at(0));
        store.write_batch(vec![WriteOp::Create(w.clone())]).await.unwrap();

        let (completion, timeout) = tokio::join!(
            store.write_batch(vec![finish(&w, completed(1))]),
            store.write_batch(vec![finish(&w, Finishing::Deadline { at: at(1) })]),
        );
        let outcomes = [completion.unwrap().remove(0), timeout.unwrap().remove(0)];
        let current = store.waitpoint_get(&w.id).await.unwrap();
        let finished = outcomes
            .iter()
            .filter(|o| {
                **o == WriteOutcome::Finish(FinishOutcome::Finished(
                    current.clone(),
                    waitpoint_storage::Resumed::default(),
                ))
            })
            .count();
        let unchanged =
            outcomes.iter().filter(|o| **o == WriteOutcome::Finish(FinishOutcome::Unchanged(current.clone()))).count();
        assert_eq!((finished, unchanged), (1, 1), "round {round}: {outcomes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_loses_a_deadlock_runs_again() {
    let Some((db, store, ids, env)) = setup().await else { return };
    let (w1, w2) = (waitpoint(&ids, &env, at(0)), waitpoint(&ids, &env, at(1)));
    store.write_batch(vec![WriteOp::Create(w1.clone()), WriteOp::Create(w2.clone())]).await.unwrap();

    // Another transaction holds w2; the batch locks w1, then waits for w2.
    let other = waitpoint_postgres::testing::admin(&db.url()).await.expect("connect");
    let lock = "SELECT 1 FROM waitpoints WHERE id = $1 FOR UPDATE";
    // Only the batch looks for the deadlock (after the default second): on a loaded machine the
    // batch may wait a second before `other` closes the cycle, and `other` must not find it first.
    other.batch_execute("SET deadlock_timeout = '1min'; BEGIN").await.unwrap();
    other.execute(lock, &[&w2.id.internal()]).await.unwrap();
    let batch = {
        let store = store.clone();
        let ops = vec![finish(&w1, completed(1)), finish(&w2, completed(2))];
        tokio::spawn(async move { store.write_batch(ops).await })
    };
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))";
    let deadline = Instant::now() + Duration::from_secs(10);
    while other.query_one(waiting, &[]).await.unwrap().get::<_, i64>(0) == 0 {
        assert!(Instant::now() < deadline, "the batch never waited for the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Closing the cycle: the batch, which waited first, detects the deadlock and is rolled back.
    other.execute(lock, &[&w1.id.internal()]).await.expect("the batch should be the deadlock victim");
    other.batch_execute("COMMIT").await.unwrap();

    let outcomes = batch.await.unwrap().expect("the batch runs again after losing the deadlock");
    assert!(outcomes.iter().all(|o| matches!(o, WriteOutcome::Finish(FinishOutcome::Finished(..)))), "{outcomes:?}");
}

#[tokio::test]
async fn a_failed_batch_writes_nothing() {
    let Some((_db, store, ids, env)) = setup().await else { return };
    let first = waitpoint(&ids, &env, at(0));
    let mut keyed = waitpoint(&ids, &env, at(1));
    keyed.idempotency_key = Some("k".into());
    let result = store
        .write_batch(vec![
            WriteOp::Create(first.clone()),
            WriteOp::Create(keyed.clone()),
            WriteOp::Create(first.clone()),
        ])
        .await;
    assert!(matches!(result, Err(StorageError::Conflict(_))), "{result:?}");
    for w in [&first, &keyed] {
        assert!(matches!(store.waitpoint_get(&w.id).await, Err(StorageError::NotFound)));
    }
    let mut query = by_key(&env, "k");
    assert!(store.waitpoint_list(&query).await.unwrap().is_empty());
    query.idempotency_key = None;
    query.tags = vec!["t".into()];
    assert!(store.waitpoint_list(&query).await.unwrap().is_empty(), "no tag rows are left behind");
    assert_eq!(
        store.write_batch(vec![WriteOp::Create(keyed.clone())]).await.unwrap(),
        [WriteOutcome::Create(CreateOutcome::Created(keyed))],
        "the key is free"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_starting_at_once_migrate_once() {
    let Some(db) = PostgresSchema::fresh().await else { return };
    let stores = tokio::join!(db.store(), db.store(), db.store(), db.store());
    let known = stores.0.schema_versions().await.unwrap().known;
    drop(stores);
    let client = waitpoint_postgres::testing::admin(&db.url()).await.expect("connect");
    let versions: Vec<i64> = client
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut once = versions.clone();
    once.dedup();
    assert_eq!(versions, once, "each version applied once");
    assert_eq!(versions.last(), Some(&known), "up to the newest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finishes_racing_on_the_waitpoints_of_a_set_resume_its_run_once() {
    let Some((_db, store, ids, env)) = setup().await else { return };
    let worker = ids.worker(at(0));
    for round in 0..20 {
        let task = format!("t{round}");
        let new = conformance::run(&ids, &env, &task, at(round));
        store.write_batch(vec![WriteOp::RunCreate(new)]).await.unwrap();
        let claim = RunClaim {
            environment_id: env.id.clone(),
            worker: worker.clone(),
            tasks: vec![(task, 1)],
            now: at(round),
            alive_since: at(round),
            sticky_for: Duration::ZERO,
            holding: Some(Vec::new()),
            handed_by: at(round),
            unread: Vec::new(),
            session: None,
        };
        let outcome = store.write_batch(vec![WriteOp::RunClaim(claim)]).await.unwrap().remove(0);
        let WriteOutcome::Claim(ClaimOutcome::Claimed { claims, .. }) = outcome else { panic!("{outcome:?}") };
        let held = claims[0].run.clone();
        let tokens: Vec<Waitpoint> = (0..3).map(|_| waitpoint(&ids, &env, at(round))).collect();
        store.write_batch(tokens.iter().cloned().map(WriteOp::Create).collect()).await.unwrap();
        let wait = RunWait {
            run: held.id.clone(),
            environment_id: env.id.clone(),
            epoch: held.epoch,
            seq: 0,
            kind: JournalKind::WaitSet,
            name: wait_set_name(2, 3),
            waitpoints: tokens.iter().map(|t| t.id.clone()).collect(),
            needed: 2,
            create: Vec::new(),
            at: at(round),
        };
        let suspended = store.write_batch(vec![WriteOp::RunWait(wait)]).await.unwrap().remove(0);
        assert!(matches!(suspended, WriteOutcome::Journal(JournalOutcome::Suspended(_))), "{suspended:?}");

        let racers: Vec<_> = tokens
            .iter()
            .map(|token| {
                let (store, op) = (store.clone(), finish(token, completed(round + 1)));
                tokio::spawn(async move { store.write_batch(vec![op]).await })
            })
            .collect();
        let mut resumed = Vec::new();
        for racer in racers {
            match racer.await.unwrap().unwrap().remove(0) {
                WriteOutcome::Finish(FinishOutcome::Finished(_, by)) => resumed.extend(by.runs()),
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(resumed, std::slice::from_ref(&held.id), "round {round}: resumed once");
        let journal = conformance::journal(&*store, &held.id).await.expect("the run exists");
        let result: serde_json::Value = serde_json::from_str(journal[0].result.as_deref().unwrap()).unwrap();
        assert_eq!(result["ok"], true, "round {round}: {result}");
    }
}

/// Batches appending events at once, on several connections, commit them in position order: a
/// reader that follows the log by position while they race misses none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_following_the_event_log_misses_nothing_while_batches_race() {
    let Some((_db, store, ids, env)) = setup().await else { return };
    let ids = Arc::new(ids);
    let writers: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, ids, env) = (store.clone(), ids.clone(), env.clone());
            tokio::spawn(async move {
                for round in 0..25 {
                    let ops = (0..4).map(|_| WriteOp::Create(waitpoint(&ids, &env, at(round)))).collect();
                    store.write_batch(ops).await.expect("write_batch failed");
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    let mut after = 0;
    let expected = RACERS * 25 * 4;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < expected && Instant::now() < deadline {
        let page = store.events_after(&env.id, after, &[], 50).await.expect("events_after failed");
        if let Some(last) = page.last() {
            after = last.seq;
        }
        seen.extend(page.into_iter().map(|event| event.event.subject));
    }
    for writer in writers {
        writer.await.expect("writer panicked");
    }
    let all = store.events_after(&env.id, 0, &[], expected + 1).await.expect("events_after failed");
    assert_eq!(all.len(), expected);
    assert_eq!(seen, all.into_iter().map(|event| event.event.subject).collect::<Vec<_>>(), "the reader skipped some");
}
