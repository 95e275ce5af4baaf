//! `waitpoint bench runs`: the standard waitpoint workload (`N` runs each create a token, hand
//! it to a driver and wait; then every token is completed by a POST to its URL), with its own
//! worker process and driver. Prints a table, then one JSON line with every figure. With
//! `--set K-of-M` each run creates M tokens and waits for K of them; every token is completed.
//! With `--worker-command` the worker is another program (a worker of another SDK), measured
//! by the same driver.
//!
//! `waitpoint bench worker` is that worker, started by `bench runs` as a separate process so
//! its memory and CPU are measured apart from the driver's. It also runs the crash tests' tasks:
//! one that reads the time and waits ([`CLOCK_TASK`]), and one that waits for two of three
//! tokens ([`SET_CRASH_TASK`]); the crash tests (`crates/cli/tests/crash.rs`) start it, and kill
//! it, as a real process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use clap::Args;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::sync::Notify;
use waitpoint_sdk::{Context, CreateTokenRequest, RunFilter, RunStatus, Task, TaskError, Wait, Worker, WorkerConfig};

use crate::ApiArgs;

/// The task the workload runs.
pub(crate) const TASK: &str = "bench-wait";
/// The slots of the workload's worker, whichever it is.
const WORKER_SLOTS: usize = 200;
/// How long the driver waits for the next run's report before it gives up.
const STALLED: Duration = Duration::from_secs(60);
/// The task of `--set K-of-M`: creates `payload.of` tokens, hands them to the driver and waits
/// for `payload.needed` of them.
const SET_TASK: &str = "bench-wait-set";
/// The crash tests' task: reads the time through the run's context, waits until three seconds
/// after it, and returns `{"i": payload.i, "at": <the time read>}`. A worker killed while it
/// waits and started again must resume it with the instant it read first.
const CLOCK_TASK: &str = "crash-clock";
/// How long [`CLOCK_TASK`] waits.
const CLOCK_TASK_WAIT: Duration = Duration::from_secs(3);
/// The crash tests' task whose set wait races its completions: creates three tokens, hands
/// their ids and URLs to the driver (a step, `POST {driver}/id`), waits for two of them, says
/// which fired (a step, `POST {driver}/done`) and returns
/// `{"i": payload.i, "fired": [ids], "outputs": [their outputs], "said": <the /done step's value>}`.
const SET_CRASH_TASK: &str = "crash-set";

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Runs in the measured round
    #[arg(long, default_value_t = 1_000)]
    n: usize,
    /// Requests in flight in both phases
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Warm-up runs (whole cycle, not measured)
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Probe runs, completed one at a time
    #[arg(long, default_value_t = 200)]
    probe: usize,
    /// The server's process id, to read its memory and CPU
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also read the CPU of the database on this machine: every process of this command name
    /// (`postgres` for PostgreSQL), summed
    #[arg(long, value_name = "NAME")]
    database_process: Option<String>,
    /// The server's data directory, to measure its size
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Suspended runs the worker keeps in memory; runs beyond it are evicted and resume by
    /// replay (1 measures the replay path)
    #[arg(long, default_value_t = 200_000)]
    max_suspended: usize,
    /// Each run waits for K of M tokens ("2-of-3") instead of one; every token is completed
    #[arg(long, value_name = "K-of-M", value_parser = parse_set)]
    set: Option<(usize, usize)>,
    /// The worker polls this server (another node on the same PostgreSQL database) while runs
    /// are triggered and tokens completed through --api-url: runs made ready on one node reach
    /// a worker on another
    #[arg(long)]
    worker_api_url: Option<String>,
    /// Runs this command as the worker instead of `waitpoint bench worker` (through `sh -c`,
    /// as the process measured), with WAITPOINT_API_URL, WAITPOINT_SECRET_KEY and
    /// WAITPOINT_WORKER_CONCURRENCY=200 set: a worker of another SDK whose task `bench-wait`
    /// does what the workload's task does, such as the TypeScript SDK's
    /// `node build/src/bin/waitpoint-worker.js build/bench/task.js`
    #[arg(long, value_name = "COMMAND", conflicts_with_all = ["max_suspended", "set"])]
    worker_command: Option<String>,
}

