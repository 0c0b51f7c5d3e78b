//! A real SMTP server on 127.0.0.1 for the mail tests: `tests/support/smtp-server.py`
//! (aiosmtpd from `target/test-venv`, which `tests/run` makes) with STARTTLS and AUTH required,
//! a certificate from a private CA the test makes, and fault injection.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::helpers::eventually;

pub const SMTP_USER: &str = "coffer-mailer";
pub const SMTP_PASSWORD: &str = "smtp-Secret-9f2Kq";
pub const PUBLIC_URL: &str = "https://files.example.test";

pub struct Smtp {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python3");
    assert!(venv.exists(), "{} is missing: run tests/run once to make the test venv", venv.display());
    venv
}

impl Smtp {
    /// Starts the server on a free port, with a fresh CA and leaf certificate.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("leaf.key"), leaf_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("password"), format!("{SMTP_PASSWORD}\n")).unwrap();
        let mut smtp = Self { child: None, dir, port: 0 };
        smtp.spawn();
        smtp
    }

    fn spawn(&mut self) {
        let path = |name: &str| self.dir.path().join(name);
        let mut child = Command::new(python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp-server.py"))
            .args([path(""), PathBuf::from(self.port.to_string()), path("leaf.pem"), path("leaf.key")])
            .args([SMTP_USER, SMTP_PASSWORD])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("ready ").unwrap_or_else(|| panic!("SMTP server said {line:?}"));
        self.port = port.parse().unwrap();
        self.child = Some(child);
    }

    /// Stops the server (SIGKILL); `resume` starts it again on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn resume(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }

    /// `451` (DATA refused for now), `550` (recipient refused for good) or `ok`.
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).unwrap();
    }

    /// The `[mail]` settings (and `server.public_url`) for a Coffer using this server.
    pub fn toml(&self) -> String {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        format!(
            "[server]\npublic_url = {PUBLIC_URL:?}\n[mail]\nhost = \"localhost\"\nport = {}\nsecurity = \"starttls\"\nusername = {SMTP_USER:?}\npassword_file = {:?}\nfrom = \"Coffer <coffer@example.test>\"\nca_file = {:?}\ntimeout = \"3s\"\n",
            self.port,
            path("password"),
            path("ca.pem"),
        )
    }

    /// Every message accepted so far, parsed (see the script).
    pub fn received(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("received.jsonl")).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// Message-IDs of every DATA attempt, accepted or not.
    pub fn attempts(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.path().join("attempts")).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    /// Waits (bounded) until `count` messages have arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Value> {
        let arrived = eventually(|| self.received().len() >= count).await;
        let received = self.received();
        assert!(arrived, "expected {count} messages, got {}: {received:#?}", received.len());
        received
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}
