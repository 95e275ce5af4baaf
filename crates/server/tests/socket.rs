//! What only a real socket shows: a refused upload still gets its answer, clients too slow to
//! send are cut off, the connection cap, and a shutdown that ends on time.
//!
//! The time-based tests configure timeouts of a fraction of a second and allow generous
//! margins above them (the machine may be loaded), never below.

use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Engine, EngineConfig, SystemClock};
use waitpoint_server::ServeConfig;
use waitpoint_sqlite::SqliteStore;

/// Time allowed for a timeout to be noticed and acted on, on top of the timeout itself.
const MARGIN: Duration = Duration::from_millis(2500);

/// A server on a free port, with the dev environment's key.
struct Server {
    _dir: TempDir,
    address: String,
    key: String,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<()>,
}

impl Server {
    async fn start(config: ServeConfig) -> Self {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
        let dev = create_environment(&store, &SystemClock, "dev").await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let engine = Engine::start(Arc::new(store), Arc::new(SystemClock), EngineConfig::default());
        let (stop, stopped) = oneshot::channel();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let serving = tokio::spawn(waitpoint_server::serve_with(listener, engine, config, shutdown));
        Self { _dir: dir, address, key: dev.api_key.expose().to_owned(), stop: Some(stop), serving }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(&self.address).await.unwrap()
    }

    /// A request with the secret key and a JSON body (`Content-Length` as given).
    fn post(&self, path: &str, content_length: usize, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {content_length}\r\n\r\n{body}",
            self.address, self.key
        )
    }

    /// A worker's poll that the server holds for `wait_ms` when there is nothing to run.
    fn poll(&self, wait_ms: u64) -> String {
        let body = format!(r#"{{"tasks":[{{"id":"approve","slots":1}}],"waitMs":{wait_ms},"holding":[]}}"#);
        self.post("/api/v1/workers/worker_ctest/poll", body.len(), &body)
    }

    fn healthz(&self) -> String {
        format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", self.address)
    }

    /// Starts the shutdown and returns how long serving took to end.
    async fn shut_down(mut self) -> Duration {
        let started = Instant::now();
        self.stop.take().unwrap().send(()).unwrap();
        timeout(Duration::from_secs(30), &mut self.serving).await.expect("serving did not end").unwrap();
        started.elapsed()
    }
}

/// Sends `request` and reads one response, head and body (by its `Content-Length`).
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned()))
                .map_or(0, |n| n.parse::<usize>().unwrap());
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the connection closed mid-response: {text:?}");
        received.extend_from_slice(&buffer[..n]);
    }
}

/// Reads until the server closes the connection (end of file or reset) and returns what came
/// before, with how long it took.
async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match timeout(Duration::from_secs(30), stream.read(&mut buffer)).await.expect("the connection stayed open") {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&received).into_owned(), started.elapsed()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Whether a response arrives within `wait`.
async fn answered_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0; 1];
    timeout(wait, stream.peek(&mut byte)).await.is_ok()
}

