//! The public side of upload links: finding a link by its token, its password, and taking one
//! file through it.
//!
//! Every request reads the link afresh. A file is taken in three steps: a reservation against
//! the link's limits (the database's counts plus the files in flight, so parallel uploads
//! cannot overrun the number of files or the total), streaming with the tightest bound (this
//! link's per-file size and what is left of its total, the owner's quota, `storage.max_file_size`),
//! and the commit, whose transaction checks the link and its counts again, raises them, audits
//! the file and queues the owner's notice. A revocation, a disabling or a new password cuts
//! uploads in flight; nothing of them is stored.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::{LinkError, LinkState, UploadLinks, safe_name};
use crate::auth::throttle::Keys;
use crate::db::audit::{self, AuditEvent};
use crate::db::upload_links::{self, UploadLinkEntry};
use crate::db::users;
use crate::domain::{Description, FolderPath};
use crate::files::{FileError, OnConflict, Precondition, UploadRequest};
use crate::mail::messages;
use crate::shares::public::IssuedCookie;
use crate::shares::token_hash;
use crate::storage::ExpectedDigests;

/// The prefix of unlock cookies' names; the link's id follows.
const COOKIE_PREFIX: &str = "coffer_uplink_";

pub fn unlock_cookie_name(link_id: &str) -> String {
    format!("{COOKIE_PREFIX}{link_id}")
}

/// What an uploader is told about a stored file: only what they sent (the safe name it was
/// given before any renaming, and its size), so answers reveal nothing of the folder.
pub struct Delivered {
    pub name: String,
    pub size: u64,
}

/// One file an uploader sends.
pub struct Upload<'a> {
    pub name: &'a str,
    /// From `Content-Length`, when sent.
    pub declared_size: Option<u64>,
    pub ip: &'a str,
}

/// A file's reservation in a link's in-flight counts, given back when dropped.
struct Reservation<'a> {
    links: &'a UploadLinks,
    id: String,
    bytes: i64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.links.inner.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(counts) = in_flight.get_mut(&self.id) {
            counts.files -= 1;
            counts.bytes -= self.bytes;
            if counts.files <= 0 {
                in_flight.remove(&self.id);
            }
        }
    }
}

/// The request body, ended with an error as soon as the link is cut.
struct Cuttable<S> {
    body: S,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S: Stream<Item = std::io::Result<Bytes>> + Unpin> Stream for Cuttable<S> {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(std::io::Error::other("the upload link was revoked"))));
        }
        Pin::new(&mut self.body).poll_next(cx)
    }
}

impl UploadLinks {
    /// The link behind a token; unknown, revoked and disabled links (or a disabled owner) are
    /// `NotFound`. Expired and full links are returned for the caller to show as such.
    pub async fn open(&self, token: &str) -> Result<UploadLinkEntry, LinkError> {
        let hash = token_hash(token);
        let entry = self.inner.db.read(move |conn| upload_links::by_token_hash(conn, &hash)).await?;
        entry.filter(|entry| self.state(entry) != LinkState::Disabled).ok_or(LinkError::NotFound)
    }

    pub fn state(&self, entry: &UploadLinkEntry) -> LinkState {
        LinkState::of(entry, self.now())
    }

    /// Lets the request through a protected link: by a valid unlock cookie, or by the right
    /// password, which earns a new cookie. Wrong passwords are throttled like share links'.
    pub async fn authorize(
        &self,
        entry: &UploadLinkEntry,
        password: Option<&str>,
        cookie: Option<&str>,
        ip: &str,
    ) -> Result<Option<IssuedCookie>, LinkError> {
        let link = &entry.link;
        let Some(stored) = link.password_hash.clone() else { return Ok(None) };
        if password.is_none() && self.cookie_holds(entry, cookie) {
            return Ok(None);
        }
        let Some(password) = password else { return Err(LinkError::PasswordRequired) };
        let throttle = &self.inner.throttle;
        let keys = Keys::for_account(&format!("upload-link:{}", link.id), ip, throttle.policy().free_failures);
        throttle.check(&keys).map_err(LinkError::Throttled)?;
        let verdict = self.inner.hasher.verify(password, Some(stored)).await?;
        if verdict == crate::auth::password::Verdict::Mismatch {
            throttle.record_failure(&keys);
            self.record(&link.id, ip, "upload_link_unlock_failed", String::new()).await?;
            return Err(LinkError::WrongPassword);
        }
        throttle.record_success(&keys);
        self.record(&link.id, ip, "upload_link_unlocked", String::new()).await?;
        let lifetime = self.inner.shares.policy().unlock_lifetime;
        let expires = self.now().saturating_add(lifetime);
        let payload = format!("ul.{}.{}.{expires}", link.id, link.password_version);
        Ok(Some(IssuedCookie {
            name: unlock_cookie_name(&link.id),
            value: self.inner.keys.sign(&payload),
            max_age: lifetime,
        }))
    }

