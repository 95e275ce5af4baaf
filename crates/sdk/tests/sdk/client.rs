//! The client: tokens round trip, errors carry what the server said, requests are checked
//! before they are sent.

use std::time::Duration;

use futures_util::TryStreamExt;
use serde_json::{Value, json};
use waitpoint_sdk::{Client, CreateTokenRequest, Error, ListFilter, WaitpointStatus};

use crate::harness::server;

#[tokio::test]
async fn create_complete_retrieve_and_list_round_trip() {
    let server = server().await;
    let client = &server.client;
    let request = CreateTokenRequest::new().timeout("1h").tags(["user:1"]).idempotency_key("k");
    let token = client.create_token(request.clone()).await.unwrap();
    assert!(token.url.starts_with(&server.origin));
    assert!(client.create_token(request).await.unwrap().is_cached);

    client.complete_token(&token, &json!({ "status": "approved" })).await.unwrap();
    let done = client.retrieve_token(&token.id).await.unwrap();
    assert_eq!(done.detail.status, WaitpointStatus::Completed);
    assert_eq!(done.output::<Value>().unwrap(), Some(json!({ "status": "approved" })));
    assert_eq!(done.timeout_error(), None);
    match done.output::<u32>() {
        Err(Error::OutputType(error)) => {
            assert_eq!(
                error.to_string(),
                format!("the output of token {} does not decode into u32: {}", token.id, error.message)
            );
        }
        other => panic!("{other:?}"),
    }

    // The public access token completes its own token.
    let other = client.create_token(CreateTokenRequest::new()).await.unwrap();
    let public = Client::new(&server.origin, &other.public_access_token).unwrap();
    public.complete_token(&other, "from a browser").await.unwrap();
    let text = client.retrieve_token(&other).await.unwrap();
    assert_eq!(text.output::<String>().unwrap().as_deref(), Some("from a browser"));

    for _ in 0..5 {
        client.create_token(CreateTokenRequest::new().timeout(Duration::from_secs(60))).await.unwrap();
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
    let server = server().await;
    match server.client.retrieve_token("waitpoint_cmissing").await {
        Err(Error::Api { status: 404, message, .. }) => assert_eq!(message, "Waitpoint not found"),
        other => panic!("{other:?}"),
    }
    let bad = Client::new(&server.origin, "tr_dev_wrong").unwrap();
    assert!(matches!(bad.create_token(CreateTokenRequest::new()).await, Err(Error::Api { status: 401, .. })));
    assert!(matches!(server.client.retrieve_token("../etc").await, Err(Error::Config(_))));
    match Client::new(&server.origin, " ") {
        Err(Error::Config(message)) => assert!(message.contains("Client::from_env"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn token_requests_with_invalid_durations_are_refused_before_sending_naming_the_field() {
    let server = server().await;
    let cases = [
        (CreateTokenRequest::new().timeout("10 minutes"), "timeout \"10 minutes\" is not a duration"),
        (CreateTokenRequest::new().timeout(Duration::ZERO), "timeout \"0s\" is zero"),
        (
            CreateTokenRequest::new().idempotency_key("k").idempotency_key_ttl("2030-01-01"),
            "idempotencyKeyTTL \"2030-01-01\"",
        ),
    ];
    for (request, expected) in cases {
        match server.client.create_token(request).await {
            Err(Error::Config(message)) => assert!(message.starts_with(expected), "{message}"),
            other => panic!("{expected}: {other:?}"),
        }
    }
    let none = server.client.list_tokens(ListFilter::default()).try_collect::<Vec<_>>().await.unwrap();
    assert!(none.is_empty(), "nothing was sent");

    for fine in [
        CreateTokenRequest::new().timeout("none"),
        CreateTokenRequest::new().timeout("2099-01-01T00:00:00Z"),
        CreateTokenRequest::new()
            .timeout(Duration::from_millis(1_500))
            .idempotency_key("k")
            .idempotency_key_ttl("none"),
    ] {
        server.client.create_token(fine).await.unwrap();
    }
}

#[tokio::test]
async fn heartbeats_keep_a_token_alive_and_an_extend_moves_its_timeout() {
    let (server, clock) = crate::harness::manual_server().await;
    let client = &server.client;
    let token = client.create_token(CreateTokenRequest::new().timeout("1h").heartbeat_timeout("30s")).await.unwrap();
    assert!(token.heartbeat_url.is_some());
    clock.advance(Duration::from_secs(10));
    let beat = client.heartbeat_token(&token).await.unwrap();
    assert_eq!(beat.heartbeat_deadline.map(|at| at.to_string()).as_deref(), Some("2025-04-01T10:00:40.000Z"));
    let extended = client.extend_token(&token, "2h").await.unwrap();
    assert_eq!(extended.timeout_at.map(|at| at.to_string()).as_deref(), Some("2025-04-01T12:00:10.000Z"));
    match client.extend_token(&token, "1h").await {
        Err(Error::Api { status: 400, message, .. }) => assert!(message.contains("not later"), "{message}"),
        other => panic!("{other:?}"),
    }
    let invalid = client.create_token(CreateTokenRequest::new().heartbeat_timeout("soon")).await;
    assert!(matches!(invalid, Err(Error::Config(message)) if message.starts_with("heartbeatTimeout")));
}

/// A server that answers one request on a connection, then reads the next one on it and closes
/// it without an answer (as a server killed after it went idle), then answers on a new one.
async fn server_that_drops_its_idle_connection() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let page = r#"{"data":[],"pagination":{}}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{page}",
            page.len()
        );
        let read_request = async |stream: &mut tokio::net::TcpStream| {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
        };
        let (mut first, _) = listener.accept().await.unwrap();
        read_request(&mut first).await;
        first.write_all(answer.as_bytes()).await.unwrap();
        read_request(&mut first).await;
        drop(first);
        let (mut second, _) = listener.accept().await.unwrap();
        read_request(&mut second).await;
        second.write_all(answer.as_bytes()).await.unwrap();
    });
    origin
}

#[tokio::test]
async fn a_read_whose_pooled_connection_died_is_sent_once_more() {
    let origin = server_that_drops_its_idle_connection().await;
    let client = Client::new(&origin, "tr_dev_key").unwrap();
    for _ in 0..2 {
        let page: Vec<_> = client.list_tokens(ListFilter::default()).try_collect().await.unwrap();
        assert!(page.is_empty());
    }
}
