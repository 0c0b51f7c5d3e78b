//! The public side of share links: finding a share by its token, unlocking a protected one,
//! counting downloads, and the audit trail of every access.
//!
//! Every request re-checks the share (revoked, disabled, expired, password) from the database;
//! nothing is cached across requests. A correct password earns a signed unlock cookie bound to
//! the share and to its current password, so range requests and resumed downloads do not ask
//! again, and a password change ends it. A counted download earns a resume cookie naming that
//! download; see `resume.rs` for what a resume may fetch without counting again.

use super::{ShareError, ShareState, Shares, token_hash};
use crate::auth::throttle::Keys;
use crate::db::audit::{self, AuditEvent};
use crate::db::files::{self, FileRow};
use crate::db::shares::{self, ShareEntry};
use crate::domain::FileId;

/// A share found by its token, with its file (`None` for a multi-file share).
pub struct Opened {
    pub entry: ShareEntry,
    pub file: Option<FileRow>,
}

impl Opened {
    pub fn id(&self) -> &str {
        &self.entry.share.id
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CookieKind {
    Unlock,
    Resume,
}

impl CookieKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Unlock => "u",
            Self::Resume => "r",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Unlock => "coffer_unlock_",
            Self::Resume => "coffer_resume_",
        }
    }
}

/// A cookie to set on the response.
#[derive(Debug)]
pub struct IssuedCookie {
    pub name: String,
    pub value: String,
    pub max_age: i64,
}

/// The cookie names a request's cookies are looked up under.
pub fn unlock_cookie_name(share_id: &str) -> String {
    format!("{}{share_id}", CookieKind::Unlock.prefix())
}

/// A multi-file share has a resume cookie per file, so downloads of several files can resume.
pub fn resume_cookie_name(share_id: &str, file: Option<&FileId>) -> String {
    match file {
        Some(file) => format!("{}{share_id}_{file}", CookieKind::Resume.prefix()),
        None => format!("{}{share_id}", CookieKind::Resume.prefix()),
    }
}

impl Shares {
    /// The share behind a token; unknown, revoked and disabled shares are `NotFound`. Expired
    /// and used-up shares are returned for the caller to refuse (and audit) as it sees fit.
    pub async fn open(&self, token: &str) -> Result<Opened, ShareError> {
        let hash = token_hash(token);
        let found = self
            .inner
            .db
            .read(move |conn| {
                let Some(entry) = shares::by_token_hash(conn, &hash)? else { return Ok(None) };
                let Some(file_id) = entry.share.file_id.clone() else { return Ok(Some(Opened { entry, file: None })) };
                Ok(files::by_id(conn, &file_id)?.map(|file| Opened { entry, file: Some(file) }))
            })
            .await?;
        found.filter(|opened| self.state(opened) != ShareState::Disabled).ok_or(ShareError::NotFound)
    }

    /// Whether the share works right now.
    pub fn state(&self, opened: &Opened) -> ShareState {
        ShareState::of(&opened.entry, self.now())
    }

    /// A signed cookie of `kind` for this share and its current password; `extra` (no dots)
    /// rides along, such as the id of a counted download.
    pub(super) fn issue(
        &self,
        kind: CookieKind,
        opened: &Opened,
        lifetime: i64,
        extra: Option<&str>,
        name: String,
    ) -> IssuedCookie {
        let share = &opened.entry.share;
        let expires = self.now().saturating_add(lifetime);
        let mut payload = format!("{}.{}.{}.{expires}", kind.tag(), share.id, share.password_version);
        if let Some(extra) = extra {
            payload.push('.');
            payload.push_str(extra);
        }
        IssuedCookie { name, value: self.inner.keys.sign(&payload), max_age: lifetime }
    }

