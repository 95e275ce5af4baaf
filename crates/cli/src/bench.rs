//! `waitpoint bench`: measures a running server over HTTP/1.1 keep-alive connections.
//!
//! - `tokens`: token create+complete pairs per second at several connection counts, with each
//!   call's latency, and `GET /healthz` as the ceiling the HTTP stack allows on the machine.
//! - `list`: list-page latency for each filter with many tokens stored.
//! - `runs` (in `bench_runs`): the standard workload; `recovery` (in `bench_recovery`): a run's
//!   wait after its worker is killed and restarted; `heartbeats` (in `bench_heartbeats`):
//!   heartbeats per second to tokens that have a heartbeat.
//!
//! Each prints a table, then one JSON line with every figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use waitpoint_types::time::parse_duration;

use crate::ApiArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Token create+complete pairs per second, and GET /healthz as the ceiling
    Tokens(TokensArgs),
    /// List-page latency with many tokens stored (optionally creating them first)
    List(ListArgs),
    /// The standard workload: N runs wait on tokens, then every token is completed by a POST
    Runs(crate::bench_runs::RunsArgs),
    /// Recovery after kill -9 of a named worker and its restart: completion to continuation
    Recovery(crate::bench_recovery::RecoveryArgs),
    /// Heartbeats per second to tokens with a heartbeatTimeout, their latency and server CPU
    Heartbeats(crate::bench_heartbeats::HeartbeatsArgs),
    /// The worker `bench runs` starts (runs the workload's task, and the crash tests')
    #[command(hide = true)]
    Worker(crate::bench_runs::WorkerArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Tokens to create first through the API (tagged t0..t99, every tenth with an idempotency
    /// key, every third completed, none timing out); 0 measures what is stored
    #[arg(long, default_value_t = 0)]
    seed: usize,
    /// How long to measure each query
    #[arg(long, default_value = "5s")]
    duration: String,
    /// How long to run each query unmeasured first
    #[arg(long, default_value = "1s")]
    warmup: String,
    /// Connections, each one request in flight at a time
    #[arg(long, default_value_t = 10)]
    connections: usize,
}

#[derive(Debug, Args)]
pub(crate) struct TokensArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// How long to measure each connection count
    #[arg(long, default_value = "10s")]
    duration: String,
    /// How long to run unmeasured before each measurement
    #[arg(long, default_value = "2s")]
    warmup: String,
    /// Connection counts to measure, each one request in flight at a time
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    connections: Vec<usize>,
    /// Connections for the GET /healthz ceiling
    #[arg(long, default_value_t = 100)]
    healthz_connections: usize,
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Tokens(args) => tokens(args).await,
        BenchCommand::List(args) => list(args).await,
        BenchCommand::Runs(args) => crate::bench_runs::runs(args).await,
        BenchCommand::Recovery(args) => crate::bench_recovery::recovery(args).await,
        BenchCommand::Heartbeats(args) => crate::bench_heartbeats::heartbeats(args).await,
        BenchCommand::Worker(args) => crate::bench_runs::worker(args).await,
    }
}

/// Where to send requests.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    address: String,
    authority: String,
    pub(crate) prefix: String,
    authorization: String,
}

