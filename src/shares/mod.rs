//! Share links: public, expiring, optionally password-protected and download-limited links to
//! one file.
//!
//! A link's token is 256 bits from the OS CSPRNG, URL-safe base64. The database holds its
//! SHA-256 (for lookup) and a sealed copy (so the owner can see the link again); logs and the
//! audit log only ever name the share's id. Only a file's owner can share it; admins can list
//! and revoke every share (audited). Deleting a file or its owner deletes its shares.
//! The public side (landing page, unlock, downloads) is in [`public`].

mod keys;
pub mod public;
mod watch;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::auth::password::{HashError, PasswordHasherPool};
use crate::auth::throttle::{Throttle, ThrottlePolicy};
use crate::auth::{Principal, now};
use crate::db::audit::{self, AuditEvent};
use crate::db::shares::{self, ShareEntry, ShareRow};
use crate::db::{Db, DbError};
use crate::domain::{Password, random_id};
use crate::files::{FileError, Files};

pub use keys::{KeyError, ShareKeys};
pub use watch::Download;

/// Longest note an owner can attach to a share.
const MAX_NOTE_CHARS: usize = 1000;
/// Share passwords: long enough to resist guessing behind the throttle, short enough to hash.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("no such share")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("this link has expired")]
    Expired,
    #[error("this link has reached its download limit")]
    Exhausted,
    #[error("this link needs a password")]
    PasswordRequired,
    #[error("the password is wrong")]
    WrongPassword,
    #[error("too many wrong passwords; try again later")]
    Throttled(std::time::Duration),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Limits from `[shares]`, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct SharePolicy {
    pub default_expiry: i64,
    pub max_lifetime: i64,
    pub unlock_lifetime: i64,
}

impl SharePolicy {
    pub fn from_settings(settings: &crate::config::ShareSettings) -> Self {
        let seconds = |duration: crate::config::HumanDuration| i64::try_from(duration.0.as_secs()).unwrap_or(i64::MAX);
        Self {
            default_expiry: seconds(settings.default_expiry),
            max_lifetime: seconds(settings.max_lifetime),
            unlock_lifetime: seconds(settings.unlock_lifetime),
        }
    }
}

/// When a share stops working.
#[derive(Clone, Copy, Debug)]
pub enum Expiry {
    /// `shares.default_expiry` from now.
    Default,
    /// Seconds from now.
    In(i64),
    /// A Unix time.
    At(i64),
}

/// One field of an update: leave it, clear it, or set it.
#[derive(Clone, Debug, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

pub struct NewShare {
    pub file_id: String,
    pub expiry: Expiry,
    pub password: Option<String>,
    pub max_downloads: Option<i64>,
    pub note: String,
}

#[derive(Default)]
pub struct ShareChanges {
    pub expiry: Option<Expiry>,
    pub password: Change<String>,
    pub max_downloads: Change<i64>,
    pub note: Option<String>,
    pub disabled: Option<bool>,
}

/// Whether a share works right now, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareState {
    Active,
    Expired,
    Exhausted,
    Disabled,
}

impl ShareState {
    pub fn of(entry: &ShareEntry, now: i64) -> Self {
        let share = &entry.share;
        if share.disabled || entry.owner_disabled {
            Self::Disabled
        } else if share.expires_at <= now {
            Self::Expired
        } else if share.max_downloads.is_some_and(|max| share.downloads >= max) {
            Self::Exhausted
        } else {
            Self::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Exhausted => "exhausted",
            Self::Disabled => "disabled",
        }
    }
}

/// A share as its owner sees it: with the token when the key can still open it.
pub struct ShareView {
    pub entry: ShareEntry,
    pub token: Option<String>,
    pub state: ShareState,
}

#[derive(Clone)]
pub struct Shares {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    files: Files,
    keys: ShareKeys,
    hasher: PasswordHasherPool,
    throttle: Throttle,
    /// `[shares]`, replaced by a reload.
    policy: std::sync::RwLock<SharePolicy>,
}