/// `K-of-M`, with 1 ≤ K ≤ M ≤ 100.
fn parse_set(text: &str) -> Result<(usize, usize), String> {
    let parsed = text.split_once("-of-").and_then(|(k, m)| Some((k.parse().ok()?, m.parse().ok()?)));
    match parsed {
        Some((needed, of)) if needed >= 1 && needed <= of && of <= 100 => Ok((needed, of)),
        _ => Err(format!("{text:?} is not K-of-M with 1 <= K <= M <= 100, such as 2-of-3")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Runs executing at once
    #[arg(long, default_value_t = WORKER_SLOTS)]
    concurrency: usize,
    /// Suspended runs kept in memory (the rest resume by replay)
    #[arg(long, default_value_t = 200_000)]
    max_suspended: usize,
}

/// `waitpoint bench worker`: runs the workload's task and the crash tests' until killed or
/// stopped (SIGINT, SIGTERM). `WAITPOINT_WORKER_INSTANCE` names the worker.
pub(crate) async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    waitpoint_sdk::init_logging();
    let task = Task::new(TASK, |ctx: Context, payload: Value| async move {
        let driver = payload["driver"].as_str().unwrap_or_default().to_owned();
        let i = payload["i"].clone();
        let token = ctx.create_token(CreateTokenRequest::new().timeout("1h")).await?;
        let http = http_client();
        let announce = json!({ "i": i, "tokenId": token.id, "url": token.url });
        ctx.try_step("hand the token to the driver", || async {
            http.post(format!("{driver}/id")).json(&announce).send().await?.error_for_status().map(drop)
        })
        .await?;
        ctx.wait_for_token::<Value>(&token).await?.into_result()?;
        let resumed_at = epoch_ms();
        http.post(format!("{driver}/done")).json(&json!({ "i": i, "resumedAt": resumed_at })).send().await?;
        Ok::<_, TaskError>(json!({ "i": i, "resumedAt": resumed_at, "payload": payload }))
    });
    let set_task = Task::new(SET_TASK, |ctx: Context, payload: Value| async move {
        let driver = payload["driver"].as_str().unwrap_or_default().to_owned();
        let i = payload["i"].clone();
        let (needed, of) = (payload["needed"].as_u64().unwrap_or(1), payload["of"].as_u64().unwrap_or(1));
        let mut tokens = Vec::new();
        for _ in 0..of {
            tokens.push(ctx.create_token(CreateTokenRequest::new().timeout("1h")).await?);
        }
        let http = http_client();
        let urls: Vec<&str> = tokens.iter().map(|token| token.url.as_str()).collect();
        let announce = json!({ "i": i, "tokenId": tokens[0].id, "url": urls[0], "urls": urls });
        ctx.try_step("hand the tokens to the driver", || async {
            http.post(format!("{driver}/id")).json(&announce).send().await?.error_for_status().map(drop)
        })
        .await?;
        let needed = usize::try_from(needed).unwrap_or(usize::MAX);
        ctx.wait_for_at_least(needed, tokens.iter().map(|token| Wait::token(&token.id))).await?.into_result()?;
        let resumed_at = epoch_ms();
        http.post(format!("{driver}/done")).json(&json!({ "i": i, "resumedAt": resumed_at })).send().await?;
        Ok::<_, TaskError>(json!({ "i": i, "resumedAt": resumed_at }))
    });
    let set_crash_task = Task::new(SET_CRASH_TASK, |ctx: Context, payload: Value| async move {
        let driver = payload["driver"].as_str().unwrap_or_default().to_owned();
        let i = payload["i"].clone();
        let mut tokens = Vec::new();
        for _ in 0..3 {
            tokens.push(ctx.create_token(CreateTokenRequest::new().timeout("1h")).await?);
        }
        let http = http_client();
        let ids: Vec<&str> = tokens.iter().map(|token| token.id.as_str()).collect();
        let urls: Vec<&str> = tokens.iter().map(|token| token.url.as_str()).collect();
        let announce = json!({ "i": i, "tokenIds": ids, "urls": urls });
        ctx.try_step("hand the tokens to the driver", || async {
            http.post(format!("{driver}/id")).json(&announce).send().await?.error_for_status().map(drop)
        })
        .await?;
        let set = ctx.wait_for_at_least(2, tokens.iter().map(|token| Wait::token(&token.id))).await?;
        let fired: Vec<&str> =
            set.waitpoints().iter().filter(|member| member.is_completed()).map(|member| member.id.as_str()).collect();
        let mut outputs = Vec::new();
        for member in set.waitpoints().iter().filter(|member| member.is_completed()) {
            outputs.push(member.output::<Value>()?);
        }
        // Each execution of the step says who it is, so the driver can tell a step that ran
        // again after it was recorded from one interrupted before.
        let execution = format!("{}-{}", std::process::id(), next_execution());
        let said = json!({ "i": i, "fired": fired, "execution": execution });
        let said = ctx
            .try_step("say which tokens fired", || async {
                http.post(format!("{driver}/done")).json(&said).send().await?.error_for_status()?;
                Ok::<_, reqwest::Error>(said.clone())
            })
            .await?;
        Ok::<_, TaskError>(json!({ "i": i, "fired": fired, "outputs": outputs, "said": said }))
    });
    let clock_task = Task::new(CLOCK_TASK, |ctx: Context, payload: Value| async move {
        let at = ctx.now().await?;
        ctx.wait_until(at + CLOCK_TASK_WAIT).await?;
        Ok::<_, TaskError>(json!({ "i": payload["i"], "at": at }))
    });
    let config =
        WorkerConfig { concurrency: args.concurrency, max_suspended: args.max_suspended, ..WorkerConfig::from_env() };
    let worker = Worker::new(args.api.client()?, [task, set_task, clock_task, set_crash_task], config)?;
    worker.run_until_signal().await?;
    Ok(())
}

/// A number no other execution of this process drew.
fn next_execution() -> usize {
    static EXECUTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    EXECUTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn http_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new).clone()
}

