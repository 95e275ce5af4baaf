//! A throwaway PostgreSQL cluster for the tests of one process, from the binaries installed on
//! the machine: `initdb` into a new temporary directory (trust authentication, no syncing),
//! `postgres` on a free port of 127.0.0.1 with `fsync` off, stopped and its directory removed
//! when the process ends.
//!
//! Rust's test harness has no teardown once all tests are done, so `cluster.sh` both runs the
//! cluster and watches for the end of the process: its standard input is a pipe whose writing
//! end [`Cluster`] holds, never dropped, and closed by the system when the process ends,
//! however it ends. The script runs in a process group of its own, so that a Ctrl-C meant for
//! the tests does not stop it before it cleans up. `initdb` refuses to run as root: as root,
//! the script runs as the `postgres` system user, which owns the directory.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use waitpoint_types::id::random_alphanumeric;

/// The binaries the cluster needs, all in one directory.
pub(super) const BINARIES: [&str; 3] = ["initdb", "postgres", "pg_ctl"];
/// Where PostgreSQL's packages install each version's binaries, in `<version>/bin`.
pub(super) const INSTALL_ROOT: &str = "/usr/lib/postgresql";
/// How long `initdb` and `postgres` together may take before the cluster accepts connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one attempt to connect may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The system user that runs the cluster when the tests run as root.
const SYSTEM_USER: &str = "postgres";
const SCRIPT: &str = include_str!("cluster.sh");
/// The variable that hands `sh` the script, which then does not fill process listings.
const SCRIPT_VARIABLE: &str = "WAITPOINT_TEST_CLUSTER_SCRIPT";

/// A running throwaway cluster. It lives until the process ends.
#[derive(Debug)]
pub(super) struct Cluster {
    url: String,
    /// The writing end of the script's standard input: see the module documentation.
    _lifeline: ChildStdin,
}

/// The directory that holds all of [`BINARIES`]: the first such directory on `PATH` (absolute
/// entries only), else the newest version's in [`INSTALL_ROOT`]; `None` when there is none.
pub(super) fn installed() -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).filter(|dir| dir.is_absolute()).collect())
        .unwrap_or_default();
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(INSTALL_ROOT)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version =
                entry.file_name().to_str()?.split('.').map(|part| part.parse().ok()).collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|(a, _), (b, _)| b.cmp(a));
    on_path
        .into_iter()
        .chain(versions.into_iter().map(|(_, bin)| bin))
        .find(|dir| BINARIES.iter().all(|binary| dir.join(binary).is_file()))
}

impl Cluster {
    /// Starts a cluster with the binaries in `bin` and waits until it accepts connections.
    /// The error says what failed, with what `initdb` or `postgres` said.
    pub(super) async fn start(bin: &Path) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("waitpoint-postgres-{}", random_alphanumeric(12).to_lowercase()));
        let failed = |what: &str, error: std::io::Error| {
            format!("cannot start a throwaway PostgreSQL cluster with {}: {what}: {error}", bin.display())
        };
        // A port that was free a moment ago; should another process take it first, postgres
        // stops and says so.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| failed("find a free port", error))?
            .port();
        let (mut output, writer) = std::io::pipe().map_err(|error| failed("make a pipe", error))?;
        let mut command = if running_as_root().map_err(|error| failed("run id -u", error))? {
            let mut command = Command::new("runuser");
            command.args(["-u", SYSTEM_USER, "--", "sh"]);
            command
        } else {
            Command::new("sh")
        };
        command
            .arg("-c")
            .arg(format!("eval \"${SCRIPT_VARIABLE}\""))
            .arg("waitpoint-test-cluster")
            .arg(bin)
            .arg(&dir)
            .arg(port.to_string())
            .env(SCRIPT_VARIABLE, SCRIPT)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(writer.try_clone().map_err(|error| failed("make a pipe", error))?)
            .stderr(writer)
            .process_group(0);
        let mut script = command.spawn().map_err(|error| failed("run its script", error))?;
        // The command holds writing ends of the output pipe: without them, reading it ends when
        // the script ends.
        drop(command);
        let lifeline = script.stdin.take().expect("the script's standard input is a pipe");

        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let started = Instant::now();
        loop {
            let error = match tokio::time::timeout(ATTEMPT_TIMEOUT, super::admin(&url)).await {
                Ok(Ok(_)) => return Ok(Self { url, _lifeline: lifeline }),
                Ok(Err(error)) => match std::error::Error::source(&error) {
                    Some(cause) => format!("{error}: {cause}"),
                    None => error.to_string(),
                },
                Err(_) => format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
            };
            if let Some(status) = script.try_wait().map_err(|error| failed("wait for its script", error))? {
                let mut said = String::new();
                let _ = output.read_to_string(&mut said);
                return Err(format!(
                    "the throwaway PostgreSQL cluster in {} (binaries in {}) stopped before accepting \
                     connections ({status}); it said:\n{said}",
                    dir.display(),
                    bin.display()
                ));
            }
            if started.elapsed() > READY_TIMEOUT {
                let said: String = ["initdb.log", "postgres.log"]
                    .iter()
                    .filter_map(|log| Some(format!("{log}:\n{}", std::fs::read_to_string(dir.join(log)).ok()?)))
                    .collect();
                return Err(format!(
                    "the throwaway PostgreSQL cluster in {} (binaries in {}) did not accept connections at \
                     {url} within {} s: {error}\n{said}",
                    dir.display(),
                    bin.display(),
                    READY_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL of the cluster's `postgres` database, as its superuser `postgres`.
    pub(super) fn url(&self) -> &str {
        &self.url
    }
}

fn running_as_root() -> std::io::Result<bool> {
    let id = Command::new("id").arg("-u").output()?;
    Ok(id.status.success() && id.stdout.trim_ascii() == b"0")
}
