//! Outbound webhooks over real sockets: a receiver on this machine gets the events it
//! subscribed to, signed so that waitpoint's own Standard Webhooks verifier accepts them, and a
//! failing receiver is retried, with why it failed on record.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig, SystemClock, WebhookPolicy};
use waitpoint_sqlite::SqliteStore;

/// What the receiver got: each delivery's headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn receive(State(received): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
    received.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

/// A receiver on a free port: `/hook` takes deliveries, `/fail` answers 503.
async fn receiver() -> (Received, String) {
    let received = Received::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .route("/fail", post(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (received, origin)
}

struct Server {
    _dir: TempDir,
    origin: String,
    key: String,
    http: reqwest::Client,
}

impl Server {
    async fn start() -> Self {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
        let dev = create_environment(&store, &SystemClock, "dev").await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let webhooks = WebhookPolicy { allow_private: true, ..WebhookPolicy::default() };
        let config = EngineConfig { public_url: origin.clone(), webhooks, ..EngineConfig::default() };
        let engine = Engine::start(Arc::new(store), Arc::new(SystemClock), config);
        tokio::spawn(waitpoint_server::serve(listener, engine, std::future::pending()));
        Self { _dir: dir, origin, key: dev.api_key.expose().to_owned(), http: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let reply =
            self.http.post(format!("{}{path}", self.origin)).bearer_auth(&self.key).json(&body).send().await.unwrap();
        let status = StatusCode::from_u16(reply.status().as_u16()).unwrap();
        (status, reply.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.origin))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_the_events_it_subscribed_to_signed_and_a_failing_one_is_retried() {
    let server = Server::start().await;
    let (received, receiver_origin) = receiver().await;
    let subscription =
        json!({ "url": format!("{receiver_origin}/hook"), "kinds": ["waitpoint.completed"], "tags": ["watched"] });
    let (status, webhook) = server.post("/api/v1/webhooks", subscription).await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    let (_, watched) = server.post("/api/v1/waitpoints/tokens", json!({ "tags": ["watched"] })).await;
    let (_, other) = server.post("/api/v1/waitpoints/tokens", json!({})).await;
    for token in [&other, &watched] {
        let path = format!("/api/v1/waitpoints/tokens/{}/complete", token["id"].as_str().unwrap());
        assert_eq!(server.post(&path, json!({ "data": { "ok": true } })).await.0, StatusCode::OK);
    }
    let (headers, body) = eventually("the delivery", async || received.lock().unwrap().first().cloned()).await;
    let delivered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(delivered["type"], "waitpoint.completed");
    assert_eq!(delivered["data"]["subject"], watched["id"]);
    assert_eq!(delivered["data"]["data"]["status"], "COMPLETED");
    let seq = delivered["data"]["seq"].as_u64().unwrap();
    assert_eq!(headers["webhook-id"], format!("evt_{seq}").as_str());

    // waitpoint's own Standard Webhooks verifier accepts the delivery as sent, and nothing else.
    let verifier = json!({ "callbackVerifier": { "scheme": "standard-webhooks", "secret": secret } });
    let (_, check) = server.post("/api/v1/waitpoints/tokens", verifier).await;
    let replay = |body: String| {
        let mut request = server.http.post(check["url"].as_str().unwrap()).body(body);
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            request = request.header(name, headers[name].to_str().unwrap());
        }
        request.send()
    };
    assert_eq!(replay(body.replace("COMPLETED", "TIMED_OUT")).await.unwrap().status().as_u16(), 401);
    assert_eq!(replay(body.clone()).await.unwrap().status().as_u16(), 200);
    let verified = server.get(&format!("/api/v1/waitpoints/tokens/{}", check["id"].as_str().unwrap())).await;
    assert_eq!(verified["status"], "COMPLETED", "the signature verified");

    let listed = server.get("/api/v1/webhooks").await;
    assert!(listed[0]["deliveredThrough"].as_u64().unwrap() >= seq);
    assert!(listed[0].get("secret").is_none(), "the secret is shown once");
    assert_eq!(received.lock().unwrap().len(), 1, "only what it subscribed to");

    let (status, failing) = server.post("/api/v1/webhooks", json!({ "url": format!("{receiver_origin}/fail") })).await;
    assert_eq!(status, StatusCode::CREATED);
    server.post("/api/v1/waitpoints/tokens", json!({})).await;
    let failed = eventually("a failed attempt on record", async || {
        let listed = server.get("/api/v1/webhooks").await;
        let entry = listed.as_array().unwrap().iter().find(|hook| hook["id"] == failing["id"]).cloned().unwrap();
        (entry["attempts"].as_u64().unwrap() >= 1).then_some(entry)
    })
    .await;
    assert!(failed["lastError"].as_str().unwrap().contains("503"), "{failed}");
    assert!(failed["retryAt"].is_string());
    let path = format!("{}/api/v1/webhooks/{}", server.origin, failing["id"].as_str().unwrap());
    let deleted = server.http.delete(&path).bearer_auth(&server.key).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    assert_eq!(server.get("/api/v1/webhooks").await.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_holds_up_no_other() {
    let server = Server::start().await;
    let (received, receiver_origin) = receiver().await;
    for path in ["slow", "hook"] {
        let (status, _) = server.post("/api/v1/webhooks", json!({ "url": format!("{receiver_origin}/{path}") })).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // The slow receiver takes 3 s an event. Each event reaches the fast one while the slow one
    // is still busy with an earlier event: had the fast one waited behind it, it would not.
    for count in 1..=3 {
        let started = Instant::now();
        server.post("/api/v1/waitpoints/tokens", json!({})).await;
        eventually("the fast receiver's event", async || (received.lock().unwrap().len() >= count).then_some(())).await;
        assert!(started.elapsed() < Duration::from_secs(2), "event {count} took {:?}", started.elapsed());
    }
}
