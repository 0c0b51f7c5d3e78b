//! Graceful shutdown: stop accepting, let requests in flight finish, exit 0.

use crate::helpers::{Options, TestApp, spawn_app, spawn_default};

/// An HTTP/2 client with a small flow-control window: the server can send only 64 KiB ahead
/// of what this client has read, so a large response stays in flight until the client reads.
fn slow_reader(app: &TestApp) -> reqwest::Client {
    let pem = std::fs::read(app.self_signed_cert()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .http2_initial_stream_window_size(65_535)
        .http2_initial_connection_window_size(65_535)
        .http2_adaptive_window(false)
        .build()
        .unwrap()
}

const SHUTTING_DOWN: &str = "shutting down: refusing new connections, letting requests in flight finish";

#[tokio::test]
async fn download_in_flight_at_sigterm_completes_and_the_process_exits_0() {
    let mut app = spawn_default();
    let expected = app.get("/docs").await.bytes().await.unwrap();
    assert!(expected.len() > 1 << 20, "the docs page is large enough to stay in flight");

    let mut response = slow_reader(&app).get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let mut received = response.chunk().await.unwrap().unwrap().to_vec();

    app.terminate();
    app.logs.wait_for_message(SHUTTING_DOWN).expect("the server logged the shutdown");
    app.logs.wait_for_message("stopped listening").expect("the listener closed");
    assert!(std::net::TcpStream::connect(app.addr).is_err(), "a new connection was accepted during shutdown");

    while let Some(chunk) = response.chunk().await.expect("the download continues during shutdown") {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "the download completed byte for byte");
    let status = app.wait_exit().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", app.logs.text());
}

#[tokio::test]
async fn request_still_running_after_the_grace_is_dropped_and_the_process_exits_0() {
    let mut app = spawn_app(Options { toml: "[server]\nshutdown_grace = \"1s\"\n".into(), ..Options::default() });
    let expected = app.get("/docs").await.bytes().await.unwrap().len();
    let mut response = slow_reader(&app).get(app.url("/docs")).send().await.unwrap();
    let mut received = response.chunk().await.unwrap().unwrap().len();

    app.terminate();
    // The client reads nothing more, so the download cannot finish within the grace.
    app.logs
        .wait_for(|line| line["message"].as_str().is_some_and(|text| text.starts_with("shutdown grace")))
        .expect("the server said it gave up on the open connection");
    let status = app.wait_exit().await;
    assert_eq!(status.code(), Some(0));
    while let Ok(Some(chunk)) = response.chunk().await {
        received += chunk.len();
    }
    assert!(received < expected, "the dropped download was cut short");
}

#[tokio::test]
async fn sigint_stops_the_server_like_sigterm() {
    let mut app = spawn_default();
    assert_eq!(app.get("/api/v1/health").await.status(), 200);
    rustix::process::kill_process(app.pid(), rustix::process::Signal::INT).unwrap();
    assert_eq!(app.wait_exit().await.code(), Some(0));
    assert!(app.logs.text().contains("SIGINT"));
}
