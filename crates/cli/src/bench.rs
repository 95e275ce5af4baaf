//! `waitpoint bench tokens`: token create+complete pairs per second over HTTP at several
//! connection counts, with each call's latency, and `GET /healthz` as the ceiling the HTTP
//! stack allows on the same machine. Prints a table, then one JSON line with every figure.

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
    }
}

/// Where to send requests.
#[derive(Debug, Clone)]
struct Target {
    address: String,
    authority: String,
    prefix: String,
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
    let ceiling = measure(&target, args.healthz_connections, warmup, duration, Workload::Healthz).await?;

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

#[derive(Debug, Clone, Copy)]
enum Workload {
    /// Create a token, then complete it: two calls, latencies in `first` and `second`.
    TokenPair,
    /// `GET /healthz`: one call, latency in `first`.
    Healthz,
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
        .map(|sender| tokio::spawn(worker(target.clone(), sender, workload, measure_from, stop_at)))
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
    let healthz_path = format!("{}/healthz", target.prefix);
    let mut i = 0u64;
    loop {
        let started = Instant::now();
        if started >= stop_at {
            return result;
        }
        let measured = started >= measure_from;
        let outcome = match workload {
            Workload::Healthz => call(&mut sender, &target, Method::GET, &healthz_path, Bytes::new())
                .await
                .map(|_| (started.elapsed(), None)),
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

async fn call(
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

async fn connect(target: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
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

fn target(api_url: &str, secret_key: &str) -> anyhow::Result<Target> {
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

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// The `p` quantile (nearest rank) of sorted latencies, in microseconds.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

fn round(value: f64) -> f64 {
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
