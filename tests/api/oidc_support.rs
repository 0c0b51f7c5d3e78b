//! A real OpenID Provider for the OIDC tests, and a browser-free walk through the code flow.
//!
//! The provider is panva's certified `oidc-provider` (tests/oidc-provider, pinned by its
//! package-lock.json; `tests/run` installs it), run with Node on a fixed loopback port so that
//! a restart (a key rotation) keeps its issuer. Its accounts live in a JSON file it reads at
//! every sign-in, so a test can change someone's groups between sign-ins.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Options, PATIENCE, TestApp, spawn_app};

const PROVIDER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");
pub const CLIENT_SECRET: &str = "coffer-test-secret";

/// The test accounts at the provider (claims beside `sub`, which is the account's name).
pub fn default_accounts() -> Value {
    json!({
        "alice": {"email": "alice@example.org", "email_verified": true, "preferred_username": "alice", "groups": ["staff", "coffer-admins"]},
        "bob": {"email": "bob@example.org", "email_verified": true, "preferred_username": "bob", "groups": ["staff"]},
        "eve": {"email": "eve@example.org", "email_verified": true, "preferred_username": "eve", "groups": ["guests"]},
        // Claims carol's address without the provider having verified it: a takeover attempt.
        "mallory": {"email": "carol@example.org", "email_verified": false, "preferred_username": "mallory", "groups": ["staff"]},
        "carol-at-idp": {"email": "carol@example.org", "email_verified": true, "preferred_username": "carol", "groups": ["staff"]},
        "root-at-idp": {"email": "root@example.org", "email_verified": true, "groups": ["staff"]},
    })
}

pub struct OpServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    redirect_uri: Option<String>,
}

