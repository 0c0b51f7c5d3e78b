//! ACME against the real Pebble (Debian packages `pebble`): a certificate obtained with
//! TLS-ALPN-01 and trusted through Pebble's root, readiness until then, and a restart that
//! reuses the stored certificate without a new order.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{Options, PATIENCE, TestApp, spawn_app};

const DOMAIN: &str = "coffer.test";

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills its process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pebble and its DNS (every name is 127.0.0.1), with a CA the test made for Pebble's own
/// HTTPS listener (the package ships none).
pub struct Pebble {
    processes: Vec<Running>,
    _dir: tempfile::TempDir,
    config: PathBuf,
    dns: String,
    pub directory_url: String,
    /// Trust for Pebble's API (not for the certificates it issues).
    pub api_root: PathBuf,
    management: SocketAddr,
}

/// Where a Pebble listens and validates; the same ports serve a restarted Pebble.
#[derive(Clone, Copy)]
pub struct PebblePorts {
    api: u16,
    management: u16,
    dns: u16,
    /// Coffer's HTTPS port, where TLS-ALPN-01 is validated.
    tls: u16,
    /// Coffer's plain-HTTP port, where HTTP-01 is validated.
    http: u16,
}

impl PebblePorts {
    pub fn new(tls: u16, http: u16) -> Self {
        Self { api: free_tcp_port(), management: free_tcp_port(), dns: free_udp_port(), tls, http }
    }
}

impl Pebble {
    /// Validates TLS-ALPN-01 on `tls_port` of 127.0.0.1.
    pub async fn start(tls_port: u16) -> Self {
        Self::start_with(PebblePorts::new(tls_port, free_tcp_port()), None).await
    }

