//! Wake-ups across nodes: `NOTIFY` in a batch's transaction, `LISTEN` on a connection of its own.
//!
//! A batch that wakes something ([`BatchWake`]) ends with one `pg_notify` on the schema's
//! channel, in its transaction, so it is delivered only if the batch commits, and once however
//! many operations the batch holds. The payload is a few bytes: `r` when runs became ready,
//! `d` and a deadline in milliseconds when a waitpoint got one, separated by a space.
//!
//! A subscription ([`subscribe`]) listens on a connection of its own, outside the pool (a pooled
//! connection would be handed to other work), named [`LISTENER_APPLICATION_NAME`]. When the
//! connection fails or is lost, the subscription says so, connects again (at once after a long
//! life, else after a backoff), and yields [`Wakeup::Reconcile`], since what was sent meanwhile
//! never arrives. The stream drives its connection while it is polled, and the connection closes
//! when the stream is dropped.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls, Socket};
use waitpoint_storage::{BatchWake, Result, StorageError, Wakeup, WakeupStream};
use waitpoint_types::Timestamp;

use crate::{Failure, map_error};

/// The `application_name` of listening connections, which tells them apart in
/// `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "waitpoint-listen";

/// The channel of the schema the connection works in (first in its `search_path`): schemas
/// (deployments, tests) on one database do not wake each other.
pub(crate) const CHANNEL: &str = "SELECT 'waitpoint_wake_' || oid FROM pg_namespace WHERE nspname = current_schema()";

/// Sends a payload (`$2`) on a channel (`$1`).
const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// The first wait before connecting again after a failure; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait before connecting again. A connection lost after being up at least this long
/// is opened again at once.
const MAX_RETRY: Duration = Duration::from_secs(10);
/// How long the listening connection stays silent before TCP checks that its peer is still
/// there: a connection that only receives would otherwise not notice a dead network for hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Sends `wake`, unless it is empty, on `channel` in the batch's transaction.
pub(crate) async fn notify(tx: &deadpool_postgres::Transaction<'_>, channel: &str, wake: &BatchWake) -> Result<()> {
    if wake.is_empty() {
        return Ok(());
    }
    let notify = tx.prepare_cached(NOTIFY).await.map_err(map_error)?;
    tx.execute(&notify, &[&channel, &payload(wake)]).await.map_err(map_error)?;
    Ok(())
}

/// The payload of `wake` (see the module's note).
fn payload(wake: &BatchWake) -> String {
    let runs = wake.runs_ready.then(|| "r".to_owned());
    let deadline = wake.earliest_deadline.map(|deadline| format!("d{}", deadline.as_millis()));
    runs.into_iter().chain(deadline).collect::<Vec<_>>().join(" ")
}

/// The wake of a payload; `None` for one this version cannot read.
fn parse(payload: &str) -> Option<BatchWake> {
    let mut wake = BatchWake::default();
    for part in payload.split(' ') {
        match part.strip_prefix('d') {
            Some(millis) => wake.earliest_deadline = Some(Timestamp::from_millis(millis.parse().ok()?)),
            None if part == "r" => wake.runs_ready = true,
            None => return None,
        }
    }
    (!wake.is_empty()).then_some(wake)
}

/// Subscribes to `channel` with a connection of `config` (see the module's note).
pub(crate) fn subscribe(config: &Config, channel: &str) -> WakeupStream {
    let mut config = config.clone();
    config.application_name(LISTENER_APPLICATION_NAME).keepalives(true).keepalives_idle(KEEPALIVE_IDLE);
    let listener = Listener {
        config,
        channel: channel.to_owned(),
        listening: None,
        ready: VecDeque::new(),
        retry_in: None,
        connected_at: Instant::now(),
    };
    futures_util::stream::unfold(listener, |mut listener| async move {
        let next = listener.next().await;
        Some((next, listener))
    })
    .boxed()
}

/// A subscription's state between the items it yields.
struct Listener {
    config: Config,
    channel: String,
    listening: Option<Listening>,
    /// Wake-ups received and not yet yielded.
    ready: VecDeque<Wakeup>,
    /// How long to wait before connecting again; `None`: at once.
    retry_in: Option<Duration>,
    connected_at: Instant,
}

impl Listener {
    /// The next wake-up, or why the subscription was lost (it connects again at the next call).
    async fn next(&mut self) -> Result<Wakeup> {
        loop {
            if let Some(wakeup) = self.ready.pop_front() {
                return Ok(wakeup);
            }
            let Some(listening) = &mut self.listening else {
                if let Some(delay) = self.retry_in {
                    tokio::time::sleep(delay).await;
                }
                return match listen(&self.config, &self.channel).await {
                    Ok(listening) => {
                        self.listening = Some(listening);
                        self.connected_at = Instant::now();
                        Ok(Wakeup::Reconcile)
                    }
                    Err(error) => {
                        self.retry_in = Some(backed_off(self.retry_in));
                        Err(error)
                    }
                };
            };
            match listening.notification().await {
                Ok(payload) => match parse(&payload) {
                    Some(wake) => self.ready.extend(wake.wakeups()),
                    None => self.ready.push_back(Wakeup::Reconcile),
                },
                Err(error) => {
                    self.listening = None;
                    self.retry_in = (self.connected_at.elapsed() < MAX_RETRY).then(|| backed_off(self.retry_in));
                    return Err(error);
                }
            }
        }
    }
}

/// The wait before the next attempt to connect, after one that waited `previous`.
fn backed_off(previous: Option<Duration>) -> Duration {
    previous.map_or(FIRST_RETRY, |delay| (delay * 2).min(MAX_RETRY))
}

/// A connection that listens on the channel.
struct Listening {
    /// Kept: the connection closes once its client is dropped.
    _client: Client,
    connection: Connection<Socket, NoTlsStream>,
}

/// Connects with `config` and listens on `channel`.
async fn listen(config: &Config, channel: &str) -> Result<Listening> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(map_error)?;
    {
        let statement = format!("LISTEN {channel}");
        let mut listened = pin!(client.batch_execute(&statement));
        // The connection carries the statement only while it is polled. A notification it reads
        // meanwhile is dropped: the reconcile that follows covers it.
        loop {
            tokio::select! {
                done = &mut listened => {
                    done.map_err(map_error)?;
                    break;
                }
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(map_error(error)),
                    None => return Err(closed()),
                },
            }
        }
    }
    Ok(Listening { _client: client, connection })
}

impl Listening {
    /// The payload of the next notification; an error once the connection fails or closes.
    async fn notification(&mut self) -> Result<String> {
        loop {
            match poll_fn(|cx| self.connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => return Ok(notification.payload().to_owned()),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(map_error(error)),
                None => return Err(closed()),
            }
        }
    }
}

fn closed() -> StorageError {
    StorageError::database(Failure("the listening connection was closed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_what_a_batch_wakes_and_unreadable_ones_are_none() {
        let deadline = Timestamp::from_millis(1_764_000_000_123);
        for wake in [
            BatchWake { runs_ready: true, earliest_deadline: None },
            BatchWake { runs_ready: false, earliest_deadline: Some(deadline) },
            BatchWake { runs_ready: true, earliest_deadline: Some(deadline) },
        ] {
            assert_eq!(parse(&payload(&wake)), Some(wake));
        }
        assert_eq!(payload(&BatchWake { runs_ready: true, earliest_deadline: Some(deadline) }), "r d1764000000123");
        for unreadable in ["", "x", "r x", "d", "dsoon", "r  d1"] {
            assert_eq!(parse(unreadable), None, "{unreadable:?}");
        }
    }
}
