//! What only a real socket shows: a refused upload still gets its answer.

use std::sync::Arc;

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig, SystemClock};
use waitpoint_sqlite::SqliteStore;

/// Regression: answering 413 before reading a large body closed the connection while the
/// client was still sending, so clients saw a broken pipe (which Trigger.dev's SDK retries)
/// instead of the 413.
#[tokio::test]
async fn an_oversized_upload_is_read_to_the_end_and_answered_413() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
    let dev = create_environment(&store, &SystemClock, "dev").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let engine = Engine::start(Arc::new(store), Arc::new(SystemClock), EngineConfig::default());
    tokio::spawn(waitpoint_server::serve(listener, engine, std::future::pending()));

    let body = format!(r#"{{"data":"{}"}}"#, "x".repeat(4 * 1024 * 1024));
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/waitpoints/tokens/waitpoint_cany/complete HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        dev.api_key.expose(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(64 * 1024) {
        stream.write_all(chunk).await.expect("the server stopped reading the upload");
    }
    let mut response = vec![0; 4096];
    let n = stream.read(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response[..n]);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("Request body too large"), "{response}");
}