pub(crate) fn epoch_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0
}

/// What the driver has heard from the runs.
#[derive(Default)]
pub(crate) struct Driver {
    tokens: Mutex<HashMap<String, (String, String)>>,
    /// Every token URL of a run of `--set`, in order.
    sets: Mutex<HashMap<String, Vec<String>>>,
    done: Mutex<HashMap<String, f64>>,
    changed: Notify,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Announce {
    i: String,
    token_id: String,
    url: String,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Done {
    i: String,
    resumed_at: f64,
}

async fn announce(State(driver): State<Arc<Driver>>, Json(body): Json<Announce>) -> Json<Value> {
    if !body.urls.is_empty() {
        driver.sets.lock().unwrap_or_else(|p| p.into_inner()).entry(body.i.clone()).or_insert(body.urls);
    }
    driver.tokens.lock().unwrap_or_else(|p| p.into_inner()).entry(body.i).or_insert((body.token_id, body.url));
    driver.changed.notify_waiters();
    Json(json!({ "ok": true }))
}

async fn done(State(driver): State<Arc<Driver>>, Json(body): Json<Done>) -> Json<Value> {
    driver.done.lock().unwrap_or_else(|p| p.into_inner()).entry(body.i).or_insert(body.resumed_at);
    driver.changed.notify_waiters();
    Json(json!({ "ok": true }))
}

/// Starts `command` through `sh -c` (its process replaces the shell's, so it is the one
/// measured) as the workload's worker, against the server `api` names, with
/// [`WORKER_SLOTS`] slots. The process is killed when the handle drops.
fn spawn_command(api: &ApiArgs, command: &str) -> anyhow::Result<Child> {
    tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .env("WAITPOINT_API_URL", api.api_url())
        .env("WAITPOINT_SECRET_KEY", api.secret_key()?)
        .env("WAITPOINT_WORKER_CONCURRENCY", WORKER_SLOTS.to_string())
        .env_remove("WAITPOINT_WORKER_INSTANCE")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start the worker command {command:?}"))
}

/// Starts `waitpoint bench worker` against the server `api` names, with `extra` arguments and,
/// when given, the instance name `instance`. The process is killed when the handle drops.
pub(crate) fn spawn_worker(api: &ApiArgs, extra: &[&str], instance: Option<&str>) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the waitpoint executable to start the worker")?;
    let mut command = tokio::process::Command::new(exe);
    command
        .args(["bench", "worker", "--api-url", &api.api_url(), "--secret-key", &api.secret_key()?])
        .args(extra)
        .env("WAITPOINT_LOG", "warn")
        .env_remove("WAITPOINT_WORKER_INSTANCE")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Some(instance) = instance {
        command.env("WAITPOINT_WORKER_INSTANCE", instance);
    }
    command.spawn().context("could not start the worker process")
}

impl Driver {
    /// A driver listening on a port of its own: the runs announce their tokens to it and say
    /// when they resumed. Returns it and its URL (the runs' `driver` payload field).
    pub(crate) async fn start() -> anyhow::Result<(Arc<Driver>, String)> {
        let driver = Arc::new(Driver::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = Router::new().route("/id", post(announce)).route("/done", post(done)).with_state(driver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok((driver, url))
    }

    /// Waits until `count(self) >= n`; fails once the count has not moved for [`STALLED`]
    /// (the worker stopped, or its task fails every run).
    pub(crate) async fn until(&self, n: usize, count: impl Fn(&Driver) -> usize) -> anyhow::Result<()> {
        let (mut last, mut moved) = (count(self), Instant::now());
        loop {
            let changed = self.changed.notified();
            let now = count(self);
            if now >= n {
                return Ok(());
            }
            if now != last {
                (last, moved) = (now, Instant::now());
            } else if moved.elapsed() >= STALLED {
                bail!(
                    "no run reported to the driver for {} s ({now} of {n}): is the worker running, and does its task `{TASK}` succeed?",
                    STALLED.as_secs()
                );
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
        }
    }

    pub(crate) fn tokens_of(&self, round: &str) -> usize {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).keys().filter(|k| k.starts_with(round)).count()
    }

    pub(crate) fn done_of(&self, round: &str) -> usize {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).keys().filter(|k| k.starts_with(round)).count()
    }

    pub(crate) fn token_id(&self, i: &str) -> Option<String> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(i).map(|(id, _)| id.clone())
    }

