//! The OpenAPI document (`GET /api/openapi.json`) against the server that serves it: it lists
//! exactly the API routes the router serves, with their methods; it never lets a field be
//! `null`; real answers of every API route fit the schemas it gives for their status; and the
//! bodies the server parses by hand are accepted exactly when they fit their schemas.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig};
use waitpoint_sqlite::SqliteStore;
use waitpoint_types::{Timestamp, WaitpointId, approval};

/// A server over a fresh SQLite database with a manual clock, and the document it serves.
struct Server {
    _dir: TempDir,
    clock: ManualClock,
    engine: Engine,
    router: Router,
    key: String,
    document: Value,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Server {
    async fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let clock = ManualClock::new(Timestamp::from_millis(1_764_000_000_000));
        let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
        let dev = create_environment(&store, &clock, "dev").await.unwrap();
        let config = EngineConfig { public_url: "http://wp.test".into(), ..EngineConfig::default() };
        let engine = Engine::start(Arc::new(store), Arc::new(clock.clone()), config);
        let router = waitpoint_server::app(engine.clone());
        let key = dev.api_key.expose().to_owned();
        let mut server = Self { _dir: dir, clock, engine, router, key, document: Value::Null };
        let reply = server.send(Method::GET, "/api/openapi.json", None, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
        server.document = reply.body;
        server
    }

    /// Sends a request (with a `Content-Length` when it has a body) and reads the JSON answer.
    async fn send(&self, method: Method, uri: &str, credential: Option<&str>, body: Option<&str>) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(credential) = credential {
            request = request.header(header::AUTHORIZATION, format!("Bearer {credential}"));
        }
        if let Some(body) = body {
            request = request.header(header::CONTENT_LENGTH, body.len());
        }
        let request = request.body(Body::from(body.unwrap_or_default().to_owned())).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Reply { status, headers, body }
    }

    /// [`send`](Self::send) to the route `template`, then checks the answer against the
    /// document: its status is one the operation lists, its body fits that response's schema,
    /// and the headers the response promises are there.
    async fn call(
        &self,
        method: Method,
        template: &str,
        uri: &str,
        credential: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let reply = self.send(method.clone(), uri, credential, body).await;
        let operation = self.operation(&method, template);
        let status = reply.status.as_str();
        let range = format!("{}XX", &status[..1]);
        let response = [status, range.as_str()]
            .into_iter()
            .find_map(|key| operation["responses"].get(key))
            .unwrap_or_else(|| panic!("{method} {template} answered {status}, which it does not document"));
        let response = self.resolve(response);
        for name in response["headers"].as_object().into_iter().flat_map(|headers| headers.keys()) {
            assert!(reply.headers.contains_key(name.as_str()), "{method} {template}: no {name} header");
        }
        let schema = &response["content"]["application/json"]["schema"];
        assert!(!schema.is_null(), "{method} {template} {status}: the document describes no JSON body");
        self.assert_fits(schema, &reply.body, &format!("{method} {template} {status}"));
        reply
    }

    fn operation(&self, method: &Method, template: &str) -> &Value {
        let operation = &self.document["paths"][template][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "the document has no {method} {template}");
        operation
    }

    /// The object a `$ref` points to (components only), or `value` itself.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(reference) => self.document.pointer(reference.strip_prefix('#').unwrap()).unwrap(),
            None => value,
        }
    }

    /// Whether `instance` fits `schema`, a schema of the document (which may refer to its
    /// components), with formats such as `date-time` checked. Objects are held to the
    /// properties their schemas list (but for `ErrorBody`, whose extra fields the error
    /// responses describe), so an answer cannot carry a field the document does not mention.
    fn fits(&self, schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
        fn close(schema: &mut Value) {
            match schema {
                Value::Object(fields) => {
                    if fields.contains_key("properties") && !fields.contains_key("additionalProperties") {
                        fields.insert("unevaluatedProperties".into(), false.into());
                    }
                    fields.values_mut().for_each(close);
                }
                Value::Array(items) => items.iter_mut().for_each(close),
                _ => {}
            }
        }
        let mut components = self.document["components"].clone();
        let error_body = components["schemas"]["ErrorBody"].take();
        close(&mut components);
        components["schemas"]["ErrorBody"] = error_body;
        let mut root = schema.clone();
        close(&mut root);
        let mut root = root.as_object().cloned().unwrap_or_default();
        root.insert("$schema".into(), "https://json-schema.org/draft/2020-12/schema".into());
        root.insert("components".into(), components);
        let validator = jsonschema::options().should_validate_formats(true).build(&Value::Object(root)).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn assert_fits(&self, schema: &Value, instance: &Value, what: &str) {
        if let Err(errors) = self.fits(schema, instance) {
            panic!("{what}: {instance} does not fit its schema {schema}: {errors:?}");
        }
    }

    fn request_schema(&self, method: &Method, template: &str) -> &Value {
        &self.operation(method, template)["requestBody"]["content"]["application/json"]["schema"]
    }
}

