//! Outbound HTTP to OpenID providers: discovery, keys, the token and userinfo endpoints.
//!
//! Every call has a deadline, reads at most `MAX_BODY` bytes and follows no redirect (a
//! redirect is an error: a provider's endpoints are where its metadata says, and following
//! one would let a tampered answer point Coffer at an internal address). TLS uses the system's
//! roots through the platform verifier; plain HTTP only reaches loopback addresses
//! (`acceptable_issuer`), for a provider on the same machine and for tests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::config::acceptable_issuer;

/// Largest answer read from a provider (a JWKS or a token response is a few KiB).
pub const MAX_BODY: usize = 256 << 10;
/// Deadline of one call, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0} is not an https:// address (or http:// to loopback)")]
    Scheme(String),
    #[error("{url} did not answer within {} s", TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("{url}: {message}")]
    Failed { url: String, message: String },
    #[error("{url} answered {status}{detail}")]
    Status { url: String, status: StatusCode, detail: String },
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    pub fn new() -> anyhow::Result<Self> {
        let provider = crate::tls::crypto_provider();
        let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(Self { client })
    }

    /// GETs `url` (with a bearer token for userinfo) and parses the JSON answer.
    pub async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<serde_json::Value, HttpError> {
        let mut request = Request::builder().method(Method::GET).uri(url).header("accept", "application/json");
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(url, request, Bytes::new()).await
    }

    /// POSTs a form (the token endpoint), with HTTP Basic client authentication when given.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<serde_json::Value, HttpError> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            // RFC 6749 2.3.1: both parts are form-encoded before Basic encoding.
            let encode = |part: &str| form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", encode(id), encode(secret));
            use base64::Engine;
            let value = base64::engine::general_purpose::STANDARD.encode(pair);
            request = request.header("authorization", format!("Basic {value}"));
        }
        self.send(url, request, Bytes::from(body)).await
    }

    async fn send(
        &self,
        url: &str,
        request: hyper::http::request::Builder,
        body: Bytes,
    ) -> Result<serde_json::Value, HttpError> {
        if !acceptable_issuer(url) {
            return Err(HttpError::Scheme(url.to_owned()));
        }
        let failed = |message: String| HttpError::Failed { url: url.to_owned(), message };
        let request = request.body(Full::new(body)).map_err(|err| failed(err.to_string()))?;
        let call = async {
            let response = self.client.request(request).await.map_err(|err| failed(err.to_string()))?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|err| failed(format!("reading the answer: {err}")))?
                .to_bytes();
            Ok::<_, HttpError>((status, bytes))
        };
        let (status, bytes) =
            tokio::time::timeout(TIMEOUT, call).await.map_err(|_| HttpError::Timeout { url: url.to_owned() })??;
        let json: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            // An OAuth error answer names its code; nothing else of the body is repeated.
            let code = json.as_ref().and_then(|json| json.get("error")).and_then(|code| code.as_str());
            let detail =
                code.map(|code| format!(" ({})", code.chars().take(64).collect::<String>())).unwrap_or_default();
            return Err(HttpError::Status { url: url.to_owned(), status, detail });
        }
        json.ok_or_else(|| failed("the answer is not JSON".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-request HTTP server on loopback answering `answer`; its URL.
    async fn serve_once(answer: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(&answer).await;
        });
        url
    }

    #[tokio::test]
    async fn redirects_are_not_followed_big_answers_are_cut_and_other_hosts_need_https() {
        let client = HttpClient::new().unwrap();
        let redirect = b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n".to_vec();
        let err = client.get_json(&serve_once(redirect).await, None).await.unwrap_err();
        assert!(matches!(err, HttpError::Status { status: StatusCode::FOUND, .. }), "{err}");

        let body = format!("[{}0]", "0,".repeat(MAX_BODY / 2));
        let big = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes();
        let err = client.get_json(&serve_once(big).await, None).await.unwrap_err();
        assert!(matches!(err, HttpError::Failed { .. }), "{err}");

        let small = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        assert_eq!(client.get_json(&serve_once(small).await, None).await.unwrap(), serde_json::json!({}));

        let err = client.get_json("http://idp.example.org/jwks", None).await.unwrap_err();
        assert!(matches!(err, HttpError::Scheme(_)), "{err}");
    }
}
