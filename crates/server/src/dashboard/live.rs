//! `GET /events`: what changes in the session's environment, as server-sent events, so that
//! open pages update by themselves. Each event names what changed (`token` or `run`, with its
//! id and, for tokens, status); the page's script fetches the page again when it shows that.
//! A stream lasts a few minutes at most (the browser reconnects, and the session is checked
//! again), and ends when the server stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;
use waitpoint_engine::{Engine, EngineError, Event};
use waitpoint_types::EnvironmentId;

use super::Dashboard;
use super::session;
use crate::connection::StreamsFor;

/// How long one stream lasts.
const LIFETIME: Duration = Duration::from_secs(5 * 60);
/// How often a quiet stream says it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /events`: 401 without a session (the browser stops retrying), else the stream.
pub(crate) async fn events(State(dashboard): State<Dashboard>, headers: HeaderMap) -> Response {
    let session = match session::cookie(&headers, session::COOKIE) {
        Some(cookie) => dashboard.engine.session(cookie).await,
        None => Err(EngineError::Unauthenticated("no session".into())),
    };
    let Ok(session) = session else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let stream = changes(dashboard.engine.clone(), session.environment.id);
    let mut response =
        axum::response::sse::Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response();
    response.extensions_mut().insert(StreamsFor(LIFETIME));
    response
}

/// The events of `environment`, until the lifetime ends or the server stops.
fn changes(engine: Engine, environment: EnvironmentId) -> impl Stream<Item = Result<Sse, Infallible>> {
    let receiver = engine.subscribe();
    let deadline = tokio::time::Instant::now() + LIFETIME;
    stream::unfold(Some((engine, receiver)), move |state| {
        let environment = environment.clone();
        async move {
            let (engine, mut receiver) = state?;
            loop {
                let next = tokio::select! {
                    received = receiver.recv() => received,
                    () = tokio::time::sleep_until(deadline) => return None,
                    () = engine.stopping() => return None,
                };
                let sse = match next {
                    Ok(event) if *event.environment_id() == environment => describe(&event),
                    Ok(_) => continue,
                    // Missed events: whatever is shown may be stale, so say everything changed.
                    Err(RecvError::Lagged(_)) => Sse::default().event("lagged").data("{}"),
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(sse), Some((engine, receiver))));
            }
        }
    })
}

fn describe(event: &Event) -> Sse {
    match event {
        Event::TokenCreated(token) | Event::WaitpointFinished(token) => Sse::default()
            .event("token")
            .data(serde_json::json!({ "id": token.id.public(), "status": token.status().as_str() }).to_string()),
        Event::RunChanged { run, .. } => {
            Sse::default().event("run").data(serde_json::json!({ "id": run.public() }).to_string())
        }
    }
}