/// Writes `text` one byte every 100 ms until it is written or the connection breaks.
fn trickle(mut writer: tokio::net::tcp::OwnedWriteHalf, text: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        for byte in text.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Collects what the server logs on this thread (the tests' runtime runs every task on it).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn lines_with(&self, text: &str) -> Vec<String> {
        let logs = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        logs.lines().filter(|line| line.contains(text)).map(str::to_owned).collect()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn timeouts(header: u64, body: u64, idle: u64) -> ServeConfig {
    ServeConfig {
        header_timeout: Duration::from_millis(header),
        body_timeout: Duration::from_millis(body),
        idle_timeout: Duration::from_millis(idle),
        ..ServeConfig::default()
    }
}

/// Regression: answering 413 before reading a large body closed the connection while the
/// client was still sending, so clients saw a broken pipe (which Trigger.dev's SDK retries)
/// instead of the 413.
#[tokio::test]
async fn an_oversized_upload_is_read_to_the_end_and_answered_413() {
    let server = Server::start(ServeConfig::default()).await;
    let body = format!(r#"{{"data":"{}"}}"#, "x".repeat(4 * 1024 * 1024));
    let mut stream = server.connect().await;
    let head = server.post("/api/v1/waitpoints/tokens/waitpoint_cany/complete", body.len(), "");
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(64 * 1024) {
        stream.write_all(chunk).await.expect("the server stopped reading the upload");
    }
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("Request body too large"), "{response}");
}

/// Regression: a head sent one byte a second held its connection for minutes.
#[tokio::test]
async fn a_head_sent_too_slowly_is_cut_off_after_the_header_timeout() {
    let header = Duration::from_millis(500);
    let server = Server::start(timeouts(500, 10_000, 10_000)).await;
    let slow_head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nUser-Agent: slow\r\n\r\n", server.address);

    // On a new connection, the head is due from connecting.
    let (mut reader, writer) = server.connect().await.into_split();
    let writing = trickle(writer, slow_head.clone());
    let started = Instant::now();
    let mut received = Vec::new();
    let read = timeout(header + MARGIN, reader.read_to_end(&mut received)).await;
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "the connection was still open after {elapsed:?}");
    assert!(received.is_empty(), "{}", String::from_utf8_lossy(&received));
    assert!(elapsed >= header - Duration::from_millis(50), "closed after only {elapsed:?}");
    writing.abort();

    // On a kept-alive connection (whose idle timeout is long), the next head is due from its
    // first byte.
    let mut stream = server.connect().await;
    assert!(exchange(&mut stream, &server.healthz()).await.starts_with("HTTP/1.1 200"));
    let (mut reader, writer) = stream.into_split();
    let writing = trickle(writer, slow_head);
    let started = Instant::now();
    let mut received = Vec::new();
    let read = timeout(header + MARGIN, reader.read_to_end(&mut received)).await;
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "the kept-alive connection was still open after {elapsed:?}");
    assert!(received.is_empty(), "{}", String::from_utf8_lossy(&received));
    assert!(elapsed >= header - Duration::from_millis(50), "closed after only {elapsed:?}");
    writing.abort();
}

/// Regression: idle connections were kept for minutes, 2,000 of them.
#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(2000);
    let server = Server::start(timeouts(300, 10_000, 2000)).await;
    let mut stream = server.connect().await;
    assert!(exchange(&mut stream, &server.healthz()).await.starts_with("HTTP/1.1 200"));

    // Idle for longer than the header timeout but within the idle timeout: still served.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(exchange(&mut stream, &server.healthz()).await.starts_with("HTTP/1.1 200"));

    let (received, elapsed) = until_closed(&mut stream).await;
    assert_eq!(received, "");
    assert!(elapsed >= idle - Duration::from_millis(200), "closed after only {elapsed:?}");
    assert!(elapsed <= idle + MARGIN, "closed after {elapsed:?}");
}

