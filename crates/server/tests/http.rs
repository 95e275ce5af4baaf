//! The HTTP API driven in process (no socket) over a real SQLite database and a manual clock:
//! the wire shapes, every way to complete, and the bad-input answers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig};
use waitpoint_sqlite::SqliteStore;
use waitpoint_types::{Environment, Timestamp, WaitpointId};

const START: i64 = 1_764_000_000_000;

struct Api {
    _dir: TempDir,
    clock: ManualClock,
    engine: Engine,
    router: Router,
    dev: Environment,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Api {
    async fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let clock = ManualClock::new(Timestamp::from_millis(START));
        let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
        let dev = create_environment(&store, &clock, "dev").await.unwrap();
        let config = EngineConfig { public_url: "http://wp.test".into(), ..EngineConfig::default() };
        let engine = Engine::start(Arc::new(store), Arc::new(clock.clone()), config);
        Self { _dir: dir, clock, router: waitpoint_server::app(engine.clone()), engine, dev }
    }

    fn key(&self) -> String {
        self.dev.api_key.expose().to_owned()
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Reply { status, headers, body }
    }

    /// A request with a Content-Length, authenticated with `credential` when given.
    async fn call(&self, method: Method, uri: &str, credential: Option<&str>, body: &str) -> Reply {
        let mut request = Request::builder().method(method).uri(uri).header(header::CONTENT_LENGTH, body.len());
        if let Some(credential) = credential {
            request = request.header(header::AUTHORIZATION, format!("Bearer {credential}"));
        }
        self.send(request.body(Body::from(body.to_owned())).unwrap()).await
    }

