//! Which PostgreSQL server the tests of this process use, chosen once by the first test that
//! asks and shared by the others.

use std::io::Write;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::OnceCell;

use super::cluster::{self, Cluster};

/// The variable that names the test server.
pub(super) const URL_VARIABLE: &str = "WAITPOINT_TEST_POSTGRES_URL";
/// The server the tests use when the variable is unset and something answers at
/// [`DEFAULT_ADDRESS`].
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The host and port of [`DEFAULT_URL`].
const DEFAULT_ADDRESS: &str = "127.0.0.1:5432";
/// How long the default address may take to answer before it counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A server to create the tests' schemas in.
#[derive(Debug)]
enum Server {
    /// One that was running already, at this URL.
    Running(String),
    /// The process's own, stopped and removed when the process ends.
    Throwaway(Cluster),
}

/// The choice: a server, none (the tests are skipped), or why there is none when there must be.
static CHOSEN: OnceCell<Result<Option<Server>, String>> = OnceCell::const_new();

/// The URL of the server the PostgreSQL tests of this process use, or `None` when they are
/// skipped. Panics, saying why, when there is none under `CI=true` or the throwaway cluster
/// did not start; every test that asks then panics with the same message.
pub(super) async fn url() -> Option<&'static str> {
    match CHOSEN.get_or_init(choose).await {
        Ok(server) => server.as_ref().map(|server| match server {
            Server::Running(url) => url.as_str(),
            Server::Throwaway(cluster) => cluster.url(),
        }),
        Err(reason) => panic!("{reason}"),
    }
}

/// Chooses as the module documentation of `testing` says; says so on stderr when it skips.
async fn choose() -> Result<Option<Server>, String> {
    if let Ok(url) = std::env::var(URL_VARIABLE) {
        return Ok(Some(Server::Running(url)));
    }
    if matches!(tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(DEFAULT_ADDRESS)).await, Ok(Ok(_))) {
        return Ok(Some(Server::Running(DEFAULT_URL.to_owned())));
    }
    if let Some(binaries) = cluster::installed() {
        return Cluster::start(&binaries).await.map(|cluster| Some(Server::Throwaway(cluster)));
    }
    let missing = format!(
        "nothing answers at {DEFAULT_ADDRESS} and PostgreSQL is not installed ({} neither on PATH nor in {}/*/bin)",
        cluster::BINARIES.join(", "),
        cluster::INSTALL_ROOT,
    );
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        return Err(format!(
            "the PostgreSQL tests cannot be skipped under CI=true: {URL_VARIABLE} is unset, {missing}"
        ));
    }
    // Straight to stderr, not through `eprintln!`, which the test harness captures: this line is
    // for the person running the tests, once per test process.
    let _ = writeln!(
        std::io::stderr(),
        "PostgreSQL tests skipped: {missing}; install PostgreSQL or set {URL_VARIABLE} to run them"
    );
    Ok(None)
}
