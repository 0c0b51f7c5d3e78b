//! CORS for the API, only when `server.cors_origins` lists origins (otherwise this middleware
//! is not installed at all, and browsers keep other origins out).
//!
//! Exact origins only; no credentials ever (cookie sessions are for this origin's own pages, so
//! cross-origin pages use API tokens); `Vary: Origin` on every API answer, so a cache never
//! serves one origin's answer to another; preflights answered with the methods and headers the
//! API takes. A request from an origin not listed gets no CORS headers (its page cannot read the
//! answer); a preflight from one is refused with 403. Requests without `Origin` are untouched.

use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::error_response;

const METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
/// Includes the tus request headers, so a browser tus client works across origins.
const HEADERS: &str = "authorization, content-type, content-digest, if-match, if-none-match, if-range, range, \
                       x-request-id, tus-resumable, upload-length, upload-defer-length, upload-metadata, \
                       upload-offset, upload-checksum";
const EXPOSED: &str = "content-disposition, content-range, etag, last-modified, location, retry-after, x-request-id, \
                       tus-resumable, tus-version, tus-extension, tus-max-size, tus-checksum-algorithm, \
                       upload-offset, upload-length, upload-metadata, upload-expires, coffer-file-id";

pub struct CorsPolicy {
    origins: Vec<String>,
}

impl CorsPolicy {
    /// `origins` were checked with the settings.
    pub fn new(origins: Vec<String>) -> Self {
        Self { origins }
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|allowed| allowed == origin)
    }
}

fn set(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// Middleware for the API's routes.
pub async fn cors<E: Endpoint>(endpoint: Arc<E>, req: Request, policy: Arc<CorsPolicy>) -> poem::Result<Response> {
    let on_api = req.uri().path().starts_with(super::API_PREFIX);
    let origin = req.header(header::ORIGIN).map(str::to_owned);
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if let (true, Some(origin), true) = (on_api, origin.as_deref(), preflight) {
        if !policy.allows(origin) {
            return Ok(error_response(
                StatusCode::FORBIDDEN,
                "cors_origin_not_allowed",
                "this origin may not call the API (server.cors_origins)",
                None,
            ));
        }
        let mut response = Response::builder().status(StatusCode::NO_CONTENT).finish();
        set(&mut response, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        set(&mut response, header::ACCESS_CONTROL_ALLOW_METHODS, METHODS);
        set(&mut response, header::ACCESS_CONTROL_ALLOW_HEADERS, HEADERS);
        set(&mut response, header::ACCESS_CONTROL_MAX_AGE, "600");
        set(&mut response, header::VARY, "Origin");
        return Ok(response);
    }
    let mut response = endpoint.call(req).await.map(IntoResponse::into_response)?;
    if on_api {
        response.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin.filter(|origin| policy.allows(origin)) {
            set(&mut response, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin);
            set(&mut response, header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
        }
    }
    Ok(response)
}
