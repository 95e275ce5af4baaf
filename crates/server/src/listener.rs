//! Taking connections: at most so many at once, each served with its timeouts
//! ([`crate::connection`]), until a shutdown that finishes the requests in flight within a
//! deadline.

use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::connection::{self, Timeouts};
use crate::descriptors;

/// How the server treats connections. None of these limits how long an answer may take: they
/// bound how long a client takes to send, how many connections it holds, and how long a
/// shutdown waits.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Time a client has to send a request's head, from connecting or, on a kept-alive
    /// connection, from the request's first byte. Past it the connection is closed. Default 10 s.
    pub header_timeout: Duration,
    /// Time a client has to send a request's whole body, from the end of its head. Past it the
    /// request is answered 408 and the connection closed. Default 30 s.
    pub body_timeout: Duration,
    /// Time a kept-alive client has, once an answer is ready, to take it and begin its next
    /// request. Past it the connection is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// Connections served at once. Further clients wait, unanswered, in the listen backlog until
    /// one closes. `None` (the default): [`descriptors::default_max_connections`] of the
    /// descriptor limit when serving starts.
    pub max_connections: Option<NonZeroUsize>,
    /// Once shutdown begins, time the requests in flight get to be answered. The connections
    /// still open then are closed, whatever their clients do. Default 10 s.
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` as `config` says until `shutdown` completes; then stops
/// accepting, lets the requests in flight be answered for up to the shutdown timeout, closes
/// the connections still open, and returns. Errors accepting a connection (such as running out
/// of descriptors) are logged and retried, never returned.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) {
    let max_connections = connection_cap(config.max_connections);
    let timeouts = Timeouts { header: config.header_timeout, body: config.body_timeout, idle: config.idle_timeout };
    let slots = Arc::new(Semaphore::new(max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut saturation = Saturation { max_connections, episode: None };
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                saturation.slot_free();
                slot
            }
            Err(_) => {
                saturation.slots_full();
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => {
                        saturation.slots_full();
                        slot.expect("the connection semaphore is never closed")
                    }
                    Some(ended) = connections.join_next() => {
                        report(ended);
                        continue;
                    }
                }
            }
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::error!(%error, "could not accept a connection; trying again in 1 s");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
            Some(ended) = connections.join_next() => {
                report(ended);
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let serving = connection::serve(stream, router.clone(), timeouts, closing_rx.clone());
        connections.spawn(async move {
            serving.await;
            drop(slot);
        });
    }

    drop(listener);
    closing.send_replace(true);
    finish(connections, config.shutdown_timeout).await;
}

/// The connection cap: `configured`, or else the default for the descriptor limit. Logs both,
/// with a warning when the cap leaves the rest of the process short of descriptors.
fn connection_cap(configured: Option<NonZeroUsize>) -> usize {
    let descriptor_limit = descriptors::limit();
    let max_connections = configured.unwrap_or_else(|| descriptors::default_max_connections(descriptor_limit)).get();
    let shown_limit = descriptor_limit.map_or_else(|| "none".to_owned(), |limit| limit.to_string());
    tracing::info!(descriptor_limit = %shown_limit, max_connections, "taking connections");
    if let Some(limit) = descriptor_limit
        && u64::try_from(max_connections).unwrap_or(u64::MAX) > limit / 2
    {
        tracing::warn!(
            descriptor_limit = limit,
            max_connections,
            "max connections is above half the descriptor limit: with that many open, the database and the \
             timeout loop may run out of descriptors"
        );
    }
    max_connections
}

/// Gives the requests in flight on `connections` up to `timeout` to be answered (the
/// connections were asked to close after them), then closes the connections still open.
async fn finish(mut connections: JoinSet<()>, timeout: Duration) {
    tracing::info!(connections = connections.len(), timeout = ?timeout, "stopped accepting; answering the requests in flight");
    let drained = tokio::time::timeout(timeout, async {
        while let Some(ended) = connections.join_next().await {
            report(ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(connections = connections.len(), "shutdown timeout reached: closing the connections still open");
        connections.shutdown().await;
    }
}

/// Errors of one connection that went away before it was accepted: the listener is fine.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Logs a connection task that panicked.
fn report(ended: Result<(), JoinError>) {
    if let Err(error) = ended
        && error.is_panic()
    {
        tracing::error!(%error, "a connection task panicked");
    }
}

/// How long no connection must have had to wait for a slot to end an episode of the limit.
const CALM: Duration = Duration::from_secs(10);

/// Logs the connection limit once per episode, not once per connection kept waiting: an
/// episode begins when a new connection has to wait for a slot, and ends once none has had to
/// for [`CALM`].
struct Saturation {
    max_connections: usize,
    episode: Option<Episode>,
}

/// When an episode began, and when a connection last had to wait.
struct Episode {
    began: Instant,
    last_full: Instant,
}

impl Saturation {
    /// Every slot is taken: a new connection waits.
    fn slots_full(&mut self) {
        let now = Instant::now();
        match &mut self.episode {
            Some(episode) => episode.last_full = now,
            None => {
                tracing::warn!(
                    max_connections = self.max_connections,
                    "connection limit reached: new connections wait until one closes"
                );
                self.episode = Some(Episode { began: now, last_full: now });
            }
        }
    }

    /// A slot was free without waiting.
    fn slot_free(&mut self) {
        if let Some(episode) = &self.episode
            && episode.last_full.elapsed() >= CALM
        {
            let lasted = episode.last_full.duration_since(episode.began);
            tracing::info!(
                max_connections = self.max_connections,
                lasted = ?lasted,
                "connections are below the limit again"
            );
            self.episode = None;
        }
    }
}
