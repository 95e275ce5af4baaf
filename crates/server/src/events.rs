//! `GET /api/v1/events`: an environment's event log as server-sent events, from a position
//! onward, filtered by kind and tag. Each event's SSE `id` is its position: a client that
//! reconnects with `Last-Event-ID` (as browsers' `EventSource` does) continues after the last
//! event it received, and misses none that committed.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use waitpoint_engine::{Engine, EventFilter};
use waitpoint_types::Environment;
use waitpoint_types::event::{Event, EventKind};

use crate::auth::SecretKey;
use crate::connection::StreamsFor;
use crate::error::ApiError;
use crate::openapi::{BadRequest, ServerError, Unauthorized};

/// How long one stream lasts; the client reconnects with `Last-Event-ID` and loses nothing.
const LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How often a quiet stream says it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events read from the log at a time.
const PAGE: usize = 200;
/// The most values `kinds` or `tags` takes.
const MAX_VALUES: usize = 100;

/// Where a stream starts and what it shows.
#[derive(Debug, Default, PartialEq, Eq)]
struct Follow {
    after: Option<u64>,
    filter: EventFilter,
}

/// `GET /api/v1/events`: the stream (secret key only).
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "streamEvents",
    tag = "events",
    summary = "Follow the event log",
    description = "waitpoint's own: the environment's events as server-sent events (`text/event-stream`), \
                   oldest first: `waitpoint.created`, `waitpoint.completed`, `waitpoint.timed_out`, \
                   `waitpoint.rejected`, `run.completed`, `run.failed`, `run.canceled`. Each is written in the \
                   transaction of the change it tells of, so none is emitted for a change that did not commit \
                   and none is lost across a crash. The SSE `id` is the event's position: reconnect with \
                   `Last-Event-ID` (or `?after=`) to continue after it; without either the stream starts with \
                   what happens from now on. A stream ends after 10 minutes; reconnect.",
    params(
        ("kinds" = Option<String>, Query, description = "Only these kinds, comma-separated (at most 100)."),
        ("tags" = Option<String>, Query, description = "Only events whose subject has any of these tags, comma-separated (at most 100)."),
        ("after" = Option<u64>, Query, description = "Start after this position (`Last-Event-ID` wins when both are given)."),
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, description = "Start after this position."),
    ),
    responses(
        (status = 200, description = "The stream. Each event: `id` (its position), `event` (its kind), and \
                                      `data`: `{\"seq\", \"type\", \"subject\", \"tags\", \"createdAt\", \"data\"}`.",
         content_type = "text/event-stream", body = String),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = "5XX", response = ServerError),
    ),
)]
pub(crate) async fn stream(
    State(engine): State<Engine>,
    SecretKey(environment): SecretKey,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut follow = parse(raw.as_deref())?;
    if let Some(last) = headers.get("last-event-id") {
        let last = last.to_str().ok().and_then(|text| text.trim().parse().ok());
        follow.after = Some(last.ok_or_else(|| {
            ApiError::bad_request("Last-Event-ID must be the position of an event this stream sent (a whole number)")
        })?);
    }
    let after = match follow.after {
        Some(after) => after,
        None => engine.events_head().await?,
    };
    let stream = events(engine, environment, after, follow.filter);
    let mut response =
        axum::response::sse::Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response();
    response.extensions_mut().insert(StreamsFor(LIFETIME));
    Ok(response)
}

fn parse(raw: Option<&str>) -> Result<Follow, ApiError> {
    let mut follow = Follow::default();
    let mut seen = HashSet::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !seen.insert(name.clone()) {
            return Err(ApiError::bad_query(&name, "given more than once; give it once (lists are comma-separated)"));
        }
        let values = || -> Result<Vec<String>, ApiError> {
            let values: Vec<String> =
                value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(Into::into).collect();
            if values.len() > MAX_VALUES {
                return Err(ApiError::bad_query(&name, format!("takes at most {MAX_VALUES} values")));
            }
            Ok(values)
        };
        match name.as_ref() {
            "kinds" => {
                follow.filter.kinds = values()?
                    .iter()
                    .map(|kind| {
                        EventKind::parse(kind).ok_or_else(|| {
                            let all: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
                            ApiError::bad_query("kinds", format!("unknown kind {kind:?}; kinds are {}", all.join(", ")))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "tags" => follow.filter.tags = values()?,
            "after" => {
                follow.after = Some(value.parse().map_err(|_| {
                    ApiError::bad_query("after", format!("{value:?} is not a position (a whole number)"))
                })?);
            }
            other => {
                return Err(ApiError::bad_query(other, "unknown parameter; the stream takes kinds, tags and after"));
            }
        }
    }
    Ok(follow)
}

/// The stream's events: pages of the log, then each new page as changes come, until the
/// lifetime ends or the server stops. A storage error ends the stream (the client reconnects
/// where it left off).
fn events(
    engine: Engine,
    environment: Environment,
    after: u64,
    filter: EventFilter,
) -> impl Stream<Item = Result<Sse, Infallible>> {
    let deadline = tokio::time::Instant::now() + LIFETIME;
    let state = (engine.event_appends(), engine, after, VecDeque::new());
    stream::unfold(state, move |(mut changes, engine, mut after, mut pending)| {
        let (environment, filter) = (environment.clone(), filter.clone());
        async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    return Some((Ok(describe(&event)), (changes, engine, after, pending)));
                }
                let page = match engine.read_events(&environment, after, &filter, PAGE).await {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::warn!(%error, "event stream ended: the log could not be read");
                        return None;
                    }
                };
                pending.extend(page.events);
                if page.through != after {
                    after = page.through;
                    continue;
                }
                tokio::select! {
                    () = engine.events_may_follow(&mut changes) => {}
                    () = tokio::time::sleep_until(deadline) => return None,
                    () = engine.stopping() => return None,
                }
            }
        }
    })
}

/// An event as the stream sends it.
fn describe(event: &Event) -> Sse {
    Sse::default()
        .id(event.seq.to_string())
        .event(event.event.kind.as_str())
        .data(serde_json::to_string(event).unwrap_or_default())
}
