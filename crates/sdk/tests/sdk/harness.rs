//! The harness every test uses: a server (SQLite in a temporary directory, on a free port,
//! with the clock the test chooses), workers the test starts and stops, and waiting on runs.

use std::cell::RefCell;
use std::io::Write;
use std::pin::pin;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use waitpoint_clock::ManualClock;
use waitpoint_engine::environments::create_environment;
use waitpoint_engine::{Clock, Engine, EngineConfig, SystemClock};
use waitpoint_sdk::{Client, RunDetail, RunStatus, Task, Timestamp, Worker, WorkerConfig};
use waitpoint_sqlite::SqliteStore;

/// A server running in this process.
pub struct Server {
    _dir: TempDir,
    /// A client with the `dev` environment's key.
    pub client: Client,
    /// `http://127.0.0.1:<port>`.
    pub origin: String,
    /// The clock of the server and of the workers [`Server::config`] makes.
    pub clock: Arc<dyn Clock>,
}

/// A server on the system clock.
pub async fn server() -> Server {
    server_on(Arc::new(SystemClock)).await
}

/// A server on a manual clock standing at 2025-04-01T10:00:00Z, and that clock.
pub async fn manual_server() -> (Server, ManualClock) {
    let clock = ManualClock::new(Timestamp::parse_iso8601("2025-04-01T10:00:00Z").unwrap());
    (server_on(Arc::new(clock.clone())).await, clock)
}

async fn server_on(clock: Arc<dyn Clock>) -> Server {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path().join("db")).await.unwrap();
    let dev = create_environment(&store, clock.as_ref(), "dev").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let config = EngineConfig { public_url: origin.clone(), ..EngineConfig::default() };
    let engine = Engine::start(Arc::new(store), clock.clone(), config);
    tokio::spawn(waitpoint_server::serve(listener, engine, std::future::pending()));
    Server { _dir: dir, client: Client::new(&origin, dev.api_key.expose()).unwrap(), origin, clock }
}

impl Server {
    /// Worker settings on the server's clock.
    pub fn config(&self) -> WorkerConfig {
        WorkerConfig { clock: self.clock.clone(), ..WorkerConfig::default() }
    }

    /// Starts a worker running `tasks` with `config`.
    pub fn start(&self, tasks: Vec<Task>, config: WorkerConfig) -> Running {
        Running::start(Worker::new(self.client.clone(), tasks, config).unwrap())
    }

    /// Polls the run until `done` says so (10 s at most).
    pub async fn until(&self, run: &str, done: impl Fn(&RunDetail) -> bool) -> RunDetail {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let detail = self.client.retrieve_run(run).await.unwrap();
            if done(&detail) {
                return detail;
            }
            assert!(Instant::now() < deadline, "run {run} stuck at {}", detail.status);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The run once it finished.
    pub async fn finished(&self, run: &str) -> RunDetail {
        self.until(run, |d| d.status.is_final()).await
    }

    /// The id of the token the run waits on, once it waits.
    pub async fn waiting_token(&self, run: &str) -> String {
        let detail = self.until(run, |d| d.status == RunStatus::Waiting).await;
        detail.waiting_on[0].id.clone()
    }
}

/// A worker running in this process.
pub struct Running {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<waitpoint_sdk::Result<()>>,
}

impl Running {
    pub fn start(worker: Worker) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        Self { stop, handle: tokio::spawn(worker.run_until(stopped)) }
    }

    /// Stops the worker and waits until it has handed its runs back.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }

    /// What `run_until` returned, once it returns by itself.
    pub async fn ended(self) -> waitpoint_sdk::Result<()> {
        self.handle.await.unwrap()
    }

    /// Drops the worker's loop at once, as a killed process would stop polling (its runs'
    /// executions are left behind).
    pub fn kill(self) {
        self.handle.abort();
    }
}

/// A list that task executions append to, to compare them across executions.
pub type Seen<T> = Arc<Mutex<Vec<T>>>;

thread_local! {
    /// Where the events of this thread go: the capture of the test running on it, if any.
    static CAPTURE: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

/// The `tracing` output of the code on this thread, captured (a `#[tokio::test]` runs every
/// task on its thread, so the server's and the workers' events are captured too).
///
/// One subscriber serves the whole test process, installed by the first capture, and sends
/// each event to the capture of its thread: subscribers set per thread miss events whose
/// interest another test's thread settled first.
#[derive(Clone, Default)]
pub struct Logs {
    text: Arc<Mutex<Vec<u8>>>,
    written: Arc<Notify>,
}

/// Ends the capture of this thread when dropped.
pub struct Capturing;

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURE.with(|capture| capture.borrow_mut().take());
    }
}

impl Logs {
    /// Captures this thread's events at info level and above until the guard is dropped.
    pub fn capture() -> (Self, Capturing) {
        static SUBSCRIBER: Once = Once::new();
        SUBSCRIBER.call_once(|| {
            tracing_subscriber::fmt()
                .with_writer(|| ThreadWriter)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .try_init()
                .expect("no other subscriber in the SDK's tests");
        });
        let logs = Self::default();
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(logs.clone()));
        (logs, Capturing)
    }

    /// How many times `needle` appears.
    pub fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.text.lock().unwrap()).matches(needle).count()
    }

    /// Waits until `needle` appears (10 s at most).
    pub async fn until(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut written = pin!(self.written.notified());
            written.as_mut().enable();
            if self.count(needle) > 0 {
                return;
            }
            let waited = tokio::time::timeout_at(deadline, written).await;
            assert!(waited.is_ok(), "no log line with {needle:?}");
        }
    }
}

/// Writes an event to the capture of the thread it happens on (or nowhere).
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(logs) = capture.borrow().as_ref() {
                logs.text.lock().unwrap().extend_from_slice(bytes);
                logs.written.notify_waiters();
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