pub fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn check_password(password: &str) -> Result<(), ShareError> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ShareError::Invalid(format!(
            "a share password has {} to {} characters",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        )))
    }
}

fn check_note(note: &str) -> Result<(), ShareError> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ShareError::Invalid(format!("a note has at most {MAX_NOTE_CHARS} characters")));
    }
    Ok(())
}

fn check_max_downloads(max: i64) -> Result<(), ShareError> {
    if max < 1 {
        return Err(ShareError::Invalid("max_downloads must be at least 1".into()));
    }
    Ok(())
}

impl Shares {
    pub fn new(
        db: Db,
        files: Files,
        keys: ShareKeys,
        hasher: PasswordHasherPool,
        throttle: ThrottlePolicy,
        policy: SharePolicy,
    ) -> Self {
        let throttle = Throttle::new(throttle);
        let policy = std::sync::RwLock::new(policy);
        Self { inner: Arc::new(Inner { db, files, keys, hasher, throttle, policy }) }
    }

    pub fn policy(&self) -> SharePolicy {
        *self.inner.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// New `[shares]` settings, for shares made, changed or unlocked from now on.
    pub fn set_policy(&self, policy: SharePolicy) {
        *self.inner.policy.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = policy;
    }

    pub fn files(&self) -> &Files {
        &self.inner.files
    }

    fn expires_at(&self, expiry: Expiry, now: i64) -> Result<i64, ShareError> {
        let policy = self.policy();
        let at = match expiry {
            Expiry::Default => now.saturating_add(policy.default_expiry),
            Expiry::In(seconds) => now.saturating_add(seconds),
            Expiry::At(at) => at,
        };
        if at <= now {
            return Err(ShareError::Invalid("the expiry must be in the future".into()));
        }
        if at - now > policy.max_lifetime {
            return Err(ShareError::Invalid(format!(
                "a share may last at most {} seconds (shares.max_lifetime)",
                policy.max_lifetime
            )));
        }
        Ok(at)
    }

    async fn hash_password(&self, password: String) -> Result<String, ShareError> {
        check_password(&password)?;
        Ok(self.inner.hasher.hash(&Password::trusted(password)).await?)
    }

    fn view(&self, entry: ShareEntry) -> ShareView {
        let token = self.inner.keys.open(&entry.share.id, &entry.share.sealed_token);
        let state = ShareState::of(&entry, now());
        ShareView { entry, token, state }
    }

    /// Makes a link to a file the caller owns; returns it with its token.
    pub async fn create(&self, caller: &Principal, request: NewShare, ip: &str) -> Result<ShareView, ShareError> {
        let file = self.inner.files.owned(caller, &request.file_id).await?;
        let now = now();
        let expires_at = self.expires_at(request.expiry, now)?;
        check_note(&request.note)?;
        if let Some(max) = request.max_downloads {
            check_max_downloads(max)?;
        }
        let password_hash = match request.password {
            Some(password) => Some(self.hash_password(password).await?),
            None => None,
        };
        let id = random_id();
        let token = new_token();
        let row = ShareRow {
            token_hash: token_hash(&token),
            sealed_token: self.inner.keys.seal(&id, &token),
            id,
            file_id: file.id,
            owner_id: caller.user_id.clone(),
            created_at: now,
            expires_at,
            password_hash,
            password_version: 0,
            max_downloads: request.max_downloads,
            downloads: 0,
            last_access_at: None,
            note: request.note,
            disabled: false,
        };
        let detail = format!("file={} expires_at={}", row.file_id, row.expires_at);
        let entry = self.store_audited(row, shares::insert, "share_created", caller, ip, detail).await?;
        Ok(ShareView { entry, token: Some(token), state: ShareState::Active })
    }

    /// Writes `row` with `store` and records `event` about it, in one transaction; returns the
    /// share as stored.
    async fn store_audited(
        &self,
        row: ShareRow,
        store: fn(&rusqlite::Connection, &ShareRow) -> Result<(), DbError>,
        event: &'static str,
        caller: &Principal,
        ip: &str,
        detail: String,
    ) -> Result<ShareEntry, ShareError> {
        let (actor, ip) = (caller.user_id.0.clone(), ip.to_owned());
        self.inner
            .db
            .write(move |tx| {
                store(tx, &row)?;
                let entry =
                    AuditEvent { event, actor_id: Some(&actor), subject: Some(&row.id), ip: &ip, detail: &detail };
                audit::record(tx, now(), &entry)?;
                shares::by_id(tx, &row.id)
            })
            .await?
            .ok_or(ShareError::NotFound)
    }

    /// The caller's shares, or everyone's for an admin asking for all, newest first.
    pub async fn list(
        &self,
        caller: &Principal,
        everyone: bool,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<ShareView>, ShareError> {
        let owner = (!everyone).then(|| caller.user_id.clone());
        let entries = self.inner.db.read(move |conn| shares::list(conn, owner.as_ref(), after, limit)).await?;
        Ok(entries.into_iter().map(|entry| self.view(entry)).collect())
    }

    /// A share the caller owns, or any share for an admin; anyone else gets `NotFound`.
    async fn manageable(&self, caller: &Principal, id: &str) -> Result<ShareEntry, ShareError> {
        let id = id.to_owned();
        let entry = self.inner.db.read(move |conn| shares::by_id(conn, &id)).await?;
        entry.filter(|entry| entry.share.owner_id == caller.user_id || caller.is_admin()).ok_or(ShareError::NotFound)
    }

    pub async fn get(&self, caller: &Principal, id: &str) -> Result<ShareView, ShareError> {
        Ok(self.view(self.manageable(caller, id).await?))
    }

    /// Changes expiry, limit, password, note or the disabled flag. A new or removed password
    /// ends every unlock granted under the old one.
    pub async fn update(
        &self,
        caller: &Principal,
        id: &str,
        changes: ShareChanges,
        ip: &str,
    ) -> Result<ShareView, ShareError> {
        let entry = self.manageable(caller, id).await?;
        let mut row = entry.share;
        let now = now();
        let mut changed = Vec::new();
        if let Some(expiry) = changes.expiry {
            row.expires_at = self.expires_at(expiry, now)?;
            changed.push("expiry");
        }
        match changes.max_downloads {
            Change::Keep => {}
            Change::Clear => row.max_downloads = None,
            Change::Set(max) => {
                check_max_downloads(max)?;
                row.max_downloads = Some(max);
            }
        }
        if !matches!(changes.max_downloads, Change::Keep) {
            changed.push("max_downloads");
        }
        if let Some(note) = changes.note {
            check_note(&note)?;
            row.note = note;
            changed.push("note");
        }
        if let Some(disabled) = changes.disabled {
            row.disabled = disabled;
            changed.push(if disabled { "disabled" } else { "enabled" });
        }
        let new_password = match changes.password {
            Change::Keep => None,
            Change::Clear => Some(None),
            Change::Set(password) => Some(Some(self.hash_password(password).await?)),
        };
        if let Some(hash) = new_password {
            row.password_hash = hash;
            row.password_version += 1;
            changed.push("password");
        }
        let detail = format!("changed={}", changed.join(","));
        let entry = self.store_audited(row, shares::update_settings, "share_updated", caller, ip, detail).await?;
        Ok(self.view(entry))
    }

    /// Revokes a share at once: the link is 404 from now on, downloads in flight are cut.
    pub async fn revoke(&self, caller: &Principal, id: &str, ip: &str) -> Result<(), ShareError> {
        let entry = self.manageable(caller, id).await?;
        let by_admin = entry.share.owner_id != caller.user_id;
        let (actor, ip, id) = (caller.user_id.0.clone(), ip.to_owned(), entry.share.id);
        let detail = if by_admin { format!("by_admin owner={}", entry.share.owner_id) } else { String::new() };
        self.inner
            .db
            .write(move |tx| {
                let event = AuditEvent {
                    event: "share_revoked",
                    actor_id: Some(&actor),
                    subject: Some(&id),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now(), &event)?;
                shares::delete(tx, &id)
            })
            .await?;
        Ok(())
    }
}