    pub(crate) fn url(&self, i: &str) -> Option<String> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(i).map(|(_, url)| url.clone())
    }

    /// The URLs of run `i`'s tokens: the one token's, or every one of a set, in order.
    fn urls(&self, i: &str) -> Option<Vec<String>> {
        match self.sets.lock().unwrap_or_else(|p| p.into_inner()).get(i) {
            Some(urls) => Some(urls.clone()),
            None => self.url(i).map(|url| vec![url]),
        }
    }

    pub(crate) fn resumed_at(&self, i: &str) -> Option<f64> {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).get(i).copied()
    }
}

/// CPU seconds (user + system) a process has used.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based, in clock ticks of 1/100 s).
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds (user + system) the processes named `command` (their `comm`) have used, summed;
/// `None` when there is none.
fn cpu_seconds_of(command: &str) -> Option<f64> {
    let pids = std::fs::read_dir("/proc").ok()?.flatten().filter_map(|entry| entry.file_name().to_str()?.parse().ok());
    pids.filter(|pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == command)
    })
    .filter_map(cpu_seconds)
    .fold(None, |sum, seconds| Some(sum.unwrap_or(0.0) + seconds))
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<f64>()
            .ok()
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Apparent size and allocated size of a directory tree, in MiB.
fn disk_mib(dir: &Path) -> (f64, f64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0u64;
    let mut allocated = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                apparent += meta.len();
                allocated += meta.blocks() * 512;
            }
        }
    }
    (apparent as f64 / 1_048_576.0, allocated as f64 / 1_048_576.0)
}

