//! `waitpoint bench recovery`: how long a run waits after its worker is killed (`kill -9`) and
//! started again at once under the same instance name. Each round triggers one run of the
//! workload's task (it creates a token, hands it to the driver and waits on it), kills the
//! worker while the run waits, completes the token through its URL, starts the worker again,
//! and measures from the completion to the moment the run's code continued.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;
use waitpoint_sdk::{RunStatus, WaitpointStatus};

use crate::ApiArgs;
use crate::bench_runs::{Driver, TASK, epoch_ms, http_client, percentiles, spawn_worker};

/// The instance name the measured worker runs under.
const INSTANCE: &str = "bench-recovery";

#[derive(Debug, Args)]
pub(crate) struct RecoveryArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Rounds: each kills and restarts the worker once
    #[arg(long, default_value_t = 50)]
    n: usize,
}

pub(crate) async fn recovery(args: RecoveryArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let (driver, driver_url) = Driver::start().await?;
    let round = format!("recovery-{}", std::process::id());
    eprintln!("waitpoint bench recovery: N={} against {}", args.n, args.api.api_url());
    let mut worker = spawn_worker(&args.api, &[], Some(INSTANCE))?;
    let mut latencies = Vec::with_capacity(args.n);
    for i in 0..args.n {
        let id = format!("{round}:{i}");
        let payload = json!({ "i": id, "driver": driver_url });
        let run = client.trigger(TASK, &payload, None).await?.id;
        driver.until(i + 1, |d| d.tokens_of(&round)).await?;
        wait_until(&client, &run, RunStatus::Waiting).await?;
        let url = driver.url(&id).context("the run never announced its token")?;

        worker.kill().await.context("could not kill the worker")?;
        let completed_at = epoch_ms();
        http_client().post(&url).json(&json!({ "ok": true, "i": id })).send().await?.error_for_status()?;
        worker = spawn_worker(&args.api, &[], Some(INSTANCE))?;
        driver.until(i + 1, |d| d.done_of(&round)).await?;
        let resumed_at = driver.resumed_at(&id).context("the run never said it resumed")?;
        latencies.push(resumed_at - completed_at);
        wait_until(&client, &run, RunStatus::Completed).await?;
        let token = client.retrieve_token(&driver.token_id(&id).context("no token")?).await?;
        if token.detail.status != WaitpointStatus::Completed {
            bail!("the token of {run} is {}", token.detail.status);
        }
    }
    worker.kill().await.context("could not stop the worker")?;
    let figures = json!({ "bench": "recovery", "n": args.n, "recovery": percentiles(latencies) });
    eprintln!(
        "  completion to continuation after kill -9 and restart: p50 {} ms, p99 {} ms, max {} ms",
        figures["recovery"]["p50_ms"], figures["recovery"]["p99_ms"], figures["recovery"]["max_ms"]
    );
    println!("{figures}");
    Ok(())
}

/// Polls `run` every 10 ms until it has `status` (30 s at most).
async fn wait_until(client: &waitpoint_sdk::Client, run: &str, status: RunStatus) -> anyhow::Result<()> {
    for _ in 0..3_000 {
        if client.retrieve_run(run).await?.status == status {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("{run} did not become {status} within 30 s")
}