    /// The `extra` of a genuine, current cookie of `kind` for this share (`Some("")` when it
    /// has none), or `None`.
    pub(super) fn read_cookie(&self, kind: CookieKind, opened: &Opened, value: Option<&str>) -> Option<String> {
        let payload = value.and_then(|value| self.inner.keys.verify(value))?;
        let share = &opened.entry.share;
        let mut parts = payload.splitn(5, '.');
        let (Some(tag), Some(id), Some(version), Some(expires)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let holds = tag == kind.tag()
            && id == share.id
            && version.parse() == Ok(share.password_version)
            && expires.parse::<i64>().is_ok_and(|expires| expires > self.now());
        holds.then(|| parts.next().unwrap_or_default().to_owned())
    }

    /// Lets the request through a protected share: by a valid unlock cookie, or by the right
    /// password, which earns a new cookie. Wrong passwords are throttled per share (from this
    /// address and overall) and per address.
    pub async fn authorize(
        &self,
        opened: &Opened,
        password: Option<&str>,
        cookie: Option<&str>,
        ip: &str,
    ) -> Result<Option<IssuedCookie>, ShareError> {
        let Some(stored) = opened.entry.share.password_hash.clone() else { return Ok(None) };
        if password.is_none() && self.read_cookie(CookieKind::Unlock, opened, cookie).is_some() {
            return Ok(None);
        }
        let Some(password) = password else { return Err(ShareError::PasswordRequired) };
        let throttle = &self.inner.throttle;
        let keys = Keys::for_account(&format!("share:{}", opened.id()), ip, throttle.policy().free_failures);
        throttle.check(&keys).map_err(ShareError::Throttled)?;
        let verdict = self.inner.hasher.verify(password, Some(stored)).await?;
        if verdict == crate::auth::password::Verdict::Mismatch {
            let wait = throttle.record_failure(&keys);
            crate::metrics::get().share_requests.with(["wrong_password"]).inc();
            let detail = match wait {
                Some(wait) => format!("outcome=wrong_password further attempts wait {} s", wait.as_secs().max(1)),
                None => "outcome=wrong_password".to_owned(),
            };
            self.record(opened.id(), ip, "share_unlock_failed", detail).await?;
            return Err(ShareError::WrongPassword);
        }
        throttle.record_success(&keys);
        self.record(opened.id(), ip, "share_unlocked", String::new()).await?;
        let name = unlock_cookie_name(opened.id());
        Ok(Some(self.issue(CookieKind::Unlock, opened, self.policy().unlock_lifetime, None, name)))
    }

    /// Whether a download in flight may go on: the share still exists, is enabled, has the
    /// password it had when the download started (`password_version`), and still holds the same
    /// contents: the file `file` (id, SHA-256), or for a ZIP (`None`) anything, as long as the
    /// share has not expired. Expiry does not stop a single file's download that started in
    /// time; it does stop a ZIP, which could otherwise go on reading a folder.
    pub async fn still_served(&self, share_id: &str, file: Option<(&FileId, &str)>, password_version: i64) -> bool {
        let id = share_id.to_owned();
        let file = file.map(|(file, sha256)| (file.clone(), sha256.to_owned()));
        let now = self.now();
        let outcome = self
            .inner
            .db
            .read(move |conn| {
                let Some(entry) = shares::by_id(conn, &id)? else { return Ok(false) };
                let standing =
                    !entry.share.disabled && !entry.owner_disabled && entry.share.password_version == password_version;
                let Some((file, sha256)) = file else { return Ok(standing && entry.share.expires_at > now) };
                let held = match &entry.share.file_id {
                    Some(own) => own == &file,
                    None => shares::holds(conn, &id, &file)?,
                };
                let same = held && files::by_id(conn, &file)?.is_some_and(|row| row.sha256 == sha256);
                Ok(same && standing)
            })
            .await;
        outcome.unwrap_or(false)
    }

    /// One public access in the audit log: the share's id, never its token.
    pub async fn record(
        &self,
        share_id: &str,
        ip: &str,
        event: &'static str,
        detail: String,
    ) -> Result<(), ShareError> {
        let (id, ip, now) = (share_id.to_owned(), ip.to_owned(), self.now());
        self.inner
            .db
            .write(move |tx| {
                shares::touch(tx, &id, now)?;
                let entry = AuditEvent { event, actor_id: None, subject: Some(&id), ip: &ip, detail: &detail };
                audit::record(tx, now, &entry)
            })
            .await?;
        Ok(())
    }
}
