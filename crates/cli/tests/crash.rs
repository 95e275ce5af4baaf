//! Crash safety on real processes: kill -9 workers and the server at the worst moments, on
//! SQLite and PostgreSQL; afterwards every run finishes exactly once with the right output,
//! no acknowledged completion is lost, and no recorded step runs again.
//!
//! The runs execute the benchmark workload's task (`waitpoint bench worker`): create a token,
//! a step that POSTs it to the driver (this test), wait on the token, POST `/done`, return.
//! One test runs that worker's `crash-clock` task instead: read the time, wait until three
//! seconds after it.

mod processes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::future::join_all;
use processes::{Database, KEY, Server, WorkerProcess, eventually};
use serde_json::{Value, json};
use waitpoint_sdk::{Client, RunFilter, RunStatus, Timestamp};

/// What the runs told the test: token URLs, and how often each run's step and `/done` ran.
#[derive(Default)]
struct Driver {
    urls: Mutex<HashMap<String, String>>,
    steps: Mutex<HashMap<String, usize>>,
    done: Mutex<HashMap<String, usize>>,
}

async fn announce(State(driver): State<Arc<Driver>>, Json(body): Json<Value>) -> Json<Value> {
    let i = body["i"].as_str().unwrap_or_default().to_owned();
    *driver.steps.lock().unwrap().entry(i.clone()).or_default() += 1;
    driver.urls.lock().unwrap().insert(i, body["url"].as_str().unwrap_or_default().to_owned());
    Json(json!({ "ok": true }))
}

