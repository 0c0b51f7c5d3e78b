//! E-mail: an outbox in the database and one task that delivers it over SMTP.
//!
//! An action that causes a message (a share sent to people, a password reset, a security
//! notice) writes it to `mail_outbox` in its own transaction, so the message exists exactly
//! when the action happened; nothing is lost while the mail server is down. The sender
//! (`sender.rs`) delivers with a time limit per attempt, retries transient failures (4xx,
//! connection problems, timeouts) with growing waits, gives up on permanent ones (5xx) and
//! after a message's expiry, and keeps one Message-ID across attempts. Messages are rendered
//! when queued (`messages.rs`); links in them are built on `server.public_url`. No message
//! ever holds a share's password. With no `mail.host`, nothing is queued.

pub mod command;
pub mod messages;
mod sender;
mod transport;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Settings;
use crate::db::DbError;
use crate::db::mail::{self, NewMail};

pub use messages::Message;
pub use sender::run_sender;
pub use transport::{SendFailure, Transport};

/// Longest e-mail address accepted (RFC 5321's path limit).
pub const MAX_ADDRESS_LEN: usize = 254;

/// Checks an e-mail address a user gives (`name@example.org`, no display name); the address as
/// it will be stored.
pub fn parse_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    let problem = || format!("`{text}` is not an e-mail address like name@example.org");
    if text.is_empty() || text.len() > MAX_ADDRESS_LEN || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(problem());
    }
    let address: lettre::Address = text.parse().map_err(|_| problem())?;
    // A domain must have a dot: `root@localhost` and `a@[127.0.0.1]` are not where people read mail.
    let domain = address.domain();
    if !domain.contains('.') || domain.starts_with('[') || domain.ends_with('.') {
        return Err(problem());
    }
    Ok(address.to_string())
}

/// Where messages are queued; cheap to clone. Disabled (no `mail.host`) it queues nothing.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    enabled: bool,
    /// `server.public_url` without a trailing slash (required when mail is on).
    public_url: String,
    /// Wakes the sender when a message was queued.
    queued: Notify,
}

impl Mailer {
    pub fn from_settings(settings: &Settings) -> Self {
        let public_url =
            settings.server.public_url.as_deref().map(|url| url.trim_end_matches('/').to_owned()).unwrap_or_default();
        let enabled = settings.mail.host.is_some() && !public_url.is_empty();
        Self { inner: Arc::new(Inner { enabled, public_url, queued: Notify::new() }) }
    }

    pub fn enabled(&self) -> bool {
        self.inner.enabled
    }

    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Writes `message` to the outbox in the caller's transaction (a no-op when mail is off).
    /// The sender looks at the outbox at least every second, so a message queued in a
    /// transaction that has not committed yet is still sent soon after it does.
    pub fn queue(
        &self,
        tx: &rusqlite::Connection,
        now: i64,
        user_id: Option<&str>,
        recipient: &str,
        message: &Message,
    ) -> Result<(), DbError> {
        if !self.enabled() {
            return Ok(());
        }
        let id = hex(&rand::random::<[u8; 16]>());
        mail::insert(
            tx,
            &NewMail {
                id: &id,
                kind: message.kind,
                user_id,
                recipient,
                subject: &message.subject,
                body_text: &message.text,
                body_html: &message.html,
                now,
                expires_at: now.saturating_add(message.lifetime),
            },
        )?;
        self.inner.queued.notify_one();
        Ok(())
    }

    async fn wait_for_queued(&self) {
        self.inner.queued.notified().await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_people_use_pass_and_everything_else_is_refused() {
        assert_eq!(parse_address(" carol@example.org ").unwrap(), "carol@example.org");
        assert_eq!(parse_address("c.o+files@mail.example.co.uk").unwrap(), "c.o+files@mail.example.co.uk");
        for bad in [
            "",
            "carol",
            "carol@",
            "@example.org",
            "carol@localhost",
            "Carol <carol@example.org>",
            "carol@example.org\r\nBcc: x@example.org",
            "car ol@example.org",
            "carol@[127.0.0.1]",
            &format!("{}@example.org", "a".repeat(250)),
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
