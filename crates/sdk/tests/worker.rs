//! A worker running real tasks against a real server (SQLite, real socket, system clock):
//! suspend and resume in memory, replay after eviction, retries, panics, timeouts,
//! non-determinism and cancel.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tempfile::TempDir;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig, SystemClock};
use waitpoint_sdk::{
    Client, Context, CreateTokenRequest, RetryPolicy, RunDetail, RunStatus, Task, TaskError, TriggerOptions,
    WaitResult, Worker, WorkerConfig,
};
use waitpoint_sqlite::SqliteStore;

struct Server {
    _dir: TempDir,
    client: Client,
}

async fn server() -> Server {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
    let dev = create_environment(&store, &SystemClock, "dev").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let config = EngineConfig { public_url: origin.clone(), ..EngineConfig::default() };
    let engine = Engine::start(Arc::new(store), Arc::new(SystemClock), config);
    tokio::spawn(waitpoint_server::serve(listener, engine, std::future::pending()));
    Server { _dir: dir, client: Client::new(&origin, dev.api_key.expose()).unwrap() }
}

fn start(client: &Client, tasks: Vec<Task>, config: WorkerConfig) -> tokio::sync::oneshot::Sender<()> {
    let worker = Worker::new(client.clone(), tasks, config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    stop
}

/// Polls the run until `done` says so (10 s at most).
async fn until(client: &Client, run: &str, done: impl Fn(&RunDetail) -> bool) -> RunDetail {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let detail = client.retrieve_run(run).await.unwrap();
        if done(&detail) {
            return detail;
        }
        assert!(Instant::now() < deadline, "run {run} stuck at {}", detail.status);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn finished(client: &Client, run: &str) -> RunDetail {
    until(client, run, |d| d.status.is_final()).await
}

async fn waiting_token(client: &Client, run: &str) -> String {
    let detail = until(client, run, |d| d.status == RunStatus::Waiting).await;
    detail.waiting_on[0].id.clone()
}

#[derive(Debug, Serialize, Deserialize)]
struct Approval {
    status: String,
}

/// The spec's approval flow: a step, a token, a wait; counts how often the step really ran.
fn approval(step_runs: Arc<AtomicUsize>) -> Task {
    Task::new("approval", move |ctx: Context, payload: Value| {
        let step_runs = step_runs.clone();
        async move {
            let ticket = ctx
                .step("open ticket", || async {
                    step_runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(format!("ticket for {}", payload["user"]))
                })
                .await?;
            let token =
                ctx.create_token(CreateTokenRequest { timeout: Some("1h".into()), ..Default::default() }).await?;
            let decision = match ctx.wait_for_token::<Approval>(&token.id).await? {
                WaitResult::Completed(approval) => approval.status,
                WaitResult::TimedOut(error) => format!("timed out: {error}"),
            };
            Ok::<_, TaskError>(json!({ "ticket": ticket, "decision": decision, "token": token.id }))
        }
    })
}

#[tokio::test]
async fn a_waiting_run_resumes_with_the_completion_and_runs_its_step_once() {
    let server = server().await;
    let step_runs = Arc::new(AtomicUsize::new(0));
    let _stop = start(&server.client, vec![approval(step_runs.clone())], WorkerConfig::default());

    let run = server.client.trigger("approval", &json!({ "user": "ada" }), None).await.unwrap().id;
    let token = waiting_token(&server.client, &run).await;
    server.client.complete_token(&token, &json!({ "status": "approved" })).await.unwrap();
    let done = finished(&server.client, &run).await;
    assert_eq!(done.status, RunStatus::Completed);
    let output = done.output.unwrap();
    assert_eq!(output["decision"], "approved");
    assert_eq!(output["ticket"], "ticket for \"ada\"");
    assert_eq!(output["token"], token);
    assert_eq!(step_runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn evicted_runs_resume_by_replay_without_repeating_steps_or_tokens() {
    let server = server().await;
    let step_runs = Arc::new(AtomicUsize::new(0));
    let config = WorkerConfig { max_suspended: 1, ..WorkerConfig::default() };
    let _stop = start(&server.client, vec![approval(step_runs.clone())], config);

    let mut runs = Vec::new();
    for user in ["a", "b", "c"] {
        let run = server.client.trigger("approval", &json!({ "user": user }), None).await.unwrap().id;
        let token = waiting_token(&server.client, &run).await;
        runs.push((run, token));
    }
    for (run, token) in &runs {
        server.client.complete_token(token, &json!({ "status": format!("ok {run}") })).await.unwrap();
    }
    for (run, token) in &runs {
        let output = finished(&server.client, run).await.output.unwrap();
        assert_eq!(output["decision"], format!("ok {run}"));
        assert_eq!(output["token"], *token, "replay returned the same token, not a new one");
    }
    assert_eq!(step_runs.load(Ordering::SeqCst), 3, "no step ran twice");
}

#[tokio::test]
async fn a_token_timeout_reaches_the_run_as_a_result() {
    let server = server().await;
    let task = Task::new("short", |ctx: Context, _: Value| async move {
        let token = ctx.create_token(CreateTokenRequest { timeout: Some("1s".into()), ..Default::default() }).await?;
        match ctx.wait_for_token::<Value>(&token.id).await?.into_result() {
            Ok(output) => Ok::<_, TaskError>(json!({ "output": output })),
            Err(timeout) => Ok(json!({ "timeout": timeout.message })),
        }
    });
    let _stop = start(&server.client, vec![task], WorkerConfig::default());
    let run = server.client.trigger("short", &json!(null), None).await.unwrap().id;
    let output = finished(&server.client, &run).await.output.unwrap();
    assert!(output["timeout"].as_str().unwrap().starts_with("Waitpoint timed out at "), "{output}");
}

#[tokio::test]
async fn failures_and_panics_retry_until_an_attempt_succeeds() {
    let server = server().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let task = {
        let calls = calls.clone();
        Task::new("flaky", move |ctx: Context, _: Value| {
            let calls = calls.clone();
            async move {
                let first = ctx
                    .step("first", || async { Ok::<_, std::io::Error>(calls.fetch_add(1, Ordering::SeqCst)) })
                    .await?;
                match ctx.attempt() {
                    1 => Err(TaskError::msg("not yet")),
                    2 => panic!("still not"),
                    _ => Ok(json!({ "first": first, "attempt": ctx.attempt() })),
                }
            }
        })
        .retry(RetryPolicy { min: Duration::from_millis(10), max: Duration::from_millis(10), factor: 1.0 })
    };
    let _stop = start(&server.client, vec![task], WorkerConfig::default());
    let options = TriggerOptions { max_attempts: Some(3), ..Default::default() };
    let run = server.client.trigger("flaky", &json!(null), Some(options)).await.unwrap().id;
    let done = finished(&server.client, &run).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.output.unwrap(), json!({ "first": 0, "attempt": 3 }));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the recorded step did not run again in later attempts");

    let options = TriggerOptions { max_attempts: Some(1), ..Default::default() };
    let doomed = server.client.trigger("flaky", &json!(null), Some(options)).await.unwrap().id;
    let failed = finished(&server.client, &doomed).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.unwrap().message, "not yet");
}

#[tokio::test]
async fn code_that_no_longer_matches_the_journal_fails_the_run_naming_both() {
    let server = server().await;
    let generation = Arc::new(AtomicUsize::new(0));
    let changing = |generation: Arc<AtomicUsize>| {
        Task::new("changing", move |ctx: Context, _: Value| {
            let name = format!("step v{}", generation.load(Ordering::SeqCst));
            async move {
                ctx.step(&name, || async { Ok::<_, std::io::Error>(1) }).await?;
                ctx.wait_for(Duration::from_millis(200)).await?;
                Ok::<_, TaskError>(json!("done"))
            }
        })
    };
    let stop = start(&server.client, vec![changing(generation.clone())], WorkerConfig::default());
    let run = server.client.trigger("changing", &json!(null), None).await.unwrap().id;
    until(&server.client, &run, |d| d.status == RunStatus::Waiting).await;
    // A new deployment with different code takes over while the run sleeps.
    stop.send(()).unwrap();
    generation.store(1, Ordering::SeqCst);
    let _stop = start(&server.client, vec![changing(generation)], WorkerConfig::default());
    let failed = finished(&server.client, &run).await;
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.name, "NonDeterminism");
    assert!(error.message.contains("\"step v0\"") && error.message.contains("\"step v1\""), "{}", error.message);
}

#[tokio::test]
async fn a_waiting_run_can_be_canceled() {
    let server = server().await;
    let _stop = start(&server.client, vec![approval(Arc::new(AtomicUsize::new(0)))], WorkerConfig::default());
    let run = server.client.trigger("approval", &json!({ "user": "x" }), None).await.unwrap().id;
    let token = waiting_token(&server.client, &run).await;
    assert_eq!(server.client.cancel_run(&run).await.unwrap().status, RunStatus::Canceled);
    server.client.complete_token(&token, &json!({ "status": "late" })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.client.retrieve_run(&run).await.unwrap().status, RunStatus::Canceled);
}

#[tokio::test]
async fn a_run_resumed_while_every_slot_is_taken_continues_in_memory_once_one_frees() {
    let server = server().await;
    let step_runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let blocker = Task::new("blocker", {
        let gate = gate.clone();
        move |_ctx: Context, _payload: Value| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok::<_, TaskError>(json!("unblocked"))
            }
        }
    });
    let config = WorkerConfig { concurrency: 1, ..WorkerConfig::default() };
    let _stop = start(&server.client, vec![approval(step_runs.clone()), blocker], config);

    let waiting = server.client.trigger("approval", &json!({ "user": "ada" }), None).await.unwrap().id;
    let token = waiting_token(&server.client, &waiting).await;
    let busy = server.client.trigger("blocker", &json!({}), None).await.unwrap().id;
    until(&server.client, &busy, |d| d.status == RunStatus::Executing).await;
    server.client.complete_token(&token, &json!({ "status": "approved" })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = server.client.retrieve_run(&waiting).await.unwrap();
    assert_eq!(held.status, RunStatus::Executing, "handed back to its worker, which has no free slot yet");

    gate.notify_one();
    assert_eq!(finished(&server.client, &busy).await.status, RunStatus::Completed);
    let done = finished(&server.client, &waiting).await;
    assert_eq!(done.output.unwrap()["decision"], "approved");
    assert_eq!(step_runs.load(Ordering::SeqCst), 1);
}
