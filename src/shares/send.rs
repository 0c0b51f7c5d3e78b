//! Sending a share's link by e-mail to people its owner names, and telling an owner who asked
//! for it that their share was downloaded.
//!
//! The mail holds the link (built on `server.public_url`), the owner's message and the expiry;
//! never the password, which the owner passes on another way. The messages are queued in the
//! transaction that audits the sending, after the share is checked to still work in it. One
//! owner may have at most [`RECIPIENTS_PER_HOUR`] share mails queued per hour, so Coffer cannot
//! be used as a spam relay.

use super::{ShareError, ShareState, Shares};
use crate::auth::Principal;
use crate::db::audit::{self, AuditEvent};
use crate::db::{mail, shares, users};
use crate::mail::Mailer;
use crate::mail::messages::{self, MAX_NOTE_CHARS, ShareMail};

/// Recipients of one request at most.
pub const MAX_RECIPIENTS: usize = 20;
/// Share mails one owner may send per hour.
pub const RECIPIENTS_PER_HOUR: i64 = 100;

/// Who gets the link, and the owner's message to them.
pub struct SendRequest {
    pub recipients: Vec<String>,
    pub message: String,
}

impl Shares {
    /// Queues the link of a working share the caller owns to each recipient; returns the
    /// addresses as queued (checked, without duplicates).
    pub async fn send(
        &self,
        caller: &Principal,
        id: &str,
        request: SendRequest,
        ip: &str,
    ) -> Result<Vec<String>, ShareError> {
        let mailer = self.inner.mailer.clone();
        if !mailer.enabled() {
            return Err(ShareError::MailOff);
        }
        if request.recipients.is_empty() || request.recipients.len() > MAX_RECIPIENTS {
            return Err(ShareError::Invalid(format!("give 1 to {MAX_RECIPIENTS} recipients")));
        }
        if request.message.chars().count() > MAX_NOTE_CHARS {
            return Err(ShareError::Invalid(format!("a message has at most {MAX_NOTE_CHARS} characters")));
        }
        let mut recipients: Vec<String> = Vec::new();
        for recipient in &request.recipients {
            let address = crate::mail::parse_address(recipient).map_err(ShareError::Invalid)?;
            if !recipients.iter().any(|known| known.eq_ignore_ascii_case(&address)) {
                recipients.push(address);
            }
        }
        let (id, owner, ip, now) = (id.to_owned(), caller.user_id.clone(), ip.to_owned(), self.now());
        let this = self.clone();
        let queued = recipients.clone();
        self.inner
            .db
            .write(move |tx| {
                let entry = shares::by_id(tx, &id)?.filter(|entry| entry.share.owner_id == owner);
                let Some(entry) = entry else { return Ok(Err(ShareError::NotFound)) };
                let state = ShareState::of(&entry, now);
                if state != ShareState::Active {
                    return Ok(Err(ShareError::Invalid(format!("the link is {}: it cannot be sent", state.as_str()))));
                }
                let Some(token) = this.inner.keys.open(&entry.share.id, &entry.share.sealed_token) else {
                    return Ok(Err(ShareError::Invalid(
                        "the share-link key was replaced since this link was made: make a new link".into(),
                    )));
                };
                let sent = mail::count_since(tx, &owner.0, "share_link", now - 3600)?;
                if sent + i64::try_from(recipients.len()).unwrap_or(i64::MAX) > RECIPIENTS_PER_HOUR {
                    return Ok(Err(ShareError::TooManyRecipients));
                }
                let owner_name = users::by_id(tx, &owner)?.map(|user| user.username).unwrap_or_default();
                let url = format!("{}/s/{token}", mailer.public_url());
                let message = messages::share_link(&ShareMail {
                    owner: &owner_name,
                    file_name: &entry.file_name,
                    url: &url,
                    note: &request.message,
                    expires_at: &crate::api::rfc3339(entry.share.expires_at),
                    has_password: entry.share.password_hash.is_some(),
                    lifetime: entry.share.expires_at - now,
                });
                for recipient in &recipients {
                    mailer.queue(tx, now, Some(&owner.0), recipient, &message)?;
                }
                let detail = format!("to={}", recipients.join(","));
                let event = AuditEvent {
                    event: "share_sent",
                    actor_id: Some(&owner.0),
                    subject: Some(&entry.share.id),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)?;
                Ok(Ok(()))
            })
            .await??;
        Ok(queued)
    }
}

/// In the transaction that counted a download of share `id`: a notice to its owner, if the
/// owner has an address and has not turned notices off.
pub(super) fn queue_download_notice(
    mailer: &Mailer,
    tx: &rusqlite::Connection,
    now: i64,
    id: &str,
    ip: &str,
) -> Result<(), crate::db::DbError> {
    let Some(entry) = shares::by_id(tx, id)? else { return Ok(()) };
    let Some(owner) = users::by_id(tx, &entry.share.owner_id)? else { return Ok(()) };
    let Some(email) = owner.email.as_deref().filter(|_| owner.mail_notices) else { return Ok(()) };
    // A multi-file link's limit holds per file, so "of N" would mislead there.
    let count = match (entry.share.max_downloads, &entry.share.contents) {
        (Some(max), shares::Contents::File) => format!("download {} of {max}", entry.share.downloads),
        _ => format!("download {}", entry.share.downloads),
    };
    let settings = format!("{}/", mailer.public_url());
    let message = messages::share_downloaded(&entry.file_name, &count, ip, &settings);
    mailer.queue(tx, now, Some(&owner.id.0), email, &message)
}
