//! What retention does to the database. Creates and completes `WAITPOINT_BENCH_TOKENS` tokens
//! (default 1,000,000) through the engine, on SQLite in a temporary directory (or a PostgreSQL
//! schema, with `WAITPOINT_BENCH_POSTGRES_URL`), and measures the database: that is its size
//! with retention off, which never deletes. Then it moves the engine's (manual) clock past the
//! retention (30 days) and its next sweep, waits until the retention loop has deleted them, and
//! measures again. Meanwhile a probe creates and completes tokens one at a time; its latency is
//! compared with the same probe's for 10 s before the sweep. PostgreSQL is analyzed after seeding,
//! as autovacuum would have done long before the tokens are 30 days old. PostgreSQL does not
//! shrink its files, so there the bench then runs [`CYCLES`] cycles of: a sweep deletes every
//! token, a `VACUUM` (as autovacuum would) makes their space reusable, and the same number of
//! tokens is created again. The database should stop growing, its space being reused. Run with:
//!
//! ```sh
//! cargo bench -p waitpoint-engine --bench retention
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Clock, Engine, EngineConfig, Principal, SystemClock};
use waitpoint_storage::Store;
use waitpoint_types::api::CreateTokenRequest;
use waitpoint_types::{Environment, Output};

const RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// The retention loop's schedule: the clock moves past the retention and one more sweep.
const SWEEP_EVERY: Duration = Duration::from_secs(5 * 60);
/// Requests in flight while seeding.
const SEEDERS: usize = 100;
const BASELINE: Duration = Duration::from_secs(10);
/// PostgreSQL: times everything is deleted, vacuumed and created again.
const CYCLES: usize = 2;

/// Where the bench's database is, to measure it.
enum Database {
    Sqlite(PathBuf),
    Postgres(tokio_postgres::Client),
}

