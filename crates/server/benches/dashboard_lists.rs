//! What a dashboard page costs with a million tokens stored: seeds an SQLite database (or a
//! PostgreSQL schema, with `WAITPOINT_BENCH_POSTGRES_URL`) with `WAITPOINT_BENCH_TOKENS` tokens
//! (default 1,000,000: tags from 5,000 users and 20 teams, created over 30 days, nine in ten
//! completed), then renders each page in process (router and engine, no socket) and prints
//! p50 / p99 / max per page. PostgreSQL is vacuumed and analyzed after seeding, as autovacuum
//! would have done by the time a table holds that many tokens. Run with:
//!
//! ```sh
//! cargo bench -p waitpoint-server --bench dashboard_lists
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Clock, Engine, EngineConfig, SystemClock};
use waitpoint_storage::{Finish, Finishing, Store, Takers, WriteOp};
use waitpoint_types::{CompletedVia, IdGenerator, Output, Timestamp, Waitpoint, WaitpointKind, WaitpointState};

const BATCH: usize = 10_000;
const WARM_UP: usize = 20;
const SAMPLES: usize = 200;

#[tokio::main]
async fn main() {
    let tokens: usize = std::env::var("WAITPOINT_BENCH_TOKENS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::TempDir::new().unwrap();
    let postgres = std::env::var("WAITPOINT_BENCH_POSTGRES_URL").ok();
    let (store, backend): (Arc<dyn Store>, &str) = match &postgres {
        Some(url) => (Arc::new(waitpoint_postgres::PostgresStore::connect(url).await.unwrap()), "postgres"),
        None => (Arc::new(waitpoint_sqlite::SqliteStore::open(dir.path().join("db")).await.unwrap()), "sqlite"),
    };
    let clock = SystemClock;
    let dev = create_environment(&*store, &clock, "dev").await.unwrap();
    let started = Instant::now();
    seed(&*store, &dev, tokens, clock.now()).await;
    if let Some(url) = &postgres {
        let admin = waitpoint_postgres::testing::admin(url).await.unwrap();
        for table in ["waitpoints", "waitpoint_tags"] {
            admin.batch_execute(&format!("VACUUM ANALYZE {table}")).await.unwrap();
        }
    }
    println!("seeded {tokens} tokens in {:.1} s ({backend})", started.elapsed().as_secs_f64());

    let engine = Engine::start(store, Arc::new(SystemClock), EngineConfig::default());
    let router = waitpoint_server::app(engine.clone());
    let cookie = format!("waitpoint_session={}", engine.sign_in(dev.api_key.expose()).await.unwrap().cookie);
    let first = render(&router, &cookie, "/tokens").await.1;
    let after = first.split("after=").nth(1).and_then(|rest| rest.split(['"', '&']).next()).unwrap().to_owned();
    let newest = first.split("data-id=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_owned();

    println!("| page | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    for path in [
        "/tokens".to_owned(),
        format!("/tokens?after={after}"),
        "/tokens?status=WAITING".to_owned(),
        "/tokens?status=TIMED_OUT".to_owned(),
        "/tokens?tags=user%3A42".to_owned(),
        "/tokens?tags=team%3A3,team%3A4&status=WAITING".to_owned(),
        "/tokens?period=1d".to_owned(),
        format!("/tokens/{newest}"),
        "/".to_owned(),
        "/runs".to_owned(),
    ] {
        let mut times = Vec::with_capacity(SAMPLES);
        for i in 0..WARM_UP + SAMPLES {
            let (took, _) = render(&router, &cookie, &path).await;
            if i >= WARM_UP {
                times.push(took);
            }
        }
        times.sort();
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        let p99 = times[(times.len() * 99).div_ceil(100) - 1];
        println!("| `{path}` | {} | {} | {} |", ms(times[times.len() / 2]), ms(p99), ms(*times.last().unwrap()));
    }
    engine.shutdown().await;
}

/// Renders `path` for the session `cookie`: how long it took, and the page.
async fn render(router: &axum::Router, cookie: &str, path: &str) -> (Duration, String) {
    let request = Request::builder().uri(path).header(header::COOKIE, cookie).body(Body::empty()).unwrap();
    let started = Instant::now();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{path}");
    (took, String::from_utf8_lossy(&body).into_owned())
}

/// `count` tokens created over the 30 days before `now`; nine in ten then completed.
async fn seed(store: &dyn Store, dev: &waitpoint_types::Environment, count: usize, now: Timestamp) {
    let ids = IdGenerator::new();
    let span = Duration::from_secs(30 * 86_400);
    let start = now.saturating_sub(span);
    let step = span.as_millis() as f64 / count as f64;
    let mut created = 0;
    while created < count {
        let batch: Vec<Waitpoint> = (created..(created + BATCH).min(count))
            .map(|i| {
                let at = start.saturating_add(Duration::from_millis((i as f64 * step) as u64));
                Waitpoint {
                    id: ids.waitpoint(at),
                    kind: WaitpointKind::Manual,
                    environment_id: dev.id.clone(),
                    state: WaitpointState::Waiting,
                    idempotency_key: None,
                    inactive_idempotency_key: None,
                    idempotency_key_expires_at: None,
                    timeout_at: Some(now.saturating_add(Duration::from_millis(i as u64))),
                    heartbeat: None,
                    callback_verifier: None,
                    tags: vec![format!("user:{}", i % 5_000), format!("team:{}", i % 20)],
                    created_at: at,
                    approval: None,
                    output_schema: None,
                }
            })
            .collect();
        let finishes: Vec<WriteOp> = batch
            .iter()
            .enumerate()
            .filter(|(i, _)| (created + i) % 10 != 0)
            .map(|(_, w)| {
                WriteOp::Finish(Finish {
                    id: w.id.clone(),
                    environment_id: None,
                    finishing: Finishing::Complete {
                        at: w.created_at,
                        via: CompletedVia::SecretKey,
                        output: Some(Output::from_json_text(r#"{"status":"approved"}"#)),
                    },
                    hand_to: Takers::default(),
                })
            })
            .collect();
        created += batch.len();
        store.write_batch(batch.into_iter().map(WriteOp::Create).collect()).await.unwrap();
        store.write_batch(finishes).await.unwrap();
    }
}