/// Every route of `router` as its `Debug` output shows them (axum has no other way to list a
/// router's routes): path and methods, from each route's `Allow` header without `HEAD`, which
/// axum answers for every `GET`.
fn served_routes(router: &Router) -> BTreeMap<String, BTreeSet<String>> {
    let debug = format!("{router:?}");
    let (path_router, _) = debug.split_once("fallback_router:").expect("a Router's Debug output");
    let (routes, node) = path_router.split_once("node: Node").expect("a PathRouter's Debug output");
    let mut methods = BTreeMap::new();
    for route in routes.split("RouteId(").skip(1) {
        let (id, endpoint) = route.split_once(')').unwrap();
        let allow = endpoint.split_once("allow_header: Bytes(b\"").map(|(_, rest)| rest.split_once('"').unwrap().0);
        methods.insert(id.to_owned(), allow);
    }
    let mut served = BTreeMap::new();
    for route in node.split("RouteId(").skip(1) {
        let (id, rest) = route.split_once("): \"").unwrap();
        let path = rest.split_once('"').unwrap().0;
        let allow = methods[id].unwrap_or_else(|| panic!("{path} is served by a service, whose methods are unknown"));
        let set = allow.split(',').filter(|m| *m != "HEAD").map(str::to_owned).collect();
        served.insert(path.to_owned(), set);
    }
    served
}

fn is_api(path: &str) -> bool {
    path == "/healthz" || path == "/readyz" || path == "/api" || path.starts_with("/api/")
}

fn documented_routes(document: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let paths = document["paths"].as_object().unwrap();
    paths
        .iter()
        .map(|(path, item)| (path.clone(), item.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect()))
        .collect()
}

#[tokio::test]
async fn the_document_lists_exactly_the_api_routes_the_router_serves() {
    let server = Server::new().await;
    assert_eq!(server.document["openapi"], "3.1.0");
    let served = served_routes(&server.router);
    assert!(served.contains_key("/runs/{id}"), "the dashboard's routes are listed too: {served:?}");
    let api: BTreeMap<_, _> = served.into_iter().filter(|(path, _)| is_api(path)).collect();
    assert_eq!(api, documented_routes(&server.document), "the router (left) and the document (right) differ");
}

#[tokio::test]
async fn documented_methods_are_served_and_others_are_refused() {
    let server = Server::new().await;
    for (template, methods) in documented_routes(&server.document) {
        let uri = template
            .replace("{id}", "x")
            .replace("{hash}", "x")
            .replace("{signature}", "x")
            .replace("{taskId}", "x")
            .replace("{workerId}", "x");
        assert!(!uri.contains('{'), "a path parameter this test does not fill: {template}");
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS] {
            let reply = server.send(method.clone(), &uri, None, Some("")).await;
            let unrouted = reply.status == StatusCode::NOT_FOUND
                && reply.body["error"].as_str().is_some_and(|e| e.starts_with("Not found: no route"));
            if methods.contains(method.as_str()) {
                assert!(
                    reply.status != StatusCode::METHOD_NOT_ALLOWED && !unrouted,
                    "{method} {uri}: {}",
                    reply.status
                );
            } else {
                assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri} is served but not documented");
            }
        }
    }
}