impl Database {
    /// Bytes on disk: SQLite's file after a checkpoint (the write-ahead log emptied into it and
    /// truncated), with its page counts; PostgreSQL's tables with their indexes and TOAST.
    async fn size(&self) -> String {
        match self {
            Self::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
                let pragma =
                    |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0)).unwrap();
                let (pages, free) = (pragma("page_count"), pragma("freelist_count"));
                format!("{} ({pages} pages, {free} free)", mib(file_size(path)))
            }
            Self::Postgres(client) => {
                let row = client
                    .query_one(
                        "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                        &[],
                    )
                    .await
                    .unwrap();
                mib(u64::try_from(row.get::<_, i64>(0)).unwrap())
            }
        }
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[tokio::main]
async fn main() {
    let tokens: usize = std::env::var("WAITPOINT_BENCH_TOKENS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::TempDir::new().unwrap();
    let (store, database): (Arc<dyn Store>, Database) = match std::env::var("WAITPOINT_BENCH_POSTGRES_URL") {
        Ok(url) => {
            let store = waitpoint_postgres::PostgresStore::connect(&url).await.unwrap();
            (Arc::new(store), Database::Postgres(waitpoint_postgres::testing::admin(&url).await.unwrap()))
        }
        Err(_) => {
            let path = dir.path().join("waitpoint.db");
            (Arc::new(waitpoint_sqlite::SqliteStore::open(&path).await.unwrap()), Database::Sqlite(path))
        }
    };
    let backend = store.backend();
    let clock = ManualClock::new(SystemClock.now());
    let dev = create_environment(&*store, &clock, "dev").await.unwrap();
    let config = EngineConfig { retention: Some(RETENTION), ..EngineConfig::default() };
    let engine = Engine::start(store, Arc::new(clock.clone()), config);
    let mut report = engine.retention();
    report.wait_for(|report| report.sweeps >= 1).await.unwrap();

    let started = Instant::now();
    seed(&engine, &dev, tokens).await;
    let seeding = started.elapsed();
    println!(
        "{backend}: created and completed {tokens} tokens in {:.1} s ({:.0} pairs/s)",
        seeding.as_secs_f64(),
        tokens as f64 / seeding.as_secs_f64()
    );
    if let Database::Postgres(client) = &database {
        client.batch_execute("ANALYZE").await.unwrap();
    }
    let kept = database.size().await;
    println!("with every token kept (retention off): {kept}");
    let baseline = probe(engine.clone(), dev.clone(), Arc::new(AtomicBool::new(false)), Some(BASELINE)).await;

    clock.advance(RETENTION + SWEEP_EVERY);
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn(probe(engine.clone(), dev.clone(), stop.clone(), None));
    let started = Instant::now();
    let swept = *report.wait_for(|report| report.sweeps >= 2).await.unwrap();
    let sweep = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let during = during.await.unwrap();
    println!(
        "the sweep deleted {} waitpoints in {:.1} s ({:.0} a second)",
        swept.deleted.waitpoints,
        sweep.as_secs_f64(),
        swept.deleted.waitpoints as f64 / sweep.as_secs_f64()
    );
    println!("after the sweep: {}", database.size().await);
    println!("| probe (create, complete; one at a time) | operations | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    for (what, mut times) in [("before the sweep", baseline), ("during the sweep", during)] {
        times.sort();
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        let p99 = times[(times.len() * 99).div_ceil(100) - 1];
        let (p50, max) = (times[times.len() / 2], *times.last().unwrap());
        println!("| {what} | {} | {} | {} | {} |", times.len(), ms(p50), ms(p99), ms(max));
    }

    if let Database::Postgres(client) = &database {
        for cycle in 1..=CYCLES {
            clock.advance(RETENTION + SWEEP_EVERY);
            let sweeps = report.borrow().sweeps + 1;
            report.wait_for(|report| report.sweeps >= sweeps).await.unwrap();
            client.batch_execute("VACUUM").await.unwrap();
            let emptied = database.size().await;
            seed(&engine, &dev, tokens).await;
            client.batch_execute("ANALYZE").await.unwrap();
            println!(
                "cycle {cycle}: all deleted and vacuumed {emptied}; {tokens} tokens again {}",
                database.size().await
            );
        }
    }
    engine.shutdown().await;
}

/// Creates and completes `tokens` tokens, [`SEEDERS`] at a time.
async fn seed(engine: &Engine, dev: &Environment, tokens: usize) {
    let seeders = (0..SEEDERS).map(|seeder| {
        let (engine, dev) = (engine.clone(), dev.clone());
        let count = tokens / SEEDERS + usize::from(seeder < tokens % SEEDERS);
        tokio::spawn(async move {
            for _ in 0..count {
                pair(&engine, &dev).await;
            }
        })
    });
    for seeder in seeders.collect::<Vec<_>>() {
        seeder.await.unwrap();
    }
}

/// Creates a token as the API's default does (`{}`: a 10-minute timeout) and completes it.
/// Returns how long each call took.
async fn pair(engine: &Engine, dev: &Environment) -> [Duration; 2] {
    let started = Instant::now();
    let token = engine.create_token(dev, &CreateTokenRequest::new()).await.unwrap().waitpoint;
    let created = started.elapsed();
    let output = Some(Output::from_json_text(r#"{"status":"approved"}"#));
    engine.complete_token(&Principal::SecretKey(dev.clone()), &token.id.public(), output).await.unwrap();
    [created, started.elapsed() - created]
}

/// Pairs one at a time, for `duration` or until `stop`; every call's time.
async fn probe(engine: Engine, dev: Environment, stop: Arc<AtomicBool>, duration: Option<Duration>) -> Vec<Duration> {
    let started = Instant::now();
    let mut times = Vec::new();
    while !stop.load(Ordering::SeqCst) && duration.is_none_or(|d| started.elapsed() < d) {
        times.extend(pair(&engine, &dev).await);
    }
    times
}
