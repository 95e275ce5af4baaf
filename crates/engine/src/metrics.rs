//! What the engine counts and times, through the `metrics` facade: nothing is recorded unless
//! the process installs a recorder (the server does when `--metrics-listen` is given), and then
//! each measurement is a counter or histogram update, never a database read.
//!
//! Names follow Prometheus conventions: `waitpoint_…`, base units (seconds), `_total` for
//! counters; labels never hold ids or tags. [`describe`] documents every metric for the
//! exporter.

use std::time::Duration;

use waitpoint_storage::{ListQuery, Purged, RunListQuery, Window};
use waitpoint_types::{CompletedVia, RunStatus, Waitpoint, WaitpointKind, WaitpointState, WaitpointStatus};

use crate::{Engine, EngineError};

/// Tokens created through the API (idempotent creates that returned an existing token not
/// counted).
pub const TOKENS_CREATED: &str = "waitpoint_tokens_created_total";
/// Tokens finished, by `outcome` (`completed`, `timed_out`, `rejected`) and `channel` (`secret_key`,
/// `public_token`, `callback_url`, `dashboard`, `approval_page`, `deadline`,
/// `missed_heartbeat`).
pub const TOKENS_FINISHED: &str = "waitpoint_tokens_finished_total";
/// Webhook deliveries, by `outcome` (`delivered`, `failed`).
pub const WEBHOOK_DELIVERIES: &str = "waitpoint_webhook_deliveries_total";
/// Tokens kept alive, by `kind` (`heartbeat`, `extend`).
pub const TOKENS_PROLONGED: &str = "waitpoint_tokens_prolonged_total";
/// How late deadlines fired: the time from a waitpoint's deadline to its timeout or completion
/// by the timeout loop.
pub const TIMEOUT_LAG: &str = "waitpoint_timeout_lag_seconds";
/// Run state changes, by `transition` (`triggered`, `claimed`, `suspended`, `resumed`,
/// `completed`, `failed`, `retried`, `canceled`, `released`).
pub const RUN_TRANSITIONS: &str = "waitpoint_run_transitions_total";
/// From a waitpoint's finish to the worker receiving the run it resumed, by `path` (`fast`:
/// handed to the worker that suspended it, which continues in memory; `replay`: queued, and
/// claimed by a worker that replays its journal). Measured for the runs this node resumed.
pub const RESUME_LATENCY: &str = "waitpoint_resume_latency_seconds";
/// Operations per group commit.
pub const WRITE_BATCH_SIZE: &str = "waitpoint_write_batch_operations";
/// How long a group commit took (the transaction and its sync).
pub const WRITE_COMMIT_DURATION: &str = "waitpoint_write_commit_duration_seconds";
/// Worker polls answered.
pub const WORKER_POLLS: &str = "waitpoint_worker_polls_total";
/// Workers that polled this node within the worker timeout.
pub const WORKERS_CONNECTED: &str = "waitpoint_workers_connected";
/// Tokens waiting, in every environment (as last counted, see [`count_waiting`]).
pub const TOKENS_WAITING: &str = "waitpoint_tokens_waiting";
/// Runs waiting on waitpoints, in every environment (as last counted, see [`count_waiting`]).
pub const RUNS_WAITING: &str = "waitpoint_runs_waiting";
/// Records retention deleted, by `kind` (`waitpoints`: tokens and the datetime waitpoints of
/// runs' waits; `runs`, with their journals; `events`, of the event log).
pub const RETENTION_DELETED: &str = "waitpoint_retention_deleted_total";
/// Tables the store vacuumed because autovacuum leaves them alone (PostgreSQL only).
pub const TABLES_VACUUMED: &str = "waitpoint_tables_vacuumed_total";

/// Counts at most this many of a kind per environment: a bound on what one count costs.
const COUNT_CAP: usize = 10_000_000;

