//! The retention loop over a real SQLite database, with a manual clock: it sweeps at start-up
//! and then on its schedule, deletes what finished longer ago than the retention, keeps what an
//! active idempotency key or a wait still needs, and stops with the engine.

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::watch;
use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig, EngineError, Principal, RetentionReport};
use waitpoint_sqlite::SqliteStore;
use waitpoint_storage::Purged;
use waitpoint_types::api::CreateTokenRequest;
use waitpoint_types::{Output, Timestamp};

const START: i64 = 1_764_000_000_000;
const DAY: Duration = Duration::from_secs(86_400);
/// The loop's schedule (`SWEEP_EVERY`).
const SWEEP_EVERY: Duration = Duration::from_secs(5 * 60);

/// Waits (on the report, not a timer) until the loop has done `sweeps` sweeps.
async fn after_sweep(report: &mut watch::Receiver<RetentionReport>, sweeps: u64) -> RetentionReport {
    *report.wait_for(|report| report.sweeps >= sweeps).await.unwrap()
}

#[tokio::test]
async fn retention_deletes_what_finished_longer_ago_on_its_schedule() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
    let dev = create_environment(&store, &clock, "dev").await.unwrap();
    let config = EngineConfig { retention: Some(30 * DAY), ..EngineConfig::default() };
    let engine = Engine::start(Arc::new(store), Arc::new(clock.clone()), config);
    let mut report = engine.retention();
    let first = after_sweep(&mut report, 1).await;
    assert_eq!((first.last_sweep_at, first.deleted), (Some(Timestamp::from_millis(START)), Purged::default()));

    let principal = Principal::SecretKey(dev.clone());
    let create = |request: CreateTokenRequest| {
        let (engine, dev) = (engine.clone(), dev.clone());
        async move { engine.create_token(&dev, &request).await.unwrap().waitpoint }
    };
    let output = Some(Output::from_json_text(r#"{"ok":true}"#));
    let done = create(CreateTokenRequest::new().timeout("none")).await;
    let keyed = create(CreateTokenRequest::new().timeout("none").idempotency_key("k").idempotency_key_ttl("60d")).await;
    for token in [&done, &keyed] {
        engine.complete_token(&principal, &token.id.public(), output.clone()).await.unwrap();
    }
    let waiting = create(CreateTokenRequest::new().timeout("none")).await;

    clock.advance(30 * DAY);
    let exactly_thirty_days = after_sweep(&mut report, 2).await;
    assert_eq!(exactly_thirty_days.deleted, Purged::default(), "finished exactly the retention ago: kept");

    clock.advance(SWEEP_EVERY);
    let swept = after_sweep(&mut report, 3).await;
    assert_eq!(swept.deleted, Purged { waitpoints: 1, runs: 0, journal_entries: 0, events: 5 });
    assert!(matches!(engine.get_token(&dev, &done.id.public()).await, Err(EngineError::NotFound(_))));
    for kept in [&keyed, &waiting] {
        assert!(engine.get_token(&dev, &kept.id.public()).await.is_ok(), "{} is kept", kept.id);
    }
    let again = create(CreateTokenRequest::new().idempotency_key("k")).await;
    assert_eq!(again.id, keyed.id, "the active key still finds its token");

    clock.advance(30 * DAY);
    let swept = after_sweep(&mut report, 4).await;
    assert_eq!(swept.deleted.waitpoints, 2, "the key expired: its token went too");
    assert!(matches!(engine.get_token(&dev, &keyed.id.public()).await, Err(EngineError::NotFound(_))));
    assert!(engine.get_token(&dev, &waiting.id.public()).await.is_ok(), "a waiting token stays, however old");
    engine.shutdown().await;
}