    /// `validity`: seconds each issued certificate lasts (short-lived ones force renewals).
    pub async fn start_with(ports: PebblePorts, validity: Option<u64>) -> Self {
        let PebblePorts { api, management, dns, tls: tls_port, http: http_port } = ports;
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), ca.pem()).unwrap();
        std::fs::write(path("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(path("key.pem"), leaf_key.serialize_pem()).unwrap();

        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{api}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": path("cert.pem"),
            "privateKey": path("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let mut config = config;
        if let Some(seconds) = validity {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        std::fs::write(path("pebble.json"), config.to_string()).unwrap();
        let directory_url = format!("https://127.0.0.1:{api}/dir");
        let mut pebble = Self {
            processes: Vec::new(),
            api_root: path("ca.pem"),
            config: path("pebble.json"),
            dns: format!("127.0.0.1:{dns}"),
            _dir: dir,
            directory_url,
            management: SocketAddr::from(([127, 0, 0, 1], management)),
        };
        pebble.run().await;
        pebble
    }

    /// Starts the processes and waits until Pebble answers.
    async fn run(&mut self) {
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", &self.dns])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_tcp_port())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv runs (Debian package pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&self.config)
            .args(["-dnsserver", &self.dns])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble runs (Debian package pebble)");
        self.processes = vec![Running(challtestsrv), Running(pebble)];
        // Pebble has no readiness signal: poll its directory until it answers.
        let client = crate::helpers::client_trusting(Some(&self.api_root));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while client.get(&self.directory_url).send().await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "pebble did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops Pebble: the CA is unreachable until [`Self::restart`].
    pub fn stop(&mut self) {
        self.processes.clear();
    }

    /// A fresh Pebble on the same address (it has forgotten every account and order).
    pub async fn restart(&mut self) {
        self.run().await;
    }

    /// The root that signs the certificates Pebble issues.
    pub async fn issuing_root(&self, into: &Path) -> PathBuf {
        let client = crate::helpers::client_trusting(Some(&self.api_root));
        let root = client.get(format!("https://{}/roots/0", self.management)).send().await.unwrap();
        let path = into.join("pebble-root.pem");
        std::fs::write(&path, root.text().await.unwrap()).unwrap();
        path
    }
}

fn acme_options(pebble: &Pebble, port: u16, state_dir: PathBuf) -> Options {
    Options {
        toml: format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[tls]\nmode = \"acme\"\ndomains = [\"{DOMAIN}\"]\n\
             [acme]\ndirectory_url = \"{}\"\nca_root = {:?}\nretry_after = \"1s\"\n",
            pebble.directory_url,
            pebble.api_root.display().to_string()
        ),
        state_dir: Some(state_dir),
        ..Options::default()
    }
}

/// A client that trusts `root` and reaches DOMAIN at the server's address.
fn domain_client(app: &TestApp, root: &Path) -> reqwest::Client {
    let pem = std::fs::read(root).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve(DOMAIN, app.addr)
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_certificate_comes_by_tls_alpn_01_and_a_restart_reuses_it() {
    let port = free_tcp_port();
    let pebble = Pebble::start(port).await;
    let state = tempfile::tempdir().unwrap();
    let mut app = spawn_app(acme_options(&pebble, port, state.path().join("state")));
    app.logs.wait_for_message("obtained a new certificate; serving it").expect("a certificate from Pebble");

    let root = pebble.issuing_root(state.path()).await;
    let url = format!("https://{DOMAIN}:{port}/api/v1/ready");
    let ready = domain_client(&app, &root).get(&url).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    let check = body["checks"].as_array().unwrap().iter().find(|check| check["name"] == "certificate").unwrap();
    assert!(check["detail"].as_str().unwrap().starts_with("valid "), "{check}");
    for file in ["account.json", "cert.pem", "key.pem"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(app.state_dir.join("acme").join(file)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // A restart serves the stored certificate and orders nothing.
    app.terminate();
    assert!(app.wait_exit().await.success());
    let again = spawn_app(acme_options(&pebble, port, state.path().join("state")));
    again.logs.wait_for_message("serving the stored ACME certificate").expect("the stored certificate");
    let ready = domain_client(&again, &root).get(&url).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(!again.logs.text().contains("ordering a certificate"), "no new order after a restart");
}

#[tokio::test]
async fn without_a_certificate_the_server_starts_and_says_why_it_is_not_ready() {
    // A CA that does not answer: the server runs, not ready, naming the error.
    let port = free_tcp_port();
    let closed = free_tcp_port();
    let state = tempfile::tempdir().unwrap();
    let notify_path = state.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&notify_path).unwrap();
    let app = spawn_app(Options {
        env: vec![("NOTIFY_SOCKET".into(), notify_path.display().to_string())],
        toml: format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[tls]\nmode = \"acme\"\ndomains = [\"{DOMAIN}\"]\n\
             [acme]\ndirectory_url = \"https://127.0.0.1:{closed}/dir\"\nretry_after = \"1s\"\n"
        ),
        state_dir: Some(state.path().join("state")),
        ..Options::default()
    });
    app.logs
        .wait_for_message("cannot obtain a certificate; the current one (if any) stays")
        .expect("the failure is logged");
    // Until then the self-signed certificate answers, and readiness says why it is 503.
    let ready = app.get("/api/v1/ready").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    let check = body["checks"].as_array().unwrap().iter().find(|check| check["name"] == "certificate").unwrap();
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.starts_with("no certificate yet") && detail.contains("the last attempt failed"), "{detail}");
    assert_eq!(app.get("/api/v1/health").await.status(), 200, "alive all the same");
    // systemd's status line says what is going on, not the fallback certificate's expiry.
    let mut buffer = vec![0u8; 4096];
    let length = tokio::time::timeout(PATIENCE, notify.recv(&mut buffer)).await.unwrap().unwrap();
    let ready = String::from_utf8_lossy(&buffer[..length]).into_owned();
    assert!(ready.contains("READY=1") && ready.contains("obtaining a certificate from the ACME CA"), "{ready}");
}

#[tokio::test]
async fn a_certificate_comes_by_http_01_on_the_plain_http_listener() {
    let (port, http_port) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start_with(PebblePorts::new(port, http_port), None).await;
    let state = tempfile::tempdir().unwrap();
    let mut options = acme_options(&pebble, port, state.path().join("state"));
    options.toml.push_str("challenge = \"http-01\"\n");
    options.toml =
        options.toml.replace("[server]\n", &format!("[server]\nhttp_listen = [\"127.0.0.1:{http_port}\"]\n"));
    let app = spawn_app(options);
    app.logs.wait_for_message("obtained a new certificate; serving it").expect("a certificate by HTTP-01");
    let root = pebble.issuing_root(state.path()).await;
    let url = format!("https://{DOMAIN}:{port}/api/v1/health");
    assert_eq!(domain_client(&app, &root).get(&url).send().await.unwrap().status(), 200);

    // Otherwise the plain-HTTP listener only redirects to HTTPS.
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response =
        plain.get(format!("http://127.0.0.1:{http_port}/s/abc?x=1")).header("host", DOMAIN).send().await.unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], format!("https://{DOMAIN}:{port}/s/abc?x=1"));
}