/// CPU seconds the server (when its pid is known), the worker, the driver and the database
/// (when its processes are named) have used.
type Cpu = [Option<f64>; 4];

struct Processes {
    server: Option<u32>,
    worker: u32,
    driver: u32,
    database: Option<String>,
}

impl Processes {
    fn cpu(&self) -> Cpu {
        [
            self.server.and_then(cpu_seconds),
            cpu_seconds(self.worker),
            cpu_seconds(self.driver),
            self.database.as_deref().and_then(cpu_seconds_of),
        ]
    }
}

fn cpu_delta(before: Cpu, after: Cpu) -> Value {
    let delta = |i: usize| match (before[i], after[i]) {
        (Some(a), Some(b)) => json!(((b - a) * 100.0).round() / 100.0),
        _ => Value::Null,
    };
    json!({ "server": delta(0), "worker": delta(1), "driver": delta(2), "database": delta(3) })
}

/// CPU milliseconds each process spent per run cycle (a run created, suspended, resumed and
/// completed): both phases' CPU over the `n` runs they measured. The total is waitpoint's
/// three processes; the database's is beside it.
fn cpu_ms_per_run(phases: [(Cpu, Cpu); 2], n: usize) -> Value {
    let spent = |i: usize| -> Option<f64> {
        phases.iter().map(|(before, after)| Some(after[i]? - before[i]?)).sum::<Option<f64>>()
    };
    let per_run = |seconds: f64| json!((seconds * 1000.0 / n.max(1) as f64 * 1000.0).round() / 1000.0);
    let [server, worker, driver, database] = [spent(0), spent(1), spent(2), spent(3)];
    let total = server.zip(worker).zip(driver).map(|((s, w), d)| s + w + d);
    json!({
        "server": server.map(per_run),
        "worker": worker.map(per_run),
        "driver": driver.map(per_run),
        "total": total.map(per_run),
        "database": database.map(per_run),
    })
}

pub(crate) fn percentiles(mut latencies: Vec<f64>) -> Value {
    if latencies.is_empty() {
        return Value::Null;
    }
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        (latencies[rank - 1] * 100.0).round() / 100.0
    };
    json!({ "p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0) })
}

/// `waitpoint bench runs`.
/// What each run of a round waits for: one token (`TASK`), or `needed` of `of` (`SET_TASK`).
#[derive(Debug, Clone, Copy)]
struct Workload {
    needed: usize,
    of: usize,
}

impl Workload {
    fn task(self) -> &'static str {
        if self.of == 1 && self.needed == 1 { TASK } else { SET_TASK }
    }
}

