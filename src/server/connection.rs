//! One client connection: TLS handshake, HTTP/1.1 or HTTP/2, and the limits that protect the
//! server from slow or greedy clients.
//!
//! A connection is in one of three phases, each with its own limit:
//! - before its first request: the TLS handshake, and then the first request, must each arrive
//!   within `header_read_timeout` (a client that connects and says nothing, with or without the
//!   HTTP/2 preface, costs a connection slot for seconds, not minutes);
//! - while a request is in progress (its response not yet fully sent): dropped only when no
//!   byte moves either way for `idle_timeout`, so a slow transfer that keeps moving is never cut
//!   off, however long it takes;
//! - between requests (keep-alive): closed gracefully after `keep_alive_timeout`.
//!
//! On shutdown, requests in flight are allowed to finish, and so is the first
//! request of a connection accepted just before: its handshake completes and its request is
//! awaited (up to `header_read_timeout`) before the connection is asked to close, so a
//! restart under socket activation refuses nobody who was already let in.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::http;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::AppEndpoint;

/// Per-connection limits, from `[server]` settings.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub keep_alive_timeout: Duration,
    /// Connections one client network may hold at once.
    pub max_per_address: usize,
    pub max_header_size: usize,
    /// HTTP/2 flow-control window per request stream, in bytes; the connection's is twice it.
    pub http2_window: u32,
}

/// When bytes last moved on a connection, as milliseconds since it was accepted.
struct Activity {
    started: Instant,
    last_millis: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let millis = self.started.elapsed().as_millis() as u64;
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }
}

/// Requests on one connection: whether any arrived, how many are in progress, and since when
/// none is.
struct Requests {
    started: Instant,
    seen: std::sync::atomic::AtomicBool,
    in_flight: std::sync::atomic::AtomicUsize,
    idle_since_millis: AtomicU64,
    changed: tokio::sync::Notify,
}

impl Requests {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            seen: std::sync::atomic::AtomicBool::new(false),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            idle_since_millis: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.seen.store(true, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
        InFlight(Arc::clone(self))
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn idle_since(&self) -> Instant {
        self.started + Duration::from_millis(self.idle_since_millis.load(Ordering::Acquire))
    }
}

/// Marks one request in progress until dropped, which happens when its response body has been
/// sent in full or given up.
struct InFlight(Arc<Requests>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let requests = &self.0;
        if requests.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let millis = requests.started.elapsed().as_millis() as u64;
            requests.idle_since_millis.store(millis, Ordering::Release);
        }
        requests.changed.notify_one();
    }
}

/// A response body that holds its request's [`InFlight`] mark.
struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Which limit a connection passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expired {
    /// No request within `header_read_timeout` of the handshake.
    FirstRequest,
    /// Nothing moved for `idle_timeout` while a request was in progress.
    Idle,
    /// No request for `keep_alive_timeout` after the last one ended.
    KeepAlive,
}

/// Completes when the connection passes the limit of the phase it is in; `ready` is when it
/// could first have sent a request (the end of the handshake).
async fn limit_passed(requests: &Requests, activity: &Activity, limits: &ConnectionLimits, ready: Instant) -> Expired {
    loop {
        let notified = requests.changed.notified();
        let (deadline, reason) = if !requests.seen.load(Ordering::Acquire) {
            (ready + limits.header_read_timeout, Expired::FirstRequest)
        } else if requests.in_flight() > 0 {
            (activity.last() + limits.idle_timeout, Expired::Idle)
        } else {
            (activity.last().max(requests.idle_since()) + limits.keep_alive_timeout, Expired::KeepAlive)
        };
        if Instant::now() >= deadline {
            return reason;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = notified => {}
        }
    }
}

