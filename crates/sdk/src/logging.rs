//! One line to see what the SDK and the runs' loggers say.

use std::io::IsTerminal;

/// Sends the SDK's logs (and every other `tracing` event of the process) to stderr, at the
/// level `WAITPOINT_LOG` or else `RUST_LOG` sets (default `info`; any `tracing` filter, such
/// as `warn,waitpoint_sdk=debug`). Call it first thing in `main`.
///
/// Does nothing if the process already has a `tracing` subscriber: an application with its
/// own keeps it. Without any subscriber the SDK's logs (the worker's start line, refused
/// keys, an unreachable server) go nowhere.
///
/// ```
/// waitpoint_sdk::init_logging();
/// waitpoint_sdk::init_logging(); // a second call changes nothing
/// ```
pub fn init_logging() {
    let variable = std::env::var("WAITPOINT_LOG").or_else(|_| std::env::var("RUST_LOG"));
    let (filter, invalid) = match variable.as_deref().map(tracing_subscriber::EnvFilter::try_new) {
        Ok(Ok(filter)) => (filter, None),
        Ok(Err(error)) => (tracing_subscriber::EnvFilter::new("info"), Some(error)),
        Err(_) => (tracing_subscriber::EnvFilter::new("info"), None),
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok();
    if installed && let Some(error) = invalid {
        tracing::warn!(%error, "WAITPOINT_LOG (or RUST_LOG) is not a log filter such as \"info\" or \"warn,waitpoint_sdk=debug\"; logging at info");
    }
}