/// A free port under Linux's ephemeral range (32768-60999). One picked with port 0 and
/// released can be taken by any test's outgoing connection before node binds it (seen once in
/// CI: the provider never said it was listening); servers and clients never get these.
fn free_port_below_ephemeral_range() -> u16 {
    loop {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl OpServer {
    /// Picks the provider's port (free now; the provider binds it when started) and writes
    /// the client secret and accounts; the provider starts once Coffer's address is known.
    pub fn prepare() -> Self {
        let port = free_port_below_ephemeral_range();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-secret"), format!("{CLIENT_SECRET}\n")).unwrap();
        let op = Self { child: None, port, dir, redirect_uri: None };
        op.set_accounts(&default_accounts());
        op
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_accounts(&self, accounts: &Value) {
        std::fs::write(self.dir.path().join("accounts.json"), accounts.to_string()).unwrap();
    }

    /// The `[[oidc.providers]]` table for this provider, id `test`, with `extra` lines.
    pub fn provider_toml(&self, extra: &str) -> String {
        format!(
            "[[oidc.providers]]\nid = \"test\"\nlabel = \"Test IdP\"\nissuer = \"{}\"\nclient_id = \"coffer\"\n\
             client_secret_file = {:?}\nscopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n{extra}\n",
            self.issuer(),
            self.dir.path().join("client-secret").display().to_string()
        )
    }

    /// Starts (or restarts) the provider signing with the key in `key_file` (made, with key
    /// id `kid`, if missing), misbehaving as `tamper` says (see provider.mjs).
    pub fn start(&mut self, redirect_uri: &str, key_file: &str, kid: &str, tamper: &str) {
        self.start_with(redirect_uri, key_file, kid, tamper, false);
    }

    /// `start`, and with `userinfo_only` the ID token carries only the required claims.
    pub fn start_with(&mut self, redirect_uri: &str, key_file: &str, kid: &str, tamper: &str, userinfo_only: bool) {
        self.stop();
        self.redirect_uri = Some(redirect_uri.to_owned());
        assert!(
            Path::new(PROVIDER_DIR).join("node_modules/oidc-provider").exists(),
            "the test OpenID Provider is not installed: run tests/run (or npm ci in tests/oidc-provider)"
        );
        let mut child = Command::new("node")
            .arg(Path::new(PROVIDER_DIR).join("provider.mjs"))
            .env("OP_PORT", self.port.to_string())
            .env("OP_REDIRECT_URI", redirect_uri)
            .env("OP_KEY_FILE", self.dir.path().join(key_file))
            .env("OP_KID", kid)
            .env("OP_ACCOUNTS", self.dir.path().join("accounts.json"))
            .env("OP_TAMPER", tamper)
            .env("OP_USERINFO_ONLY", if userinfo_only { "1" } else { "0" })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("listening") {
                    let _ = sender.send(());
                }
            }
        });
        self.child = Some(child);
        receiver.recv_timeout(PATIENCE).expect("the OpenID Provider started");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Coffer with provider `test` (configured by `extra`) and the provider running honestly.
pub fn coffer_with_provider(extra_provider: &str, extra_toml: &str) -> (TestApp, OpServer) {
    let mut op = OpServer::prepare();
    let toml = format!("{extra_toml}\n{}", op.provider_toml(extra_provider));
    let app = spawn_app(Options { toml, ..Options::default() });
    op.start(&app.url("/auth/oidc/callback"), "key-1.json", "k1", "");
    (app, op)
}

/// Cookies by name, sent to every request of one site (enough for these flows).
#[derive(Default)]
pub struct Jar(Vec<(String, String)>);

impl Jar {
    pub fn take(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.0.retain(|(known, _)| known != name);
            if !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub fn header(&self) -> String {
        self.0.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(known, _)| known == name).map(|(_, value)| value.as_str())
    }
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no redirect from {}", response.url()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Signs in at the provider as `account` from `authorization_url`, following its redirects
/// by hand; returns the URL it sends the browser back to (Coffer's callback with the code).
pub async fn sign_in_at_provider(op: &OpServer, authorization_url: &str, account: &str) -> String {
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(PATIENCE).build().unwrap();
    let mut jar = Jar::default();
    let mut url = authorization_url.to_owned();
    for _ in 0..10 {
        if !url.starts_with(&op.issuer()) && !url.starts_with('/') {
            return url;
        }
        let absolute = if url.starts_with('/') { format!("{}{url}", op.issuer()) } else { url.clone() };
        let response = client.get(&absolute).header("cookie", jar.header()).send().await.unwrap();
        jar.take(&response);
        if response.status() == StatusCode::OK && absolute.contains("/interaction/") {
            let form = [("prompt", "login"), ("login", account), ("password", "any")];
            let response = client.post(&absolute).header("cookie", jar.header()).form(&form).send().await.unwrap();
            jar.take(&response);
            url = location(&response);
            continue;
        }
        assert!(response.status().is_redirection(), "the provider answered {} at {absolute}", response.status());
        url = location(&response);
    }
    panic!("the provider never sent the browser back")
}

/// What Coffer answered at the end of a sign-in.
pub struct Landing {
    pub status: StatusCode,
    pub location: Option<String>,
    /// `__Host-coffer_session=...`, to send back.
    pub session: Option<String>,
    /// Its whole `Set-Cookie` header, attributes included.
    pub session_set_cookie: Option<String>,
    pub page: String,
    /// The callback URL the provider sent the browser to (for replays).
    pub callback: String,
    /// The browser-binding cookie the sign-in started with.
    pub binding: String,
}

/// Starts a sign-in at Coffer (`GET /auth/oidc/test`): the provider's URL and the binding cookie.
pub async fn start_sign_in(app: &TestApp) -> (String, String) {
    let response = app.get("/auth/oidc/test").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let mut jar = Jar::default();
    jar.take(&response);
    let binding = format!("__Host-coffer_oidc={}", jar.get("__Host-coffer_oidc").expect("binding cookie"));
    (location(&response), binding)
}

/// Delivers the provider's answer to Coffer as the browser would, with `cookie`.
pub async fn deliver(app: &TestApp, callback: &str, cookie: &str) -> Landing {
    assert!(callback.starts_with(&app.url("/auth/oidc/callback")), "{callback}");
    let response = app.client.get(callback).header("cookie", cookie).send().await.unwrap();
    let mut jar = Jar::default();
    jar.take(&response);
    let session_set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with("__Host-coffer_session="));
    let status = response.status();
    let location = response.headers().get("location").map(|value| value.to_str().unwrap().to_owned());
    let session = jar.get("__Host-coffer_session").map(|value| format!("__Host-coffer_session={value}"));
    let page = response.text().await.unwrap();
    Landing {
        status,
        location,
        session,
        session_set_cookie,
        page,
        callback: callback.to_owned(),
        binding: cookie.to_owned(),
    }
}

/// The whole sign-in as `account`: Coffer, the provider, back to Coffer.
pub async fn provider_sign_in(app: &TestApp, op: &OpServer, account: &str) -> Landing {
    let (authorization_url, binding) = start_sign_in(app).await;
    let callback = sign_in_at_provider(op, &authorization_url, account).await;
    deliver(app, &callback, &binding).await
}

/// The newest audit rows of `event`: (actor, detail).
pub fn audit_rows(app: &TestApp, event: &str) -> Vec<(Option<String>, String)> {
    let conn = crate::auth::db(app);
    let mut statement = conn.prepare("SELECT actor_id, detail FROM audit_log WHERE event = ?1 ORDER BY id").unwrap();
    statement.query_map([event], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect()
}
