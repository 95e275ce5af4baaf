//! Two server nodes on one PostgreSQL database: nothing a run needs lives in one node's memory.
//! Runs are triggered on either node, their workers poll either node, their tokens are
//! completed through the other node's URL, and a node and its worker die while runs wait.

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
