//! The HTTP surface every route shares: error shape, headers, request ids, logs, docs.

use serde_json::Value;

use crate::helpers::{Options, spawn_app, spawn_default};

#[tokio::test]
async fn unknown_route_gets_the_json_404() {
    let app = spawn_default();
    let response = app.get("/no/such/route").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("/no/such/route"));
    assert_eq!(body["request_id"], request_id.as_str());
}

#[tokio::test]
async fn wrong_method_gets_405_with_allow() {
    let app = spawn_default();
    for (path, allowed) in
        [("/api/v1/health", "GET, HEAD"), ("/api/v1/openapi.json", "GET, HEAD"), ("/docs", "GET, HEAD")]
    {
        let response = app.client.delete(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(response.headers()["allow"], allowed, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed");
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_default();
    for path in ["/api/v1/health", "/no/such/route", "/docs", "/api/v1/openapi.json"] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{path}");
        assert!(headers["strict-transport-security"].to_str().unwrap().starts_with("max-age="), "{path}");
    }
}

#[tokio::test]
async fn plain_http_mode_serves_without_hsts() {
    let app = spawn_app(Options { toml: "[tls]\nmode = \"off\"\n".into(), ..Options::default() });
    assert!(app.base_url.starts_with("http://"));
    let response = app.get("/api/v1/health").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("strict-transport-security").is_none());
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn request_ids_are_echoed_when_plain_and_replaced_otherwise() {
    let app = spawn_default();
    let echoed = app.client.get(app.url("/api/v1/health")).header("x-request-id", "trace-42.a_b").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42.a_b");
    let replaced = app.client.get(app.url("/api/v1/health")).header("x-request-id", "<script>").send().await.unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "<script>");
    assert_eq!(id.len(), 32);
}

#[tokio::test]
async fn each_request_logs_one_line_with_id_method_path_status_and_duration_but_no_query() {
    let app = spawn_default();
    let response = app
        .client
        .get(app.url("/api/v1/health?access_token=sekrit-value-123"))
        .header("x-request-id", "log-line-test")
        .header("authorization", "Bearer sekrit-bearer-456")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let line = app
        .logs
        .wait_for(|line| line["message"] == "request" && line["request_id"] == "log-line-test")
        .expect("a request line was logged");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api/v1/health");
    assert_eq!(line["status"], 200);
    assert!(line["duration_ms"].as_str().unwrap().parse::<f64>().unwrap() >= 0.0);
    let logs = app.logs.text();
    assert!(!logs.contains("sekrit"), "a secret reached the log:\n{logs}");
}

#[tokio::test]
async fn oversized_request_body_gets_413_in_the_json_shape() {
    let app = spawn_app(Options { toml: "[server]\nmax_body_size = \"64 KiB\"\n".into(), ..Options::default() });
    let response = app.client.post(app.url("/api/v1/health")).body(vec![b'x'; 65 * 1024]).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
}

#[tokio::test]
async fn openapi_document_and_docs_page_are_served_from_the_binary() {
    let app = spawn_default();
    let spec: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/health", "/ready"] {
        assert!(spec["paths"][path]["get"].is_object(), "{path} missing from the OpenAPI document");
    }
    let form = &spec["paths"]["/files"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"];
    assert_eq!(form["required"], serde_json::json!(["file"]), "the multipart upload is documented as a form");
    assert!(spec["paths"]["/files/upload"]["put"]["requestBody"]["content"]["application/octet-stream"].is_object());
    assert!(spec["paths"]["/files/{id}/content"]["get"]["responses"]["206"].is_object());
    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), 200);
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = docs.text().await.unwrap();
    assert!(html.contains("SwaggerUIBundle"), "the docs page embeds Swagger UI");
    for external in ["src=\"http", "href=\"http", "src='http", "href='http", "//cdn", "unpkg.com", "jsdelivr"] {
        assert!(!html.contains(external), "the docs page loads something from outside: {external}");
    }
}
