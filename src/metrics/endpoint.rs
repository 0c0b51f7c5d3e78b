//! The metrics listener's one route: `GET /metrics`, behind a bearer token when one is set.

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{EndpointExt, Request, Response};

use super::Scrape;
use crate::api::error_response;

/// Whether two secrets are equal, comparing their SHA-256 digests so the time taken says
/// nothing about where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let digest = |bytes: &[u8]| ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec();
    digest(given) == digest(expected)
}

/// The endpoint for the metrics listener; `token` is the bearer token scrapes must send.
pub fn metrics_endpoint(scrape: Scrape, token: Option<String>) -> BoxEndpoint<'static, Response> {
    let token = token.map(Arc::<str>::from);
    poem::endpoint::make(move |req: Request| {
        let (scrape, token) = (scrape.clone(), token.clone());
        async move {
            if req.uri().path() != "/metrics" {
                return error_response(StatusCode::NOT_FOUND, "not_found", "the metrics are at /metrics", None);
            }
            if req.method() != poem::http::Method::GET {
                let mut response =
                    error_response(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "/metrics takes GET", None);
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
                return response;
            }
            if let Some(expected) = token.as_deref() {
                let given = req.header(header::AUTHORIZATION).and_then(|value| value.strip_prefix("Bearer "));
                if !given.is_some_and(|given| same_secret(given.as_bytes(), expected.as_bytes())) {
                    let mut response =
                        error_response(StatusCode::UNAUTHORIZED, "unauthorized", "send the metrics bearer token", None);
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return response;
                }
            }
            Response::builder()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-store")
                .body(scrape.render().await)
        }
    })
    .boxed()
}
