//! `waitpoint bench heartbeats`: heartbeats per second a running server takes, their latency,
//! and (with `--server-pid`) the server's CPU per 1,000 heartbeats.
//!
//! First creates `--tokens` tokens through the Rust SDK (timeout `1h`, heartbeatTimeout `10m`,
//! so none times out during the run), not measured. Then sends `--n` heartbeats
//! (`POST /api/v1/waitpoints/tokens/{id}/heartbeat` with `{}`), the `i`-th to token
//! `i % tokens`, from `--concurrency` HTTP/1.1 keep-alive connections, each one heartbeat in
//! flight at a time. Heartbeats go through the server's group-committing writer, so at higher
//! concurrency many should share one transaction (and fsync): heartbeats/s against
//! `--concurrency` shows how well they do. Every heartbeat must answer 200 with `success` and a
//! `heartbeatDeadline`; the others are counted as errors, not retried, and fail the command.
//! Server CPU is user + system time from `/proc/<pid>/stat` over the heartbeats (as
//! `bench runs` reads it); the server's metrics, if any, are not read.
//!
//! ```sh
//! waitpoint serve --data-dir /tmp/hb --listen 127.0.0.1:3181 &
//! waitpoint bench heartbeats --api-url http://127.0.0.1:3181 --secret-key "$KEY" \
//!     --tokens 1000 --n 50000 --concurrency 64 --server-pid $!
//! ```
//!
//! Prints a table, then one JSON line with every figure. Uses `bench`'s HTTP client and
//! statistics helpers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use hyper::Method;
use serde_json::json;
use waitpoint_sdk::{CreateTokenRequest, ProlongResponse};

use crate::ApiArgs;
use crate::bench::{Target, call, connect, micros, ms, percentile, round, target};
use crate::bench_runs::cpu_seconds;

#[derive(Debug, Args)]
pub(crate) struct HeartbeatsArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Tokens to create first (timeout 1h, heartbeatTimeout 10m); the heartbeats go round them
    #[arg(long, default_value_t = 1_000)]
    tokens: usize,
    /// Heartbeats to send, all measured
    #[arg(long, default_value_t = 50_000)]
    n: usize,
    /// Connections, each one request in flight at a time
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The server's process id, to read its CPU
    #[arg(long)]
    server_pid: Option<u32>,
}

/// What one connection measured.
#[derive(Default)]
struct WorkerResult {
    heartbeats: usize,
    errors: usize,
    latencies: Vec<u32>,
}

