//! Middleware for every request: request ids and the one log line per request, security
//! headers, and the request body limit.
//!
//! The log line carries method, path (never the query string, where tokens could ride),
//! status and duration; no header or body is ever logged. A share link's path holds its token,
//! so the line shows `/s/[share <id>]/...` instead, or `/s/[token]/...` when no share matched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Endpoint, Error, IntoResponse, Request, Response};
use rand::Rng;

/// The id of the request being served, echoed in `X-Request-Id` and in error bodies.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's address, once decided for the request (see `client_address.rs`).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub std::net::IpAddr);

const REQUEST_ID: &str = "x-request-id";

/// A client's own id is kept when it is short and plain, so it can be traced end to end;
/// anything else is replaced, so ids in the log stay safe to print.
fn accept_request_id(candidate: &str) -> bool {
    (1..=64).contains(&candidate.len())
        && candidate.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

fn new_request_id() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// What the request line says about one request.
struct RequestLine {
    id: String,
    method: poem::http::Method,
    path: String,
    version: poem::http::Version,
    remote: String,
    started: Instant,
    /// Set once a response exists; a line still unset when dropped means the client left.
    status: Option<u16>,
}

impl RequestLine {
    fn write(&self, status: u16) {
        tracing::info!(
            target: "coffer::request",
            request_id = %self.id,
            method = %self.method,
            path = %self.path,
            version = ?self.version,
            status,
            duration_ms = format_args!("{:.3}", self.started.elapsed().as_secs_f64() * 1000.0),
            remote = %self.remote,
            "request"
        );
    }
}

impl Drop for RequestLine {
    fn drop(&mut self) {
        // The connection dropped the request before it was answered (an HTTP/2 reset, a
        // closed socket): logged as 499, like nginx, so no request goes unrecorded.
        if self.status.is_none() {
            self.write(499);
        }
    }
}

/// The path as logged: a share token is replaced by the share's id, or hidden. Any path that
/// is under `/s/` once repeated slashes are collapsed counts (`/s//<token>` too), and only the
/// known tail `/download` is kept after the token: anything else could hold a token as well.
fn redacted_path(path: &str, share_id: Option<&str>) -> String {
    let mut collapsed = String::with_capacity(path.len());
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        collapsed.push('/');
        collapsed.push_str(segment);
    }
    // Upload links (`/u/<token>`, tail `/files`) are hidden the same way.
    let (prefix, kind, known) = if let Some(rest) = collapsed.strip_prefix("/s/") {
        (rest, "s", "download")
    } else if let Some(rest) = collapsed.strip_prefix("/u/") {
        (rest, "u", "files")
    } else {
        return path.to_owned();
    };
    let tail = match prefix.split_once('/') {
        None => String::new(),
        Some((_, tail)) if tail == known => format!("/{known}"),
        Some(_) => "/[...]".to_owned(),
    };
    let what = if kind == "s" { "share" } else { "upload link" };
    match share_id {
        Some(id) => format!("/{kind}/[{what} {id}]{tail}"),
        None => format!("/{kind}/[token]{tail}"),
    }
}

/// The OpenAPI document's path templates (`/api/v1/files/{id}`) by the patterns poem-openapi
/// routes them with (`/api/v1/files/:param0`), so metrics name routes as the document does.
#[derive(Default)]
pub struct RouteNames {
    by_pattern: std::collections::HashMap<String, String>,
}

impl RouteNames {
    pub fn from_spec(spec_json: &str, prefix: &str) -> Self {
        let spec: serde_json::Value = serde_json::from_str(spec_json).unwrap_or_default();
        let mut by_pattern = std::collections::HashMap::new();
        for path in spec.get("paths").and_then(|paths| paths.as_object()).into_iter().flat_map(|paths| paths.keys()) {
            let mut index = 0;
            let pattern: Vec<String> = path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        index += 1;
                        format!(":param{}", index - 1)
                    } else {
                        segment.to_owned()
                    }
                })
                .collect();
            by_pattern.insert(format!("{prefix}{}", pattern.join("/")), format!("{prefix}{path}"));
        }
        Self { by_pattern }
    }

    /// The route's name for metrics: the document's template, else poem's own pattern.
    fn name(&self, pattern: &str) -> String {
        self.by_pattern.get(pattern).cloned().unwrap_or_else(|| pattern.to_owned())
    }
}

