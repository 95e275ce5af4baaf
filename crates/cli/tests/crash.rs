//! Crash safety on real processes: kill -9 workers and the server at the worst moments, on
//! SQLite and PostgreSQL; afterwards every run finishes exactly once with the right output,
//! no acknowledged completion is lost, and no recorded step runs again.
//!
//! The runs execute the benchmark workload's task (`waitpoint bench worker`): create a token,
//! a step that POSTs it to the driver (this test), wait on the token, POST `/done`, return.
//! One test runs that worker's `crash-clock` task instead: read the time, wait until three
//! seconds after it. Another runs its `crash-set` task: create three tokens, a step that POSTs
//! them to the driver, wait for two of the three, a step that POSTs `/done` with which fired.
//! Another has no runs: it completes tokens while a webhook delivers their events to the test,
//! and kills the server in the middle.

mod processes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::future::join_all;
use processes::{Armed, Database, KEY, Server, WorkerProcess, eventually};
use serde_json::{Value, json};
use waitpoint_sdk::{Client, RunFilter, RunStatus, Timestamp, WaitpointStatus};

/// What the runs told the test: token URLs, and how often each run's step and `/done` ran.
#[derive(Default)]
struct Driver {
    urls: Mutex<HashMap<String, String>>,
    steps: Mutex<HashMap<String, usize>>,
    done: Mutex<HashMap<String, usize>>,
    /// A `crash-set` run's tokens, in order: (id, callback URL).
    sets: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// Every `/done` of a `crash-set` run, in the order they came.
    said: Mutex<HashMap<String, Vec<Value>>>,
}

async fn announce(State(driver): State<Arc<Driver>>, Json(body): Json<Value>) -> Json<Value> {
    let i = body["i"].as_str().unwrap_or_default().to_owned();
    *driver.steps.lock().unwrap().entry(i.clone()).or_default() += 1;
    if let (Some(ids), Some(urls)) = (body["tokenIds"].as_array(), body["urls"].as_array()) {
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        driver.sets.lock().unwrap().insert(i.clone(), ids.iter().map(text).zip(urls.iter().map(text)).collect());
    }
    driver.urls.lock().unwrap().insert(i, body["url"].as_str().unwrap_or_default().to_owned());
    Json(json!({ "ok": true }))
}

async fn done(State(driver): State<Arc<Driver>>, Json(body): Json<Value>) -> Json<Value> {
    let i = body["i"].as_str().unwrap_or_default().to_owned();
    *driver.done.lock().unwrap().entry(i.clone()).or_default() += 1;
    if body.get("fired").is_some() {
        driver.said.lock().unwrap().entry(i).or_default().push(body);
    }
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
    complete_with(url, &json!({ "ok": true, "i": i })).await;
}