pub(crate) async fn heartbeats(args: HeartbeatsArgs) -> anyhow::Result<()> {
    if args.tokens == 0 || args.concurrency == 0 {
        bail!("--tokens and --concurrency must be at least 1");
    }
    let target = Arc::new(target(&args.api.api_url(), &args.api.secret_key()?)?);
    eprintln!(
        "waitpoint bench heartbeats: {} heartbeats over {} tokens from {} connections against {}",
        args.n,
        args.tokens,
        args.concurrency,
        args.api.api_url()
    );

    let started = Instant::now();
    let paths = Arc::new(create_tokens(&args, &target).await?);
    eprintln!("  created {} tokens in {:.1}s", args.tokens, started.elapsed().as_secs_f64());

    let mut senders = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        senders.push(connect(&target).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let (server_before, own_before) = (args.server_pid.and_then(cpu_seconds), cpu_seconds(std::process::id()));
    let started = Instant::now();
    let workers: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(worker(target.clone(), sender, paths.clone(), next.clone(), args.n)))
        .collect();
    let mut result = WorkerResult::default();
    for worker in workers {
        let one = worker.await.context("a benchmark connection panicked")?;
        result.heartbeats += one.heartbeats;
        result.errors += one.errors;
        result.latencies.extend(one.latencies);
    }
    let seconds = started.elapsed().as_secs_f64();
    // Heartbeats no connection was left to send (every reconnect failed) failed too.
    result.errors += args.n - result.heartbeats - result.errors;
    let (server_after, own_after) = (args.server_pid.and_then(cpu_seconds), cpu_seconds(std::process::id()));
    result.latencies.sort_unstable();
    // Every heartbeat sent, answered or not, cost the server work.
    let per_1000 = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(a), Some(b)) if args.n > 0 => Some((b - a) * 1000.0 / (args.n as f64 / 1000.0)),
        _ => None,
    };
    let server_cpu = per_1000(server_before, server_after);
    let bench_cpu = per_1000(own_before, own_after);
    let rate = result.heartbeats as f64 / seconds;
    let (p50, p99) = (ms(percentile(&result.latencies, 0.50)), ms(percentile(&result.latencies, 0.99)));

    println!();
    println!(
        "{:>6}  {:>11}  {:>10}  {:>12}  {:>9}  {:>9}  {:>13}  {:>6}",
        "tokens", "concurrency", "heartbeats", "heartbeats/s", "p50", "p99", "server CPU/1k", "errors"
    );
    println!(
        "{:>6}  {:>11}  {:>10}  {rate:>12.0}  {p50:>7.2}ms  {p99:>7.2}ms  {:>13}  {:>6}",
        args.tokens,
        args.concurrency,
        result.heartbeats,
        server_cpu.map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.1}ms")),
        result.errors
    );
    let summary = json!({
        "benchmark": "heartbeats",
        "api_url": args.api.api_url(),
        "tokens": args.tokens,
        "concurrency": args.concurrency,
        "n": args.n,
        "heartbeats": result.heartbeats,
        "errors": result.errors,
        "seconds": round(seconds),
        "heartbeats_per_s": round(rate),
        "p50_ms": round(p50),
        "p99_ms": round(p99),
        "server_cpu_ms_per_1000": server_cpu.map(round),
        "bench_cpu_ms_per_1000": bench_cpu.map(round),
    });
    println!("{summary}");
    if result.errors > 0 {
        bail!("{} heartbeats failed; the figures above are not trustworthy", result.errors);
    }
    Ok(())
}

/// Creates the tokens through the SDK, `--concurrency` at a time, and returns each one's
/// heartbeat path (after the API URL's host).
async fn create_tokens(args: &HeartbeatsArgs, target: &Target) -> anyhow::Result<Vec<String>> {
    let client = args.api.client()?;
    let request = CreateTokenRequest::new().timeout("1h").heartbeat_timeout("10m");
    futures_util::stream::iter(0..args.tokens)
        .map(|_| {
            let (client, request) = (&client, request.clone());
            async move {
                let created = client.create_token(request).await.context("could not create a token")?;
                anyhow::Ok(format!("{}/api/v1/waitpoints/tokens/{}/heartbeat", target.prefix, created.id))
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await
}

/// Sends heartbeats on one connection until `n` have been sent by all.
async fn worker(
    target: Arc<Target>,
    mut sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
    paths: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    n: usize,
) -> WorkerResult {
    let mut result = WorkerResult::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return result;
        }
        let path = &paths[i % paths.len()];
        let started = Instant::now();
        let outcome =
            call(&mut sender, &target, Method::POST, path, Bytes::from_static(b"{}")).await.and_then(|body| {
                let answer: ProlongResponse = serde_json::from_slice(&body)
                    .with_context(|| format!("{path}: not a heartbeat answer: {}", String::from_utf8_lossy(&body)))?;
                if !answer.success || answer.heartbeat_deadline.is_none() {
                    bail!(
                        "{path}: answered without success and a heartbeatDeadline: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                Ok(())
            });
        let elapsed = started.elapsed();
        match outcome {
            Ok(()) => {
                result.heartbeats += 1;
                result.latencies.push(micros(elapsed));
            }
            Err(error) => {
                result.errors += 1;
                if result.errors <= 3 {
                    eprintln!("  heartbeat failed: {error:#}");
                }
                match connect(&target).await {
                    Ok(fresh) => sender = fresh,
                    // The other connections send the rest.
                    Err(_) => return result,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_answers_parse() {
        let body =
            r#"{"success":true,"timeoutAt":"2030-01-01T00:00:00.000Z","heartbeatDeadline":"2030-01-01T00:00:00.000Z"}"#;
        let answer: ProlongResponse = serde_json::from_str(body).unwrap();
        assert!(answer.success && answer.heartbeat_deadline.is_some());
    }
}