/// Describes every metric of the engine to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(TOKENS_CREATED, "Waitpoint tokens created");
    metrics::describe_counter!(TOKENS_FINISHED, "Waitpoint tokens finished, by outcome and channel");
    metrics::describe_counter!(WEBHOOK_DELIVERIES, "Webhook deliveries, by outcome (delivered, failed)");
    metrics::describe_counter!(TOKENS_PROLONGED, "Waitpoint tokens kept alive, by kind (heartbeat, extend)");
    metrics::describe_histogram!(TIMEOUT_LAG, metrics::Unit::Seconds, "How late deadlines fired");
    metrics::describe_counter!(RUN_TRANSITIONS, "Run state changes, by transition");
    metrics::describe_histogram!(
        RESUME_LATENCY,
        metrics::Unit::Seconds,
        "From a waitpoint's finish to the worker receiving the run it resumed, by path"
    );
    metrics::describe_histogram!(WRITE_BATCH_SIZE, metrics::Unit::Count, "Operations per group commit");
    metrics::describe_histogram!(WRITE_COMMIT_DURATION, metrics::Unit::Seconds, "Group commit duration");
    metrics::describe_counter!(WORKER_POLLS, "Worker polls answered");
    metrics::describe_gauge!(WORKERS_CONNECTED, "Workers that polled this node within the worker timeout");
    metrics::describe_gauge!(TOKENS_WAITING, "Tokens waiting, in every environment, as last counted");
    metrics::describe_gauge!(RUNS_WAITING, "Runs waiting on waitpoints, in every environment, as last counted");
    metrics::describe_counter!(RETENTION_DELETED, "Finished records deleted by retention, by kind");
    metrics::describe_counter!(TABLES_VACUUMED, "Tables vacuumed by waitpoint because autovacuum leaves them alone");
}

/// Counts the waiting tokens and runs of every environment (index-served counts, at most
/// [`COUNT_CAP`] of each per environment) and sets their gauges. The exporter calls it on a
/// fixed period, never per scrape.
pub async fn count_waiting(engine: &Engine) -> Result<(), EngineError> {
    let store = engine.store();
    let now = engine.clock().now();
    let (mut tokens, mut runs) = (0u64, 0u64);
    for environment in store.environment_list().await? {
        let query = ListQuery {
            environment_id: environment.id.clone(),
            statuses: vec![WaitpointStatus::Waiting],
            idempotency_key: None,
            tags: Vec::new(),
            window: Window::newest(COUNT_CAP),
        };
        tokens += store.waitpoint_count(&query).await?;
        let query = RunListQuery {
            environment_id: environment.id,
            statuses: vec![RunStatus::Waiting],
            task_ids: Vec::new(),
            idempotency_key: None,
            tags: Vec::new(),
            window: Window::newest(COUNT_CAP),
            now,
        };
        runs += store.run_count(&query).await?;
    }
    metrics::gauge!(TOKENS_WAITING).set(tokens as f64);
    metrics::gauge!(RUNS_WAITING).set(runs as f64);
    Ok(())
}

/// A run state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Triggered,
    Claimed,
    Suspended,
    Resumed,
    Completed,
    Failed,
    Retried,
    Canceled,
    Released,
}

impl Transition {
    const fn label(self) -> &'static str {
        match self {
            Self::Triggered => "triggered",
            Self::Claimed => "claimed",
            Self::Suspended => "suspended",
            Self::Resumed => "resumed",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Retried => "retried",
            Self::Canceled => "canceled",
            Self::Released => "released",
        }
    }
}

/// `count` runs made `transition`.
pub(crate) fn runs(transition: Transition, count: usize) {
    if count > 0 {
        metrics::counter!(RUN_TRANSITIONS, "transition" => transition.label()).increment(count as u64);
    }
}

/// A token was created.
pub(crate) fn token_created() {
    metrics::counter!(TOKENS_CREATED).increment(1);
}