/// What one connection count measured.
#[derive(Debug)]
struct Level {
    connections: usize,
    pairs: usize,
    errors: usize,
    seconds: f64,
    first: Vec<u32>,
    second: Vec<u32>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

async fn tokens(args: TokensArgs) -> anyhow::Result<()> {
    let duration = parse_duration(&args.duration).context("invalid --duration")?;
    let warmup =
        if args.warmup == "0s" { Duration::ZERO } else { parse_duration(&args.warmup).context("invalid --warmup")? };
    let target = Arc::new(target(&args.api.api_url(), &args.api.secret_key()?)?);
    eprintln!(
        "waitpoint bench tokens: {} ({}s per level after {}s warm-up)",
        args.api.api_url(),
        duration.as_secs_f64(),
        warmup.as_secs_f64()
    );

    let mut levels = Vec::new();
    for &connections in &args.connections {
        let level = measure(&target, connections, warmup, duration, Workload::TokenPair).await?;
        eprintln!("  {connections} connections: {:.0} pairs/s", level.pairs as f64 / level.seconds);
        levels.push(level);
    }
    let healthz = Workload::Get("/healthz".into());
    let ceiling = measure(&target, args.healthz_connections, warmup, duration, healthz).await?;

    println!();
    println!(
        "{:>11}  {:>9}  {:>10}  {:>10}  {:>12}  {:>12}  {:>6}",
        "connections", "pairs/s", "create p50", "create p99", "complete p50", "complete p99", "errors"
    );
    for level in &levels {
        println!(
            "{:>11}  {:>9.0}  {:>8.2}ms  {:>8.2}ms  {:>10.2}ms  {:>10.2}ms  {:>6}",
            level.connections,
            level.pairs as f64 / level.seconds,
            ms(percentile(&level.first, 0.50)),
            ms(percentile(&level.first, 0.99)),
            ms(percentile(&level.second, 0.50)),
            ms(percentile(&level.second, 0.99)),
            level.errors
        );
    }
    println!(
        "GET /healthz at {} connections: {:.0} requests/s, p50 {:.2}ms, p99 {:.2}ms, {} errors",
        ceiling.connections,
        ceiling.pairs as f64 / ceiling.seconds,
        ms(percentile(&ceiling.first, 0.50)),
        ms(percentile(&ceiling.first, 0.99)),
        ceiling.errors
    );
    let summary = json!({
        "benchmark": "tokens",
        "api_url": args.api.api_url(),
        "duration_s": duration.as_secs_f64(),
        "warmup_s": warmup.as_secs_f64(),
        "levels": levels.iter().map(|l| json!({
            "connections": l.connections,
            "pairs_per_s": round(l.pairs as f64 / l.seconds),
            "pairs": l.pairs,
            "errors": l.errors,
            "create_p50_ms": round(ms(percentile(&l.first, 0.50))),
            "create_p99_ms": round(ms(percentile(&l.first, 0.99))),
            "complete_p50_ms": round(ms(percentile(&l.second, 0.50))),
            "complete_p99_ms": round(ms(percentile(&l.second, 0.99))),
        })).collect::<Vec<_>>(),
        "healthz": {
            "connections": ceiling.connections,
            "requests_per_s": round(ceiling.pairs as f64 / ceiling.seconds),
            "errors": ceiling.errors,
            "p50_ms": round(ms(percentile(&ceiling.first, 0.50))),
            "p99_ms": round(ms(percentile(&ceiling.first, 0.99))),
        },
    });
    println!("{summary}");
    let errors: usize = levels.iter().map(|l| l.errors).sum::<usize>() + ceiling.errors;
    if errors > 0 {
        bail!("{errors} requests failed; the figures above are not trustworthy");
    }
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let duration = parse_duration(&args.duration).context("invalid --duration")?;
    let warmup = parse_duration(&args.warmup).context("invalid --warmup")?;
    let target = Arc::new(target(&args.api.api_url(), &args.api.secret_key()?)?);
    let run = std::process::id();
    if args.seed > 0 {
        let started = Instant::now();
        seed(&target, args.seed, run).await?;
        eprintln!("seeded {} tokens in {:.1}s", args.seed, started.elapsed().as_secs_f64());
    }
    let tokens = format!("{}/api/v1/waitpoints/tokens", target.prefix);
    let deep = deep_cursor(&target, &tokens).await?;
    let query = |pairs: &[(&str, &str)]| {
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        format!("/api/v1/waitpoints/tokens?{encoded}")
    };
    let key = format!("seed-{run}-0");
    let queries = [
        ("newest page (25)", query(&[])),
        ("page of 100", query(&[("page[size]", "100")])),
        ("deep page (after the middle)", query(&[("page[after]", deep.as_str())])),
        ("status WAITING", query(&[("filter[status]", "WAITING")])),
        ("status COMPLETED", query(&[("filter[status]", "COMPLETED")])),
        ("status WAITING,TIMED_OUT", query(&[("filter[status]", "WAITING,TIMED_OUT")])),
        ("one tag", query(&[("filter[tags]", "t7")])),
        ("two tags", query(&[("filter[tags]", "t7,t8")])),
        ("idempotency key", query(&[("filter[idempotencyKey]", key.as_str())])),
        ("period 1h", query(&[("filter[createdAt][period]", "1h")])),
        ("status + tag", query(&[("filter[status]", "COMPLETED"), ("filter[tags]", "t9")])),
    ];
    println!();
    println!("{:<30}  {:>10}  {:>9}  {:>9}  {:>6}", "query", "requests/s", "p50", "p99", "errors");
    let mut figures = Vec::new();
    for (name, path) in queries {
        let level = measure(&target, args.connections, warmup, duration, Workload::Get(path)).await?;
        let (p50, p99) = (ms(percentile(&level.first, 0.50)), ms(percentile(&level.first, 0.99)));
        let rate = level.pairs as f64 / level.seconds;
        println!("{name:<30}  {rate:>10.0}  {p50:>7.2}ms  {p99:>7.2}ms  {:>6}", level.errors);
        figures.push(json!({ "query": name, "requests_per_s": round(rate), "p50_ms": round(p50), "p99_ms": round(p99), "errors": level.errors }));
    }
    println!(
        "{}",
        json!({ "benchmark": "list", "api_url": args.api.api_url(), "seeded": args.seed, "connections": args.connections, "duration_s": duration.as_secs_f64(), "queries": figures })
    );
    Ok(())
}

/// Creates `count` tokens through the API with 100 connections.
async fn seed(target: &Arc<Target>, count: usize, run: u32) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..100 {
        let (target, next) = (target.clone(), next.clone());
        let mut sender = connect(&target).await?;
        workers.push(tokio::spawn(async move {
            let path = format!("{}/api/v1/waitpoints/tokens", target.prefix);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                if i % 100_000 == 0 && i > 0 {
                    eprintln!("  seeded {i}");
                }
                let mut body = json!({ "timeout": "none", "tags": [format!("t{}", i % 100)] });
                if i % 10 == 0 {
                    body["idempotencyKey"] = json!(format!("seed-{run}-{i}"));
                }
                let created = call(&mut sender, &target, Method::POST, &path, Bytes::from(body.to_string())).await?;
                if i % 3 == 0 {
                    let id = serde_json::from_slice::<Created>(&created)?.id;
                    let complete = format!("{path}/{id}/complete");
                    call(
                        &mut sender,
                        &target,
                        Method::POST,
                        &complete,
                        Bytes::from_static(b"{\"data\":{\"seeded\":true}}"),
                    )
                    .await?;
                }
            }
        }));
    }
    for worker in workers {
        worker.await.context("a seeding connection panicked")??;
    }
    Ok(())
}