    fn cookie_holds(&self, entry: &UploadLinkEntry, cookie: Option<&str>) -> bool {
        let Some(payload) = cookie.and_then(|value| self.inner.keys.verify(value)) else { return false };
        let parts: Vec<&str> = payload.split('.').collect();
        let link = &entry.link;
        matches!(parts.as_slice(), ["ul", id, version, expires]
            if *id == link.id
                && version.parse() == Ok(link.password_version)
                && expires.parse::<i64>().is_ok_and(|expires| expires > self.now()))
    }

    /// Reserves room for one file of at most the returned number of bytes.
    fn reserve(&self, entry: &UploadLinkEntry, declared: Option<u64>) -> Result<(Reservation<'_>, u64), LinkError> {
        let link = &entry.link;
        let mut in_flight = self.inner.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = in_flight.get(&link.id).copied().unwrap_or_default();
        let files_left = link.max_files - link.files_received - counts.files;
        let bytes_left = link.max_total_bytes - link.bytes_received - counts.bytes;
        if files_left <= 0 || bytes_left <= 0 {
            return Err(LinkError::Full);
        }
        let bound = u64::try_from(link.max_file_bytes.min(bytes_left)).unwrap_or(0);
        let size = match declared {
            Some(size) if size > bound => return Err(LinkError::TooLarge { limit: bound }),
            Some(size) => size,
            None => bound,
        };
        let bytes = i64::try_from(size).unwrap_or(i64::MAX);
        let counts = in_flight.entry(link.id.clone()).or_default();
        counts.files += 1;
        counts.bytes += bytes;
        Ok((Reservation { links: self, id: link.id.clone(), bytes }, size))
    }

    /// Takes one file through an open link whose password (if any) was checked.
    pub async fn receive<S>(&self, entry: &UploadLinkEntry, upload: Upload<'_>, body: S) -> Result<Delivered, LinkError>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        let link = &entry.link;
        match self.state(entry) {
            LinkState::Active => {}
            LinkState::Expired => return Err(LinkError::Expired),
            LinkState::Full => return Err(self.refused(&link.id, upload.ip, LinkError::Full).await),
            LinkState::Disabled => return Err(LinkError::NotFound),
        }
        let name = safe_name(upload.name);
        let cut = self.cut_of(&link.id);
        let (reservation, bound) = match self.reserve(entry, upload.declared_size) {
            Ok(reserved) => reserved,
            Err(err) => return Err(self.refused(&link.id, upload.ip, err).await),
        };
        let request = UploadRequest {
            folder: FolderPath::parse_existing(&link.folder).map_err(|err| LinkError::Invalid(err.to_string()))?,
            name: name.clone(),
            on_conflict: OnConflict::Rename,
            description: Description::parse("").map_err(|err| LinkError::Invalid(err.to_string()))?,
            declared_size: upload.declared_size,
            digests: ExpectedDigests::default(),
            precondition: Precondition::None,
        };
        let body = Cuttable { body, cut: Box::pin(cut.clone().cancelled_owned()) };
        let files = &self.inner.files;
        let received = match files.receive_for(&link.owner_id, &request, body, bound).await {
            Ok(received) => received,
            Err(_) if cut.is_cancelled() => return Err(LinkError::NotFound),
            Err(FileError::TooLarge { limit }) if limit == bound => {
                return Err(self.refused(&link.id, upload.ip, LinkError::TooLarge { limit }).await);
            }
            Err(err) => return Err(self.refused(&link.id, upload.ip, err.into()).await),
        };
        if cut.is_cancelled() {
            return Err(LinkError::NotFound);
        }
        let check = self.commit_check(entry, upload.ip);
        let stored = files.commit_for_link(&link.owner_id, request, received, check).await;
        drop(reservation);
        match stored {
            Ok(row) => Ok(Delivered { name: name.as_str().to_owned(), size: u64::try_from(row.size).unwrap_or(0) }),
            // The link ended (or its folder moved or went) while the file streamed.
            Err(FileError::CredentialsEnded) => Err(LinkError::NotFound),
            Err(err) => Err(self.refused(&link.id, upload.ip, err.into()).await),
        }
    }

