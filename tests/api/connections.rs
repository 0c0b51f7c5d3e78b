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
    connect_tls(app, "127.0.0.1", b"http/1.1").await.expect("TLS handshake")
}

/// A TLS connection from the loopback address `source`, offering ALPN `protocol`.
async fn connect_tls(app: &TestApp, source: &str, protocol: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(app.self_signed_cert()).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(coffer::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![protocol.to_vec()];
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let tcp = socket.connect(app.addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await
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
        toml: "[server]\nidle_timeout = \"1s\"\nkeep_alive_timeout = \"1s\"\nheader_read_timeout = \"30s\"\n".into(),
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

/// A TLS connection that finishes its handshake and then says nothing, in each way a client can.
async fn silent_after_handshake(app: &TestApp, protocol: &[u8], preface: bool) -> TlsStream<TcpStream> {
    let mut tls = connect_tls(app, "127.0.0.1", protocol).await.expect("TLS handshake");
    if preface {
        // The HTTP/2 preface and an empty SETTINGS frame, then nothing.
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
        tls.flush().await.unwrap();
    }
    tls
}

#[tokio::test]
async fn connections_that_send_no_request_are_closed_at_the_header_timeout_not_the_idle_timeout() {
    let app = spawn_app(Options {
        toml: "[server]\nheader_read_timeout = \"1s\"\nidle_timeout = \"10m\"\nkeep_alive_timeout = \"10m\"\n".into(),
        ..Options::default()
    });
    for (protocol, preface) in [(&b"http/1.1"[..], false), (&b"h2"[..], false), (&b"h2"[..], true)] {
        let mut silent = silent_after_handshake(&app, protocol, preface).await;
        let label = format!("{} preface={preface}", String::from_utf8_lossy(protocol));
        assert!(closed_by_server(&mut silent).await, "a silent {label} connection was kept open");
    }
}

#[tokio::test]
async fn keep_alive_is_short_and_separate_from_the_idle_timeout_of_a_transfer() {
    let app = spawn_app(Options {
        toml: "[server]\nheader_read_timeout = \"30s\"\nidle_timeout = \"10m\"\nkeep_alive_timeout = \"1s\"\n".into(),
        ..Options::default()
    });
    let mut connection = connect_http1(&app).await;
    connection.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut first = [0u8; 16];
    timeout(PATIENCE, connection.read(&mut first)).await.unwrap().unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    assert!(closed_by_server(&mut connection).await, "an unused keep-alive connection outlived keep_alive_timeout");
}

#[tokio::test]
async fn one_address_cannot_take_the_whole_connection_budget() {
    let app = spawn_app(Options {
        toml: "[server]\nmax_connections = 12\nmax_connections_per_address = 4\nheader_read_timeout = \"30s\"\n".into(),
        ..Options::default()
    });
    // One client opens the whole budget and sits on it.
    let mut held = Vec::new();
    for _ in 0..12 {
        if let Ok(connection) = connect_tls(&app, "127.0.0.1", b"http/1.1").await {
            held.push(connection);
        }
    }
    // Only its share is kept; the rest were closed at once.
    let mut kept = 0;
    for connection in &mut held {
        let mut probe = [0u8; 1];
        if timeout(Duration::from_millis(200), connection.read(&mut probe)).await.is_err() {
            kept += 1;
        }
    }
    assert_eq!(kept, 4, "connections kept for one address");
    // Another client is served at once.
    let other = app.client_from("127.0.0.2");
    let response = timeout(Duration::from_secs(5), other.get(app.url("/api/v1/health")).send())
        .await
        .expect("another client is served while the first holds its connections")
        .unwrap();
    assert_eq!(response.status(), 200);
}
