//! Test support for the binary's tests: databases, and `waitpoint serve` and worker processes
//! that tests start, stop (SIGTERM) and kill (SIGKILL).
#![allow(dead_code)] // Each test file uses part of it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use waitpoint_postgres::testing::PostgresSchema;
use waitpoint_sdk::Client;
use waitpoint_sqlite::SqliteStore;
use waitpoint_storage::Store;

pub const BIN: &str = env!("CARGO_BIN_EXE_waitpoint");
pub const KEY: &str = "tr_dev_cliTestKey0123456789abcde";

/// Where a test's server keeps its data.
pub enum Database {
    Sqlite(TempDir),
    Postgres(PostgresSchema),
}

impl Database {
    pub fn sqlite() -> Self {
        Self::Sqlite(TempDir::new().unwrap())
    }

    /// A fresh PostgreSQL schema, or `None` when the PostgreSQL tests are skipped.
    pub async fn postgres() -> Option<Self> {
        PostgresSchema::fresh().await.map(Self::Postgres)
    }

    /// `sqlite` or `postgres`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub fn args(&self) -> Vec<String> {
        match self {
            Self::Sqlite(dir) => vec!["--data-dir".into(), dir.path().display().to_string()],
            Self::Postgres(schema) => vec!["--database".into(), schema.url()],
        }
    }

    /// Opens the database as a server does, to read what servers recorded in it (best while
    /// none runs).
    pub async fn store(&self) -> Arc<dyn Store> {
        match self {
            // The file `waitpoint serve --data-dir` keeps its data in.
            Self::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path().join("waitpoint.db")).await.unwrap()),
            Self::Postgres(schema) => Arc::new(schema.store().await),
        }
    }
}

/// A running `waitpoint serve`.
pub struct Server {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub api_url: String,
    pub banner: Vec<String>,
    /// The one-time sign-in link for `dev` the banner printed.
    pub sign_in_link: String,
}

impl Server {
    /// Starts a server on a free port and waits until its banner says it is listening.
    pub fn start(database: &Database) -> Self {
        Self::start_with(database, &["--listen", "127.0.0.1:0"])
    }

    /// Starts a server with these extra arguments (they must include `--listen`).
    pub fn start_with(database: &Database, extra: &[&str]) -> Self {
        Self::start_through(Command::new(BIN), database, extra)
    }

    /// As [`Server::start_with`], through `command`: the binary itself, or a program that runs
    /// the command line it is given after it (such as a shell that sets limits first).
    pub fn start_through(mut command: Command, database: &Database, extra: &[&str]) -> Self {
        let mut child = command
            .arg("serve")
            .args(extra)
            .args(database.args())
            .env("WAITPOINT_DEV_SECRET_KEY", KEY)
            .env("WAITPOINT_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = Vec::new();
        while banner.len() < 5 {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the server exited before its banner: {banner:?}");
            banner.push(line.trim_end().to_owned());
        }
        let api_url = banner[0].split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
        let sign_in_link = banner[4].split_whitespace().last().unwrap().to_owned();
        Self { child, _stdout: stdout, api_url, banner, sign_in_link }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.api_url, KEY).unwrap()
    }

    /// Runs `waitpoint <args>` against this server, configured through the environment.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("WAITPOINT_API_URL", &self.api_url)
            .env("WAITPOINT_SECRET_KEY", KEY)
            .output()
            .unwrap()
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the server did not stop within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process outright (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SIGKILL made ready ahead: a shell waits for a line on its standard input, then kills the
/// processes with its built-in `kill` (no process to start then, so they die within a fraction
/// of a millisecond of [`Armed::fire`], from wherever the test is). The processes' own handles
/// still reap them (their `kill` then finds them dead).
pub struct Armed {
    child: Child,
    trigger: std::sync::Mutex<Option<std::process::ChildStdin>>,
}

impl Armed {
    pub fn new(pids: &[u32]) -> Self {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let script = format!("read _ && kill -KILL {}", pids.join(" "));
        let mut child = Command::new("sh").args(["-c", &script]).stdin(Stdio::piped()).spawn().unwrap();
        let trigger = std::sync::Mutex::new(child.stdin.take());
        Self { child, trigger }
    }

    /// Kills the processes (the first call; later ones do nothing).
    pub fn fire(&self) {
        if let Some(mut trigger) = self.trigger.lock().unwrap().take() {
            std::io::Write::write_all(&mut trigger, b"\n").unwrap();
        }
    }

    /// Fires if nothing did, and waits until the processes were sent their SIGKILL.
    pub fn wait(mut self) {
        self.fire();
        assert!(self.child.wait().unwrap().success(), "the armed kill failed");
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stdout_json(output: &Output) -> Value {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// A running `waitpoint bench worker` (it runs the benchmark workload's task and the crash
/// tests' `crash-clock` and `crash-set`).
pub struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    /// Starts a worker against `server`.
    pub fn start(api_url: &str) -> Self {
        Self { child: Self::command(api_url).spawn().unwrap() }
    }

    /// Starts a worker against `server` under the instance name `instance`, which a worker
    /// started again under it takes over.
    pub fn start_named(api_url: &str, instance: &str) -> Self {
        Self { child: Self::command(api_url).env("WAITPOINT_WORKER_INSTANCE", instance).spawn().unwrap() }
    }

    fn command(api_url: &str) -> Command {
        let mut command = Command::new(BIN);
        command.args(["bench", "worker", "--api-url", api_url, "--secret-key", KEY]).env("WAITPOINT_LOG", "warn");
        command
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process outright (SIGKILL).
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
