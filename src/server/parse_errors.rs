//! hyper answers a few malformed HTTP/1 requests itself, before anything reaches the
//! application: an unparsable request (400), a URI too long (414), a head too large (431). It
//! sends them with an empty body. [`ParseErrorAnswers`] sits between hyper and the connection
//! and replaces each such answer with the same status in Coffer's JSON error shape, so a client
//! meets one error shape everywhere.
//!
//! It also corrects one status: hyper takes a `Content-Length` of 2^64-2 or more (its internal
//! markers) as a head too large (431); the answer becomes 413, since what is too large is the
//! announced body. hyper's own answers are recognised by what they lack: every answer of the
//! application carries `x-content-type-options` (added by the security-headers middleware).
//! Only HTTP/1 needs this: HTTP/2 refuses such requests with protocol errors, not bodies.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of the request head kept to explain a 431.
const CAPTURE: usize = 64 << 10;

pub struct ParseErrorAnswers<T> {
    inner: T,
    /// What the client sent lately (the head hyper refused is in here).
    received: Vec<u8>,
    /// A replacement answer still to be written, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> ParseErrorAnswers<T> {
    pub fn new(inner: T) -> Self {
        Self { inner, received: Vec::new(), pending: None }
    }
}

/// The status of a head hyper wrote itself, if `data` is one: a complete head of 400, 414 or
/// 431 without the application's headers.
fn hyper_answer(data: &[u8]) -> Option<u16> {
    // Cheap checks first: this looks at every write, downloads included.
    let status: u16 = std::str::from_utf8(data.strip_prefix(b"HTTP/1.")?.get(2..5)?).ok()?.parse().ok()?;
    if !matches!(status, 400 | 414 | 431) {
        return None;
    }
    let start = &data[..data.len().min(1024)];
    let head_end = start.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&start[..head_end]).ok()?;
    let from_application = head.lines().any(|line| line.to_ascii_lowercase().starts_with("x-content-type-options:"));
    (!from_application).then_some(status)
}

/// Whether the request head announced a body length hyper cannot represent.
fn announced_impossible_length(received: &[u8]) -> bool {
    String::from_utf8_lossy(received).lines().any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.strip_prefix("content-length:").is_some_and(|value| {
            value.split(',').any(|value| {
                let value = value.trim();
                !value.is_empty()
                    && value.bytes().all(|byte| byte.is_ascii_digit())
                    && !matches!(value.parse::<u64>(), Ok(length) if length < u64::MAX - 1)
            })
        })
    })
}

/// The full replacement answer for `status`.
fn json_answer(status: u16, received: &[u8]) -> Vec<u8> {
    let (status, reason, code, message) = match status {
        431 if announced_impossible_length(received) => (
            413,
            "Payload Too Large",
            "payload_too_large",
            "the announced Content-Length is larger than any body accepted",
        ),
        431 => (431, "Request Header Fields Too Large", "headers_too_large", "the request head is too large"),
        414 => (414, "URI Too Long", "uri_too_long", "the request URI is too long"),
        _ => (400, "Bad Request", "bad_request", "the request is not valid HTTP/1.1"),
    };
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n\
         referrer-policy: no-referrer\r\nx-frame-options: DENY\r\ncontent-security-policy: frame-ancestors 'none'\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<T: AsyncWrite + Unpin> ParseErrorAnswers<T> {
    /// Writes what is left of a replacement answer; ready once it is all out.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = self.pending.as_mut() {
            if *written == answer.len() {
                self.pending = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(count)) => *written += count,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ParseErrorAnswers<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let fresh = &buf.filled()[before..];
        if !fresh.is_empty() {
            let this = &mut *self;
            if this.received.len() + fresh.len() > CAPTURE {
                let keep_from = (this.received.len() + fresh.len()).saturating_sub(CAPTURE).min(this.received.len());
                this.received.drain(..keep_from);
            }
            let room = CAPTURE.saturating_sub(this.received.len());
            this.received.extend_from_slice(&fresh[fresh.len().saturating_sub(room)..]);
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParseErrorAnswers<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.pending.is_some() {
            return match self.drain(cx) {
                // Once hyper's own answer is replaced, nothing more goes out.
                Poll::Ready(Ok(())) => Poll::Ready(Ok(data.len())),
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                Poll::Pending => Poll::Pending,
            };
        }
        if let Some(status) = hyper_answer(data) {
            let answer = json_answer(status, &self.received);
            self.pending = Some((answer, 0));
            return match self.drain(cx) {
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                _ => Poll::Ready(Ok(data.len())),
            };
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's own answers are one head; look at the first slice only.
        if self.pending.is_some() || bufs.first().is_some_and(|first| hyper_answer(first).is_some()) {
            let first = bufs.first().map_or(&[][..], |first| &first[..]);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_own_error_heads_are_recognised() {
        assert_eq!(
            hyper_answer(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"),
            Some(431)
        );
        assert_eq!(hyper_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n"), Some(400));
        let application = b"HTTP/1.1 400 Bad Request\r\nx-content-type-options: nosniff\r\n\r\n{}";
        assert_eq!(hyper_answer(application), None);
        assert_eq!(hyper_answer(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(hyper_answer(b"HTTP/1.1 100 Continue\r\n\r\n"), None);
        assert_eq!(hyper_answer(b"HTTP/1.1 431 Request Header"), None, "an incomplete head is left alone");
    }

    #[test]
    fn an_impossible_content_length_is_too_large_not_a_large_head() {
        let head = b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n";
        let answer = String::from_utf8(json_answer(431, head)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{answer}");
        assert!(answer.contains(r#""error":"payload_too_large""#), "{answer}");
        let big_head = String::from_utf8(json_answer(431, b"GET / HTTP/1.1\r\nX: aaaa\r\n")).unwrap();
        assert!(big_head.starts_with("HTTP/1.1 431 ") && big_head.contains("headers_too_large"));
        let length = big_head.split("content-length: ").nth(1).unwrap().split("\r\n").next().unwrap();
        let body = big_head.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(length.parse::<usize>().unwrap(), body.len());
    }
}