async fn done(State(driver): State<Arc<Driver>>, Json(body): Json<Value>) -> Json<Value> {
    *driver.done.lock().unwrap().entry(body["i"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    Json(json!({ "ok": true }))
}

async fn driver() -> (Arc<Driver>, String) {
    let driver = Arc::new(Driver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/id", post(announce)).route("/done", post(done)).with_state(driver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (driver, url)
}

/// Starts a server whose workers count as gone after 2 s, on `listen`.
fn server(database: &Database, listen: &str) -> Server {
    Server::start_with(database, &["--listen", listen, "--worker-timeout", "2s"])
}

async fn count(client: &Client, status: RunStatus) -> usize {
    let filter = RunFilter { statuses: vec![status], page_size: Some(100), ..Default::default() };
    let runs: Vec<_> = futures_util::StreamExt::collect(client.list_runs(filter)).await;
    runs.into_iter().filter(|r| r.is_ok()).count()
}

/// POSTs the run's completion to its token URL until a server answers 200.
async fn complete(url: &str, i: &str) {
    let http = reqwest::Client::new();
    eventually(&format!("the completion of {i} to be accepted"), Duration::from_secs(30), || async {
        let sent = http.post(url).json(&json!({ "ok": true, "i": i })).send().await;
        sent.ok().filter(|response| response.status() == 200).map(drop)
    })
    .await;
}

async fn crash_everything(database: Database) {
    let (driver, driver_url) = driver().await;
    let first = server(&database, "127.0.0.1:0");
    let listen = first.api_url.trim_start_matches("http://").to_owned();
    let client = Client::new(&first.api_url, KEY).unwrap();
    let worker = WorkerProcess::start(&first.api_url);

    let runs = 24;
    let mut ids = Vec::new();
    for i in 0..runs {
        let payload = json!({ "i": i.to_string(), "driver": driver_url });
        ids.push(client.trigger("bench-wait", &payload, None).await.unwrap().id);
    }
    eventually("every run to wait", Duration::from_secs(30), || async {
        (count(&client, RunStatus::Waiting).await == runs).then_some(())
    })
    .await;

    // Kill the worker and the server while every run waits, then bring both back.
    worker.kill();
    first.kill();
    let second = server(&database, &listen);
    let worker = WorkerProcess::start(&second.api_url);
    let urls = driver.urls.lock().unwrap().clone();
    for i in 0..runs / 3 {
        complete(&urls[&i.to_string()], &i.to_string()).await;
    }
    eventually("a third of the runs to complete", Duration::from_secs(30), || async {
        (count(&client, RunStatus::Completed).await == runs / 3).then_some(())
    })
    .await;

    // A burst of completions, with the server killed in the middle of it.
    let burst: Vec<_> = (runs / 3..2 * runs / 3)
        .map(|i| {
            let url = urls[&i.to_string()].clone();
            tokio::spawn(async move {
                let sent = reqwest::Client::new().post(&url).json(&json!({ "ok": true, "i": i })).send().await;
                sent.map(|response| response.status() == 200).unwrap_or(false)
            })
        })
        .collect();
    second.kill();
    let acknowledged: Vec<bool> = join_all(burst).await.into_iter().map(|r| r.unwrap_or(false)).collect();
    let third = server(&database, &listen);
    for (offset, accepted) in acknowledged.iter().enumerate() {
        let i = runs / 3 + offset;
        if !accepted {
            complete(&urls[&i.to_string()], &i.to_string()).await;
        }
    }
    eventually("two thirds of the runs to complete", Duration::from_secs(30), || async {
        (count(&client, RunStatus::Completed).await == 2 * runs / 3).then_some(())
    })
    .await;

    // Complete the rest and kill the worker right after their resume.
    for i in 2 * runs / 3..runs {
        complete(&urls[&i.to_string()], &i.to_string()).await;
    }
    worker.kill();
    let _worker = WorkerProcess::start(&third.api_url);
    eventually("every run to complete", Duration::from_secs(60), || async {
        (count(&client, RunStatus::Completed).await == runs).then_some(())
    })
    .await;

    for (i, id) in ids.iter().enumerate() {
        let run = client.retrieve_run(id).await.unwrap();
        assert_eq!(run.status, waitpoint_sdk::RunStatus::Completed);
        assert_eq!(run.output.as_ref().unwrap()["i"], i.to_string(), "{run:?}");
        assert_eq!(driver.steps.lock().unwrap()[&i.to_string()], 1, "the recorded step of run {i} ran again");
        assert!(driver.done.lock().unwrap().get(&i.to_string()).copied().unwrap_or(0) >= 1);
    }
    assert_eq!(count(&client, RunStatus::Executing).await + count(&client, RunStatus::Waiting).await, 0);
}

#[tokio::test]
async fn runs_survive_worker_and_server_crashes_on_sqlite() {
    crash_everything(Database::sqlite()).await;
}

#[tokio::test]
async fn runs_survive_worker_and_server_crashes_on_postgres() {
    let Some(database) = Database::postgres().await else { return };
    crash_everything(database).await;
}

/// A worker killed while runs execute their steps: the runs go to the next worker and each
/// finishes once; a step interrupted mid-flight may have run twice (at-least-once), no more.
async fn worker_killed_mid_step(database: Database) {
    let (driver, driver_url) = driver().await;
    let server = server(&database, "127.0.0.1:0");
    let client = Client::new(&server.api_url, KEY).unwrap();
    let runs = 40;
    let mut ids = Vec::new();
    for i in 0..runs {
        let payload = json!({ "i": i.to_string(), "driver": driver_url });
        ids.push(client.trigger("bench-wait", &payload, None).await.unwrap().id);
    }
    let worker = WorkerProcess::start(&server.api_url);
    eventually("some steps to run", Duration::from_secs(30), || async {
        (!driver.steps.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    worker.kill();
    let _worker = WorkerProcess::start(&server.api_url);
    eventually("every run to wait", Duration::from_secs(60), || async {
        (count(&client, RunStatus::Waiting).await == runs).then_some(())
    })
    .await;
    let urls = driver.urls.lock().unwrap().clone();
    for i in 0..runs {
        complete(&urls[&i.to_string()], &i.to_string()).await;
    }
    eventually("every run to complete", Duration::from_secs(60), || async {
        (count(&client, RunStatus::Completed).await == runs).then_some(())
    })
    .await;
    for (i, id) in ids.iter().enumerate() {
        let run = client.retrieve_run(id).await.unwrap();
        assert_eq!(run.output.as_ref().unwrap()["i"], i.to_string());
        let steps = driver.steps.lock().unwrap()[&i.to_string()];
        assert!((1..=2).contains(&steps), "run {i}'s step ran {steps} times");
    }
}

#[tokio::test]
async fn a_worker_killed_mid_step_hands_its_runs_over_on_sqlite() {
    worker_killed_mid_step(Database::sqlite()).await;
}

#[tokio::test]
async fn a_worker_killed_mid_step_hands_its_runs_over_on_postgres() {
    let Some(database) = Database::postgres().await else { return };
    worker_killed_mid_step(database).await;
}

/// Regression: a run that computed a deadline from the clock failed with non-determinism when
/// it replayed after a crash. Runs read the time through their context and wait until three
/// seconds after it; the worker is killed while they wait and started again under its instance
/// name. Each run completes with the instant it read before the crash (a replay reads the
/// recorded time), after the deadline it recorded.
async fn worker_killed_mid_wait_on_the_clock(database: Database) {
    let server = server(&database, "127.0.0.1:0");
    let client = Client::new(&server.api_url, KEY).unwrap();
    let worker = WorkerProcess::start_named(&server.api_url, "crash-clock-1");
    let runs = 4;
    let mut ids = Vec::new();
    for i in 0..runs {
        ids.push(client.trigger("crash-clock", &json!({ "i": i }), None).await.unwrap().id);
    }
    eventually("every run to wait", Duration::from_secs(30), || async {
        (count(&client, RunStatus::Waiting).await == runs).then_some(())
    })
    .await;
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let killed_at = Timestamp::from_millis(i64::try_from(since_epoch.as_millis()).unwrap());
    worker.kill();
    let _worker = WorkerProcess::start_named(&server.api_url, "crash-clock-1");
    eventually("every run to complete", Duration::from_secs(30), || async {
        (count(&client, RunStatus::Completed).await == runs).then_some(())
    })
    .await;
    for (i, id) in ids.iter().enumerate() {
        let run = client.retrieve_run(id).await.unwrap();
        let output = run.output.unwrap();
        assert_eq!(output["i"], i);
        let at: Timestamp = serde_json::from_value(output["at"].clone()).unwrap();
        let deadline = at + Duration::from_secs(3);
        assert!(
            at < killed_at && killed_at < deadline,
            "run {i} read {at}, waited until {deadline}, killed at {killed_at}"
        );
        assert!(run.finished_at.unwrap() >= deadline, "run {i} ended before its deadline");
        assert_eq!(run.attempt, 1);
    }
}

#[tokio::test]
async fn a_run_waiting_on_the_time_it_read_survives_a_worker_crash_on_sqlite() {
    worker_killed_mid_wait_on_the_clock(Database::sqlite()).await;
}

#[tokio::test]
async fn a_run_waiting_on_the_time_it_read_survives_a_worker_crash_on_postgres() {
    let Some(database) = Database::postgres().await else { return };
    worker_killed_mid_wait_on_the_clock(database).await;
}