pub(crate) async fn runs(args: RunsArgs) -> anyhow::Result<()> {
    let client = args.api.client()?;
    let (needed, of) = args.set.unwrap_or((1, 1));
    let workload = Workload { needed, of };
    let (driver, driver_url) = Driver::start().await?;
    let worker_api = ApiArgs {
        api_url: Some(args.worker_api_url.clone().unwrap_or_else(|| args.api.api_url())),
        secret_key: Some(args.api.secret_key()?),
    };
    let mut worker = match &args.worker_command {
        Some(command) => spawn_command(&worker_api, command)?,
        None => spawn_worker(&worker_api, &["--max-suspended", &args.max_suspended.to_string()], None)?,
    };
    // Token URLs name the node that created them (the worker's); completions go through ours.
    let origin = reqwest::Url::parse(&args.api.api_url()).context("--api-url is not a URL")?;
    let processes = Processes {
        server: args.server_pid,
        worker: worker.id().unwrap_or_default(),
        driver: std::process::id(),
        database: args.database_process.clone(),
    };
    eprintln!(
        "waitpoint bench runs: N={} C={} W={} K={} max-suspended={} waits for {needed} of {of} against {}",
        args.n,
        args.concurrency,
        args.warmup,
        args.probe,
        args.max_suspended,
        args.api.api_url()
    );

    let round = |name: &str| format!("{name}-{}", std::process::id());
    // Warm-up: the whole cycle, not measured.
    let warm = round("warm");
    create_phase(&client, &driver, &driver_url, &warm, args.warmup, args.concurrency, workload).await?;
    complete_phase(&driver, &origin, &warm, args.warmup, args.concurrency, workload).await?;
    driver.until(args.warmup, |d| d.done_of(&warm)).await?;

    // Phase A: create.
    let main = round("main");
    let cpu_a = processes.cpu();
    let started = Instant::now();
    create_phase(&client, &driver, &driver_url, &main, args.n, args.concurrency, workload).await?;
    let create_secs = started.elapsed().as_secs_f64();
    wait_for_status(&client, &main, workload, RunStatus::Waiting).await?;
    let cpu_a_end = processes.cpu();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let server_memory = processes.server.and_then(memory_mib);
    let worker_memory = memory_mib(processes.worker);
    let disk_waiting = args.data_dir.as_deref().map(disk_mib);
    eprintln!("  {} runs waiting after {create_secs:.2}s", args.n);

    // Phase B: complete every token through its URL.
    let cpu_b = processes.cpu();
    let started = Instant::now();
    let sent = complete_phase(&driver, &origin, &main, args.n, args.concurrency, workload).await?;
    let accepted_secs = started.elapsed().as_secs_f64();
    driver.until(args.n, |d| d.done_of(&main)).await?;
    let first_sent = sent.values().copied().fold(f64::INFINITY, f64::min);
    let last_resumed =
        (0..args.n).filter_map(|i| driver.resumed_at(&format!("{main}:{i}"))).fold(f64::NEG_INFINITY, f64::max);
    let resume_secs = (last_resumed - first_sent) / 1000.0;
    wait_for_status(&client, &main, workload, RunStatus::Completed).await?;
    let cpu_b_end = processes.cpu();
    let burst: Vec<f64> =
        sent.iter().filter_map(|(i, sent_at)| driver.resumed_at(i).map(|resumed| resumed - sent_at)).collect();
    eprintln!("  {} runs resumed after {resume_secs:.2}s", args.n);

    // Probe: one at a time.
    let probe = round("probe");
    create_phase(&client, &driver, &driver_url, &probe, args.probe, args.concurrency, workload).await?;
    wait_for_status(&client, &probe, workload, RunStatus::Waiting).await?;
    let http = http_client();
    let mut unloaded = Vec::with_capacity(args.probe);
    for i in 0..args.probe {
        let id = format!("{probe}:{i}");
        let urls = driver.urls(&id).context("a probe run never announced its token")?;
        let mut sent_at = epoch_ms();
        // The completions that decide the run's wait, one after the other: timed from the last.
        for url in urls.iter().take(workload.needed) {
            sent_at = epoch_ms();
            http.post(through(url, &origin)?).json(&json!({ "ok": true, "i": i })).send().await?.error_for_status()?;
        }
        driver.until(i + 1, |d| d.done_of(&probe)).await?;
        if let Some(resumed) = driver.resumed_at(&id) {
            unloaded.push(resumed - sent_at);
        }
    }
    let disk_end = args.data_dir.as_deref().map(disk_mib);
    let peak_server = processes.server.and_then(memory_mib).map(|(_, hwm)| hwm);
    let peak_worker = memory_mib(processes.worker).map(|(_, hwm)| hwm);
    worker.kill().await.ok();

    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let summary = json!({
        "benchmark": "runs",
        "api_url": args.api.api_url(),
        "worker_api_url": worker_api.api_url(),
        "n": args.n,
        "concurrency": args.concurrency,
        "max_suspended": args.max_suspended,
        "waits_for": { "needed": needed, "of": of },
        "waits_per_s": round2(args.n as f64 / create_secs),
        "completions_accepted_per_s": round2((args.n * of) as f64 / accepted_secs),
        "resumes_per_s": round2(args.n as f64 / resume_secs),
        "resume_latency_burst": percentiles(burst),
        "resume_latency_one_at_a_time": percentiles(unloaded),
        "memory_mib_while_waiting": {
            "server_rss": server_memory.map(|m| round2(m.0)),
            "worker_rss": worker_memory.map(|m| round2(m.0)),
            "server_peak": peak_server.map(round2),
            "worker_peak": peak_worker.map(round2),
        },
        "disk_mib": {
            "while_waiting": disk_waiting.map(|d| json!({ "apparent": round2(d.0), "allocated": round2(d.1) })),
            "at_end": disk_end.map(|d| json!({ "apparent": round2(d.0), "allocated": round2(d.1) })),
        },
        "cpu_seconds": { "create": cpu_delta(cpu_a, cpu_a_end), "complete": cpu_delta(cpu_b, cpu_b_end) },
        "cpu_ms_per_run_cycle": cpu_ms_per_run([(cpu_a, cpu_a_end), (cpu_b, cpu_b_end)], args.n),
    });
    println!();
    println!("{:<36} {}", "waits/s (create phase)", summary["waits_per_s"]);
    println!("{:<36} {}", "completions accepted/s", summary["completions_accepted_per_s"]);
    println!("{:<36} {}", "resumes/s", summary["resumes_per_s"]);
    println!("{:<36} {}", "resume latency, burst", summary["resume_latency_burst"]);
    println!("{:<36} {}", "resume latency, one at a time", summary["resume_latency_one_at_a_time"]);
    println!("{:<36} {}", "memory while waiting (MiB)", summary["memory_mib_while_waiting"]);
    println!("{:<36} {}", "disk (MiB)", summary["disk_mib"]);
    println!("{:<36} {}", "CPU seconds", summary["cpu_seconds"]);
    println!("{:<36} {}", "CPU ms per run cycle", summary["cpu_ms_per_run_cycle"]);
    println!("{summary}");
    Ok(())
}