/// Regression: a body short of its `Content-Length` held its connection (and its handler) for
/// minutes.
#[tokio::test]
async fn a_body_short_of_its_length_is_answered_408_after_the_body_timeout_and_holds_nothing() {
    let body_timeout = Duration::from_millis(500);
    let config = ServeConfig { max_connections: NonZeroUsize::new(1), ..timeouts(10_000, 500, 10_000) };
    let server = Server::start(config).await;
    let mut stream = server.connect().await;
    stream.write_all(server.post("/api/v1/waitpoints/tokens", 100, r#"{"timeout": "1h", "#).as_bytes()).await.unwrap();

    let (response, elapsed) = until_closed(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("Request body timed out"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    assert!(!response.contains("x-should-retry"), "{response}");
    assert!(elapsed >= body_timeout - Duration::from_millis(50), "answered after only {elapsed:?}");
    assert!(elapsed <= body_timeout + MARGIN, "answered after {elapsed:?}");

    // The only connection slot is free again, and no token was made.
    let mut stream = server.connect().await;
    let list = format!(
        "GET /api/v1/waitpoints/tokens HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        server.address, server.key
    );
    let listed = timeout(MARGIN, exchange(&mut stream, &list)).await.expect("the slot was not given back");
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    assert!(listed.contains(r#"{"data":[]"#), "{listed}");
}

/// Regression: every connection was taken, however many, until the process ran out of
/// descriptors and `/healthz`, the database and the timeout loop failed with it.
#[tokio::test]
async fn beyond_the_connection_cap_new_connections_wait_until_one_closes() {
    let (logs, _guard) = Logs::capture();
    let config = ServeConfig { max_connections: NonZeroUsize::new(2), ..ServeConfig::default() };
    let server = Server::start(config).await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    assert!(exchange(&mut first, &server.healthz()).await.starts_with("HTTP/1.1 200"));
    assert!(exchange(&mut second, &server.healthz()).await.starts_with("HTTP/1.1 200"));
    let started = logs.lines_with("taking connections");
    assert!(started.len() == 1 && started[0].contains("max_connections=2"), "{:?}", logs.lines_with(""));

    let mut third = server.connect().await;
    let mut fourth = server.connect().await;
    third.write_all(server.healthz().as_bytes()).await.unwrap();
    fourth.write_all(server.healthz().as_bytes()).await.unwrap();
    assert!(!answered_within(&mut third, Duration::from_millis(300)).await, "a third connection was served");
    assert!(!answered_within(&mut fourth, Duration::from_millis(10)).await, "a fourth connection was served");
    let reached = logs.lines_with("connection limit reached");
    assert_eq!(reached.len(), 1, "{:?}", logs.lines_with(""));
    assert!(reached[0].contains("WARN") && reached[0].contains("max_connections=2"), "{reached:?}");

    drop(first);
    let answer = timeout(MARGIN, read_response(&mut third)).await.expect("the freed slot was not used");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answered_within(&mut fourth, Duration::from_millis(100)).await, "a fourth connection was served");

    drop(second);
    drop(third);
    let answer = timeout(MARGIN, read_response(&mut fourth)).await.expect("the freed slot was not used");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(fourth);
    let mut fifth = server.connect().await;
    let answer = timeout(MARGIN, exchange(&mut fifth, &server.healthz())).await.expect("/healthz is not served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(logs.lines_with("connection limit reached").len(), 1, "logged once per episode");
}

/// Regression: one half-sent request kept SIGTERM from stopping the server for over 40 s; a
/// worker's held poll would too.
#[tokio::test]
async fn shutdown_ends_at_its_deadline_whatever_the_clients_do() {
    let deadline = Duration::from_millis(500);
    let config = ServeConfig { shutdown_timeout: deadline, ..timeouts(30_000, 30_000, 30_000) };
    let server = Server::start(config).await;
    let mut half_body = server.connect().await;
    half_body.write_all(server.post("/api/v1/waitpoints/tokens", 100, "{").as_bytes()).await.unwrap();
    let mut half_head = server.connect().await;
    half_head.write_all(b"POST /api/v1/waitpoints/tokens HTTP/1.1\r\nHost: x\r\nContent-Le").await.unwrap();
    let mut held_poll = server.connect().await;
    held_poll.write_all(server.poll(25_000).as_bytes()).await.unwrap();
    // The requests reach their handlers.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let took = server.shut_down().await;
    assert!(took <= deadline + MARGIN, "shutting down took {took:?}");
    for stream in [&mut half_body, &mut half_head, &mut held_poll] {
        let (_received, elapsed) = until_closed(stream).await;
        assert!(elapsed < Duration::from_secs(1), "a connection outlived the server by {elapsed:?}");
    }
}

#[tokio::test]
async fn shutdown_answers_the_requests_in_flight_and_takes_no_new_connection() {
    let config = ServeConfig { shutdown_timeout: Duration::from_secs(20), ..ServeConfig::default() };
    let server = Server::start(config).await;
    let address = server.address.clone();
    let mut poll = server.connect().await;
    poll.write_all(server.poll(1000).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let took = server.shut_down().await;
    assert!(took < Duration::from_secs(10), "shutting down took {took:?}");
    let (answer, _) = until_closed(&mut poll).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"runs":[]}"#), "{answer}");
    assert!(TcpStream::connect(&address).await.is_err(), "a connection was accepted after the shutdown");
}

/// The timeouts are about a client slow to send: an answer may take longer than all of them,
/// as a worker's poll held for up to 30 s does.
#[tokio::test]
async fn a_slow_answer_is_not_cut_by_the_timeouts() {
    let server = Server::start(timeouts(500, 500, 500)).await;
    let mut stream = server.connect().await;
    let started = Instant::now();
    let answer = exchange(&mut stream, &server.poll(2000)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"runs":[]}"#), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(1900), "the poll was not held");
    assert!(exchange(&mut stream, &server.healthz()).await.starts_with("HTTP/1.1 200"), "kept alive");
}
