//! Two server nodes on one PostgreSQL database: nothing a run needs lives in one node's memory.
//! Runs are triggered on either node, their workers poll either node, their tokens are
//! completed through the other node's URL, and a node and its worker die while runs wait. Nodes
//! wake each other: a run triggered through one reaches a worker polling the other at once, also
//! after their listening connections were lost.

mod processes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use processes::{Database, Server, WorkerProcess, eventually};
use serde_json::{Value, json};
use waitpoint_sdk::{Client, RunFilter, RunStatus};

/// Token URLs the runs announced, and how often each run's step ran.
#[derive(Default)]
struct Driver {
    urls: Mutex<HashMap<String, String>>,
    steps: Mutex<HashMap<String, usize>>,
}

async fn announce(State(driver): State<Arc<Driver>>, Json(body): Json<Value>) -> Json<Value> {
    let i = body["i"].as_str().unwrap_or_default().to_owned();
    *driver.steps.lock().unwrap().entry(i.clone()).or_default() += 1;
    driver.urls.lock().unwrap().insert(i, body["url"].as_str().unwrap_or_default().to_owned());
    Json(json!({ "ok": true }))
}

async fn done() -> Json<Value> {
    Json(json!({ "ok": true }))
}

async fn count(client: &Client, status: RunStatus) -> usize {
    let filter = RunFilter { statuses: vec![status], page_size: Some(100), ..Default::default() };
    let runs: Vec<_> = futures_util::StreamExt::collect(client.list_runs(filter)).await;
    runs.into_iter().filter(|r| r.is_ok()).count()
}

/// The same token URL, served by the node at `api_url`.
fn through(url: &str, api_url: &str) -> String {
    let path = url.find("/api/").map(|at| &url[at..]).unwrap_or_else(|| panic!("not a token URL: {url}"));
    format!("{api_url}{path}")
}

async fn complete(url: &str, i: &str) {
    let response = reqwest::Client::new().post(url).json(&json!({ "ok": true, "i": i })).send().await.unwrap();
    assert_eq!(response.status(), 200, "completing {i} through {url}");
}

