//! What a probe sent that a backend once answered with a 500 or stored wrongly: every backend
//! now answers it with the same clear 4xx, and stores nothing.

mod processes;

use processes::{Database, KEY, Server};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A client of one server's HTTP API with the dev key.
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<String>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(KEY);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: impl Into<String>) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body.into())).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// Asserts a 4xx of `status` whose error mentions `hint`.
    async fn refused(&self, (status, body): (StatusCode, Value), expected: StatusCode, hint: &str) {
        assert_eq!(status, expected, "{body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(hint), "{message:?} does not mention {hint:?}");
    }
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

async fn the_probe_gets_clear_answers(database: Database) {
    let server = Server::start(&database);
    let api = Api { http: reqwest::Client::new(), url: server.api_url.clone() };
    let bad = StatusCode::BAD_REQUEST;

    // Lists: more filter values than a query may hold (SQLite once answered 500).
    let many: Vec<String> = (0..501).map(|i| format!("t{i}")).collect();
    let many = many.join(",");
    for path in [
        format!("/api/v1/waitpoints/tokens?filter%5Btags%5D={many}"),
        format!("/api/v1/runs?filter%5Btags%5D={many}"),
        format!("/api/v1/runs?filter%5BtaskIdentifier%5D={many}"),
    ] {
        api.refused(api.get(&path).await, bad, "at most 100").await;
    }

    // JSON that would not come back as sent, on every route that stores JSON.
    let deep = format!(r#"{{"payload":{}}}"#, nested(100));
    api.refused(api.post("/api/v1/tasks/t/trigger", r#"{"payload":1e400}"#).await, bad, "out of range").await;
    api.refused(api.post("/api/v1/tasks/t/trigger", deep).await, bad, "deeper than 100").await;
    let repeated = r#"{"timeout":"1m","timeout":"none"}"#;
    api.refused(api.post("/api/v1/waitpoints/tokens", repeated).await, bad, "appears twice").await;
    let (_, token) = api.post("/api/v1/waitpoints/tokens", "{}").await;
    let id = token["id"].as_str().unwrap();
    let complete = format!("/api/v1/waitpoints/tokens/{id}/complete");
    api.refused(api.post(&complete, r#"{"data":{"n":1e400}}"#).await, bad, "out of range").await;
    let callback = token["url"].as_str().unwrap().strip_prefix(&api.url).unwrap().to_owned();
    api.refused(api.post(&callback, r#"{"a":1,"a":2}"#).await, bad, "appears twice").await;
    assert_eq!(api.get(&format!("/api/v1/waitpoints/tokens/{id}")).await.1["status"], "WAITING");

    // A payload as deep as allowed comes back as the same JSON, not as a string.
    let payload: Value = serde_json::from_str(&nested(99)).unwrap();
    let (status, triggered) = api.post("/api/v1/tasks/t/trigger", json!({ "payload": payload }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{triggered}");
    let run = triggered["id"].as_str().unwrap();
    assert_eq!(api.get(&format!("/api/v1/runs/{run}")).await.1["payload"], payload);

    // The worker protocol: unknown fields, and journal positions past any journal (PostgreSQL
    // once answered 500 where SQLite answered 409).
    let poll = json!({ "tasks": [{ "id": "t", "slots": 1 }], "waitMs": 0, "holding": [], "leave": true });
    api.refused(api.post("/api/v1/workers/worker_probe/poll", poll.to_string()).await, bad, "unknown field").await;
    let poll = json!({ "tasks": [{ "id": "t", "slots": 1 }], "waitMs": 0, "holding": [] });
    let (_, claimed) = api.post("/api/v1/workers/worker_probe/poll", poll.to_string()).await;
    assert_eq!(claimed["runs"][0]["id"], run, "{claimed}");
    let epoch = claimed["runs"][0]["epoch"].as_u64().unwrap();
    let far = 1u64 << 31;
    let conflict = StatusCode::CONFLICT;
    let record = json!({ "epoch": epoch, "entry": { "seq": far, "kind": "STEP", "name": "s", "result": 1 } });
    api.refused(api.post(&format!("/api/v1/runs/{run}/journal"), record.to_string()).await, conflict, "past the end")
        .await;
    let create = json!({ "epoch": epoch, "seq": far, "options": {} });
    api.refused(api.post(&format!("/api/v1/runs/{run}/tokens"), create.to_string()).await, conflict, "past the end")
        .await;
    let wait = json!({ "epoch": epoch, "seq": far, "for": { "type": "TOKEN", "id": id } });
    api.refused(api.post(&format!("/api/v1/runs/{run}/wait"), wait.to_string()).await, conflict, "past the end").await;
    let repeated =
        format!(r#"{{"epoch":{epoch},"entry":{{"seq":0,"kind":"STEP","name":"s","result":{{"a":1,"a":2}}}}}}"#);
    api.refused(api.post(&format!("/api/v1/runs/{run}/journal"), repeated).await, bad, "appears twice").await;
    let output = format!(r#"{{"epoch":{epoch},"output":[1e400]}}"#);
    api.refused(api.post(&format!("/api/v1/runs/{run}/attempt/complete"), output).await, bad, "out of range").await;
    // The same through the worker channel: each operation answered as its route, the batch
    // refused whole when it cannot be read.
    let operations = json!([
        { "op": "record", "run": run, "epoch": epoch, "entry": { "seq": far, "kind": "STEP", "name": "s", "result": 1 } },
        { "op": "createToken", "run": run, "epoch": epoch, "seq": far, "options": {} },
        { "op": "wait", "run": run, "epoch": epoch, "seq": far, "for": { "type": "TOKEN", "id": id } },
    ]);
    let (status, answered) = api.post("/api/v1/workers/batch", json!({ "operations": operations }).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    for answer in answered["answers"].as_array().unwrap() {
        assert_eq!(answer["status"], 409, "{answer}");
        assert!(answer["body"]["error"].as_str().unwrap().contains("past the end"), "{answer}");
    }
    let repeated = format!(r#"{{"op":"complete","run":"{run}","epoch":{epoch},"output":{{"a":1,"a":2}}}}"#);
    let deep = format!(r#"{{"op":"complete","run":"{run}","epoch":{epoch},"output":{}}}"#, nested(100));
    let huge = format!(r#"{{"op":"complete","run":"{run}","epoch":{epoch},"output":[1e400]}}"#);
    let batch = format!(r#"{{"operations":[{repeated},{deep},{huge}]}}"#);
    let (status, answered) = api.post("/api/v1/workers/batch", batch).await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    for (answer, hint) in
        answered["answers"].as_array().unwrap().iter().zip(["appears twice", "deeper than 100", "out of range"])
    {
        assert_eq!(answer["status"], 400, "{answer}");
        assert!(answer["body"]["error"].as_str().unwrap().contains(hint), "{answer} does not mention {hint:?}");
    }
    let (_, journal) = api.get(&format!("/api/v1/runs/{run}/journal")).await;
    assert_eq!(journal["entries"], json!([]), "nothing was recorded");
    assert_eq!(api.get(&format!("/api/v1/runs/{run}")).await.1["status"], "EXECUTING");
}

#[tokio::test]
async fn the_probe_gets_clear_answers_on_sqlite() {
    the_probe_gets_clear_answers(Database::sqlite()).await;
}

#[tokio::test]
async fn the_probe_gets_clear_answers_on_postgres() {
    let Some(database) = Database::postgres().await else { return };
    the_probe_gets_clear_answers(database).await;
}