/// `waitpoint` just finished (and, if its deadline finished it, how late that fired).
pub(crate) fn waitpoint_finished(waitpoint: &Waitpoint) {
    let by_deadline = match &waitpoint.state {
        WaitpointState::TimedOut { at, via: None }
        | WaitpointState::Completed { at, via: CompletedVia::Datetime, .. } => Some(*at),
        _ => None,
    };
    if let (Some(at), Some(deadline)) = (by_deadline, waitpoint.timeout_at) {
        metrics::histogram!(TIMEOUT_LAG).record(at.duration_since(deadline).as_secs_f64());
    }
    if waitpoint.kind != WaitpointKind::Manual {
        return;
    }
    let (outcome, channel) = match &waitpoint.state {
        WaitpointState::Waiting => return,
        WaitpointState::Completed { via, .. } => ("completed", channel(*via)),
        WaitpointState::TimedOut { via, .. } => ("timed_out", via.map_or("deadline", channel)),
        WaitpointState::Rejected { via, .. } => ("rejected", channel(*via)),
    };
    metrics::counter!(TOKENS_FINISHED, "outcome" => outcome, "channel" => channel).increment(1);
}

fn channel(via: CompletedVia) -> &'static str {
    match via {
        CompletedVia::SecretKey => "secret_key",
        CompletedVia::PublicAccessToken => "public_token",
        CompletedVia::CallbackUrl => "callback_url",
        CompletedVia::Datetime => "deadline",
        CompletedVia::Dashboard => "dashboard",
        CompletedVia::ApprovalPage => "approval_page",
        CompletedVia::MissedHeartbeat => "missed_heartbeat",
    }
}

/// A token was kept alive: by a heartbeat, or by an extend.
pub(crate) fn token_prolonged(heartbeat: bool) {
    let kind = if heartbeat { "heartbeat" } else { "extend" };
    metrics::counter!(TOKENS_PROLONGED, "kind" => kind).increment(1);
}

/// A resumed run reached its worker `after` its waitpoint finished: handed to the worker's
/// waiting poll, or claimed from the queue.
pub(crate) fn resume_delivered(handed: bool, after: Duration) {
    let path = if handed { "handed" } else { "queued" };
    metrics::histogram!(RESUME_LATENCY, "path" => path).record(after.as_secs_f64());
}

/// A group commit of `operations` took `took`.
pub(crate) fn committed(operations: usize, took: Duration) {
    metrics::histogram!(WRITE_BATCH_SIZE).record(operations as f64);
    metrics::histogram!(WRITE_COMMIT_DURATION).record(took.as_secs_f64());
}

/// A webhook delivery succeeded, or failed.
pub(crate) fn webhook_delivered(success: bool) {
    let outcome = if success { "delivered" } else { "failed" };
    metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// Retention deleted `count` events of the log.
pub(crate) fn events_deleted(count: u64) {
    if count > 0 {
        metrics::counter!(RETENTION_DELETED, "kind" => "events").increment(count);
    }
}

/// Retention deleted these.
pub(crate) fn retention_deleted(deleted: &Purged) {
    for (kind, count) in [("waitpoints", deleted.waitpoints), ("runs", deleted.runs)] {
        if count > 0 {
            metrics::counter!(RETENTION_DELETED, "kind" => kind).increment(count);
        }
    }
}

/// The store vacuumed this many tables.
pub(crate) fn tables_vacuumed(count: usize) {
    if count > 0 {
        metrics::counter!(TABLES_VACUUMED).increment(u64::try_from(count).unwrap_or(u64::MAX));
    }
}

/// A worker poll was answered.
pub(crate) fn polled() {
    metrics::counter!(WORKER_POLLS).increment(1);
}

/// `count` workers polled this node within the worker timeout.
pub(crate) fn workers_connected(count: usize) {
    metrics::gauge!(WORKERS_CONNECTED).set(count as f64);
}