#[tokio::test]
async fn two_nodes_on_one_postgres_share_runs_tokens_and_workers() {
    let Some(database) = Database::postgres().await else { return };
    let driver = Arc::new(Driver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let driver_url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/id", post(announce)).route("/done", post(done)).with_state(driver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let args = ["--listen", "127.0.0.1:0", "--worker-timeout", "2s"];
    let nodes = [Server::start_with(&database, &args), Server::start_with(&database, &args)];
    let clients = [nodes[0].client(), nodes[1].client()];
    let workers = [WorkerProcess::start(&nodes[0].api_url), WorkerProcess::start(&nodes[1].api_url)];

    // Triggered on alternate nodes; either worker may take any of them.
    let runs = 30;
    let mut ids = Vec::new();
    for i in 0..runs {
        let payload = json!({ "i": i.to_string(), "driver": driver_url });
        ids.push(clients[i % 2].trigger("bench-wait", &payload, None).await.unwrap().id);
    }
    eventually("every run to wait", Duration::from_secs(30), || async {
        (count(&clients[0], RunStatus::Waiting).await == runs).then_some(())
    })
    .await;
    let urls = driver.urls.lock().unwrap().clone();

    // The first half completed through the node that did not create the token.
    for i in 0..runs / 2 {
        let url = &urls[&i.to_string()];
        let other = if url.starts_with(&nodes[0].api_url) { &nodes[1].api_url } else { &nodes[0].api_url };
        complete(&through(url, other), &i.to_string()).await;
    }
    eventually("half the runs to complete", Duration::from_secs(30), || async {
        (count(&clients[1], RunStatus::Completed).await == runs / 2).then_some(())
    })
    .await;

    // Node 0 and its worker die while the other half waits; node 1 completes them all, and
    // its worker takes over the runs the dead worker held.
    let [first_worker, _second_worker] = workers;
    let [first_node, second_node] = nodes;
    first_worker.kill();
    first_node.kill();
    for i in runs / 2..runs {
        complete(&through(&urls[&i.to_string()], &second_node.api_url), &i.to_string()).await;
    }
    eventually("every run to complete", Duration::from_secs(60), || async {
        (count(&clients[1], RunStatus::Completed).await == runs).then_some(())
    })
    .await;

    for (i, id) in ids.iter().enumerate() {
        let run = clients[1].retrieve_run(id).await.unwrap();
        assert_eq!(run.status, waitpoint_sdk::RunStatus::Completed);
        assert_eq!(run.output.as_ref().unwrap()["i"], i.to_string(), "{run:?}");
        assert_eq!(driver.steps.lock().unwrap()[&i.to_string()], 1, "the recorded step of run {i} ran again");
    }
}

/// Runs the runs numbered `runs` one after another, each triggered and its token completed
/// through `trigger_on` while the worker polls another node; returns how long, in all, the runs
/// took from their trigger to their first step (the worker's claim through the other node), and
/// from their token's completion to their own (the resume handed to the worker through the other
/// node).
async fn one_after_another(
    runs: std::ops::Range<usize>,
    driver: &Driver,
    driver_url: &str,
    trigger_on: &Server,
) -> (Duration, Duration) {
    let client = trigger_on.client();
    let (mut to_first_step, mut to_completion) = (Duration::ZERO, Duration::ZERO);
    for i in runs.map(|i| i.to_string()) {
        let payload = json!({ "i": i, "driver": driver_url });
        let triggered = std::time::Instant::now();
        let id = client.trigger("bench-wait", &payload, None).await.unwrap().id;
        let url = eventually("the run's first step", Duration::from_secs(30), || async {
            driver.urls.lock().unwrap().get(&i).cloned()
        })
        .await;
        to_first_step += triggered.elapsed();
        let completed = std::time::Instant::now();
        complete(&through(&url, &trigger_on.api_url), &i).await;
        eventually("the run to complete", Duration::from_secs(30), || async {
            (client.retrieve_run(&id).await.unwrap().status == RunStatus::Completed).then_some(())
        })
        .await;
        to_completion += completed.elapsed();
    }
    (to_first_step, to_completion)
}

#[tokio::test]
async fn runs_made_ready_through_one_node_reach_a_worker_polling_another_at_once() {
    let Some(database) = Database::postgres().await else { return };
    let Database::Postgres(schema) = &database else { unreachable!("a PostgreSQL database") };
    let driver = Arc::new(Driver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let driver_url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/id", post(announce)).route("/done", post(done)).with_state(driver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Runs are triggered through the first node; the worker polls the second. Woken only by the
    // once-a-second re-check, each run would wait half a second for its claim on average: 20 runs
    // about 10 s in all.
    let nodes = [Server::start(&database), Server::start(&database)];
    let _worker = WorkerProcess::start(&nodes[1].api_url);
    let runs = 20;
    let (claimed, resumed) = one_after_another(0..runs, &driver, &driver_url, &nodes[0]).await;
    assert!(claimed < Duration::from_secs(5), "{runs} runs waited {claimed:?} in all for their claim");
    // A run resumed through the first node while its worker's poll is held on the second (listing
    // the run under the epoch it had before it waited) once waited for that poll to end: 10 s.
    assert!(resumed < Duration::from_secs(5), "{runs} runs waited {resumed:?} in all to resume and complete");

    // The listening connections are lost while a run waits: it completes, a run triggered
    // meanwhile reaches the worker too, the connections come back, and wake-ups arrive again.
    let client = nodes[0].client();
    let payload = json!({ "i": "waiting", "driver": driver_url });
    let waiting = client.trigger("bench-wait", &payload, None).await.unwrap().id;
    let url = eventually("the run's first step", Duration::from_secs(30), || async {
        driver.urls.lock().unwrap().get("waiting").cloned()
    })
    .await;
    assert_eq!(schema.end_listeners().await, 2, "one listening connection per node");
    let payload = json!({ "i": "meanwhile", "driver": driver_url });
    let meanwhile = client.trigger("bench-wait", &payload, None).await.unwrap().id;
    complete(&through(&url, &nodes[1].api_url), "waiting").await;
    let url = eventually("the run's first step", Duration::from_secs(30), || async {
        driver.urls.lock().unwrap().get("meanwhile").cloned()
    })
    .await;
    complete(&through(&url, &nodes[1].api_url), "meanwhile").await;
    for id in [waiting, meanwhile] {
        eventually("the run to complete", Duration::from_secs(30), || async {
            (client.retrieve_run(&id).await.unwrap().status == RunStatus::Completed).then_some(())
        })
        .await;
    }
    eventually("both nodes to listen again", Duration::from_secs(30), || async {
        (schema.listeners().await == 2).then_some(())
    })
    .await;
    let (claimed, resumed) = one_after_another(runs..2 * runs, &driver, &driver_url, &nodes[0]).await;
    assert!(
        claimed < Duration::from_secs(5),
        "{runs} runs waited {claimed:?} in all for their claim after the reconnect"
    );
    assert!(resumed < Duration::from_secs(5), "{runs} runs waited {resumed:?} in all to resume after the reconnect");
}