    /// What the commit's transaction checks and records for a file through this link.
    fn commit_check(&self, entry: &UploadLinkEntry, ip: &str) -> crate::files::LinkCheck {
        let (id, version, ip, now) = (entry.link.id.clone(), entry.link.password_version, ip.to_owned(), self.now());
        let folder = entry.link.folder.clone();
        let mailer = self.inner.mailer.clone();
        Box::new(move |tx, row| {
            let Some(current) = upload_links::by_id(tx, &id)? else { return Ok(Err(FileError::CredentialsEnded)) };
            let link = &current.link;
            // A folder moved while the file streamed: its old path is no longer the link's.
            if link.disabled || current.owner_disabled || link.password_version != version || link.folder != folder {
                return Ok(Err(FileError::CredentialsEnded));
            }
            if link.files_received >= link.max_files {
                return Ok(Err(FileError::LinkFull));
            }
            let left = link.max_total_bytes - link.bytes_received;
            if row.size > left {
                return Ok(Err(FileError::TooLarge { limit: u64::try_from(left.max(0)).unwrap_or(0) }));
            }
            upload_links::count_received(tx, &id, row.size, now)?;
            let detail = format!("file={} size={}", row.id.0, row.size);
            let event = AuditEvent {
                event: "upload_link_received",
                actor_id: None,
                subject: Some(&id),
                ip: &ip,
                detail: &detail,
            };
            audit::record(tx, now, &event)?;
            if link.notify_uploads
                && let Some(owner) = users::by_id(tx, &link.owner_id)?
                && let Some(email) = owner.email.as_deref().filter(|_| owner.mail_notices)
            {
                let folder = if link.folder.is_empty() { "your top-level folder" } else { link.folder.as_str() };
                let settings = format!("{}/app/", mailer.public_url());
                let message = messages::upload_received(&row.name, row.size, folder, &ip, &settings);
                mailer.queue(tx, now, Some(&owner.id.0), email, &message)?;
            }
            Ok(Ok(()))
        })
    }

    /// Audits a refused file (limits, quota) and hands the error back.
    async fn refused(&self, id: &str, ip: &str, err: LinkError) -> LinkError {
        let reason = match &err {
            LinkError::Full => "full",
            LinkError::TooLarge { .. } => "too_large",
            LinkError::File(FileError::QuotaExceeded) => "quota_exceeded",
            LinkError::File(FileError::TooLarge { .. }) => "too_large",
            LinkError::File(FileError::NoSpace) => "no_space",
            _ => return err,
        };
        if let Err(failed) = self.record(id, ip, "upload_link_refused", format!("reason={reason}")).await {
            tracing::warn!(error = %failed, "could not audit a refused upload");
        }
        err
    }

    /// One public event in the audit log: the link's id, never its token.
    async fn record(&self, id: &str, ip: &str, event: &'static str, detail: String) -> Result<(), LinkError> {
        let (id, ip, now) = (id.to_owned(), ip.to_owned(), self.now());
        self.inner
            .db
            .write(move |tx| {
                let entry = AuditEvent { event, actor_id: None, subject: Some(&id), ip: &ip, detail: &detail };
                audit::record(tx, now, &entry)
            })
            .await?;
        Ok(())
    }
}