/// How long a connection closed for keep-alive gets to say goodbye (HTTP/2 GOAWAY) before it
/// is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// An I/O stream that records activity on every read or write that moves bytes.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
            crate::metrics::get().received_bytes.add((buf.filled().len() - before) as u64);
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(written)) = result
            && written > 0
        {
            self.activity.touch();
            crate::metrics::get().sent_bytes.add(written as u64);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = result
            && written > 0
        {
            self.activity.touch();
            crate::metrics::get().sent_bytes.add(written as u64);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves one accepted TCP connection until it ends, goes idle, or shutdown has let it finish.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<TlsAcceptor>,
    endpoint: AppEndpoint,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity { started: Instant::now(), last_millis: AtomicU64::new(0) });
    let stream = Tracked { inner: stream, activity: Arc::clone(&activity) };
    match tls {
        Some(acceptor) => {
            // Bounded by the timeout even during shutdown: an accepted client gets its answer.
            let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
            let handshakes = &crate::metrics::get().tls_handshakes;
            let tls_stream = match handshake.await {
                // A TLS-ALPN-01 validation only needs the handshake: no HTTP follows.
                Ok(Ok(tls_stream)) if tls_stream.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) => {
                    tracing::debug!(%peer, "answered an ACME TLS-ALPN-01 validation");
                    return;
                }
                Ok(Ok(tls_stream)) => {
                    handshakes.with(["ok"]).inc();
                    tls_stream
                }
                Ok(Err(err)) => {
                    handshakes.with(["failed"]).inc();
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    handshakes.with(["timeout"]).inc();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            serve_http(tls_stream, peer, local, true, endpoint, limits, shutdown, &activity).await;
        }
        None => serve_http(stream, peer, local, false, endpoint, limits, shutdown, &activity).await,
    }
}

/// Completes once shutdown began and the connection has had its first request (or the time
/// to send one has passed): the moment to ask it to close.
async fn first_request_or_timeout(shutdown: &CancellationToken, request_seen: &tokio::sync::Notify, wait: Duration) {
    shutdown.cancelled().await;
    let _ = tokio::time::timeout(wait, request_seen.notified()).await;
}

#[allow(clippy::too_many_arguments)]
async fn serve_http<Io>(
    io: Io,
    peer: SocketAddr,
    local: SocketAddr,
    secure: bool,
    endpoint: AppEndpoint,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    activity: &Activity,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let scheme = if secure { http::uri::Scheme::HTTPS } else { http::uri::Scheme::HTTP };
    let ready = Instant::now();
    // Holds a permit once any request has started on this connection.
    let request_seen = Arc::new(tokio::sync::Notify::new());
    let seen = Arc::clone(&request_seen);
    let requests = Arc::new(Requests::new());
    let tracked = Arc::clone(&requests);
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let endpoint = Arc::clone(&endpoint);
        let scheme = scheme.clone();
        seen.notify_one();
        let in_flight = tracked.begin();
        async move {
            let req = (req, LocalAddr(Addr::SocketAddr(local)), RemoteAddr(Addr::SocketAddr(peer)), scheme).into();
            let response: Response = endpoint.get_response(req).await;
            let response = http::Response::from(response);
            Ok::<_, Infallible>(response.map(|inner| TrackedBody { inner, _in_flight: in_flight }))
        }
    });

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_size);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(128)
        // Fixed windows (2 MiB per stream by default): the window is topped up once per half
        // window read. hyper's adaptive windows start at 64 KiB and, on fast short paths, stay
        // small enough that the server sends a WINDOW_UPDATE (and the client reads one) every
        // few dozen KiB.
        .initial_stream_window_size(limits.http2_window)
        .initial_connection_window_size(limits.http2_window.saturating_mul(2))
        .max_frame_size(256 << 10)
        .max_pending_accept_reset_streams(64);

    let io = super::parse_errors::ParseErrorAnswers::new(io);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut graceful_started = false;
    // Set once the connection is being closed for keep-alive: dropped then if still unused.
    let mut close_by: Option<Instant> = None;
    loop {
        tokio::select! {
            outcome = connection.as_mut() => {
                if let Err(err) = outcome {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            () = first_request_or_timeout(&shutdown, &request_seen, limits.header_read_timeout), if !graceful_started => {
                connection.as_mut().graceful_shutdown();
                graceful_started = true;
            }
            expired = limit_passed(&requests, activity, &limits, ready), if close_by.is_none() => match expired {
                Expired::FirstRequest => {
                    tracing::debug!(%peer, "closing a connection that sent no request within {:?}", limits.header_read_timeout);
                    return;
                }
                Expired::Idle => {
                    tracing::debug!(%peer, "closing a connection idle for {:?} mid-request", limits.idle_timeout);
                    return;
                }
                Expired::KeepAlive => {
                    if !graceful_started {
                        connection.as_mut().graceful_shutdown();
                        graceful_started = true;
                    }
                    close_by = Some(Instant::now() + CLOSE_GRACE);
                }
            },
            () = tokio::time::sleep_until(close_by.unwrap_or_else(Instant::now)), if close_by.is_some() => {
                if requests.in_flight() == 0 {
                    return;
                }
                // A request slipped in as the connection was closing: it finishes under the
                // idle limit, then the graceful shutdown ends the connection.
                close_by = None;
            }
        }
    }
}