async fn admin_token(app: &TestApp, client: &reqwest::Client, base: &str) -> String {
    let password = std::fs::read_to_string(app.state_dir.join("initial-admin-password")).unwrap();
    let login = serde_json::json!({"username": "admin", "password": password.trim()});
    let tokens: serde_json::Value =
        client.post(format!("{base}/api/v1/auth/login")).json(&login).send().await.unwrap().json().await.unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn renewal_swaps_the_certificate_while_a_long_download_goes_on() {
    let port = free_tcp_port();
    // Certificates of 12 s: renewal is due after about 8 s.
    let pebble = Pebble::start_with(PebblePorts::new(port, free_tcp_port()), Some(12)).await;
    let state = tempfile::tempdir().unwrap();
    let app = spawn_app(acme_options(&pebble, port, state.path().join("state")));
    let first = app.logs.wait_for_message("obtained a new certificate; serving it").expect("a first certificate");
    let root = pebble.issuing_root(state.path()).await;
    let client = domain_client(&app, &root);
    let base = format!("https://{DOMAIN}:{port}");
    let token = admin_token(&app, &client, &base).await;
    let data: Vec<u8> = (0..24u32 << 20).map(|index| (index % 251) as u8).collect();
    let stored: serde_json::Value = client
        .put(format!("{base}/api/v1/files/upload?name=long.bin"))
        .bearer_auth(&token)
        .body(data.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // A download starts on the first certificate's connection and pauses after one chunk.
    let download = client
        .get(format!("{base}/api/v1/files/{}/content", stored["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut body = download.bytes_stream();
    let mut received = futures_util::StreamExt::next(&mut body).await.unwrap().unwrap().to_vec();
    let renewed = app
        .logs
        .wait_for(|line| {
            line["message"] == "obtained a new certificate; serving it" && line["not_after"] != first["not_after"]
        })
        .expect("renewed before expiry");
    assert_ne!(renewed["not_after"], first["not_after"]);
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        received.extend_from_slice(&chunk.expect("the download goes on across the renewal"));
    }
    assert_eq!(received, data);
    // New connections get the new certificate (from the same root).
    assert_eq!(domain_client(&app, &root).get(format!("{base}/api/v1/health")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_ca_outage_at_renewal_keeps_the_old_certificate_and_renewal_succeeds_when_it_is_back() {
    let port = free_tcp_port();
    let ports = PebblePorts::new(port, free_tcp_port());
    let mut pebble = Pebble::start_with(ports, Some(12)).await;
    let state = tempfile::tempdir().unwrap();
    let app = spawn_app(acme_options(&pebble, port, state.path().join("state")));
    let first = app.logs.wait_for_message("obtained a new certificate; serving it").expect("a first certificate");
    let root = pebble.issuing_root(state.path()).await;
    pebble.stop();

    // Renewal fails while the CA is away: logged, reported, the old certificate still served.
    app.logs.wait_for_message("cannot obtain a certificate; the current one (if any) stays").expect("the failure");
    let base = format!("https://{DOMAIN}:{port}");
    let ready: serde_json::Value =
        domain_client(&app, &root).get(format!("{base}/api/v1/ready")).send().await.unwrap().json().await.unwrap();
    let check = ready["checks"].as_array().unwrap().iter().find(|check| check["name"] == "certificate").unwrap();
    assert!(check["detail"].as_str().unwrap().contains("the last attempt failed"), "{check}");

    // The CA comes back (a fresh Pebble on the same address, which has forgotten the account).
    pebble.restart().await;
    let renewed = app
        .logs
        .wait_for(|line| {
            line["message"] == "obtained a new certificate; serving it" && line["not_after"] != first["not_after"]
        })
        .expect("renewed once the CA is back");
    assert_ne!(renewed["not_after"], first["not_after"]);
    app.logs.wait_for_message("the CA does not know the stored account; creating a new one").expect("a new account");
}
