//! Protection from slow or greedy clients: handshake and header timeouts, idle connections,
//! the connection limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

use crate::helpers::{Options, PATIENCE, TestApp, spawn_app};

async fn connect_http1(app: &TestApp) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(app.self_signed_cert()).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(coffer::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// Reads until the server closes; `true` if it did within `PATIENCE`.
async fn closed_by_server(stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
    let mut sink = Vec::new();
    timeout(PATIENCE, stream.read_to_end(&mut sink)).await.is_ok()
}

#[tokio::test]
async fn client_trickling_headers_is_cut_off_at_the_header_timeout() {
    let app = spawn_app(Options { toml: "[server]\nheader_read_timeout = \"1s\"\n".into(), ..Options::default() });
    let mut tls = connect_http1(&app).await;
    tls.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
    tls.flush().await.unwrap();
    let started = Instant::now();
    // One byte every 100 ms would take 30 s to finish the header; the server must not wait.
    let mut cut_off = false;
    let mut reply = [0u8; 512];
    for _ in 0..300 {
        if tls.write_all(b"a").await.is_err() || tls.flush().await.is_err() {
            cut_off = true;
            break;
        }
        match timeout(Duration::from_millis(100), tls.read(&mut reply)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_off = true;
                break;
            }
            Ok(Ok(read)) => {
                let text = String::from_utf8_lossy(&reply[..read]);
                assert!(!text.contains(" 200 "), "a trickled request was served: {text}");
                cut_off = true;
                break;
            }
        }
    }
    assert!(cut_off, "the trickling client was never cut off");
    assert!(started.elapsed() < Duration::from_secs(15), "cut off only after {:?}", started.elapsed());
}

#[tokio::test]
async fn client_that_never_completes_the_tls_handshake_is_dropped() {
    let app = spawn_app(Options { toml: "[server]\nheader_read_timeout = \"1s\"\n".into(), ..Options::default() });
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    assert!(closed_by_server(&mut tcp).await, "a silent connection was kept open");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_but_a_moving_one_is_not() {
    let app = spawn_app(Options {
        toml: "[server]\nidle_timeout = \"1s\"\nheader_read_timeout = \"30s\"\n".into(),
        ..Options::default()
    });
    // Moving: a byte every 300 ms for 3 s spans several idle timeouts, yet is served.
    let mut moving = connect_http1(&app).await;
    let request = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Pad: 0123456789\r\n\r\n";
    for (index, byte) in request.iter().enumerate() {
        moving.write_all(&[*byte]).await.unwrap();
        moving.flush().await.unwrap();
        if (20..30).contains(&index) {
            let mut probe = [0u8; 1];
            let waited = timeout(Duration::from_millis(300), moving.read(&mut probe)).await;
            assert!(waited.is_err(), "the server answered or closed a moving connection early");
        }
    }
    let mut reply = String::new();
    timeout(PATIENCE, moving.read_to_string(&mut reply)).await.unwrap().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // Idle: after one request the connection sits unused and the server closes it.
    let mut idle = connect_http1(&app).await;
    idle.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut first = [0u8; 16];
    timeout(PATIENCE, idle.read(&mut first)).await.unwrap().unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    assert!(closed_by_server(&mut idle).await, "an idle connection was kept open");
}

#[tokio::test]
async fn clients_beyond_max_connections_wait_until_one_ends() {
    let app = spawn_app(Options { toml: "[server]\nmax_connections = 2\n".into(), ..Options::default() });
    let first = connect_http1(&app).await;
    let _second = connect_http1(&app).await;
    let app = Arc::new(app);
    let waiting = tokio::spawn({
        let app = Arc::clone(&app);
        async move { connect_http1(&app).await }
    });
    tokio::pin!(waiting);
    assert!(
        timeout(Duration::from_secs(1), &mut waiting).await.is_err(),
        "a third connection was served while two were open"
    );
    drop(first);
    let mut third = timeout(PATIENCE, waiting).await.expect("served once a slot freed").unwrap();
    third.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    timeout(PATIENCE, third.read_to_string(&mut reply)).await.unwrap().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn request_head_over_max_header_size_is_refused_with_431() {
    let app = spawn_app(Options { toml: "[server]\nmax_header_size = \"16 KiB\"\n".into(), ..Options::default() });
    let http1 = app.http1_client();
    let small = http1.get(app.url("/api/v1/health")).header("x-padding", "a".repeat(8 * 1024)).send().await.unwrap();
    assert_eq!(small.status(), 200);
    let large = http1.get(app.url("/api/v1/health")).header("x-padding", "a".repeat(32 * 1024)).send().await;
    match large {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(err) => panic!("expected a 431 answer, got {err}"),
    }
}
