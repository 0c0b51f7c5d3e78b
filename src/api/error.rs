//! The one JSON error shape, `{"error": "<stable code>", "message": "...", "request_id": "..."}`,
//! and the middleware that makes every error leave the server in it: poem's routing errors
//! (404, 405 with `Allow`), request parsing errors, and anything a handler returns.
//!
//! Codes are stable API: clients branch on `error`, people read `message`. A 5xx never carries
//! internal details to the client; those go to the log under the same request id.

use std::sync::Arc;

use poem::PathPattern;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::Object;

use super::middleware::RequestId;

#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, such as `not_found` or `quota_exceeded`.
    pub error: String,
    /// What happened and what to do, for people.
    pub message: String,
    /// The request's id, as in the `X-Request-Id` header and the server log.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The stable code used when a status has no more specific one.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        410 => "gone",
        411 => "length_required",
        412 => "precondition_failed",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        416 => "range_not_satisfiable",
        422 => "unprocessable",
        429 => "too_many_requests",
        431 => "headers_too_large",
        503 => "unavailable",
        507 => "insufficient_storage",
        400..=499 => "bad_request",
        _ => "internal_error",
    }
}

/// Builds an error response in the one shape.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
    request_id: Option<String>,
) -> Response {
    debug_assert!(super::error_codes::is_listed(code), "error code `{code}` is not in ERROR_CODES");
    let body = ErrorBody { error: code.to_owned(), message: message.into(), request_id };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    Response::builder().status(status).content_type("application/json; charset=utf-8").body(json)
}

/// Which methods each route answers, for the `Allow` header of a 405.
#[derive(Debug, Default)]
pub struct AllowTable {
    routes: Vec<(Vec<String>, Vec<String>)>,
}

impl AllowTable {
    /// Reads the paths and methods from the OpenAPI document; `prefix` is where it is mounted.
    pub fn from_spec(spec_json: &str, prefix: &str) -> Self {
        let mut table = Self::default();
        let spec: serde_json::Value = serde_json::from_str(spec_json).unwrap_or_default();
        if let Some(paths) = spec.get("paths").and_then(|paths| paths.as_object()) {
            for (path, operations) in paths {
                let methods = operations.as_object().map(|ops| ops.keys().map(|m| m.to_uppercase()).collect());
                table.add(&format!("{prefix}{path}"), methods.unwrap_or_default());
            }
        }
        table
    }

    pub fn add(&mut self, path: &str, mut methods: Vec<String>) {
        if methods.iter().any(|method| method == "GET") && !methods.iter().any(|method| method == "HEAD") {
            methods.push("HEAD".to_owned());
        }
        methods.sort();
        let segments = path.trim_matches('/').split('/').map(str::to_owned).collect();
        self.routes.push((segments, methods));
    }

    /// The methods allowed at a concrete path, if the path is known.
    pub fn allowed(&self, path: &str) -> Option<String> {
        let wanted: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.routes.iter().find_map(|(segments, methods)| {
            let matches = segments.len() == wanted.len()
                && segments.iter().zip(&wanted).all(|(pattern, part)| pattern.starts_with('{') || pattern == part);
            matches.then(|| methods.join(", "))
        })
    }
}

/// Middleware: turns every error into the JSON shape.
pub async fn json_errors<E: Endpoint>(
    endpoint: Arc<E>,
    req: Request,
    allow: Arc<AllowTable>,
) -> poem::Result<Response> {
    let request_id = req.extensions().get::<RequestId>().map(|id| id.0.clone());
    let path = req.uri().path().to_owned();
    let is_head = req.method() == Method::HEAD;
    let mut route = None;
    let outcome = match endpoint.call(req).await {
        Ok(response) => Ok(response.into_response()),
        // A typed error response from a handler: keep its code and body.
        Err(err) if err.is_from_response() => {
            route = err.data::<PathPattern>().cloned();
            Ok(err.into_response())
        }
        Err(err) => {
            route = err.data::<PathPattern>().cloned();
            Err(err)
        }
    };
    let routed = |mut response: Response| {
        if let Some(route) = &route
            && response.data::<PathPattern>().is_none()
        {
            response.set_data(route.clone());
        }
        response
    };
    let (status, message) = match outcome {
        Ok(response) => {
            let status = response.status();
            let is_json = response.content_type().is_some_and(|kind| kind.starts_with("application/json"));
            let is_page = response.content_type().is_some_and(|kind| kind.starts_with("text/html"));
            if !status.is_client_error() && !status.is_server_error() {
                return Ok(routed(response));
            }
            // The share pages answer browsers with pages of their own.
            if is_page {
                let mut response = response;
                if is_head {
                    response.set_body(());
                }
                return Ok(routed(response));
            }
            if is_json {
                let mut response = with_request_id(response, request_id).await;
                if is_head {
                    response.set_body(());
                }
                return Ok(routed(response));
            }
            (status, status.canonical_reason().unwrap_or("error").to_owned())
        }
        Err(err) => (err.status(), err.to_string()),
    };
    let message = match status.as_u16() {
        404 => format!("nothing is at {path}"),
        405 => format!("{path} does not take this method"),
        500..=599 => {
            tracing::error!(request_id = request_id.as_deref().unwrap_or(""), error = %message, "request failed");
            "the server could not complete the request; it has been logged".to_owned()
        }
        _ => message,
    };
    let mut response = error_response(status, code_for_status(status), message, request_id);
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = allow.allowed(&path).and_then(|methods| HeaderValue::from_str(&methods).ok())
    {
        response.headers_mut().insert(header::ALLOW, methods);
    }
    if is_head {
        response.set_body(());
    }
    Ok(routed(with_bearer_challenge(response)))
}

/// A 401 names the scheme the client should use (RFC 9110).
fn with_bearer_challenge(mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED && !response.headers().contains_key(header::WWW_AUTHENTICATE) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// Adds the request id to an error body a handler built itself.
async fn with_request_id(response: Response, request_id: Option<String>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = body.into_vec().await.unwrap_or_default();
    let body = match (serde_json::from_slice::<serde_json::Value>(&bytes), request_id) {
        (Ok(serde_json::Value::Object(mut object)), Some(id)) if object.contains_key("error") => {
            object.entry("request_id").or_insert(serde_json::Value::String(id));
            serde_json::to_vec(&object).unwrap_or(bytes)
        }
        _ => bytes,
    };
    let mut response = Response::from_parts(parts, body.into());
    response.headers_mut().remove(header::CONTENT_LENGTH);
    with_bearer_challenge(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_table_matches_templates_and_adds_head_to_get() {
        let spec = r#"{"paths": {"/health": {"get": {}}, "/files/{id}": {"get": {}, "delete": {}, "patch": {}}}}"#;
        let table = AllowTable::from_spec(spec, "/api/v1");
        assert_eq!(table.allowed("/api/v1/health").as_deref(), Some("GET, HEAD"));
        assert_eq!(table.allowed("/api/v1/files/abc").as_deref(), Some("DELETE, GET, HEAD, PATCH"));
        assert_eq!(table.allowed("/api/v1/files"), None);
        assert_eq!(table.allowed("/api/v1/files/abc/extra"), None);
    }

    #[test]
    fn every_status_maps_to_a_code() {
        assert_eq!(code_for_status(StatusCode::NOT_FOUND), "not_found");
        assert_eq!(code_for_status(StatusCode::IM_A_TEAPOT), "bad_request");
        assert_eq!(code_for_status(StatusCode::BAD_GATEWAY), "internal_error");
    }
}
