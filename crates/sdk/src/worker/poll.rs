//! The poll loop: ask the server for as many runs as there are free slots, hand what it gives
//! to the executor, and tell failures that pass (the server is down or restarting) from those
//! that stop the worker (a refused key, a takeover by a newer process, a refused request).

use std::sync::Arc;
use std::time::Duration;

use waitpoint_types::Timestamp;
use waitpoint_types::api::worker::PollRequest;

use super::execute::dispatch;
use super::{Shared, task_slots};
use crate::Error;
use crate::protocol::is_transient;

/// How long the server may hold a poll when there is nothing to take.
const POLL_WAIT: Duration = Duration::from_secs(10);
/// The pause after a poll that failed (the server is down or restarting).
const POLL_RETRY: Duration = Duration::from_millis(500);
/// While polls keep failing, the pause between two warnings.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Polls until a poll is refused for good; returns why.
pub(super) async fn poll_loop(shared: Arc<Shared>) -> Error {
    let mut health = Health::default();
    loop {
        if shared.slots.available_permits() > 0 {
            for claimed in shared.parking.take_deferred() {
                dispatch(&shared, claimed);
            }
        }
        let request = PollRequest {
            tasks: task_slots(&shared, true),
            wait_ms: POLL_WAIT.as_millis() as u64,
            holding: shared.parking.holding(),
            leaving: false,
            session: Some(shared.identity.session.clone()),
        };
        // A poll with free slots returns as soon as there is a run to take. One without (a
        // heartbeat), or one while resumed runs wait for a slot (of a task with a limit), is
        // abandoned when a slot frees, to ask again with it. What an abandoned poll took is
        // not lost: the next poll, not counting it as held, gives it back.
        let idle = request.tasks.iter().all(|task| task.slots == 0) || shared.parking.has_deferred();
        let answer = if idle {
            tokio::select! {
                answer = shared.client.poll(&shared.identity.id, &request) => answer,
                _ = shared.parking.slots_freed.notified() => continue,
            }
        } else {
            shared.client.poll(&shared.identity.id, &request).await
        };
        match answer {
            Ok(response) => {
                if let Some(Recovery { lasted, failures }) = health.succeeded() {
                    tracing::info!(
                        api_url = shared.client.api_url(),
                        failed_polls = failures,
                        "the server answers again, after {}s of failed polls",
                        lasted.as_secs()
                    );
                }
                for claimed in response.runs {
                    dispatch(&shared, claimed);
                }
            }
            Err(error) => {
                let error = match judge(&shared, error) {
                    Failure::Fatal(error) => return error,
                    Failure::Passing(error) => error,
                };
                let now = shared.config.clock.now();
                match health.failed(now) {
                    Report::First => tracing::warn!(
                        api_url = shared.client.api_url(),
                        %error,
                        "cannot poll the server: {}; retrying",
                        advice(&error, shared.client.api_url())
                    ),
                    Report::Still { lasted, failures } => tracing::warn!(
                        api_url = shared.client.api_url(),
                        %error,
                        failed_polls = failures,
                        "still cannot poll the server after {}s: {}; retrying",
                        lasted.as_secs(),
                        advice(&error, shared.client.api_url())
                    ),
                    Report::Quiet => {}
                }
                tokio::time::sleep(POLL_RETRY).await;
            }
        }
    }
}

/// What a failed poll means for the worker.
enum Failure {
    /// Asking again cannot help (a refused key, a takeover by a newer process, a refused
    /// request): the worker stops with this error.
    Fatal(Error),
    /// It may pass (the server is unreachable, failing or overloaded, or answered something
    /// unexpected): the worker warns and polls again.
    Passing(Error),
}

fn judge(shared: &Shared, error: Error) -> Failure {
    match error {
        Error::Api { status: status @ (401 | 403), message, .. } => {
            Failure::Fatal(Error::KeyRefused { api_url: shared.client.api_url().to_owned(), status, message })
        }
        Error::Api { status: 409, code: Some(code), .. } if code == "worker_replaced" => {
            Failure::Fatal(Error::WorkerReplaced { worker: shared.identity.id.clone() })
        }
        error if is_transient(&error) || matches!(error, Error::Decode(_)) => Failure::Passing(error),
        error => Failure::Fatal(error),
    }
}

/// What to check when polls fail with `error`.
fn advice(error: &Error, api_url: &str) -> String {
    match error {
        Error::Http(_) => {
            format!("check that the server runs and that WAITPOINT_API_URL (now {api_url}) is its address")
        }
        Error::Api { status: 408 | 429, .. } => "the server is overloaded".into(),
        Error::Api { .. } => "the server fails or is restarting: see its logs".into(),
        _ => format!("check that WAITPOINT_API_URL (now {api_url}) is the address of a waitpoint server"),
    }
}

/// Whether polls fail, since when, and when the worker last warned about it: the first failure
/// is reported, then one every [`WARN_EVERY`] while failures last, and the recovery.
#[derive(Debug, Default)]
struct Health {
    outage: Option<Outage>,
}

/// A run of failed polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outage {
    since: Timestamp,
    last_failed: Timestamp,
    warned_at: Timestamp,
    failures: u64,
}

/// What to say about a failed poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    /// The first of an outage: warn.
    First,
    /// Another, [`WARN_EVERY`] after the last warning: warn again.
    Still { lasted: Duration, failures: u64 },
    /// Another: nothing yet.
    Quiet,
}

/// An outage that ended: from its first failed poll to its last, and how many failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recovery {
    lasted: Duration,
    failures: u64,
}

impl Health {
    fn failed(&mut self, now: Timestamp) -> Report {
        let Some(outage) = &mut self.outage else {
            self.outage = Some(Outage { since: now, last_failed: now, warned_at: now, failures: 1 });
            return Report::First;
        };
        outage.failures += 1;
        outage.last_failed = now;
        if now.duration_since(outage.warned_at) < WARN_EVERY {
            return Report::Quiet;
        }
        outage.warned_at = now;
        Report::Still { lasted: now.duration_since(outage.since), failures: outage.failures }
    }

    /// A poll succeeded: the outage it ends, if there was one.
    fn succeeded(&mut self) -> Option<Recovery> {
        let outage = self.outage.take()?;
        Some(Recovery { lasted: outage.last_failed.duration_since(outage.since), failures: outage.failures })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_warned_about_at_once_then_every_thirty_seconds_and_its_end_is_told() {
        let mut health = Health::default();
        assert_eq!(health.succeeded(), None, "no outage, nothing to tell");
        let start = Timestamp::from_millis(1_000_000);
        let at = |seconds: u64| start.saturating_add(Duration::from_secs(seconds));
        assert_eq!(health.failed(at(0)), Report::First);
        assert_eq!(health.failed(at(1)), Report::Quiet);
        assert_eq!(health.failed(at(29)), Report::Quiet);
        assert_eq!(health.failed(at(30)), Report::Still { lasted: Duration::from_secs(30), failures: 4 });
        assert_eq!(health.failed(at(45)), Report::Quiet);
        assert_eq!(health.failed(at(61)), Report::Still { lasted: Duration::from_secs(61), failures: 6 });
        assert_eq!(health.failed(at(62)), Report::Quiet);
        assert_eq!(health.succeeded(), Some(Recovery { lasted: Duration::from_secs(62), failures: 7 }));
        assert_eq!(health.failed(at(70)), Report::First, "a new outage");
    }
}