/// A cursor about halfway down the list (at most 2,000 pages of 100 in).
async fn deep_cursor(target: &Target, tokens: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Pagination {
        next: Option<String>,
    }
    #[derive(Deserialize)]
    struct Page {
        data: Vec<serde_json::Value>,
        pagination: Pagination,
    }
    let mut sender = connect(target).await?;
    let mut cursors = Vec::new();
    let mut path = format!("{tokens}?page%5Bsize%5D=100");
    while cursors.len() < 4_000 {
        let page: Page = serde_json::from_slice(&call(&mut sender, target, Method::GET, &path, Bytes::new()).await?)?;
        match page.pagination.next {
            Some(next) if !page.data.is_empty() => {
                path = format!("{tokens}?page%5Bsize%5D=100&page%5Bafter%5D={next}");
                cursors.push(next);
            }
            _ => break,
        }
    }
    Ok(cursors.get(cursors.len() / 2).cloned().unwrap_or_default())
}

#[derive(Debug, Clone)]
enum Workload {
    /// Create a token, then complete it: two calls, latencies in `first` and `second`.
    TokenPair,
    /// One GET of this path (after the API URL's own path), latency in `first`.
    Get(String),
}

async fn measure(
    target: &Arc<Target>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    workload: Workload,
) -> anyhow::Result<Level> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(target).await?);
    }
    let measure_from = Instant::now() + warmup;
    let stop_at = measure_from + duration;
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(worker(target.clone(), sender, workload.clone(), measure_from, stop_at)))
        .collect();
    let mut level = Level {
        connections,
        pairs: 0,
        errors: 0,
        seconds: duration.as_secs_f64(),
        first: Vec::new(),
        second: Vec::new(),
    };
    for worker in workers {
        let result = worker.await.context("a benchmark connection panicked")?;
        level.pairs += result.pairs;
        level.errors += result.errors;
        level.first.extend(result.first);
        level.second.extend(result.second);
    }
    level.first.sort_unstable();
    level.second.sort_unstable();
    Ok(level)
}

