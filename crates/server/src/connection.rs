//! One HTTP/1 connection, and how long its client may take to send.
//!
//! The client has the header timeout to send a request's head, counted from connecting or,
//! on a kept-alive connection, from the first byte of the request; the body timeout, counted
//! from the end of the head, to send the whole body; and, once an answer is ready, the idle
//! timeout to take it and begin the next request. A client too slow with a head, or idle too
//! long, has its connection closed without an answer; a body too late is answered 408, then
//! the connection is closed. How long an answer takes is never limited here: a worker's poll
//! is held for up to 30 s.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::error::ApiError;

/// The address of the client that sent a request (an extension of every request served over a
/// socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub(crate) std::net::IpAddr);

/// Put on an answer whose body streams for up to this long (an event stream): the idle timeout
/// then counts from the end of that time, not from the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamsFor(pub(crate) Duration);

/// How long a client may take to send (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) body: Duration,
    pub(crate) idle: Duration,
}

/// Serves requests on `stream` with `router` until the client closes the connection or is too
/// slow, or, once `closing` turns true, until the request in flight (if any) is answered.
pub(crate) async fn serve(stream: TcpStream, router: Router, timeouts: Timeouts, mut closing: watch::Receiver<bool>) {
    let (phase, mut phases) = watch::channel(Phase::Head(Instant::now() + timeouts.header));
    let client = stream.peer_addr().ok().map(|address| ClientAddr(address.ip()));
    let io = TokioIo::new(TimedStream { stream, phase: phase.clone(), header_timeout: timeouts.header });
    let service = TimedService { router: TowerToHyperService::new(router), phase, timeouts, client };
    // hyper's header timer also runs while a kept-alive connection waits for its next request,
    // which would cut the idle timeout down to the header timeout: the phases time both.
    let mut connection = pin!(http1::Builder::new().header_read_timeout(None).serve_connection(io, service));
    let mut closing_requested = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection failed");
                }
                return;
            }
            awaited = too_slow(&mut phases) => {
                tracing::debug!(awaited, "closing a connection: the client took too long");
                return;
            }
            _ = closing.wait_for(|closing| *closing), if !closing_requested => {
                connection.as_mut().graceful_shutdown();
                closing_requested = true;
            }
        }
    }
}

/// What a connection waits for from its client, and until when.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// A request head, due by then.
    Head(Instant),
    /// An answer is ready; the first byte of the next request is due by then.
    Idle(Instant),
    /// Nothing: a request is being answered (its body has a deadline of its own).
    Busy,
}

/// Resolves, naming what was awaited, once the client misses the deadline of the connection's
/// phase.
async fn too_slow(phases: &mut watch::Receiver<Phase>) -> &'static str {
    loop {
        let phase = *phases.borrow_and_update();
        let expiry = async move {
            match phase {
                Phase::Head(deadline) => {
                    sleep_until(deadline).await;
                    "a request head"
                }
                Phase::Idle(deadline) => {
                    sleep_until(deadline).await;
                    "the next request"
                }
                Phase::Busy => std::future::pending().await,
            }
        };
        tokio::select! {
            awaited = expiry => return awaited,
            Ok(()) = phases.changed() => {}
        }
    }
}

/// The client's socket. The first byte read on an idle connection begins a request head, due
/// within the header timeout from then.
struct TimedStream {
    stream: TcpStream,
    phase: watch::Sender<Phase>,
    header_timeout: Duration,
}

impl AsyncRead for TimedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            let header_timeout = this.header_timeout;
            this.phase.send_if_modified(|phase| match phase {
                Phase::Idle(_) => {
                    *phase = Phase::Head(Instant::now() + header_timeout);
                    true
                }
                Phase::Head(_) | Phase::Busy => false,
            });
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The router, as the connection sees it: a request is being answered from its head until its
/// answer is ready, and its body is due within the body timeout of the head.
struct TimedService {
    router: TowerToHyperService<Router>,
    phase: watch::Sender<Phase>,
    timeouts: Timeouts,
    client: Option<ClientAddr>,
}

impl Service<Request<Incoming>> for TimedService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.phase.send_replace(Phase::Busy);
        let late = Arc::new(AtomicBool::new(false));
        let body_timeout = self.timeouts.body;
        let deadline = Instant::now() + body_timeout;
        let mut request = request.map(|body| TimedBody { body, deadline, timer: None, late: late.clone() });
        if let Some(client) = self.client {
            request.extensions_mut().insert(client);
        }
        let answer = self.router.call(request);
        let phase = self.phase.clone();
        let idle_timeout = self.timeouts.idle;
        Box::pin(async move {
            let response = answer.await?;
            let streams = response.extensions().get::<StreamsFor>().map_or(Duration::ZERO, |streams| streams.0);
            phase.send_replace(Phase::Idle(Instant::now() + streams + idle_timeout));
            Ok(if late.load(Ordering::Relaxed) { body_too_late(body_timeout) } else { response })
        })
    }
}

/// A request body due in full by `deadline`. Reading it after the deadline fails, and marks the
/// request `late`.
struct TimedBody {
    body: Incoming,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    late: Arc<AtomicBool>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(BoxError::from)));
        }
        let deadline = this.deadline;
        ready!(this.timer.get_or_insert_with(|| Box::pin(sleep_until(deadline))).as_mut().poll(cx));
        this.late.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err("the request body arrived too slowly".into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The answer to a request whose body came too late. The connection closes after it: the rest
/// of the body may still be on its way.
fn body_too_late(timeout: Duration) -> Response {
    let message = format!("Request body timed out: the whole body must arrive within {timeout:?} of the request head");
    let mut response = ApiError::new(StatusCode::REQUEST_TIMEOUT, message).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    // Unlike other client errors, a stalled upload may well go through when sent again.
    headers.remove("x-should-retry");
    response
}
