//! Reading the rest of a refused upload's body before answering, so every client sees the
//! answer.
//!
//! An upload can be refused before or while its body is read (name taken, quota, too large,
//! an expired token). HTTP allows the answer to go out at once, but clients handle what follows
//! badly: over HTTP/2 the server ends the request stream (`RST_STREAM` with `NO_ERROR`), which
//! curl before 8.1 reports as "Stream error in the HTTP/2 framing layer" without showing the
//! answer; over HTTP/1.1 the connection has to be closed under a client still sending, which
//! then sees a broken pipe. So when the client announced a remainder of at most
//! [`DRAIN_BYTES`], it is read and dropped (within [`DRAIN_TIME`]) before the answer is sent;
//! nothing of it is stored. Larger remainders are not worth the wait or the bandwidth, and a
//! client that asked `Expect: 100-continue` and was refused before its body was read is answered
//! at once: it has not started sending.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use poem::http::header;
use poem::{Body, Endpoint, IntoResponse, Request, Response};

/// Largest announced remainder read to its end after a refusal.
pub const DRAIN_BYTES: u64 = 16 << 20;
/// Longest time spent reading it.
const DRAIN_TIME: Duration = Duration::from_secs(10);

type BodyStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What the handler's view of the body has done, shared with the middleware.
#[derive(Default)]
struct Progress {
    polled: AtomicBool,
    ended: AtomicBool,
    read: AtomicU64,
}

/// The request body as the handler sees it; the stream itself stays reachable for draining.
struct Tracked {
    inner: Arc<Mutex<Option<BodyStream>>>,
    progress: Arc<Progress>,
}

impl Stream for Tracked {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.progress.polled.store(true, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(stream) = inner.as_mut() else { return Poll::Ready(None) };
        let item = stream.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(chunk))) => {
                self.progress.read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            Poll::Ready(None) => self.progress.ended.store(true, Ordering::Relaxed),
            _ => {}
        }
        item
    }
}

/// Calls `endpoint` with `req`, an upload; when the answer is an error and the rest of the
/// body is small, reads that rest first.
pub async fn call<E: Endpoint>(endpoint: &E, mut req: Request) -> poem::Result<Response> {
    let announced = req.header(header::CONTENT_LENGTH).and_then(|value| value.parse::<u64>().ok());
    let expects_continue = req.header(header::EXPECT).is_some_and(|value| value.eq_ignore_ascii_case("100-continue"));
    let inner: Arc<Mutex<Option<BodyStream>>> =
        Arc::new(Mutex::new(Some(Box::pin(req.take_body().into_bytes_stream()))));
    let progress = Arc::new(Progress::default());
    let tracked = Tracked { inner: Arc::clone(&inner), progress: Arc::clone(&progress) };
    req.set_body(Body::from_bytes_stream(tracked));

    let outcome = endpoint.call(req).await.map(IntoResponse::into_response);
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(err) => err.status(),
    };
    let refused = status.is_client_error() || status.is_server_error();
    let unread = announced.map(|total| total.saturating_sub(progress.read.load(Ordering::Relaxed)));
    let waiting_for_continue = expects_continue && !progress.polled.load(Ordering::Relaxed);
    if refused
        && !progress.ended.load(Ordering::Relaxed)
        && !waiting_for_continue
        && unread.is_some_and(|left| left <= DRAIN_BYTES)
    {
        let stream = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(mut stream) = stream {
            let drain = async {
                let mut left = DRAIN_BYTES;
                while let Some(Ok(chunk)) = stream.next().await {
                    left = left.saturating_sub(chunk.len() as u64);
                    if left == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        }
    }
    outcome
}