/// Optional fields are left out of answers, never `null` (the official SDK rejects or misreads
/// `null`), so no schema of the document admits it.
#[tokio::test]
async fn no_schema_admits_null() {
    fn walk(value: &Value, pointer: &str, found: &mut Vec<String>) {
        match value {
            Value::Object(fields) => {
                let null_type = match fields.get("type") {
                    Some(Value::String(kind)) => kind == "null",
                    Some(Value::Array(kinds)) => kinds.iter().any(|k| k == "null"),
                    _ => false,
                };
                if null_type || fields.get("nullable") == Some(&Value::Bool(true)) {
                    found.push(pointer.to_owned());
                }
                for (key, child) in fields {
                    walk(child, &format!("{pointer}/{key}"), found);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{pointer}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let server = Server::new().await;
    let mut found = Vec::new();
    walk(&server.document, "", &mut found);
    assert!(found.is_empty(), "schemas that admit null: {found:?}");
}

/// The list parameters the document names are the ones the parser takes: an unknown parameter's
/// 400 lists them.
#[tokio::test]
async fn list_parameters_are_the_ones_the_lists_take() {
    let server = Server::new().await;
    for template in ["/api/v1/waitpoints/tokens", "/api/v1/runs"] {
        let reply = server.call(Method::GET, template, &format!("{template}?nope=1"), Some(&server.key), None).await;
        let error = reply.body["error"].as_str().unwrap();
        let taken: BTreeSet<&str> = error.split_once("the list takes ").unwrap().1.split(", ").collect();
        let parameters = server.operation(&Method::GET, template)["parameters"].as_array().unwrap();
        let documented: BTreeSet<&str> = parameters.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(taken, documented, "{template}: the parser (left) and the document (right) differ");
    }
}

#[tokio::test]
async fn token_answers_fit_their_schemas() {
    let server = Server::new().await;
    let key = Some(server.key.as_str());
    let tokens = "/api/v1/waitpoints/tokens";
    let one = "/api/v1/waitpoints/tokens/{id}";
    let complete = "/api/v1/waitpoints/tokens/{id}/complete";
    let callback = "/api/v1/waitpoints/tokens/{id}/callback/{hash}";

    for (template, status) in
        [("/healthz", StatusCode::OK), ("/readyz", StatusCode::OK), ("/api/openapi.json", StatusCode::OK)]
    {
        assert_eq!(server.call(Method::GET, template, template, None, None).await.status, status);
    }

    let body = json!({"timeout": "1m", "idempotencyKey": "k", "idempotencyKeyTTL": "1h", "tags": ["b", "a"]});
    let created = server.call(Method::POST, tokens, tokens, key, Some(&body.to_string())).await.body;
    let id = created["id"].as_str().unwrap();
    let cached = server.call(Method::POST, tokens, tokens, key, Some(&body.to_string())).await.body;
    assert_eq!(cached["isCached"], true);
    let waiting = server.call(Method::GET, one, &format!("{tokens}/{id}"), key, None).await.body;
    assert_eq!(waiting["status"], "WAITING");

    let plain = server.call(Method::POST, tokens, tokens, key, Some("{}")).await.body;
    let url = plain["url"].as_str().unwrap().strip_prefix("http://wp.test").unwrap().to_owned();
    let by_url = server.call(Method::POST, callback, &url, None, Some(r#"{"status":"succeeded"}"#)).await;
    assert_eq!(by_url.body, json!({"success": true}));
    let path = format!("{tokens}/{}/complete", plain["id"].as_str().unwrap());
    let preflight = server.call(Method::OPTIONS, complete, &path, None, None).await;
    assert_eq!(preflight.status, StatusCode::OK);

    let uri = format!("{tokens}/{id}/complete");
    server.call(Method::POST, complete, &uri, key, Some(r#"{"data": {"status": "approved"}}"#)).await;
    server.call(Method::POST, complete, &uri, key, Some(r#"{"output": "again"}"#)).await;
    let done = server.call(Method::GET, one, &format!("{tokens}/{id}"), key, None).await.body;
    assert_eq!((done["status"].as_str(), done["completedVia"].as_str()), (Some("COMPLETED"), Some("SECRET_KEY")));

    let expiring = server.call(Method::POST, tokens, tokens, key, Some(r#"{"timeout": "1s"}"#)).await.body;
    let expiring_id = WaitpointId::parse(expiring["id"].as_str().unwrap()).unwrap();
    let mut events = server.engine.subscribe();
    server.clock.advance(Duration::from_secs(1));
    while !matches!(events.recv().await.unwrap(), waitpoint_engine::Event::WaitpointFinished(w) if w.id == expiring_id)
    {
    }
    let timed_out =
        server.call(Method::GET, one, &format!("{tokens}/{}", expiring["id"].as_str().unwrap()), key, None).await;
    assert_eq!(timed_out.body["outputIsError"], true);

    let page = server.call(Method::GET, tokens, &format!("{tokens}?page[size]=1&filter[tags]=a"), key, None).await;
    assert!(page.body["pagination"]["next"].is_null() && page.body["data"].as_array().unwrap().len() == 1);
    let page = server.call(Method::GET, tokens, &format!("{tokens}?page[size]=2"), key, None).await;
    let next = page.body["pagination"]["next"].as_str().unwrap();
    server.call(Method::GET, tokens, &format!("{tokens}?page[after]={next}&filter[status]=COMPLETED"), key, None).await;

    let heartbeat = "/api/v1/waitpoints/tokens/{id}/heartbeat";
    let beating = server.call(Method::POST, tokens, tokens, key, Some(r#"{"heartbeatTimeout": "30s"}"#)).await.body;
    let beating_uri = format!("{tokens}/{}/heartbeat", beating["id"].as_str().unwrap());
    let beat = server.call(Method::POST, heartbeat, &beating_uri, key, None).await;
    assert!(beat.body["heartbeatDeadline"].is_string(), "{}", beat.body);
    assert_eq!(server.call(Method::OPTIONS, heartbeat, &beating_uri, None, None).await.status, StatusCode::OK);
    let heartbeat_url = beating["heartbeatUrl"].as_str().unwrap().strip_prefix("http://wp.test").unwrap();
    let by_url = "/api/v1/waitpoints/tokens/{id}/heartbeat/{signature}";
    assert_eq!(server.call(Method::POST, by_url, heartbeat_url, None, Some("{}")).await.status, StatusCode::OK);
    let finished = server.call(Method::POST, heartbeat, &format!("{tokens}/{id}/heartbeat"), key, None).await;
    assert_eq!(finished.status, StatusCode::CONFLICT, "a completed token: {}", finished.body);
    let completed_uri = format!("{tokens}/{id}/extend");
    let extend = "/api/v1/waitpoints/tokens/{id}/extend";
    let conflict = server.call(Method::POST, extend, &completed_uri, key, Some(r#"{"timeout": "1h"}"#)).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.body);

    // Each error the token routes document, as the server really sends it.
    let public = created["publicAccessToken"].as_str().unwrap();
    let other = format!("{tokens}/{}/complete", plain["id"].as_str().unwrap());
    let hash = url.rsplit_once('/').unwrap().1;
    let forged = url.replace(hash, &"0".repeat(hash.len()));
    let unknown = "waitpoint_cunknownunknownunknownunk";
    let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
    let too_many = json!({ "tags": eleven }).to_string();
    let too_large = format!(r#"{{"idempotencyKey":"{}"}}"#, "k".repeat(11 * 1024));
    for (method, template, uri, credential, body, status) in [
        (Method::POST, tokens, tokens.to_owned(), key, Some(r#"{"timeout": 5}"#), StatusCode::BAD_REQUEST),
        (Method::GET, tokens, format!("{tokens}?filter[status]=FOO"), key, None, StatusCode::BAD_REQUEST),
        (Method::GET, tokens, tokens.to_owned(), None, None, StatusCode::UNAUTHORIZED),
        (Method::GET, one, format!("{tokens}/{id}"), Some(public), None, StatusCode::UNAUTHORIZED),
        (Method::POST, complete, other, Some(public), Some("{}"), StatusCode::FORBIDDEN),
        (Method::GET, one, format!("{tokens}/{unknown}"), key, None, StatusCode::NOT_FOUND),
        (Method::POST, callback, forged, None, Some("{}"), StatusCode::UNAUTHORIZED),
        (Method::POST, callback, url.clone(), None, None, StatusCode::LENGTH_REQUIRED),
        (Method::POST, tokens, tokens.to_owned(), key, Some(&too_large), StatusCode::PAYLOAD_TOO_LARGE),
        (Method::POST, tokens, tokens.to_owned(), key, Some(&too_many), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let reply = server.call(method.clone(), template, &uri, credential, body).await;
        assert_eq!(reply.status, status, "{method} {uri}: {}", reply.body);
    }
    let list_error = server.send(Method::GET, &format!("{tokens}?filter[status]=FOO"), key, None).await;
    assert_eq!(list_error.body["details"][0]["path"], json!(["filter[status]"]));

    server.engine.release_polls();
    let stopping = server.call(Method::GET, "/readyz", "/readyz", None, None).await;
    assert_eq!(stopping.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn run_and_worker_protocol_answers_fit_their_schemas() {
    let server = Server::new().await;
    let key = Some(server.key.as_str());
    let trigger = "/api/v1/tasks/{taskId}/trigger";
    let poll = "/api/v1/workers/{workerId}/poll";
    let journal = "/api/v1/runs/{id}/journal";
    let poll_body = r#"{"tasks": [{"id": "t", "slots": 1}], "waitMs": 0, "holding": []}"#;

    let body = r#"{"payload": {"n": 1}, "options": {"tags": "a", "maxAttempts": 2}}"#;
    let run = server.call(Method::POST, trigger, "/api/v1/tasks/t/trigger", key, Some(body)).await.body;
    let id = run["id"].as_str().unwrap();
    server.call(Method::GET, "/api/v1/runs", "/api/v1/runs?filter[taskIdentifier]=t", key, None).await;
    server.call(Method::GET, "/api/v1/runs/{id}", &format!("/api/v1/runs/{id}"), key, None).await;

    let claimed = server.call(Method::POST, poll, "/api/v1/workers/worker_a/poll", key, Some(poll_body)).await.body;
    let epoch = claimed["runs"][0]["epoch"].as_u64().unwrap();
    let journal_uri = format!("/api/v1/runs/{id}/journal");
    server.call(Method::GET, journal, &journal_uri, key, None).await;
    let step = json!({"epoch": epoch, "entry": {"seq": 0, "kind": "STEP", "name": "s", "result": null}}).to_string();
    server.call(Method::POST, journal, &journal_uri, key, Some(&step)).await;
    let token_body = json!({"epoch": epoch, "seq": 1, "options": {"timeout": "1h"}}).to_string();
    let uri = format!("/api/v1/runs/{id}/tokens");
    let token = server.call(Method::POST, "/api/v1/runs/{id}/tokens", &uri, key, Some(&token_body)).await.body;
    let token_id = token["token"]["id"].as_str().unwrap();
    let wait_body = json!({"epoch": epoch, "seq": 2, "for": {"type": "TOKEN", "id": token_id}}).to_string();
    let uri = format!("/api/v1/runs/{id}/wait");
    let waited = server.call(Method::POST, "/api/v1/runs/{id}/wait", &uri, key, Some(&wait_body)).await.body;
    assert_eq!(waited["suspended"], true);
    let waiting = server.call(Method::GET, "/api/v1/runs/{id}", &format!("/api/v1/runs/{id}"), key, None).await.body;
    assert_eq!(
        (waiting["waitingOn"][0]["status"].clone(), waiting["waitingNeeded"].clone()),
        (json!("WAITING"), json!(1))
    );
    let stale = json!({"epoch": epoch + 1, "entry": {"seq": 3, "kind": "STEP", "name": "late", "result": 1}});
    let conflict = server.call(Method::POST, journal, &journal_uri, key, Some(&stale.to_string())).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);

    let uri = format!("/api/v1/waitpoints/tokens/{token_id}/complete");
    server.call(Method::POST, "/api/v1/waitpoints/tokens/{id}/complete", &uri, key, Some(r#"{"data": 1}"#)).await;
    let resumed = server.call(Method::POST, poll, "/api/v1/workers/worker_a/poll", key, Some(poll_body)).await.body;
    assert_eq!(resumed["runs"][0]["resumed"]["result"], json!({"ok": true, "output": 1}), "{resumed}");
    let epoch = resumed["runs"][0]["epoch"].as_u64().unwrap();
    let set = json!({"type": "SET", "needed": 1, "of": [
        {"type": "TOKEN", "id": token_id}, {"type": "DURATION", "ms": 3_600_000, "name": "for 1h"}]});
    let set_body = json!({"epoch": epoch, "seq": 3, "for": set}).to_string();
    let uri = format!("/api/v1/runs/{id}/wait");
    let decided = server.call(Method::POST, "/api/v1/runs/{id}/wait", &uri, key, Some(&set_body)).await.body;
    assert_eq!((decided["suspended"].clone(), decided["entry"]["kind"].clone()), (json!(false), json!("WAIT_SET")));
    assert_eq!(decided["entry"]["result"]["waitpoints"][0]["output"], 1, "{decided}");
    let uri = format!("/api/v1/runs/{id}/attempt/complete");
    let output = json!({"epoch": epoch, "output": {"ok": true}}).to_string();
    let finished = server.call(Method::POST, "/api/v1/runs/{id}/attempt/complete", &uri, key, Some(&output)).await;
    assert_eq!(finished.body["status"], "COMPLETED");

    let other = server.call(Method::POST, trigger, "/api/v1/tasks/t/trigger", key, Some("{}")).await.body;
    let other_id = other["id"].as_str().unwrap();
    let claimed = server.call(Method::POST, poll, "/api/v1/workers/worker_a/poll", key, Some(poll_body)).await.body;
    let epoch = claimed["runs"][0]["epoch"].as_u64().unwrap();
    let failure = json!({"epoch": epoch, "error": {"name": "TaskError", "message": "no"}}).to_string();
    let uri = format!("/api/v1/runs/{other_id}/attempt/fail");
    let failed = server.call(Method::POST, "/api/v1/runs/{id}/attempt/fail", &uri, key, Some(&failure)).await;
    assert_eq!(failed.body["status"], "FAILED");

    let queued = server.call(Method::POST, trigger, "/api/v1/tasks/t/trigger", key, Some("{}")).await.body;
    let uri = format!("/api/v1/runs/{}/cancel", queued["id"].as_str().unwrap());
    let canceled = server.call(Method::POST, "/api/v1/runs/{id}/cancel", &uri, key, None).await;
    assert_eq!(canceled.body["status"], "CANCELED");
    let missing =
        server.call(Method::GET, "/api/v1/runs/{id}", "/api/v1/runs/run_cunknownunknownunknownunk", key, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// The create, complete and trigger bodies are read by hand; the schemas say what that code
/// accepts: a body is taken exactly when it fits.
#[tokio::test]
async fn hand_parsed_bodies_are_taken_exactly_when_they_fit_their_schemas() {
    let server = Server::new().await;
    let key = Some(server.key.as_str());
    let tokens = "/api/v1/waitpoints/tokens";
    let token = server.call(Method::POST, tokens, tokens, key, Some("{}")).await.body;
    let complete = format!("{tokens}/{}/complete", token["id"].as_str().unwrap());
    let reject = format!("{tokens}/{}/reject", token["id"].as_str().unwrap());
    let waiting = server.call(Method::POST, tokens, tokens, key, Some("{}")).await.body;
    let extend = format!("{tokens}/{}/extend", waiting["id"].as_str().unwrap());
    let cases: [(&str, &str, &[&str], &[&str]); 5] = [
        (
            tokens,
            tokens,
            &[
                "{}",
                r#"{"tags": "a"}"#,
                r#"{"tags": ["a", "b"], "timeout": "10m", "idempotencyKey": "k", "idempotencyKeyTTL": "1h"}"#,
                r#"{"approval": {"title": "Publish?", "fields": [{"name": "n", "type": "number", "min": 0}]}}"#,
                r#"{"outputSchema": {"type": "object", "required": ["status"]}}"#,
                r#"{"heartbeatTimeout": "30s"}"#,
                r#"{"callbackVerifier": {"scheme": "hmac-sha256", "secret": "s", "header": "X-Sig"}}"#,
            ],
            &[
                r#"{"extra": 1}"#,
                r#"{"tags": null}"#,
                r#"{"timeout": 5}"#,
                r#"{"tags": [1]}"#,
                r#"{"approval": null}"#,
                r#"{"outputSchema": null}"#,
                r#"{"outputSchema": true}"#,
                r#"{"heartbeatTimeout": 30}"#,
                r#"{"callbackVerifier": {"scheme": "md5", "secret": "s"}}"#,
                r#"{"callbackVerifier": {"scheme": "github", "secret": "s", "extra": 1}}"#,
                r#"{"approval": {"fields": [{"name": "n", "type": "date"}]}}"#,
                "[]",
            ],
        ),
        (
            "/api/v1/waitpoints/tokens/{id}/complete",
            &complete,
            &["{}", r#"{"data": {"a": 1}}"#, r#"{"output": "text"}"#, r#"{"data": null}"#],
            &[r#"{"data": 1, "output": 2}"#, r#"{"extra": 1}"#, "[]", r#""text""#],
        ),
        (
            "/api/v1/waitpoints/tokens/{id}/reject",
            &reject,
            &[
                r#"{"error": {"message": "declined"}}"#,
                r#"{"error": {"message": "declined", "code": "CARD", "data": {"n": [1, 2]}}}"#,
            ],
            &[
                "{}",
                r#"{"error": {}}"#,
                r#"{"error": {"message": ""}}"#,
                r#"{"error": {"message": "no", "code": ""}}"#,
                r#"{"error": {"message": "no", "extra": 1}}"#,
                r#"{"error": {"message": "no"}, "extra": 1}"#,
                r#"{"error": "no"}"#,
                "[]",
            ],
        ),
        (
            "/api/v1/waitpoints/tokens/{id}/extend",
            &extend,
            &[r#"{"timeout": "2h"}"#, r#"{"timeout": "2030-01-01T00:00:00Z"}"#],
            &["{}", r#"{"timeout": 3600}"#, r#"{"timeout": "2031-01-01T00:00:00Z", "why": "x"}"#, "[]"],
        ),
        (
            "/api/v1/tasks/{taskId}/trigger",
            "/api/v1/tasks/t/trigger",
            &[
                "{}",
                r#"{"payload": [1, "two"]}"#,
                r#"{"options": {"tags": "a", "maxAttempts": 2, "delay": "1m", "idempotencyKey": "k"}}"#,
            ],
            &[
                r#"{"extra": 1}"#,
                r#"{"options": {"retries": 3}}"#,
                r#"{"options": null}"#,
                r#"{"options": {"maxAttempts": "3"}}"#,
                r#"{"options": {"tags": [1]}}"#,
            ],
        ),
    ];
    for (template, uri, taken, refused) in cases {
        let schema = server.request_schema(&Method::POST, template);
        for (body, fits) in taken.iter().map(|b| (b, true)).chain(refused.iter().map(|b| (b, false))) {
            let reply = server.call(Method::POST, template, uri, key, Some(body)).await;
            let value: Value = serde_json::from_str(body).unwrap();
            assert_eq!(server.fits(schema, &value).is_ok(), fits, "{template}: the schema and {body}");
            let expected = if fits { StatusCode::OK } else { StatusCode::BAD_REQUEST };
            assert_eq!(reply.status, expected, "{template}: {body}: {}", reply.body);
        }
    }
}

/// The limits the schemas state are the server's.
#[tokio::test]
async fn schema_limits_are_the_servers() {
    let server = Server::new().await;
    let schemas = &server.document["components"]["schemas"];
    let approval = &schemas["Approval"]["properties"];
    let field = &schemas["ApprovalField"]["properties"];
    for (limit, expected) in [
        (&approval["title"]["maxLength"], approval::MAX_TITLE_CHARS),
        (&approval["description"]["maxLength"], approval::MAX_DESCRIPTION_CHARS),
        (&approval["fields"]["maxItems"], approval::MAX_FIELDS),
        (&field["label"]["maxLength"], approval::MAX_NAME_CHARS),
        (&field["options"]["maxItems"], approval::MAX_OPTIONS),
    ] {
        assert_eq!(limit.as_u64(), Some(expected as u64));
    }
    let timestamp = json!({"$ref": "#/components/schemas/Timestamp"});
    assert!(server.fits(&timestamp, &json!("2025-04-01T10:00:00.000Z")).is_ok());
    assert!(server.fits(&timestamp, &json!("yesterday")).is_err(), "formats are checked");
    let pattern = field["name"]["pattern"].as_str().unwrap();
    assert!(pattern.ends_with(&format!("{{1,{}}}$", approval::MAX_NAME_CHARS)), "{pattern}");
}
