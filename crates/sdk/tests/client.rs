//! The client against a real server on a real socket (SQLite underneath).

use std::sync::Arc;

use futures_util::TryStreamExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig, SystemClock};
use waitpoint_sdk::{Client, CreateTokenRequest, Error, ListFilter, WaitpointStatus};
use waitpoint_sqlite::SqliteStore;

async fn server() -> (TempDir, Client, String) {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
    let dev = create_environment(&store, &SystemClock, "dev").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let config = EngineConfig { public_url: origin.clone(), ..EngineConfig::default() };
    let engine = Engine::start(Arc::new(store), Arc::new(SystemClock), config);
    tokio::spawn(waitpoint_server::serve(listener, engine, std::future::pending()));
    let client = Client::new(&origin, dev.api_key.expose()).unwrap();
    (dir, client, origin)
}

#[tokio::test]
async fn create_complete_retrieve_and_list_round_trip() {
    let (_dir, client, origin) = server().await;
    let request = CreateTokenRequest {
        timeout: Some("1h".into()),
        tags: Some(vec!["user:1".into()]),
        idempotency_key: Some("k".into()),
        ..Default::default()
    };
    let token = client.create_token(&request).await.unwrap();
    assert!(token.url.starts_with(&origin));
    assert!(client.create_token(&request).await.unwrap().is_cached);

    client.complete_token(&token.id, &json!({ "status": "approved" })).await.unwrap();
    let done = client.retrieve_token(&token.id).await.unwrap();
    assert_eq!(done.detail.status, waitpoint_sdk::WaitpointStatus::Completed);
    assert_eq!(done.output::<Value>().unwrap(), Some(json!({ "status": "approved" })));
    assert_eq!(done.timeout_error(), None);

    // The public access token completes its own token.
    let other = client.create_token(&CreateTokenRequest::default()).await.unwrap();
    let public = Client::new(&origin, &other.public_access_token).unwrap();
    public.complete_token(&other.id, "from a browser").await.unwrap();
    let text = client.retrieve_token(&other.id).await.unwrap();
    assert_eq!(text.output::<String>().unwrap().as_deref(), Some("from a browser"));

    for _ in 0..5 {
        client.create_token(&CreateTokenRequest::default()).await.unwrap();
    }
    let filter = ListFilter { page_size: Some(2), ..Default::default() };
    let all: Vec<_> = client.list_tokens(filter).try_collect().await.unwrap();
    assert_eq!(all.len(), 7, "the stream followed every cursor");
    let filter =
        ListFilter { statuses: vec![WaitpointStatus::Completed], tags: vec!["user:1".into()], ..Default::default() };
    let completed: Vec<_> = client.list_tokens(filter).try_collect().await.unwrap();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].id, token.id);
}

#[tokio::test]
async fn errors_carry_the_status_and_the_servers_message() {
    let (_dir, client, origin) = server().await;
    match client.retrieve_token("waitpoint_cmissing").await {
        Err(Error::Api { status: 404, message, .. }) => assert_eq!(message, "Waitpoint not found"),
        other => panic!("{other:?}"),
    }
    let bad = Client::new(&origin, "tr_dev_wrong").unwrap();
    assert!(matches!(bad.create_token(&CreateTokenRequest::default()).await, Err(Error::Api { status: 401, .. })));
    assert!(matches!(client.retrieve_token("../etc").await, Err(Error::Config(_))));
}
