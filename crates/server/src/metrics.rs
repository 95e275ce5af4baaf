//! Prometheus metrics: the HTTP requests the API answers, the engine's own metrics
//! ([`waitpoint_engine::metrics`]), and `GET /metrics` in the text exposition format, served on
//! an address of its own (operators keep it private; it takes no key).
//!
//! Nothing is recorded until [`install`] puts the recorder in place; without it every
//! measurement is a no-op.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use waitpoint_engine::Engine;
use waitpoint_engine::metrics as engine;

/// Requests answered, by `method`, `route` (the route's template, never the path, which may
/// hold a secret) and `status`.
pub const HTTP_REQUESTS: &str = "waitpoint_http_requests_total";
/// How long answering took, by `method` and `route`.
pub const HTTP_DURATION: &str = "waitpoint_http_request_duration_seconds";

/// Histogram buckets of durations, in seconds: 100 µs to 30 s.
const SECONDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Histogram buckets of group commit sizes.
const OPERATIONS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// How often histograms are maintained and waiting tokens and runs counted.
const UPKEEP_EVERY: Duration = Duration::from_secs(15);

/// Installs the Prometheus recorder for the whole process and describes every metric; returns
/// the handle that renders them. Fails if a recorder is installed already.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(Matcher::Full(engine::WRITE_BATCH_SIZE.into()), OPERATIONS)?
        .install_recorder()?;
    engine::describe();
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by method, route template and status");
    metrics::describe_histogram!(HTTP_DURATION, metrics::Unit::Seconds, "HTTP request duration, by route template");
    Ok(handle)
}

/// Counts a request to `route` answered with `status` after `took`.
pub(crate) fn request(method: &str, route: &str, status: u16, took: Duration) {
    let (method, route) = (method.to_owned(), route.to_owned());
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route).record(took.as_secs_f64());
}

/// Serves `GET /metrics` from `handle` on `listener` until `shutdown` completes; meanwhile
/// maintains the histograms and counts what waits in `engine`'s database, every
/// [`UPKEEP_EVERY`].
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    engine: Engine,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                handle.run_upkeep();
                if let Err(error) = engine::count_waiting(&engine).await {
                    tracing::warn!(%error, "could not count the waiting tokens and runs");
                }
            }
        })
    };
    let app = Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!(%error, "the metrics endpoint stopped");
    }
    upkeep.abort();
}