/// POSTs `output` to a token URL until a server answers 200.
async fn complete_with(url: &str, output: &Value) {
    let http = reqwest::Client::new();
    eventually(&format!("the completion {output} to be accepted"), Duration::from_secs(30), || async {
        let sent = http.post(url).json(output).send().await;
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

/// The output the test completes token `k` of run `i` with.
fn token_output(i: usize, k: usize) -> Value {
    json!({ "ok": true, "i": i.to_string(), "k": k })
}

/// The journal of run `id`, as the worker protocol reads it.
async fn journal(api_url: &str, id: &str) -> Vec<Value> {
    let response = reqwest::Client::new()
        .get(format!("{api_url}/api/v1/runs/{id}/journal"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["entries"].as_array().unwrap().clone()
}

/// The result of the entry of `kind` named `name` in a journal.
fn entry<'a>(journal: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found = journal.iter().find(|entry| entry["kind"] == kind && entry["name"] == name);
    &found.unwrap_or_else(|| panic!("no {kind} {name:?} in {journal:#?}"))["result"]
}

/// Kill -9 while k-of-n completions race: runs of `crash-set` wait for 2 of their 3 tokens,
/// every token of every run is completed at once, and the server and one of two workers are
/// killed in the middle of that burst; the other worker lives on through the server's restart
/// and is killed right after the rest of the completions. Every acknowledged completion
/// survives; every run resumes once and completes once, with the tokens that decided its set
/// as the journal recorded them: two, the third still pending then, or all three when the
/// server finished the last two in one transaction (its batches do that: they resume the run
/// once, with both); no recorded step runs again.
async fn kill_while_set_completions_race(database: Database) {
    let started = Instant::now();
    let (driver, driver_url) = driver().await;
    let first = server(&database, "127.0.0.1:0");
    let listen = first.api_url.trim_start_matches("http://").to_owned();
    let client = Client::new(&first.api_url, KEY).unwrap();
    let doomed = WorkerProcess::start(&first.api_url);
    let survivor = WorkerProcess::start(&first.api_url);

    let runs = 40;
    let mut ids = Vec::new();
    for i in 0..runs {
        let payload = json!({ "i": i.to_string(), "driver": driver_url });
        ids.push(client.trigger("crash-set", &payload, None).await.unwrap().id);
    }
    eventually("every run to wait on its set", Duration::from_secs(30), || async {
        (count(&client, RunStatus::Waiting).await == runs).then_some(())
    })
    .await;
    let sets = driver.sets.lock().unwrap().clone();
    assert_eq!(sets.len(), runs, "every run announced its tokens");
    assert!(sets.values().all(|tokens| tokens.len() == 3));

    // Every token of every run at once; the server and a worker die together the moment a
    // quarter of the completions are acknowledged (the rest in flight or not yet decided, the
    // runs it resumed on their way to the workers, or in their `/done` step).
    let http = reqwest::Client::new();
    let accepted = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(Armed::new(&[first.pid(), doomed.pid()]));
    let kill_at = runs * 3 / 4;
    let burst: Vec<_> = (0..runs)
        .flat_map(|i| (0..3).map(move |k| (i, k)))
        .map(|(i, k)| {
            let (http, accepted, armed) = (http.clone(), accepted.clone(), armed.clone());
            let url = sets[&i.to_string()][k].1.clone();
            tokio::spawn(async move {
                let sent = http.post(&url).json(&token_output(i, k)).send().await;
                let ok = sent.is_ok_and(|response| response.status() == 200);
                if ok && accepted.fetch_add(1, Ordering::SeqCst) + 1 == kill_at {
                    armed.fire();
                }
                ok
            })
        })
        .collect();
    let acknowledged: Vec<bool> = join_all(burst).await.into_iter().map(|r| r.unwrap_or(false)).collect();
    Arc::into_inner(armed).unwrap().wait();
    first.kill();
    doomed.kill();
    let acknowledged_count = acknowledged.iter().filter(|a| **a).count();

    let second = server(&database, &listen);
    // A new client: the old one's pooled connections went with the server.
    let client = second.client();
    let _replacement = WorkerProcess::start(&second.api_url);
    // No acknowledged completion was lost with the server.
    for (n, accepted) in acknowledged.iter().enumerate() {
        let (i, k) = (n / 3, n % 3);
        if *accepted {
            let token = client.retrieve_token(sets[&i.to_string()][k].0.as_str()).await.unwrap();
            assert_eq!(token.detail.status, WaitpointStatus::Completed, "an acknowledged completion was lost");
            assert_eq!(token.output::<Value>().unwrap(), Some(token_output(i, k)));
        }
    }
    // The rest, all at once again; then the worker that lived through the crash dies too.
    let rest: Vec<_> = acknowledged
        .iter()
        .enumerate()
        .filter(|(_, accepted)| !**accepted)
        .map(|(n, _)| {
            let (i, k) = (n / 3, n % 3);
            let url = sets[&i.to_string()][k].1.clone();
            tokio::spawn(async move { complete_with(&url, &token_output(i, k)).await })
        })
        .collect();
    for sent in join_all(rest).await {
        sent.unwrap();
    }
    survivor.kill();
    let _last = WorkerProcess::start(&second.api_url);
    eventually("every run to complete", Duration::from_secs(60), || async {
        (count(&client, RunStatus::Completed).await == runs).then_some(())
    })
    .await;

    let said = driver.said.lock().unwrap().clone();
    let (mut repeated, mut most) = (0, 0);
    let mut fired_counts: BTreeMap<String, usize> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let key = i.to_string();
        let tokens: Vec<&str> = sets[&key].iter().map(|(id, _)| id.as_str()).collect();
        let run = client.retrieve_run(id).await.unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        assert_eq!(run.attempt, 1, "run {i} failed an attempt: {run:?}");
        let output = run.output.clone().unwrap();
        assert_eq!(output["i"], key, "{run:?}");

        // Exactly two of the three fired (the set is decided by the second completion, even
        // when all three commit in one transaction), in the order given, with the outputs they
        // were completed with.
        let fired: Vec<&str> = output["fired"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!(fired.len(), 2, "run {i} resumed with {fired:?} fired: {output}");
        let indexes: Vec<usize> = fired
            .iter()
            .map(|f| tokens.iter().position(|t| t == f).unwrap_or_else(|| panic!("run {i}: {f} is not its token")))
            .collect();
        assert!(indexes.windows(2).all(|w| w[0] < w[1]), "run {i}: {fired:?} not in the order given");
        *fired_counts.entry(format!("{indexes:?}")).or_default() += 1;
        let outputs: Vec<Value> = indexes.iter().map(|k| token_output(i, *k)).collect();
        assert_eq!(output["outputs"], json!(outputs), "run {i}");

        // The journal recorded that decision, and the step that said it, once.
        let journal = journal(&second.api_url, id).await;
        let set = entry(&journal, "WAIT_SET", "2 of 3");
        assert_eq!(set["ok"], true, "run {i}: {set}");
        let members = set["waitpoints"].as_array().unwrap();
        let recorded: Vec<(&str, bool)> =
            members.iter().map(|m| (m["id"].as_str().unwrap(), m["ok"] == true)).collect();
        assert_eq!(recorded.len(), 3, "run {i}: {set}");
        for (k, (member, completed)) in recorded.iter().enumerate() {
            assert_eq!(*member, tokens[k], "run {i}: {set}");
            assert_eq!(*completed, indexes.contains(&k), "run {i}: the journal's set {set} is not its output's");
            if !completed {
                assert_eq!(members[k]["pending"], true, "run {i}: {set}");
            }
        }
        assert_eq!(entry(&journal, "STEP", "say which tokens fired"), &output["said"], "run {i}");
        assert_eq!(journal.iter().filter(|e| e["kind"] == "STEP").count(), 2, "run {i}: {journal:#?}");

        // The tokens announced once; `/done` said the same every time it ran, and the one
        // execution the journal recorded was the last (a recorded step never runs again).
        assert_eq!(driver.steps.lock().unwrap()[&key], 1, "the recorded announce step of run {i} ran again");
        let times = &said[&key];
        assert!(times.len() <= 3, "run {i}'s /done ran {} times: {times:?}", times.len());
        for time in times {
            assert_eq!(time["fired"], output["fired"], "run {i}'s /done said otherwise: {times:?}");
        }
        assert_eq!(times.last(), Some(&output["said"]), "run {i}'s recorded /done step ran again: {times:?}");
        repeated += usize::from(times.len() > 1);
        most = most.max(times.len());

        // The token that did not decide the set was completed afterwards all the same.
        for (k, token) in tokens.iter().enumerate() {
            let token = client.retrieve_token(*token).await.unwrap();
            assert_eq!(token.detail.status, WaitpointStatus::Completed, "run {i}'s token {k}");
        }
    }
    assert_eq!(count(&client, RunStatus::Executing).await + count(&client, RunStatus::Waiting).await, 0);
    eprintln!(
        "crash-set on {}: {acknowledged_count} of {} completions acknowledged before the kill; tokens fired, by run: \
         {fired_counts:?}; /done ran again (interrupted before it was recorded) in {repeated} runs, at most {most} times; {:.1} s",
        database.name(),
        runs * 3,
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn a_set_wait_resumes_once_when_the_server_and_workers_die_while_its_completions_race_on_sqlite() {
    kill_while_set_completions_race(Database::sqlite()).await;
}

#[tokio::test]
async fn a_set_wait_resumes_once_when_the_server_and_workers_die_while_its_completions_race_on_postgres() {
    let Some(database) = Database::postgres().await else { return };
    kill_while_set_completions_race(database).await;
}

/// One delivery the webhook receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    /// The server's lifetime it came in: 0 for the first server, 1 after the first kill, …
    life: usize,
    seq: u64,
    subject: String,
    webhook_id: String,
    timestamp: String,
    signature: String,
    body: Value,
}

/// The webhook receiver: every delivery, in the order they came.
#[derive(Default)]
struct Receiver {
    life: AtomicUsize,
    got: Mutex<Vec<Delivery>>,
}

/// Records a delivery as it comes, then takes 0–20 ms to answer 204, so that deliveries are in
/// flight when the server dies.
async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, Json(body): Json<Value>) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    receiver.got.lock().unwrap().push(Delivery {
        life: receiver.life.load(Ordering::SeqCst),
        seq: body["data"]["seq"].as_u64().unwrap_or_default(),
        subject: body["data"]["subject"].as_str().unwrap_or_default().to_owned(),
        webhook_id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
    });
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    tokio::time::sleep(Duration::from_millis(u64::from(nanos % 21))).await;
    StatusCode::NO_CONTENT
}

async fn receiver() -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new().route("/hook", post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

/// Starts a server that may deliver webhooks to this machine, on `listen`.
fn webhook_server(database: &Database, listen: &str) -> Server {
    Server::start_with(database, &["--listen", listen, "--webhooks-allow-private"])
}

/// Completes token `id` (the `i`-th) through the API; whether the server answered 200.
async fn complete_token(http: &reqwest::Client, api_url: &str, id: &str, i: usize) -> bool {
    let url = format!("{api_url}/api/v1/waitpoints/tokens/{id}/complete");
    let sent = http.post(url).bearer_auth(KEY).json(&json!({ "data": { "i": i } })).send().await;
    sent.is_ok_and(|response| response.status() == 200)
}

/// Completes the tokens at `todo` from eight tasks at once; a task stops at its first failure.
/// `armed` fires when the `kill_after`-th completion is acknowledged. Says which were.
async fn completion_burst(
    api_url: &str,
    tokens: &Arc<Vec<String>>,
    todo: Vec<usize>,
    kill_after: usize,
    armed: &Arc<Armed>,
) -> HashSet<usize> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let queue = Arc::new(Mutex::new(todo.into_iter()));
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (http, api_url, tokens) = (http.clone(), api_url.to_owned(), tokens.clone());
            let (queue, acknowledged, armed) = (queue.clone(), acknowledged.clone(), armed.clone());
            tokio::spawn(async move {
                loop {
                    let Some(i) = queue.lock().unwrap().next() else { return };
                    if !complete_token(&http, &api_url, &tokens[i], i).await {
                        return;
                    }
                    let count = {
                        let mut acknowledged = acknowledged.lock().unwrap();
                        acknowledged.insert(i);
                        acknowledged.len()
                    };
                    if count == kill_after {
                        armed.fire();
                    }
                }
            })
        })
        .collect();
    for task in join_all(tasks).await {
        task.unwrap();
    }
    Arc::into_inner(acknowledged).unwrap().into_inner().unwrap()
}

/// After a kill: waits until whatever the dead server had sent has reached the receiver, reads
/// the position the server recorded for the webhook, and starts the receiver's next lifetime.
async fn after_the_kill(database: &Database, receiver: &Receiver) -> u64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let webhooks = database.store().await.webhook_list(None).await.unwrap();
    assert_eq!(webhooks.len(), 1, "{webhooks:?}");
    receiver.life.fetch_add(1, Ordering::SeqCst);
    webhooks[0].delivery.through
}