/// Middleware: assigns the request id and writes the request's log line.
pub async fn request_log<E: Endpoint>(
    endpoint: Arc<E>,
    mut req: Request,
    routes: Arc<RouteNames>,
    trusted: Arc<crate::client_address::TrustedProxies>,
) -> poem::Result<Response> {
    let id = req
        .header(REQUEST_ID)
        .filter(|candidate| accept_request_id(candidate))
        .map_or_else(new_request_id, str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let peer = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
    let client = peer.map(|peer| trusted.client_of(peer, req.header("forwarded"), req.header("x-forwarded-for")));
    if let Some(client) = client {
        req.extensions_mut().insert(ClientIp(client));
    }
    let mut line = RequestLine {
        id,
        method: req.method().clone(),
        path: redacted_path(req.uri().path(), None),
        version: req.version(),
        remote: client.map(|client| client.to_string()).unwrap_or_default(),
        started: Instant::now(),
        status: None,
    };

    let method = line.method.clone();
    let in_flight = crate::metrics::get().http_in_flight.track();
    let mut response = endpoint.get_response(req).await;
    drop(in_flight);
    let route =
        response.data::<poem::PathPattern>().map_or_else(|| "unrouted".to_owned(), |route| routes.name(&route.0));
    record_metrics(&route, &method, response.status().as_u16(), line.started.elapsed());

    if let Ok(value) = HeaderValue::from_str(&line.id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(share) = response.extensions().get::<super::share_page::LoggedShare>() {
        line.path = redacted_path(&line.path, Some(&share.0));
    }
    if let Some(link) = response.extensions().get::<super::upload_link_page::LoggedUploadLink>() {
        line.path = redacted_path(&line.path, Some(&link.0));
    }
    let status = response.status().as_u16();
    line.status = Some(status);
    line.write(status);
    Ok(response)
}

/// Counts an answered request by route template (never the raw path), method and status class.
fn record_metrics(route: &str, method: &poem::http::Method, status: u16, elapsed: std::time::Duration) {
    let metrics = crate::metrics::get();
    // Methods outside the standard set are one label, so clients cannot invent label values.
    let method = match *method {
        poem::http::Method::GET
        | poem::http::Method::HEAD
        | poem::http::Method::POST
        | poem::http::Method::PUT
        | poem::http::Method::PATCH
        | poem::http::Method::DELETE
        | poem::http::Method::OPTIONS => method.as_str(),
        _ => "OTHER",
    };
    metrics.http_requests.with([route, method, crate::metrics::status_class(status)]).inc();
    metrics.http_duration.with([route, method]).observe(elapsed.as_secs_f64());
}

/// Middleware: headers every response carries.
pub async fn security_headers<E: Endpoint>(endpoint: Arc<E>, req: Request) -> poem::Result<Response> {
    let secure = req.scheme() == &poem::http::uri::Scheme::HTTPS;
    let mut response = endpoint.get_response(req).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let policy = match headers.get(header::CONTENT_SECURITY_POLICY).and_then(|value| value.to_str().ok()) {
        Some(existing) if existing.contains("frame-ancestors") => existing.to_owned(),
        Some(existing) => format!("{existing}; frame-ancestors 'none'"),
        None => "frame-ancestors 'none'".to_owned(),
    };
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    // Tokens and account data must not linger in caches (RFC 6749 5.1); a response that
    // may be cached says so itself.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if secure {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    Ok(response)
}

/// Middleware: refuses request bodies over `limit` bytes with 413, whether the size is
/// announced in `Content-Length` or only found while reading a chunked body. `exempt`
/// (method, path) pairs carry file contents and enforce their own limit; a refused one has
/// a small remainder of its body read first (see [`super::drain`]).
///
/// `resumable` routes (tus) are exempt too but keep their content type as sent (a creation
/// without a body has none); a path ending in `/` stands for everything below it.
pub async fn body_limit<E: Endpoint>(
    endpoint: Arc<E>,
    mut req: Request,
    limit: u64,
    exempt: &[(&str, &str)],
    resumable: &[(&str, &str)],
) -> poem::Result<Response> {
    let upload_link_file = req.method() == poem::http::Method::PUT
        && req.uri().path().starts_with("/u/")
        && req.uri().path().ends_with("/files");
    if upload_link_file
        || exempt.iter().any(|(method, path)| req.method().as_str() == *method && req.uri().path() == *path)
    {
        // A raw upload may come without a type; it is just bytes.
        if !req.headers().contains_key(header::CONTENT_TYPE) {
            req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        }
        return super::drain::call(endpoint.as_ref(), req).await;
    }
    let below =
        |prefix: &str, path: &str| prefix.ends_with('/') && path.starts_with(prefix) && path.len() > prefix.len();
    if resumable.iter().any(|(method, route)| {
        req.method().as_str() == *method && (req.uri().path() == *route || below(route, req.uri().path()))
    }) {
        return super::drain::call(endpoint.as_ref(), req).await;
    }
    let announced = req
        .header(header::CONTENT_LENGTH)
        .map(|value| {
            value
                .parse::<u64>()
                .map_err(|_| Error::from_string("Content-Length is not a number", StatusCode::BAD_REQUEST))
        })
        .transpose()?;
    if announced.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&exceeded);
    let mut seen = 0u64;
    let limited = req.take_body().into_bytes_stream().map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        if seen > limit {
            flag.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("request body too large"));
        }
        Ok(chunk)
    });
    req.set_body(Body::from_bytes_stream(limited));
    let outcome = endpoint.call(req).await;
    if exceeded.load(Ordering::Relaxed) {
        return Err(too_large(limit));
    }
    outcome.map(IntoResponse::into_response)
}

fn too_large(limit: u64) -> Error {
    Error::from_string(
        format!("the request body is larger than the limit of {limit} bytes"),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_tokens_never_reach_the_log_whatever_the_path_looks_like() {
        let token = "mkB9wEb_abcdefghijklmnopqrstuvwxyz0123456789";
        for path in [
            format!("/s/{token}"),
            format!("/s//{token}"),
            format!("//s/{token}/download"),
            format!("/s/x/{token}"),
            format!("/s/{token}/{token}"),
        ] {
            let logged = redacted_path(&path, None);
            assert!(!logged.contains(token), "{path} logged as {logged}");
            assert!(logged.starts_with("/s/[token]"), "{logged}");
        }
        assert_eq!(redacted_path(&format!("/s/{token}/download"), Some("42")), "/s/[share 42]/download");
        assert_eq!(redacted_path("/api/v1/health", None), "/api/v1/health");
        assert_eq!(redacted_path(&format!("/u/{token}/files"), Some("7")), "/u/[upload link 7]/files");
        assert_eq!(redacted_path(&format!("/u//{token}/{token}"), None), "/u/[token]/[...]");
    }

    #[test]
    fn only_plain_short_request_ids_are_kept() {
        assert!(accept_request_id("abc-123_X.y"));
        assert!(!accept_request_id(""));
        assert!(!accept_request_id(&"a".repeat(65)));
        assert!(!accept_request_id("has space"));
        assert!(!accept_request_id("new\nline"));
        assert_eq!(new_request_id().len(), 32);
    }
}