/// Triggers `n` runs of round `round` with at most `concurrency` in flight, and waits until the
/// driver holds all their tokens.
async fn create_phase(
    client: &waitpoint_sdk::Client,
    driver: &Arc<Driver>,
    driver_url: &str,
    round: &str,
    n: usize,
    concurrency: usize,
    workload: Workload,
) -> anyhow::Result<()> {
    let triggers = futures_util::stream::iter(0..n)
        .map(|i| {
            let payload = json!({
                "i": format!("{round}:{i}"),
                "driver": driver_url,
                "needed": workload.needed,
                "of": workload.of,
            });
            let options = waitpoint_sdk::TriggerOptions { tags: Some(vec![round.to_owned()]), ..Default::default() };
            async move { client.trigger(workload.task(), &payload, Some(options)).await }
        })
        .buffer_unordered(concurrency.max(1));
    let failures = triggers.filter(|r| std::future::ready(r.is_err())).count().await;
    if failures > 0 {
        bail!("{failures} triggers failed");
    }
    driver.until(n, |d| d.tokens_of(round)).await?;
    Ok(())
}

/// POSTs `{"ok":true,"i":index}` to every token URL of the round with at most `concurrency` in
/// flight: the first token of every run, then the second of every run, and so on. Returns when
/// the completion that decides each run's wait (its `needed`-th) was sent (epoch ms), by run.
/// `url` with the scheme, host and port of `origin`.
fn through(url: &str, origin: &reqwest::Url) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(url).with_context(|| format!("a token URL that is not a URL: {url}"))?;
    url.set_scheme(origin.scheme()).map_err(|()| anyhow::anyhow!("cannot use the scheme of {origin}"))?;
    url.set_host(origin.host_str()).context("cannot use the host of --api-url")?;
    url.set_port(origin.port()).map_err(|()| anyhow::anyhow!("cannot use the port of {origin}"))?;
    Ok(url)
}

