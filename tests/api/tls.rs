//! TLS: versions, ALPN, the kept self-signed certificate, and PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Options, client_trusting, spawn_app, spawn_default, start};

fn client_config(
    cert: &Path,
    version: &'static rustls::SupportedProtocolVersion,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(cert).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(coffer::tls::crypto_provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

#[tokio::test]
async fn tls12_and_tls13_handshakes_succeed_and_negotiate_h2() {
    let app = spawn_default();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let connector =
            tokio_rustls::TlsConnector::from(client_config(&app.self_signed_cert(), version, &[b"h2", b"http/1.1"]));
        let tcp = TcpStream::connect(app.addr).await.unwrap();
        let tls = connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await.expect("handshake");
        let (_, session) = tls.get_ref();
        assert_eq!(session.protocol_version(), Some(version.version));
        assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    }
}

/// A minimal ClientHello with `legacy_version` = `version` and no supported_versions
/// extension, offering suites, groups and signature schemes rustls supports.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut hello = version.to_vec();
    hello.extend_from_slice(&[0x5a; 32]);
    hello.push(0);
    hello.extend_from_slice(&[0x00, 0x06, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x2f]);
    hello.extend_from_slice(&[0x01, 0x00]);
    let extensions: &[u8] = &[
        0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01, // signature_algorithms
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, // supported_groups
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats
    ];
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

async fn first_record(app: &crate::helpers::TestApp, hello: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut reply = vec![0u8; 7];
    tcp.read_exact(&mut reply).await.expect("the server answers the hello");
    reply
}

#[tokio::test]
async fn tls11_is_refused_with_a_protocol_version_alert() {
    let app = spawn_default();
    // Control: the same hello claiming TLS 1.2 gets a ServerHello, so the hello is well formed.
    let accepted = first_record(&app, &client_hello([0x03, 0x03])).await;
    assert_eq!(accepted[0], 0x16, "expected a handshake record, got {accepted:?}");
    assert_eq!(accepted[5], 0x02, "expected a ServerHello, got {accepted:?}");

    let refused = first_record(&app, &client_hello([0x03, 0x02])).await;
    assert_eq!(refused[0], 0x15, "expected an alert record, got {refused:?}");
    assert_eq!(refused[5], 2, "alert is fatal");
    assert_eq!(refused[6], 70, "alert is protocol_version");
}

#[tokio::test]
async fn http2_and_http11_are_both_served() {
    let app = spawn_default();
    let response = app.get("/api/v1/health").await;
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let http1 = app.http1_client();
    let response = http1.get(app.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn self_signed_certificate_is_made_once_and_kept_across_restarts() {
    let mut first = spawn_default();
    let cert_before = std::fs::read(first.self_signed_cert()).unwrap();
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(first.state_dir.join("tls/self-signed.key")).unwrap().permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    first.terminate();
    assert!(first.wait_exit().await.success());

    let second = spawn_app(Options { state_dir: Some(first.state_dir.clone()), ..Options::default() });
    assert_eq!(std::fs::read(second.self_signed_cert()).unwrap(), cert_before);
    // A client that trusted the first certificate still trusts the restarted server.
    let old_trust = client_trusting(Some(first.self_signed_cert().as_path()));
    assert_eq!(old_trust.get(second.url("/api/v1/health")).send().await.unwrap().status(), 200);
}

fn write_pair(dir: &Path, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = dir.join(format!("{}.crt", names[0]));
    let key_path = dir.join(format!("{}.key", names[0]));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

#[tokio::test]
async fn files_mode_serves_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), &["127.0.0.1", "files.test"]);
    let toml = format!(
        "[tls]\nmode = \"files\"\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let app = spawn_app(Options { toml, ..Options::default() });
    let client = client_trusting(Some(&cert));
    assert_eq!(client.get(app.url("/api/v1/health")).send().await.unwrap().status(), 200);
    assert!(!app.state_dir.join("tls/self-signed.crt").exists(), "files mode made no certificate of its own");
}

#[tokio::test]
async fn files_mode_refuses_a_key_that_does_not_fit_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = write_pair(dir.path(), &["127.0.0.1"]);
    let (_, other_key) = write_pair(dir.path(), &["other.test"]);
    let toml = format!(
        "[tls]\nmode = \"files\"\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.display().to_string(),
        other_key.display().to_string()
    );
    let Err((status, log)) = start(Options { toml, ..Options::default() }) else {
        panic!("server started with a mismatched pair");
    };
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("does not fit certificate"), "{log}");
    assert!(log.contains(&other_key.display().to_string()), "{log}");
}

#[tokio::test]
async fn files_mode_serves_renewed_files_and_keeps_the_running_pair_when_they_break() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), &["127.0.0.1"]);
    let toml = format!(
        "[tls]\nmode = \"files\"\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let app = spawn_app(Options { toml, ..Options::default() });
    let health = app.url("/api/v1/health");
    assert_eq!(client_trusting(Some(&cert)).get(&health).send().await.unwrap().status(), 200);
    let trusted_old = dir.path().join("old-trust.crt");
    std::fs::copy(&cert, &trusted_old).unwrap();

    // A renewal tool writes new files elsewhere and renames them into place.
    let staging = tempfile::tempdir_in(dir.path()).unwrap();
    let (new_cert, new_key) = write_pair(staging.path(), &["127.0.0.1", "renewed.test"]);
    let trusted_new = dir.path().join("renewed-trust.crt");
    std::fs::copy(&new_cert, &trusted_new).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    app.logs.wait_for_message("certificate files changed: serving the new certificate").expect("picked up");
    assert_eq!(client_trusting(Some(&trusted_new)).get(&health).send().await.unwrap().status(), 200);
    assert!(client_trusting(Some(&trusted_old)).get(&health).send().await.is_err(), "the old one is gone");

    // A broken file is rejected; the running certificate stays, for the watcher and SIGHUP.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    app.logs
        .wait_for_message("the changed certificate files are unusable; the running certificate stays")
        .expect("rejected");
    rustix::process::kill_process(app.pid(), rustix::process::Signal::HUP).unwrap();
    app.logs.wait_for_message("configuration rejected; the running configuration stays").expect("reload rejected");
    assert_eq!(client_trusting(Some(&trusted_new)).get(&health).send().await.unwrap().status(), 200);
}

/// Clients opened on `https://<ip>/` (wrk, curl, browsers) send the address as SNI, which
/// rustls warns about on every handshake: noise in the log and in the warning count.
#[tokio::test]
async fn an_ip_address_as_sni_leaves_no_warning_in_the_log() {
    let app = spawn_default();
    let status = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &app.addr.to_string(), "-servername", "127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    // Logged after the handshake: once its line is there, anything the handshake logged is too.
    app.client.get(app.url("/api/v1/health")).header("x-request-id", "after-the-handshake").send().await.unwrap();
    assert!(crate::helpers::eventually(|| app.logs.text().contains("after-the-handshake")).await);
    assert!(!app.logs.text().contains("SNI"), "{}", app.logs.text());
}