#[derive(Default)]
struct WorkerResult {
    pairs: usize,
    errors: usize,
    first: Vec<u32>,
    second: Vec<u32>,
}

async fn worker(
    target: Arc<Target>,
    mut sender: SendRequest<Full<Bytes>>,
    workload: Workload,
    measure_from: Instant,
    stop_at: Instant,
) -> WorkerResult {
    let mut result = WorkerResult::default();
    let create_path = format!("{}/api/v1/waitpoints/tokens", target.prefix);
    let mut i = 0u64;
    loop {
        let started = Instant::now();
        if started >= stop_at {
            return result;
        }
        let measured = started >= measure_from;
        let outcome = match workload {
            Workload::Get(ref path) => {
                call(&mut sender, &target, Method::GET, &format!("{}{path}", target.prefix), Bytes::new())
                    .await
                    .map(|_| (started.elapsed(), None))
            }
            Workload::TokenPair => {
                i += 1;
                pair(&mut sender, &target, &create_path, i).await.map(|(create, complete)| (create, Some(complete)))
            }
        };
        match outcome {
            Ok((first, second)) => {
                if measured && Instant::now() <= stop_at {
                    result.pairs += 1;
                    result.first.push(micros(first));
                    if let Some(second) = second {
                        result.second.push(micros(second));
                    }
                }
            }
            Err(error) => {
                result.errors += 1;
                if result.errors <= 3 {
                    eprintln!("  request failed: {error:#}");
                }
                match connect(&target).await {
                    Ok(fresh) => sender = fresh,
                    Err(_) => return result,
                }
            }
        }
    }
}

async fn pair(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    create_path: &str,
    i: u64,
) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let body = call(sender, target, Method::POST, create_path, Bytes::from_static(b"{}")).await?;
    let created = started.elapsed();
    let id = serde_json::from_slice::<Created>(&body).context("create answered without an id")?.id;
    let started = Instant::now();
    let path = format!("{create_path}/{id}/complete");
    let output = Bytes::from(format!(r#"{{"data":{{"approved":true,"i":{i}}}}}"#));
    call(sender, target, Method::POST, &path, output).await?;
    Ok((created, started.elapsed()))
}

pub(crate) async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    method: Method,
    path: &str,
    body: Bytes,
) -> anyhow::Result<Bytes> {
    sender.ready().await?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, &target.authority)
        .header(header::AUTHORIZATION, &target.authorization)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK {
        bail!("{path}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

pub(crate) async fn connect(target: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(&target.address)
        .await
        .with_context(|| format!("could not connect to {}", target.address))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("  connection closed: {error}");
        }
    });
    Ok(sender)
}

pub(crate) fn target(api_url: &str, secret_key: &str) -> anyhow::Result<Target> {
    let uri: Uri = api_url.parse().with_context(|| format!("invalid --api-url {api_url:?}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("the benchmark speaks plain http:// to a server on this machine; got {api_url:?}");
    }
    let authority = uri.authority().context("--api-url has no host")?;
    let port = authority.port_u16().unwrap_or(80);
    Ok(Target {
        address: format!("{}:{port}", authority.host()),
        authority: authority.to_string(),
        prefix: uri.path().trim_end_matches('/').to_owned(),
        authorization: format!("Bearer {secret_key}"),
    })
}

pub(crate) fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// The `p` quantile (nearest rank) of sorted latencies, in microseconds.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(crate) fn ms(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

pub(crate) fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.50), 50);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn targets_come_from_plain_http_urls() {
        let local = target("http://127.0.0.1:3030/", "k").unwrap();
        assert_eq!((local.address.as_str(), local.prefix.as_str()), ("127.0.0.1:3030", ""));
        assert!(target("https://example.com", "k").is_err());
    }
}