async fn complete_phase(
    driver: &Arc<Driver>,
    origin: &reqwest::Url,
    round: &str,
    n: usize,
    concurrency: usize,
    workload: Workload,
) -> anyhow::Result<HashMap<String, f64>> {
    let http = http_client();
    let posts = futures_util::stream::iter((0..workload.of).flat_map(|token| (0..n).map(move |i| (token, i))))
        .map(|(token, i)| {
            let (http, id) = (http.clone(), format!("{round}:{i}"));
            let url = driver.urls(&id).and_then(|urls| urls.get(token).cloned());
            async move {
                let url = through(&url.context("a run never announced its tokens")?, origin)?;
                let sent_at = epoch_ms();
                http.post(url).json(&json!({ "ok": true, "i": i })).send().await?.error_for_status()?;
                anyhow::Ok((token + 1 == workload.needed).then_some((id, sent_at)))
            }
        })
        .buffer_unordered(concurrency.max(1));
    let results: Vec<anyhow::Result<Option<(String, f64)>>> = posts.collect().await;
    let mut deciding = HashMap::with_capacity(n);
    for result in results {
        deciding.extend(result?);
    }
    Ok(deciding)
}

/// Waits until none of the round's runs (all created) is in a status other than `status`: one
/// request of one run per check, so the wait adds next to nothing to the CPU it measures.
async fn wait_for_status(
    client: &waitpoint_sdk::Client,
    round: &str,
    workload: Workload,
    status: RunStatus,
) -> anyhow::Result<()> {
    let others: Vec<RunStatus> = RunStatus::ALL.into_iter().filter(|other| *other != status).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let filter = RunFilter {
            statuses: others.clone(),
            tags: vec![round.to_owned()],
            task_ids: vec![workload.task().to_owned()],
            page_size: Some(1),
            ..Default::default()
        };
        let Some(run) = std::pin::pin!(client.list_runs(filter)).next().await else { return Ok(()) };
        let run = run?;
        if matches!(run.status, RunStatus::Failed | RunStatus::Canceled) {
            bail!("run {} of the benchmark ended {}", run.id, run.status);
        }
        if Instant::now() > deadline {
            bail!("run {} is still {}, not {status}", run.id, run.status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_of_processes_by_name_is_read_and_is_none_without_one() {
        let own = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(cpu_seconds_of(own.trim()).is_some_and(|seconds| seconds >= 0.0));
        assert_eq!(cpu_seconds_of("no process is named this"), None);
    }

    #[test]
    fn cpu_per_run_cycle_adds_both_phases_and_divides_by_the_runs() {
        let phases = [
            ([Some(1.0), Some(2.0), Some(3.0), Some(0.0)], [Some(2.0), Some(4.0), Some(6.0), Some(1.5)]),
            ([Some(10.0), Some(10.0), Some(10.0), Some(5.0)], [Some(11.0), Some(12.0), Some(13.0), Some(5.5)]),
        ];
        assert_eq!(
            cpu_ms_per_run(phases, 1_000),
            json!({ "server": 2.0, "worker": 4.0, "driver": 6.0, "total": 12.0, "database": 2.0 })
        );
        let no_server = [([None, Some(0.0), Some(0.0), None], [None, Some(0.5), Some(0.25), None]); 2];
        assert_eq!(
            cpu_ms_per_run(no_server, 1_000),
            json!({ "server": null, "worker": 1.0, "driver": 0.5, "total": null, "database": null })
        );
    }
}