/// The one webhook, as `GET /api/v1/webhooks` shows it.
async fn the_webhook(api_url: &str) -> Option<Value> {
    let response = reqwest::Client::new().get(format!("{api_url}/api/v1/webhooks")).bearer_auth(KEY).send().await;
    let listed: Value = response.ok()?.error_for_status().ok()?.json().await.ok()?;
    listed.as_array()?.first().cloned()
}

/// Kill -9 while a webhook delivers: tokens are completed from concurrent tasks and the server
/// is killed in the middle of the burst, twice, while `waitpoint.completed` events are on their
/// way to a receiver that answers slowly. Every completed token's event arrives, none of a token
/// not completed; each server delivers in log order from the position recorded before it
/// started; an event arrives again only right after a restart, and only one the dead server
/// had sent after the position it recorded (at least once, no more than that).
async fn webhooks_survive_server_crashes(database: Database) {
    let started = Instant::now();
    let (receiver, receiver_url) = receiver().await;
    let first = webhook_server(&database, "127.0.0.1:0");
    let listen = first.api_url.trim_start_matches("http://").to_owned();
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/api/v1/webhooks", first.api_url))
        .bearer_auth(KEY)
        .json(&json!({ "url": receiver_url, "kinds": ["waitpoint.completed"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"), "{created}");
    let subscribed_at = created["deliveredThrough"].as_u64().unwrap();

    // 300 tokens; every tenth is never completed.
    let n = 300;
    let created: Vec<_> = (0..n)
        .map(|_| {
            let (http, api_url) = (http.clone(), first.api_url.clone());
            tokio::spawn(async move {
                let response = http
                    .post(format!("{api_url}/api/v1/waitpoints/tokens"))
                    .bearer_auth(KEY)
                    .json(&json!({ "timeout": "1h" }))
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap();
                let token: Value = response.json().await.unwrap();
                token["id"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let tokens: Arc<Vec<String>> = Arc::new(join_all(created).await.into_iter().map(Result::unwrap).collect());
    let to_complete: Vec<usize> = (0..n).filter(|i| i % 10 != 9).collect();

    // A burst of completions; the server dies when a third of them are acknowledged.
    let armed = Arc::new(Armed::new(&[first.pid()]));
    let first_acknowledged =
        completion_burst(&first.api_url, &tokens, to_complete.clone(), to_complete.len() / 3, &armed).await;
    Arc::into_inner(armed).unwrap().wait();
    first.kill();
    let first_crash = after_the_kill(&database, &receiver).await;

    // Again on the same address: once it delivered again for a while, the completions not
    // acknowledged, and the server killed half-way through them.
    let second = webhook_server(&database, &listen);
    eventually("the second server to deliver", Duration::from_secs(10), || async {
        (receiver.got.lock().unwrap().iter().filter(|delivery| delivery.life == 1).count() >= 20).then_some(())
    })
    .await;
    let pending: Vec<usize> = to_complete.iter().copied().filter(|i| !first_acknowledged.contains(i)).collect();
    let armed = Arc::new(Armed::new(&[second.pid()]));
    let second_acknowledged =
        completion_burst(&second.api_url, &tokens, pending.clone(), pending.len() / 2, &armed).await;
    Arc::into_inner(armed).unwrap().wait();
    second.kill();
    let second_crash = after_the_kill(&database, &receiver).await;

    // The rest, each until acknowledged.
    let third = webhook_server(&database, &listen);
    let http = reqwest::Client::new();
    let rest: Vec<_> = pending
        .iter()
        .copied()
        .filter(|i| !second_acknowledged.contains(i))
        .map(|i| {
            let (http, api_url, tokens) = (http.clone(), third.api_url.clone(), tokens.clone());
            tokio::spawn(async move {
                eventually(&format!("token {i}'s completion to be acknowledged"), Duration::from_secs(10), || async {
                    complete_token(&http, &api_url, &tokens[i], i).await.then_some(())
                })
                .await;
            })
        })
        .collect();
    let rest_count = rest.len();
    for sent in join_all(rest).await {
        sent.unwrap();
    }
    let client = third.client();
    let mut completed = HashSet::new();
    for (i, id) in tokens.iter().enumerate() {
        let status = client.retrieve_token(id.as_str()).await.unwrap().detail.status;
        let expected = if i % 10 == 9 { WaitpointStatus::Waiting } else { WaitpointStatus::Completed };
        assert_eq!(status, expected, "token {i}");
        if status == WaitpointStatus::Completed {
            completed.insert(id.clone());
        }
    }

    // Until the webhook's recorded position reaches the head of the log.
    let store = database.store().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let webhook = loop {
        let head = store.events_head().await.unwrap();
        let webhook = the_webhook(&third.api_url).await;
        if let Some(webhook) = webhook.as_ref().filter(|webhook| webhook["deliveredThrough"] == head) {
            break webhook.clone();
        }
        assert!(Instant::now() < deadline, "delivery did not reach the log's head {head}: {webhook:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(webhook["attempts"], 0, "{webhook}");
    assert!(webhook["lastError"].is_null(), "{webhook}");
    let got = receiver.got.lock().unwrap().clone();

    // Each delivery is a completed token's `waitpoint.completed`, its id the event's position.
    let mut seq_of: HashMap<&str, u64> = HashMap::new();
    let mut subject_of: HashMap<u64, &str> = HashMap::new();
    for delivery in &got {
        let (seq, subject, body) = (delivery.seq, delivery.subject.as_str(), &delivery.body);
        assert_eq!(delivery.webhook_id, format!("evt_{seq}"), "{delivery:?}");
        let timestamp: u64 = delivery.timestamp.parse().unwrap_or_else(|_| panic!("{delivery:?}"));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(now - 120 < timestamp && timestamp <= now, "{delivery:?}");
        assert!(delivery.signature.starts_with("v1,"), "{delivery:?}");
        assert_eq!(body["type"], "waitpoint.completed", "{delivery:?}");
        assert_eq!(body["data"]["type"], "waitpoint.completed", "{delivery:?}");
        assert_eq!(body["data"]["data"]["id"], subject, "{delivery:?}");
        assert_eq!(body["data"]["data"]["status"], "COMPLETED", "{delivery:?}");
        assert!(
            completed.contains(subject),
            "an event was delivered of {subject}, which is not completed: {delivery:?}"
        );
        assert_eq!(*seq_of.entry(subject).or_insert(seq), seq, "two completion events of {subject}");
        assert_eq!(*subject_of.entry(seq).or_insert(subject), subject, "event {seq} told of two tokens");
    }
    // None lost.
    let lost: Vec<&String> = completed.iter().filter(|id| !seq_of.contains_key(id.as_str())).collect();
    assert!(lost.is_empty(), "{} completed tokens' events were never delivered: {lost:?}", lost.len());

    // In log order within each lifetime, from the position recorded before it; again only what
    // the dead server sent after the position it recorded, right after the restart.
    let starts = [subscribed_at, first_crash, second_crash];
    let mut seen: HashSet<u64> = HashSet::new();
    let mut furthest = subscribed_at;
    let mut lives = Vec::new();
    let mut duplicates = Vec::new();
    for (life, &start) in starts.iter().enumerate() {
        let seqs: Vec<u64> = got.iter().filter(|delivery| delivery.life == life).map(|delivery| delivery.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "lifetime {life} delivered out of order: {seqs:?}");
        assert!(seqs.iter().all(|seq| *seq > start), "lifetime {life} delivered at or before {start}: {seqs:?}");
        if life > 0 {
            let before: Vec<u64> = got.iter().filter(|d| d.life == life - 1).map(|d| d.seq).collect();
            assert!(start >= starts[life - 1], "the recorded position went back: {starts:?}");
            assert!(start <= furthest, "position {start} recorded past every delivery ({furthest}): events skipped");
            // A delivery is recorded before the next is sent: only the last one may be missing.
            if let [.., penultimate, _] = before[..] {
                assert!(start >= penultimate, "position {start} recorded at the crash, before {before:?}");
            }
        }
        let again = seqs.iter().take_while(|seq| seen.contains(seq)).count();
        let later: Vec<&u64> = seqs[again..].iter().filter(|seq| seen.contains(seq)).collect();
        assert!(later.is_empty(), "lifetime {life} delivered {later:?} again, not right after its start: {seqs:?}");
        furthest = furthest.max(seqs.last().copied().unwrap_or_default());
        seen.extend(&seqs);
        lives.push(seqs.len());
        duplicates.push(again);
    }
    assert_eq!(seen.len(), completed.len());
    eprintln!(
        "webhooks on {}: {n} tokens, {} completed ({} + {} acknowledged before the kills, {rest_count} after); \
         deliveries by lifetime {lives:?}, {} in all; positions recorded: subscribed at {subscribed_at}, at the \
         kills {first_crash} and {second_crash}; delivered again after each start {duplicates:?}; {:.1} s",
        database.name(),
        completed.len(),
        first_acknowledged.len(),
        second_acknowledged.len(),
        got.len(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn webhook_deliveries_survive_server_crashes_on_sqlite() {
    webhooks_survive_server_crashes(Database::sqlite()).await;
}

#[tokio::test]
async fn webhook_deliveries_survive_server_crashes_on_postgres() {
    let Some(database) = Database::postgres().await else { return };
    webhooks_survive_server_crashes(database).await;
}