    async fn create(&self, body: Value) -> Value {
        let reply = self.call(Method::POST, "/api/v1/waitpoints/tokens", Some(&self.key()), &body.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    async fn retrieve(&self, id: &str) -> Value {
        let reply = self.call(Method::GET, &format!("/api/v1/waitpoints/tokens/{id}"), Some(&self.key()), "").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    async fn complete(&self, id: &str, credential: &str, body: &str) -> Reply {
        self.call(Method::POST, &format!("/api/v1/waitpoints/tokens/{id}/complete"), Some(credential), body).await
    }

    async fn reject(&self, id: &str, credential: &str, body: &str) -> Reply {
        self.call(Method::POST, &format!("/api/v1/waitpoints/tokens/{id}/reject"), Some(credential), body).await
    }

    async fn list(&self, query: &str) -> Reply {
        self.call(Method::GET, &format!("/api/v1/waitpoints/tokens?{query}"), Some(&self.key()), "").await
    }
}

fn callback_path(url: &str) -> String {
    url.strip_prefix("http://wp.test").unwrap().to_owned()
}

fn assert_error(reply: &Reply, status: StatusCode, hint: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let message = reply.body["error"].as_str().unwrap_or_else(|| panic!("no error message in {}", reply.body));
    assert!(message.contains(hint), "{message:?} does not mention {hint:?}");
}

#[tokio::test]
async fn create_answers_like_trigger_dev_with_both_jwt_headers() {
    let api = Api::new().await;
    let reply = api
        .call(Method::POST, "/api/v1/waitpoints/tokens", Some(&api.key()), r#"{"timeout":"10m","tags":["a"]}"#)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let id = reply.body["id"].as_str().unwrap();
    assert!(id.starts_with("waitpoint_") && id.len() == "waitpoint_".len() + 25, "{id}");
    assert_eq!(reply.body["isCached"], false);
    let url = reply.body["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("http://wp.test/api/v1/waitpoints/tokens/{id}/callback/")), "{url}");
    assert_eq!(url.rsplit('/').next().unwrap().len(), 64);
    let jwt = reply.headers["x-trigger-jwt"].to_str().unwrap();
    assert_eq!(reply.body["publicAccessToken"], jwt);
    let claims: Value = serde_json::from_str(reply.headers["x-trigger-jwt-claims"].to_str().unwrap()).unwrap();
    assert_eq!(claims, json!({ "sub": api.dev.id.public(), "pub": true }));
    assert!(reply.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));

    let token = api.retrieve(id).await;
    assert_eq!(token["status"], "WAITING");
    assert_eq!(token["type"], "MANUAL");
    assert_eq!(token["tags"], json!(["a"]));
    assert_eq!(token["createdAt"], "2025-11-24T16:00:00.000Z");
    assert_eq!(token["timeoutAt"], "2025-11-24T16:10:00.000Z");
    for absent in ["output", "outputType", "completedAt", "idempotencyKey", "idempotencyKeyExpiresAt", "completedVia"] {
        assert!(token.get(absent).is_none(), "{absent} should be omitted, not null: {token}");
    }
}

#[tokio::test]
async fn every_way_to_complete_records_its_output_and_how() {
    let api = Api::new().await;
    let sdk = api.create(json!({})).await;
    let curl = api.create(json!({})).await;
    let webhook = api.create(json!({})).await;
    let browser = api.create(json!({})).await;

    let ok = api.complete(sdk["id"].as_str().unwrap(), &api.key(), r#"{"data":{"status":"approved"}}"#).await;
    assert_eq!((ok.status, ok.body.clone()), (StatusCode::OK, json!({ "success": true })));
    api.complete(curl["id"].as_str().unwrap(), &api.key(), r#"{"output":{"status":"rejected"}}"#).await;
    let path = callback_path(webhook["url"].as_str().unwrap());
    let reply = api.call(Method::POST, &path, None, r#"{"id":"p1","output":[1,2]}"#).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, json!({ "success": true })));
    let public = browser["publicAccessToken"].as_str().unwrap();
    assert_eq!(api.complete(browser["id"].as_str().unwrap(), public, r#"{"data":"yes"}"#).await.status, StatusCode::OK);

    let expect = [
        (&sdk, r#"{"json":{"status":"approved"}}"#, "application/super+json", "SECRET_KEY"),
        (&curl, r#"{"json":{"status":"rejected"}}"#, "application/super+json", "SECRET_KEY"),
        (&webhook, r#"{"json":{"id":"p1","output":[1,2]}}"#, "application/super+json", "CALLBACK_URL"),
        (&browser, "yes", "text/plain", "PUBLIC_ACCESS_TOKEN"),
    ];
    for (created, output, output_type, via) in expect {
        let token = api.retrieve(created["id"].as_str().unwrap()).await;
        assert_eq!(token["status"], "COMPLETED");
        assert_eq!(token["output"], output);
        assert_eq!(token["outputType"], output_type);
        assert_eq!(token["outputIsError"], false);
        assert_eq!(token["completedVia"], via);
        assert_eq!(token["completedAt"], "2025-11-24T16:00:00.000Z");
    }

    // First completion wins: later ones succeed and change nothing.
    let again = api.complete(sdk["id"].as_str().unwrap(), &api.key(), r#"{"data":"late"}"#).await;
    assert_eq!((again.status, again.body), (StatusCode::OK, json!({ "success": true })));
    let again = api.call(Method::POST, &path, None, r#"{"late":true}"#).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(api.retrieve(sdk["id"].as_str().unwrap()).await["output"], r#"{"json":{"status":"approved"}}"#);
    assert_eq!(api.retrieve(webhook["id"].as_str().unwrap()).await["output"], r#"{"json":{"id":"p1","output":[1,2]}}"#);

    // A callback with no body completes with {}.
    let empty = api.create(json!({})).await;
    let reply = api.call(Method::POST, &callback_path(empty["url"].as_str().unwrap()), None, "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(api.retrieve(empty["id"].as_str().unwrap()).await["output"], r#"{"json":{}}"#);
}

#[tokio::test]
async fn numbers_come_back_exactly_as_they_were_sent() {
    let api = Api::new().await;
    let token = api.create(json!({})).await;
    // The shortest text of this double is 17 digits; a parser that is off by one unit in the
    // last place writes it back as 0.1006722321923338.
    let body = r#"{"r":0.10067223219233379,"big":1.7976931348623157e308,"small":5e-324}"#;
    let reply = api.call(Method::POST, &callback_path(token["url"].as_str().unwrap()), None, body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let output = api.retrieve(token["id"].as_str().unwrap()).await["output"].clone();
    assert_eq!(output, r#"{"json":{"r":0.10067223219233379,"big":1.7976931348623157e308,"small":5e-324}}"#);
}

#[tokio::test]
async fn a_timed_out_token_reports_the_error_the_sdk_turns_into_a_timeout_error() {
    let api = Api::new().await;
    let mut events = api.engine.subscribe();
    let created = api.create(json!({ "timeout": "1s" })).await;
    let id = created["id"].as_str().unwrap();
    api.clock.advance(Duration::from_secs(1));
    let id_parsed = WaitpointId::parse(id).unwrap();
    while !matches!(events.recv().await.unwrap(), waitpoint_engine::Event::WaitpointFinished(w) if w.id == id_parsed) {}
    let token = api.retrieve(id).await;
    assert_eq!(token["status"], "TIMED_OUT");
    assert_eq!(token["outputIsError"], true);
    assert_eq!(token["outputType"], "application/json");
    assert_eq!(token["completedVia"], "TIMEOUT");
    let error: Value = serde_json::from_str(token["output"].as_str().unwrap()).unwrap();
    assert_eq!(
        error,
        json!({ "code": "TRIGGER_WAITPOINT_TIMEOUT", "message": "Waitpoint timed out at 2025-11-24T16:00:01.000Z" })
    );
}

#[tokio::test]
async fn credentials_are_enforced_per_route() {
    let api = Api::new().await;
    let a = api.create(json!({})).await;
    let b = api.create(json!({})).await;
    let public_a = a["publicAccessToken"].as_str().unwrap();

    let missing = api.call(Method::POST, "/api/v1/waitpoints/tokens", None, "{}").await;
    assert_error(&missing, StatusCode::UNAUTHORIZED, "Missing API key");
    let wrong = api.call(Method::GET, "/api/v1/waitpoints/tokens", Some("tr_dev_nope"), "").await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "Invalid API key");
    for (method, uri) in [
        (Method::POST, "/api/v1/waitpoints/tokens".to_owned()),
        (Method::GET, "/api/v1/waitpoints/tokens".to_owned()),
        (Method::GET, format!("/api/v1/waitpoints/tokens/{}", a["id"].as_str().unwrap())),
    ] {
        let reply = api.call(method, &uri, Some(public_a), "{}").await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "needs a secret key");
    }
    let other = api.complete(b["id"].as_str().unwrap(), public_a, r#"{"data":1}"#).await;
    assert_error(&other, StatusCode::FORBIDDEN, "Unauthorized");
    assert_eq!(other.body["code"], "unauthorized");
    assert_eq!(other.body["param"], "access_token");
    assert_eq!(other.body["type"], "authorization");
    assert_eq!(other.headers["x-should-retry"], "false");

    let path = callback_path(a["url"].as_str().unwrap());
    let (base, hash) = path.rsplit_once('/').unwrap();
    let forged = format!("{base}/{}", "0".repeat(hash.len()));
    assert_error(&api.call(Method::POST, &forged, None, "{}").await, StatusCode::UNAUTHORIZED, "hash doesn't match");
    let upper = format!("{base}/{}", hash.to_uppercase());
    assert_eq!(api.call(Method::POST, &upper, None, "{}").await.status, StatusCode::OK);
    assert_eq!(api.retrieve(b["id"].as_str().unwrap()).await["status"], "WAITING");
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let api = Api::new().await;
    let key = api.key();
    let token = api.create(json!({})).await;
    let id = token["id"].as_str().unwrap();
    let create = |body: String| {
        let api = &api;
        async move { api.call(Method::POST, "/api/v1/waitpoints/tokens", Some(&api.key()), &body).await }
    };

    assert_error(&create(String::new()).await, StatusCode::BAD_REQUEST, "empty");
    assert_error(&create("{not json".into()).await, StatusCode::BAD_REQUEST, "Invalid JSON");
    assert_error(&create("[]".into()).await, StatusCode::BAD_REQUEST, "JSON object");
    assert_error(&create("null".into()).await, StatusCode::BAD_REQUEST, "JSON object");
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    assert_error(&create(json!({ "tags": eleven }).to_string()).await, StatusCode::UNPROCESSABLE_ENTITY, "10 tags");
    assert_error(&create(json!({ "tags": ["x".repeat(128)] }).to_string()).await, StatusCode::BAD_REQUEST, "128");
    assert_error(
        &create(json!({ "idempotencyKey": "k".repeat(2049) }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "2048",
    );
    assert_error(&create(json!({ "timeout": "tomorrow" }).to_string()).await, StatusCode::BAD_REQUEST, "\"10m\"");
    assert_error(
        &create(json!({ "timeout": "2020-01-01T00:00:00Z" }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "past",
    );
    assert_error(
        &create(json!({ "idempotencyKey": "k", "idempotencyKeyTTL": "forever" }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "idempotencyKeyTTL",
    );
    assert_error(
        &create(json!({ "timout": "10m" }).to_string()).await,
        StatusCode::BAD_REQUEST,
        "Unknown field \"timout\"",
    );
    let big = json!({ "idempotencyKey": "k".repeat(2000), "tags": vec!["p".repeat(100); 10], "x": "y".repeat(9000) })
        .to_string();
    assert_error(&create(big).await, StatusCode::PAYLOAD_TOO_LARGE, "too large");

    let complete = |body: String| {
        let (api, key) = (&api, key.clone());
        async move { api.complete(id, &key, &body).await }
    };
    assert_error(&complete(String::new()).await, StatusCode::BAD_REQUEST, "empty");
    assert_error(&complete("nope".into()).await, StatusCode::BAD_REQUEST, "Invalid JSON");
    assert_error(&complete("[1]".into()).await, StatusCode::BAD_REQUEST, "JSON object");
    assert_error(&complete("null".into()).await, StatusCode::BAD_REQUEST, "JSON object");
    assert_error(&complete(r#"{"status":"approved"}"#.into()).await, StatusCode::BAD_REQUEST, r#"{"data": <output>}"#);
    assert_error(&complete(r#"{"data":1,"output":2}"#.into()).await, StatusCode::BAD_REQUEST, "only one");
    let huge = format!(r#"{{"data":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    assert_error(&complete(huge).await, StatusCode::PAYLOAD_TOO_LARGE, "too large");
    assert_eq!(api.retrieve(id).await["status"], "WAITING", "nothing above completed the token");

    let unknown = "waitpoint_cunknownunknownunknownunk";
    assert_error(&api.complete(unknown, &key, "{}").await, StatusCode::NOT_FOUND, "Waitpoint not found");
    let reply = api.call(Method::GET, &format!("/api/v1/waitpoints/tokens/{unknown}"), Some(&key), "").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "Waitpoint not found");
    let reply = api.call(Method::GET, "/api/v1/waitpoints/tokens/waitpoint_a_b", Some(&key), "").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid waitpoint id");
    let reply = api
        .call(Method::POST, &format!("/api/v1/waitpoints/tokens/{unknown}/callback/{}", "0".repeat(64)), None, "{}")
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "Waitpoint not found");

    let path = callback_path(token["url"].as_str().unwrap());
    let no_length = Request::builder().method(Method::POST).uri(&path).body(Body::from("{}")).unwrap();
    assert_error(&api.send(no_length).await, StatusCode::LENGTH_REQUIRED, "Content-Length");
    let too_big = Request::builder()
        .method(Method::POST)
        .uri(&path)
        .header(header::CONTENT_LENGTH, 3 * 1024 * 1024 + 1)
        .body(Body::empty())
        .unwrap();
    assert_error(&api.send(too_big).await, StatusCode::PAYLOAD_TOO_LARGE, "too large");

    assert_error(&api.list("page[size]=0").await, StatusCode::BAD_REQUEST, "page[size]");
    assert_error(&api.list("page[size]=101").await, StatusCode::BAD_REQUEST, "page[size]");
    let bad_status = api.list("filter[status]=DONE").await;
    assert_error(&bad_status, StatusCode::BAD_REQUEST, "Invalid status values: DONE");
    assert_eq!(bad_status.body["details"][0]["path"], json!(["filter[status]"]));
    assert_error(&api.list("filter[createdAt][from]=last-week").await, StatusCode::BAD_REQUEST, "not a date");
    assert_error(&api.list("page[after]=not%20a%20cursor").await, StatusCode::BAD_REQUEST, "cursor");

    let put = api.call(Method::PUT, "/api/v1/waitpoints/tokens", Some(&key), "{}").await;
    assert_error(&put, StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    assert!(put.headers.contains_key(header::ALLOW));
    assert_error(&api.call(Method::GET, "/api/v2/nothing", None, "").await, StatusCode::NOT_FOUND, "no route");

    let listed = api.list("").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1, "only the first token was ever created");
}

#[tokio::test]
async fn lists_filter_and_page_in_both_directions() {
    let api = Api::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let tags = if i % 2 == 0 { json!(["even", format!("n{i}")]) } else { json!(["odd"]) };
        ids.push(api.create(json!({ "tags": tags, "idempotencyKey": format!("key-{i}") })).await["id"].clone());
        api.clock.advance(Duration::from_secs(60));
    }
    ids.reverse();
    api.complete(ids[0].as_str().unwrap(), &api.key(), r#"{"data":1}"#).await;

    let all = api.list("").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["pagination"], json!({}));
    let item = &all.body["data"][0];
    assert_eq!(item["id"], ids[0]);
    assert_eq!(item["status"], "COMPLETED");
    assert_eq!(item["idempotencyKey"], "key-4");
    assert_eq!(item["tags"], json!(["even", "n4"]));
    assert!(item.get("output").is_none());

    let data_ids =
        |reply: &Reply| reply.body["data"].as_array().unwrap().iter().map(|t| t["id"].clone()).collect::<Vec<_>>();
    assert_eq!(data_ids(&api.list("filter[status]=WAITING").await), ids[1..]);
    assert_eq!(data_ids(&api.list("filter[status]=COMPLETED,TIMED_OUT").await), ids[..1]);
    assert_eq!(data_ids(&api.list("filter[tags]=odd").await), [ids[1].clone(), ids[3].clone()]);
    assert_eq!(data_ids(&api.list("filter[tags]=n0,n2").await), [ids[2].clone(), ids[4].clone()]);
    assert_eq!(data_ids(&api.list("filter[idempotencyKey]=key-3").await), [ids[1].clone()]);
    assert_eq!(data_ids(&api.list("filter[createdAt][period]=2m").await), ids[..2]);
    let from = START + 60_000;
    let to = START + 120_000;
    assert_eq!(
        data_ids(&api.list(&format!("filter[createdAt][from]={from}&filter[createdAt][to]={to}")).await),
        ids[2..4]
    );
    assert_eq!(
        data_ids(&api.list("filter[createdAt][from]=2025-11-24T16:03:00Z").await),
        ids[..2],
        "ISO dates work as well as epoch milliseconds"
    );

    let first = api.list("page[size]=2").await;
    assert_eq!(data_ids(&first), ids[..2]);
    let next = first.body["pagination"]["next"].as_str().unwrap().to_owned();
    assert!(!next.starts_with("waitpoint_"), "cursors are internal ids");
    assert!(first.body["pagination"].get("previous").is_none());
    let second = api.list(&format!("page[size]=2&page[after]={next}")).await;
    assert_eq!(data_ids(&second), ids[2..4]);
    let previous = second.body["pagination"]["previous"].as_str().unwrap().to_owned();
    let back = api.list(&format!("page[size]=2&page[before]={previous}")).await;
    assert_eq!(data_ids(&back), ids[..2]);
    let next = second.body["pagination"]["next"].as_str().unwrap().to_owned();
    let last = api.list(&format!("page[size]=2&page[after]={next}")).await;
    assert_eq!(data_ids(&last), ids[4..]);
    assert!(last.body["pagination"].get("next").is_none());
}

#[tokio::test]
async fn browsers_may_complete_with_a_public_token_across_origins() {
    let api = Api::new().await;
    let token = api.create(json!({})).await;
    let uri = format!("/api/v1/waitpoints/tokens/{}/complete", token["id"].as_str().unwrap());
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri(&uri)
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
        .body(Body::empty())
        .unwrap();
    let reply = api.send(preflight).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
    assert_eq!(reply.headers[header::ACCESS_CONTROL_ALLOW_HEADERS], "authorization,content-type");
    assert!(reply.headers[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap().contains("POST"));

    let body = r#"{"data":{"approved":true}}"#;
    let complete = Request::builder()
        .method(Method::POST)
        .uri(&uri)
        .header(header::ORIGIN, "https://app.example")
        .header(header::AUTHORIZATION, format!("Bearer {}", token["publicAccessToken"].as_str().unwrap()))
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    let reply = api.send(complete).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
    assert_eq!(reply.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS], "x-trigger-jwt,x-trigger-jwt-claims");
}

#[tokio::test]
async fn idempotent_create_returns_the_cached_token_over_http() {
    let api = Api::new().await;
    let first = api.create(json!({ "idempotencyKey": "order-9", "timeout": "1h", "tags": "a" })).await;
    let second = api.create(json!({ "idempotencyKey": "order-9", "timeout": "5m", "tags": ["b"] })).await;
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["url"], first["url"]);
    assert_eq!(second["isCached"], true);
    let token = api.retrieve(first["id"].as_str().unwrap()).await;
    assert_eq!(token["tags"], json!(["a"]), "the cached create changed nothing");
    assert_eq!(token["idempotencyKey"], "order-9");
    assert_eq!(token["idempotencyKeyExpiresAt"], "2025-11-24T17:00:00.000Z");
}

#[tokio::test]
async fn health_and_readiness_answer_without_credentials() {
    let api = Api::new().await;
    let version = env!("CARGO_PKG_VERSION");
    let reply = api.call(Method::GET, "/healthz", None, "").await;
    let expected = json!({ "status": "ok", "version": version, "backend": "sqlite" });
    assert_eq!((reply.status, reply.body), (StatusCode::OK, expected));
    let reply = api.call(Method::GET, "/readyz", None, "").await;
    let expected = json!({ "status": "ready", "version": version, "backend": "sqlite" });
    assert_eq!((reply.status, reply.body), (StatusCode::OK, expected));

    // A stopping node is not ready, so load balancers send new work elsewhere.
    api.engine.release_polls();
    let reply = api.call(Method::GET, "/readyz", None, "").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["error"], "the server is stopping");
    assert_eq!(api.call(Method::GET, "/healthz", None, "").await.status, StatusCode::OK);
}

/// Regression: the callback route read (and buffered) the whole body before it checked that
/// the token exists and the hash matches, so bodies sent to made-up URLs cost memory and time.
/// Now a wrong URL is answered while the body is still arriving.
#[tokio::test]
async fn callback_urls_are_checked_before_the_body_is_read() {
    let api = Api::new().await;
    let token = api.create(json!({})).await;
    let path = callback_path(token["url"].as_str().unwrap());
    let (prefix, _) = path.rsplit_once('/').unwrap();
    let unknown = format!("/api/v1/waitpoints/tokens/waitpoint_cunknownunknownunknownunk/callback/{}", "0".repeat(64));
    for (uri, status) in
        [(unknown, StatusCode::NOT_FOUND), (format!("{prefix}/{}", "0".repeat(64)), StatusCode::UNAUTHORIZED)]
    {
        // One byte of a 3 MiB body arrives; the rest never does.
        let endless = futures_util::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{")) })
            .chain(futures_util::stream::pending());
        let request = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::CONTENT_LENGTH, 3 * 1024 * 1024 - 1)
            .body(Body::from_stream(endless))
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), api.send(request))
            .await
            .unwrap_or_else(|_| panic!("{uri}: the server waited for the body of a wrong URL"));
        assert_eq!(reply.status, status, "{uri}: {}", reply.body);
    }
    assert_eq!(api.retrieve(token["id"].as_str().unwrap()).await["status"], "WAITING");
}

/// Regression: a duration ending past the latest representable date was clamped there and
/// printed as 1970-01-01. It is a 400 naming the limit.
#[tokio::test]
async fn durations_ending_after_the_latest_date_are_refused() {
    let api = Api::new().await;
    let key = api.key();
    for (uri, body) in [
        ("/api/v1/waitpoints/tokens", json!({ "timeout": "2932000d" })),
        ("/api/v1/waitpoints/tokens", json!({ "idempotencyKey": "k", "idempotencyKeyTTL": "2932000d" })),
        ("/api/v1/tasks/t/trigger", json!({ "options": { "delay": "2932000d" } })),
        ("/api/v1/tasks/t/trigger", json!({ "options": { "idempotencyKey": "k", "idempotencyKeyTTL": "2932000d" } })),
    ] {
        let reply = api.call(Method::POST, uri, Some(&key), &body.to_string()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "ends after 9999-12-30T22:00:00.999Z");
    }
    let latest = api.create(json!({ "timeout": "9999-12-30T22:00:00.999Z" })).await;
    assert_eq!(api.retrieve(latest["id"].as_str().unwrap()).await["timeoutAt"], "9999-12-30T22:00:00.999Z");
}

#[tokio::test]
async fn a_rejected_token_reads_as_trigger_dev_reads_an_error_and_says_it_was_rejected() {
    let api = Api::new().await;
    let key = api.key();
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(api.create(json!({ "tags": ["r"] })).await);
    }
    let [by_key, by_public_token, by_url, untouched] = <[Value; 4]>::try_from(tokens).unwrap();
    let id = |token: &Value| token["id"].as_str().unwrap().to_owned();

    let declined =
        r#"{"error": {"message": "card declined", "code": "CARD_DECLINED", "data": {"big": 12345678901234567890}}}"#;
    assert_eq!(api.reject(&id(&by_key), &key, declined).await.status, StatusCode::OK);
    let public = by_public_token["publicAccessToken"].as_str().unwrap();
    assert_eq!(
        api.reject(&id(&by_public_token), public, r#"{"error": {"message": "no"}}"#).await.status,
        StatusCode::OK
    );
    let foreign = api.reject(&id(&untouched), public, r#"{"error": {"message": "no"}}"#).await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "Unauthorized");
    let reject_url = by_url["rejectUrl"].as_str().unwrap();
    let through_url = api.call(Method::POST, &callback_path(reject_url), None, r#"{"reason": "expired card"}"#).await;
    assert_eq!(through_url.status, StatusCode::OK, "{}", through_url.body);
    let forged = reject_url.replace("/reject/", "/reject/0").chars().take(reject_url.len()).collect::<String>();
    assert_eq!(api.call(Method::POST, &callback_path(&forged), None, "{}").await.status, StatusCode::UNAUTHORIZED);

    let token = api.retrieve(&id(&by_key)).await;
    assert_eq!((token["status"].as_str(), token["outcome"].as_str()), (Some("TIMED_OUT"), Some("REJECTED")));
    assert_eq!(
        (token["outputIsError"].as_bool(), token["outputType"].as_str()),
        (Some(true), Some("application/json"))
    );
    assert_eq!(token["completedVia"], "SECRET_KEY");
    assert_eq!(
        token["output"], r#"{"code":"CARD_DECLINED","message":"card declined","data":{"big":12345678901234567890}}"#,
        "the data is kept as sent"
    );
    let token = api.retrieve(&id(&by_public_token)).await;
    assert_eq!(token["output"], r#"{"code":"WAITPOINT_REJECTED","message":"no"}"#);
    let token = api.retrieve(&id(&by_url)).await;
    assert_eq!(
        token["output"],
        r#"{"code":"WAITPOINT_REJECTED","message":"Rejected through the token's reject URL","data":{"reason":"expired card"}}"#
    );

    let again = api.complete(&id(&by_key), &key, r#"{"data": 1}"#).await;
    assert_eq!(again.status, StatusCode::OK, "a finished token answers as before");
    assert_eq!(api.retrieve(&id(&by_key)).await["outcome"], "REJECTED", "the first outcome wins");
    let timed_out = api.list("filter[status]=TIMED_OUT").await.body;
    assert_eq!(timed_out["data"].as_array().unwrap().len(), 3, "rejected tokens read as timed out: {timed_out}");
    let rejected = api.list("filter[status]=REJECTED").await.body;
    assert_eq!(rejected["data"].as_array().unwrap().len(), 3);
    let waiting = api.list("filter[status]=WAITING").await.body;
    assert_eq!(waiting["data"][0]["id"], untouched["id"]);
    assert!(waiting["data"][0].get("outcome").is_none(), "a waiting token has no outcome yet");

    for (body, hint) in [
        ("", "empty"),
        (r#"{"error": {"message": ""}}"#, "error.message"),
        (r#"{"error": {"message": "no", "code": "a\nb"}}"#, "error.code"),
        (r#"{"message": "no"}"#, "does not fit"),
    ] {
        assert_error(&api.reject(&id(&untouched), &key, body).await, StatusCode::BAD_REQUEST, hint);
    }
    assert_eq!(api.retrieve(&id(&untouched)).await["status"], "WAITING", "refused rejections change nothing");
}

#[tokio::test]
async fn a_completion_must_fit_the_tokens_output_schema_on_every_route() {
    let api = Api::new().await;
    let key = api.key();
    let schema = json!({
        "type": "object",
        "properties": { "status": { "enum": ["approved", "rejected"] }, "amount": { "type": "integer", "maximum": 100 } },
        "required": ["status"]
    });
    let token = api.create(json!({ "outputSchema": schema })).await;
    let id = token["id"].as_str().unwrap();
    assert_eq!(api.retrieve(id).await["outputSchema"], schema, "retrieve shows it");

    let wrong = api.complete(id, &key, r#"{"data": {"status": "maybe"}}"#).await;
    assert_error(&wrong, StatusCode::UNPROCESSABLE_ENTITY, "/status");
    let too_much = api.complete(id, &key, r#"{"data": {"status": "approved", "amount": 500}}"#).await;
    assert_error(&too_much, StatusCode::UNPROCESSABLE_ENTITY, "/amount");
    let none = api.complete(id, &key, "{}").await;
    assert_error(&none, StatusCode::UNPROCESSABLE_ENTITY, "outputSchema");
    let url = callback_path(token["url"].as_str().unwrap());
    let by_url = api.call(Method::POST, &url, None, r#"{"status": 1}"#).await;
    assert_error(&by_url, StatusCode::UNPROCESSABLE_ENTITY, "/status");
    assert_eq!(api.retrieve(id).await["status"], "WAITING", "refused completions change nothing");

    let fits = api.call(Method::POST, &url, None, r#"{"status": "approved", "amount": 7}"#).await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.body);
    assert_eq!(api.retrieve(id).await["status"], "COMPLETED");

    for (schema, hint) in [
        (json!({ "type": "nothing" }), "outputSchema is not a JSON Schema"),
        (json!({ "$ref": "https://example.com/schema.json" }), "outputSchema is not a JSON Schema"),
        (json!("string"), "outputSchema must be a JSON Schema"),
    ] {
        let body = json!({ "outputSchema": schema }).to_string();
        let reply = api.call(Method::POST, "/api/v1/waitpoints/tokens", Some(&key), &body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, hint);
    }
}

#[tokio::test]
async fn heartbeats_keep_a_token_alive_and_a_missed_one_times_it_out() {
    let api = Api::new().await;
    let key = api.key();
    let mut events = api.engine.subscribe();
    let token = api.create(json!({ "timeout": "1h", "heartbeatTimeout": "30s" })).await;
    let id = token["id"].as_str().unwrap();
    let heartbeat_url = token["heartbeatUrl"].as_str().expect("a token with a heartbeat has a heartbeatUrl");
    assert!(api.create(json!({})).await.get("heartbeatUrl").is_none(), "only tokens with a heartbeat have one");
    let detail = api.retrieve(id).await;
    assert_eq!(
        (detail["heartbeatTimeout"].clone(), detail["heartbeatDeadline"].clone()),
        (json!("30s"), json!("2025-11-24T16:00:30.000Z"))
    );

    let beat = |credential: String| {
        let api = &api;
        async move {
            api.call(Method::POST, &format!("/api/v1/waitpoints/tokens/{id}/heartbeat"), Some(&credential), "").await
        }
    };
    api.clock.advance(Duration::from_secs(20));
    let reply = beat(key.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({ "success": true, "timeoutAt": "2025-11-24T17:00:00.000Z", "heartbeatDeadline": "2025-11-24T16:00:50.000Z" })
    );
    api.clock.advance(Duration::from_secs(20));
    let public = token["publicAccessToken"].as_str().unwrap().to_owned();
    assert_eq!(beat(public).await.body["heartbeatDeadline"], "2025-11-24T16:01:10.000Z", "its public token may beat");
    api.clock.advance(Duration::from_secs(20));
    let reply = api.call(Method::POST, &callback_path(heartbeat_url), None, "{}").await;
    assert_eq!(reply.body["heartbeatDeadline"], "2025-11-24T16:01:30.000Z", "its heartbeat URL needs no credential");
    assert_eq!(api.retrieve(id).await["timeoutAt"], "2025-11-24T17:00:00.000Z", "heartbeats never move the timeout");

    let forged = format!("/api/v1/waitpoints/tokens/{id}/heartbeat/{}", "0".repeat(64));
    assert_error(&api.call(Method::POST, &forged, None, "").await, StatusCode::UNAUTHORIZED, "signature");
    let rejected_url = callback_path(token["rejectUrl"].as_str().unwrap()).replace("/reject/", "/heartbeat/");
    assert_eq!(
        api.call(Method::POST, &rejected_url, None, "").await.status,
        StatusCode::UNAUTHORIZED,
        "no URL becomes another"
    );
    let with_body = api
        .call(Method::POST, &format!("/api/v1/waitpoints/tokens/{id}/heartbeat"), Some(&key), r#"{"progress":1}"#)
        .await;
    assert_error(&with_body, StatusCode::BAD_REQUEST, "\"progress\"");
    let plain = api.create(json!({})).await;
    let reply = api
        .call(
            Method::POST,
            &format!("/api/v1/waitpoints/tokens/{}/heartbeat", plain["id"].as_str().unwrap()),
            Some(&key),
            "",
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "heartbeatTimeout");

    api.clock.advance(Duration::from_secs(30));
    let id_parsed = WaitpointId::parse(id).unwrap();
    while !matches!(events.recv().await.unwrap(), waitpoint_engine::Event::WaitpointFinished(w) if w.id == id_parsed) {}
    let done = api.retrieve(id).await;
    assert_eq!(
        (done["status"].clone(), done["completedVia"].clone()),
        (json!("TIMED_OUT"), json!("HEARTBEAT_TIMEOUT"))
    );
    let error: Value = serde_json::from_str(done["output"].as_str().unwrap()).unwrap();
    assert_eq!(error["code"], "WAITPOINT_HEARTBEAT_TIMEOUT");
    assert_eq!(error["message"], "Waitpoint timed out at 2025-11-24T16:01:30.000Z: no heartbeat for 30s");
    assert_error(&beat(key.clone()).await, StatusCode::CONFLICT, "TIMED_OUT");

    for (body, hint) in [
        (json!({ "heartbeatTimeout": "0s" }), "heartbeatTimeout"),
        (json!({ "heartbeatTimeout": "2030-01-01T00:00:00Z" }), "heartbeatTimeout"),
        (json!({ "heartbeatTimeout": 30 }), "heartbeatTimeout"),
    ] {
        let reply = api.call(Method::POST, "/api/v1/waitpoints/tokens", Some(&key), &body.to_string()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, hint);
    }
}

#[tokio::test]
async fn an_extend_moves_the_timeout_later_with_the_secret_key_only() {
    let api = Api::new().await;
    let key = api.key();
    let token = api.create(json!({ "timeout": "10m" })).await;
    let id = token["id"].as_str().unwrap();
    let path = format!("/api/v1/waitpoints/tokens/{id}/extend");

    let reply = api.call(Method::POST, &path, Some(&key), r#"{"timeout":"1h"}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, json!({ "success": true, "timeoutAt": "2025-11-24T17:00:00.000Z" }));
    assert_eq!(api.retrieve(id).await["timeoutAt"], "2025-11-24T17:00:00.000Z");
    assert_error(
        &api.call(Method::POST, &path, Some(&key), r#"{"timeout":"30m"}"#).await,
        StatusCode::BAD_REQUEST,
        "not later",
    );
    let public = token["publicAccessToken"].as_str().unwrap();
    assert_eq!(
        api.call(Method::POST, &path, Some(public), r#"{"timeout":"2h"}"#).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_error(
        &api.call(Method::POST, &path, Some(&key), r#"{"timeout":"2h","why":"x"}"#).await,
        StatusCode::BAD_REQUEST,
        "\"why\"",
    );
    assert_error(&api.call(Method::POST, &path, Some(&key), "{}").await, StatusCode::BAD_REQUEST, "timeout is missing");

    api.complete(id, &key, "{}").await;
    assert_error(
        &api.call(Method::POST, &path, Some(&key), r#"{"timeout":"3h"}"#).await,
        StatusCode::CONFLICT,
        "COMPLETED",
    );
    let unknown = "/api/v1/waitpoints/tokens/waitpoint_c0mx3j3usm00007vbybnlp8r7/extend";
    assert_eq!(api.call(Method::POST, unknown, Some(&key), r#"{"timeout":"3h"}"#).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_callback_verifier_refuses_deliveries_that_are_not_signed_by_the_sender() {
    let api = Api::new().await;
    let secret = "It's a Secret to Everybody";
    let token = api.create(json!({ "callbackVerifier": { "scheme": "github", "secret": secret } })).await;
    let id = token["id"].as_str().unwrap();
    let detail = api.retrieve(id).await;
    assert_eq!(detail["callbackVerifier"], json!({ "scheme": "github" }), "the secret is never shown");
    assert!(!detail.to_string().contains(secret));

    let url = callback_path(token["url"].as_str().unwrap());
    let deliver = |signature: Option<&str>, body: &'static str| {
        let mut request = Request::builder().method(Method::POST).uri(&url).header(header::CONTENT_LENGTH, body.len());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        api.send(request.body(Body::from(body)).unwrap())
    };
    let signed = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_error(&deliver(None, "Hello, World!").await, StatusCode::UNAUTHORIZED, "no X-Hub-Signature-256 header");
    assert_error(&deliver(Some(signed), "Hello, World?").await, StatusCode::UNAUTHORIZED, "does not match");
    assert_eq!(api.retrieve(id).await["status"], "WAITING", "refused deliveries change nothing");
    let reply = deliver(Some(signed), "Hello, World!").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let done = api.retrieve(id).await;
    assert_eq!((done["status"].clone(), done["output"].clone()), (json!("COMPLETED"), json!("Hello, World!")));
    assert_eq!(deliver(Some(signed), "Hello, World!").await.status, StatusCode::OK, "a redelivery changes nothing");
    assert_error(&deliver(None, "{}").await, StatusCode::UNAUTHORIZED, "signature");

    for (verifier, hint) in [
        (json!({ "scheme": "md5", "secret": "s" }), "callbackVerifier is not valid"),
        (json!({ "scheme": "github" }), "callbackVerifier is not valid"),
        (json!({ "scheme": "github", "secret": "s", "extra": 1 }), "callbackVerifier is not valid"),
        (json!({ "scheme": "standard-webhooks", "secret": "whsec_???" }), "base64"),
        (json!({ "scheme": "stripe", "secret": "s", "header": "X-Sig" }), "hmac-sha256 only"),
        (json!(null), "null is not accepted"),
    ] {
        let body = json!({ "callbackVerifier": verifier }).to_string();
        let reply = api.call(Method::POST, "/api/v1/waitpoints/tokens", Some(&api.key()), &body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, hint);
    }
}

/// Reads `count` events of a server-sent event stream: each its `id`, `event` and `data`.
async fn sse_events(api: &Api, uri: &str, last_event_id: Option<&str>, count: usize) -> Vec<(String, String, Value)> {
    let mut request = Request::builder().uri(uri).header(header::AUTHORIZATION, format!("Bearer {}", api.key()));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = api.router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body().into_data_stream();
    let (mut text, mut events) = (String::new(), Vec::new());
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next()).await.expect("no event came").unwrap();
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block.lines().find_map(|line| line.strip_prefix(name).map(|value| value.trim().to_owned()))
            };
            if let (Some(id), Some(kind), Some(data)) = (field("id:"), field("event:"), field("data:")) {
                events.push((id, kind, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_event_stream_tells_what_happened_and_resumes_after_the_last_event_seen() {
    let api = Api::new().await;
    let a = api.create(json!({ "tags": ["x"] })).await;
    api.complete(a["id"].as_str().unwrap(), &api.key(), r#"{"data":1}"#).await;
    let b = api.create(json!({ "tags": ["y"] })).await;

    let all = sse_events(&api, "/api/v1/events?after=0", None, 3).await;
    let kinds: Vec<&str> = all.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["waitpoint.created", "waitpoint.completed", "waitpoint.created"]);
    let (id, _, completed) = &all[1];
    assert_eq!(completed["seq"].to_string(), *id);
    assert_eq!(completed["type"], "waitpoint.completed");
    assert_eq!(completed["subject"], a["id"]);
    assert_eq!(completed["tags"], json!(["x"]));
    assert_eq!(completed["data"]["status"], "COMPLETED");
    assert_eq!(completed["data"]["completedVia"], "SECRET_KEY");

    let resumed = sse_events(&api, "/api/v1/events", Some(id), 1).await;
    assert_eq!(resumed[0].2["subject"], b["id"], "Last-Event-ID continues after that event");
    let completions = sse_events(&api, "/api/v1/events?after=0&kinds=waitpoint.completed", None, 1).await;
    assert_eq!(completions[0].0, *id);
    let tagged = sse_events(&api, "/api/v1/events?after=0&tags=y", None, 1).await;
    assert_eq!(tagged[0].2["subject"], b["id"]);

    // The answer's head comes once the stream's start is fixed: what happens after it shows.
    let request = Request::builder()
        .uri("/api/v1/events?kinds=waitpoint.created")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.key()))
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let c = api.create(json!({})).await;
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next()).await.unwrap().unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.contains(c["id"].as_str().unwrap()), "a stream from now on sees what happens next: {text}");
    assert!(!text.contains(b["id"].as_str().unwrap()), "and not what happened before");

    for (uri, hint) in [
        ("/api/v1/events?kinds=waitpoint.done", "unknown kind"),
        ("/api/v1/events?after=soon", "not a position"),
        ("/api/v1/events?since=1", "unknown parameter"),
        ("/api/v1/events?tags=a&tags=b", "more than once"),
    ] {
        assert_error(&api.call(Method::GET, uri, Some(&api.key()), "").await, StatusCode::BAD_REQUEST, hint);
    }
    assert_eq!(api.call(Method::GET, "/api/v1/events", None, "").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn webhook_subscriptions_refuse_what_they_cannot_deliver_to() {
    let api = Api::new().await;
    let key = api.key();
    for (body, hint) in [
        (json!({ "url": "http://127.0.0.1:9000/hook" }), "internal address"),
        (json!({ "url": "http://169.254.169.254/latest" }), "internal address"),
        (json!({ "url": "ftp://example.com/hook" }), "http or https"),
        (json!({ "url": "https://example.com/hook", "kinds": ["token.done"] }), "Unknown event kind"),
        (json!({ "url": "https://example.com/hook", "secret": "mine" }), "does not fit"),
        (json!({ "kinds": [] }), "does not fit"),
    ] {
        let reply = api.call(Method::POST, "/api/v1/webhooks", Some(&key), &body.to_string()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, hint);
    }
    let body = json!({ "url": "https://example.com/hook", "kinds": ["run.failed"] }).to_string();
    let created = api.call(Method::POST, "/api/v1/webhooks", Some(&key), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["kinds"], json!(["run.failed"]));
    let listed = api.call(Method::GET, "/api/v1/webhooks", Some(&key), "").await;
    assert_eq!(listed.body[0]["id"], created.body["id"]);
    let unknown = "/api/v1/webhooks/webhook_c0mx3j3usm00007vbybnlp8r7";
    assert_eq!(api.call(Method::DELETE, unknown, Some(&key), "").await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.call(Method::GET, "/api/v1/webhooks", None, "").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_batch_applies_the_operations_of_many_runs_and_answers_each_as_its_route_would() {
    let api = Api::new().await;
    let key = api.key();
    let post = |uri: &'static str, body: Value| {
        let key = key.clone();
        let api = &api;
        async move { api.call(Method::POST, uri, Some(&key), &body.to_string()).await }
    };
    for _ in 0..2 {
        assert_eq!(post("/api/v1/tasks/t/trigger", json!({ "payload": 1 })).await.status, StatusCode::OK);
    }
    let poll = json!({ "tasks": [{ "id": "t", "slots": 2 }], "waitMs": 0, "holding": [] });
    let claimed = post("/api/v1/workers/worker_batch/poll", poll).await.body;
    let (a, b) = (&claimed["runs"][0], &claimed["runs"][1]);
    let (run_a, run_b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let (epoch_a, epoch_b) = (a["epoch"].as_u64().unwrap(), b["epoch"].as_u64().unwrap());
    let step =
        |seq: u32, result: i64| json!({ "seq": seq, "kind": "STEP", "name": format!("s{seq}"), "result": result });
    let operations = json!([
        { "op": "record", "run": run_a, "epoch": epoch_a, "entry": step(0, 10) },
        { "op": "createToken", "run": run_b, "epoch": epoch_b, "seq": 0, "options": { "timeout": "1h" } },
        { "op": "record", "run": run_a, "epoch": epoch_a, "entry": step(1, 11) },
        { "op": "wait", "run": run_b, "epoch": epoch_b, "seq": 1, "for": { "type": "DURATION", "ms": 60_000, "name": "for 60000ms" } },
        { "op": "record", "run": run_a, "epoch": epoch_a, "entry": step(5, 15) },
        { "op": "journal", "run": run_a },
        { "op": "record", "run": run_a, "epoch": epoch_a + 1, "entry": step(2, 12) },
        { "op": "complete", "run": "run_nosuchrun", "epoch": 1, "output": null },
    ]);
    let reply = post("/api/v1/workers/batch", json!({ "operations": operations })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let answers = reply.body["answers"].as_array().unwrap();
    let statuses: Vec<u64> = answers.iter().map(|answer| answer["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 409, 200, 409, 404], "{}", reply.body);
    assert_eq!(answers[0]["body"]["entry"]["result"], 10, "a record answers with the entry, as its route does");
    assert!(answers[1]["body"]["token"]["id"].as_str().unwrap().starts_with("waitpoint_"));
    assert_eq!(answers[3]["body"]["suspended"], true);
    let journal = &answers[5]["body"]["entries"];
    assert_eq!(journal.as_array().unwrap().len(), 2, "one run's operations apply in order: {journal}");
    assert_eq!(answers[6]["body"]["code"], "run_moved_on", "an error body is the route's");
    assert_eq!(answers[7]["body"]["error"], "Run not found");

    let done = json!([{ "op": "complete", "run": run_a, "epoch": epoch_a, "output": { "ok": true } }]);
    let reply = post("/api/v1/workers/batch", json!({ "operations": done })).await;
    assert_eq!(reply.body["answers"][0]["body"]["status"], "COMPLETED", "{}", reply.body);
    let run = api.call(Method::GET, &format!("/api/v1/runs/{run_a}"), Some(&key), "").await.body;
    assert_eq!((&run["status"], &run["output"]), (&json!("COMPLETED"), &json!({ "ok": true })));
    let run = api.call(Method::GET, &format!("/api/v1/runs/{run_b}"), Some(&key), "").await.body;
    assert_eq!(run["status"], "WAITING");

    // An operation that is not valid is refused alone; the others are applied.
    let repeated = format!(r#"{{"op":"complete","run":"{run_b}","epoch":{epoch_b},"output":{{"a":1,"a":2}}}}"#);
    let mixed = format!(
        r#"{{"operations":[{{"op":"erase","run":"{run_b}"}},{{"op":"journal","run":"{run_b}","epoch":1}},{repeated},{{"op":"journal","run":"{run_b}"}}]}}"#
    );
    let reply = api.call(Method::POST, "/api/v1/workers/batch", Some(&key), &mixed).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let answers = reply.body["answers"].as_array().unwrap();
    let refused = |index: usize, hint: &str| {
        assert_eq!(answers[index]["status"], 400, "{}", answers[index]);
        let message = answers[index]["body"]["error"].as_str().unwrap();
        assert!(message.contains(hint), "{message:?} does not mention {hint:?}");
    };
    refused(0, "unknown op `erase`");
    refused(1, "takes no field `epoch`");
    refused(2, "appears twice");
    assert_eq!(answers[3]["status"], 200, "{}", answers[3]);
    assert_eq!(answers[3]["body"]["entries"].as_array().unwrap().len(), 2);

    // The journal reads that open their runs' operations are read together; each is answered
    // as its route answers, and one after another operation on its run sees that one.
    let runs = [run_a, "run_nosuchrun", "not-a-run", run_b];
    let mut reads: Vec<Value> = runs.iter().map(|run| json!({ "op": "journal", "run": run })).collect();
    let late = json!({ "op": "record", "run": run_b, "epoch": epoch_b, "entry": step(2, 12) });
    reads.extend([late, json!({ "op": "journal", "run": run_b })]);
    let reply = post("/api/v1/workers/batch", json!({ "operations": reads })).await;
    let answers = reply.body["answers"].as_array().unwrap();
    for (answer, run) in answers.iter().zip(runs) {
        let route = api.call(Method::GET, &format!("/api/v1/runs/{run}/journal"), Some(&key), "").await;
        assert_eq!(answer["status"], route.status.as_u16(), "{run}: {answer}");
        assert_eq!(answer["body"], route.body, "{run}");
    }
    let statuses: Vec<u64> = answers.iter().map(|answer| answer["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses[..4], [200, 404, 400, 200], "{}", reply.body);
    assert_eq!(answers[0]["body"]["entries"].as_array().unwrap().len(), 2);
    assert_eq!(answers[4]["status"], 409, "the run waits: {}", answers[4]);
    assert_eq!(answers[5], answers[3], "the record was refused");

    // A batch that cannot be read is refused whole, and changes nothing.
    assert_error(
        &post("/api/v1/workers/batch", json!({ "operation": [] })).await,
        StatusCode::BAD_REQUEST,
        "operation",
    );
    assert_error(&post("/api/v1/workers/batch", json!([])).await, StatusCode::BAD_REQUEST, "Invalid batch");
    let many: Vec<Value> = (0..1_001).map(|_| json!({ "op": "journal", "run": run_b })).collect();
    assert_error(&post("/api/v1/workers/batch", json!({ "operations": many })).await, StatusCode::BAD_REQUEST, "1000");
    let huge = json!([{ "op": "complete", "run": run_b, "epoch": epoch_b, "output": "x".repeat(3 * 1024 * 1024) }]);
    let reply = post("/api/v1/workers/batch", json!({ "operations": huge })).await;
    assert_eq!(reply.body["answers"][0]["status"], 413, "an output is bounded inside a batch too");
    let unauthenticated = api.call(Method::POST, "/api/v1/workers/batch", None, r#"{"operations":[]}"#).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    let run = api.call(Method::GET, &format!("/api/v1/runs/{run_b}"), Some(&key), "").await.body;
    assert_eq!(run["status"], "WAITING");
}
