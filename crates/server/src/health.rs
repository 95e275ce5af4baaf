//! Liveness (`GET /healthz`) and readiness (`GET /readyz`), each with the version and the
//! storage backend; no credentials needed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use waitpoint_engine::Engine;

/// How a node is: its state, this build's version and the storage backend.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok` from `/healthz`; `ready` or `unavailable` from `/readyz`.
    status: HealthStatus,
    /// Why the node is not ready (only with `unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<String>,
    /// The server's version.
    #[schema(examples("0.1.0"))]
    version: &'static str,
    /// `sqlite` or `postgres`.
    #[schema(examples("sqlite", "postgres"))]
    backend: &'static str,
}

/// The state a health endpoint reports.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HealthStatus {
    /// The process takes requests.
    Ok,
    /// The node can serve.
    Ready,
    /// The node cannot serve; `error` says why.
    Unavailable,
}

impl Health {
    fn of(engine: &Engine, status: HealthStatus, error: Option<String>) -> Self {
        Self { status, error, version: env!("CARGO_PKG_VERSION"), backend: engine.store().backend() }
    }
}

/// `GET /healthz`: liveness, 200 while the process takes requests.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    summary = "Liveness",
    description = "200 while the process takes requests.",
    security(()),
    responses((status = 200, description = "The process is alive.", body = Health)),
)]
pub(crate) async fn healthz(State(engine): State<Engine>) -> Json<Health> {
    Json(Health::of(&engine, HealthStatus::Ok, None))
}

/// `GET /readyz`: readiness, 200 when the node can serve (the database answers, its schema is
/// this build's, it is not stopping), else 503 with the reason.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    summary = "Readiness",
    description = "200 when the node can serve: the database answers, its schema is this build's, and the \
                   node is not stopping. Otherwise 503 with the reason.",
    security(()),
    responses(
        (status = 200, description = "The node can serve.", body = Health),
        (status = 503, description = "The node cannot serve; `error` says why.", body = Health),
    ),
)]
pub(crate) async fn readyz(State(engine): State<Engine>) -> (StatusCode, Json<Health>) {
    match engine.readiness().await {
        Ok(()) => (StatusCode::OK, Json(Health::of(&engine, HealthStatus::Ready, None))),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health::of(&engine, HealthStatus::Unavailable, Some(reason))))
        }
    }
}
