//! The Prometheus metrics move as the API is used. One test in its own process: the recorder
//! is process-wide, so nothing else may record beside it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig};
use waitpoint_sqlite::SqliteStore;
use waitpoint_types::Timestamp;

/// The value of the sample `name{labels}` in `text` (labels as rendered, in order), or 0.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let key = if labels.is_empty() { name.to_owned() } else { format!("{name}{{{labels}}}") };
    text.lines()
        .find_map(|line| line.strip_prefix(&key).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |value| value.parse().unwrap())
}

#[tokio::test]
async fn metrics_count_what_the_api_does() {
    let handle = waitpoint_server::metrics::install().unwrap();
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(1_764_000_000_000));
    let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
    let dev = create_environment(&store, &clock, "dev").await.unwrap();
    let engine = Engine::start(Arc::new(store), Arc::new(clock.clone()), EngineConfig::default());
    let app = waitpoint_server::app(engine.clone());
    let call = |method: Method, uri: String, body: Value| {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", dev.api_key.expose()))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };

    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, created) =
            call(Method::POST, "/api/v1/waitpoints/tokens".into(), json!({ "timeout": "1m" })).await;
        assert_eq!(status, StatusCode::OK);
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let complete = format!("/api/v1/waitpoints/tokens/{}/complete", ids[0]);
    assert_eq!(call(Method::POST, complete, json!({ "data": 1 })).await.0, StatusCode::OK);
    assert_eq!(call(Method::GET, "/api/v1/nowhere".into(), Value::Null).await.0, StatusCode::NOT_FOUND);
    let (_, run) = call(Method::POST, "/api/v1/tasks/t/trigger".into(), json!({})).await;
    let poll = json!({ "tasks": [{ "id": "t", "slots": 1 }], "waitMs": 0, "holding": [] });
    let (_, claimed) = call(Method::POST, "/api/v1/workers/worker_m/poll".into(), poll).await;
    assert_eq!(claimed["runs"][0]["id"], run["id"]);

    // The deadlines of the other two pass, 5 s late.
    let mut finished = engine.subscribe();
    clock.advance(std::time::Duration::from_secs(65));
    for _ in 0..2 {
        finished.recv().await.unwrap();
    }

    assert_eq!(call(Method::POST, "/api/v1/waitpoints/tokens".into(), json!({})).await.0, StatusCode::OK);
    waitpoint_engine::metrics::count_waiting(&engine).await.unwrap();

    let text = handle.render();
    assert_eq!(sample(&text, "waitpoint_tokens_waiting", ""), 1.0, "{text}");
    assert_eq!(sample(&text, "waitpoint_runs_waiting", ""), 0.0);
    assert_eq!(sample(&text, "waitpoint_tokens_created_total", ""), 4.0, "{text}");
    assert_eq!(sample(&text, "waitpoint_tokens_finished_total", r#"outcome="completed",channel="secret_key""#), 1.0);
    assert_eq!(sample(&text, "waitpoint_tokens_finished_total", r#"outcome="timed_out",channel="deadline""#), 2.0);
    assert_eq!(sample(&text, "waitpoint_timeout_lag_seconds_count", ""), 2.0);
    assert_eq!(sample(&text, "waitpoint_timeout_lag_seconds_sum", ""), 10.0);
    let created = r#"method="POST",route="/api/v1/waitpoints/tokens",status="200""#;
    assert_eq!(sample(&text, "waitpoint_http_requests_total", created), 4.0);
    let unknown = r#"method="GET",route="(no route)",status="404""#;
    assert_eq!(sample(&text, "waitpoint_http_requests_total", unknown), 1.0);
    assert!(!text.contains(&ids[0]), "no id is a label");
    for transition in ["triggered", "claimed"] {
        let labels = format!(r#"transition="{transition}""#);
        assert_eq!(sample(&text, "waitpoint_run_transitions_total", &labels), 1.0, "{transition}");
    }
    assert_eq!(sample(&text, "waitpoint_worker_polls_total", ""), 1.0);
    assert!(sample(&text, "waitpoint_write_batch_operations_count", "") >= 1.0);
    assert!(text.contains("# TYPE waitpoint_http_request_duration_seconds histogram"), "{text}");
}
