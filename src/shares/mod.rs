//! Share links: public, expiring, optionally password-protected and download-limited links to
//! one file, to a list of files or to a folder (its contents at download time).
//!
//! A link's token is 256 bits from the OS CSPRNG, URL-safe base64. The database holds its
//! SHA-256 (for lookup) and a sealed copy (so the owner can see the link again); logs and the
//! audit log only ever name the share's id. Only a file's owner can share it; admins can list
//! and revoke every share (audited). Deleting a file or its owner deletes its shares.
//! Owners' operations are in `owner.rs`; the public side in [`public`] (finding a share,
//! passwords, cookies), `download.rs` (the whole sequence of a download), `resume.rs` (what a
//! resumed download may fetch), `watch.rs` (downloads in flight) and `views.rs` (page views,
//! counted in batches). Multi-file links: `members.rs` (what a link holds now, its safe names,
//! per-file counting) and `archive.rs` (the streamed ZIP of them all).

mod archive;
mod download;
mod keys;
mod members;
mod owner;
pub mod public;
mod resume;
mod send;
mod views;
mod watch;

use std::sync::Arc;

use crate::auth::password::{HashError, PasswordHasherPool};
use crate::auth::throttle::{Throttle, ThrottlePolicy};
use crate::clock::Clock;
use crate::db::shares::ShareEntry;
use crate::db::{Db, DbError};
use crate::files::{FileError, Files};

pub use download::{ByteStream, Refused, Served, Visitor, Wanted};
pub use keys::{KeyError, ShareKeys};
pub use members::{MAX_LISTED_FILES, Member};
pub use send::{MAX_RECIPIENTS, RECIPIENTS_PER_HOUR, SendRequest};

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
    #[error("this server sends no e-mail (mail.host is not set); ask an administrator")]
    MailOff,
    #[error("at most {RECIPIENTS_PER_HOUR} share mails an hour; try again later")]
    TooManyRecipients,
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Key(#[from] KeyError),
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

/// What a new share holds.
#[derive(Clone, Debug)]
pub enum NewContents {
    /// One file (the original kind of share).
    File(String),
    /// Several files by id, all the caller's own.
    Files(Vec<String>),
    /// A folder path of the caller's: whatever lies at or below it when a visitor asks.
    Folder(String),
}

pub struct NewShare {
    pub contents: NewContents,
    pub expiry: Expiry,
    pub password: Option<String>,
    pub max_downloads: Option<i64>,
    pub note: String,
    pub notify_downloads: bool,
}

#[derive(Default)]
pub struct ShareChanges {
    pub expiry: Option<Expiry>,
    pub password: Change<String>,
    pub max_downloads: Change<i64>,
    pub note: Option<String>,
    pub disabled: Option<bool>,
    pub notify_downloads: Option<bool>,
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
        } else if Self::used_up(entry) {
            Self::Exhausted
        } else {
            Self::Active
        }
    }

    /// A single-file link is used up at its limit; a multi-file link, whose limit holds per
    /// file, when no file it holds has a download left.
    fn used_up(entry: &ShareEntry) -> bool {
        let share = &entry.share;
        match share.contents {
            crate::db::shares::Contents::File => share.max_downloads.is_some_and(|max| share.downloads >= max),
            _ => share.max_downloads.is_some() && entry.file_count > 0 && entry.files_left == 0,
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
    clock: Clock,
    files: Files,
    keys: ShareKeys,
    hasher: PasswordHasherPool,
    throttle: Throttle,
    /// `[shares]`, replaced by a reload.
    policy: std::sync::RwLock<SharePolicy>,
    resumes: resume::Resumes,
    views: views::Views,
    mailer: crate::mail::Mailer,
}

pub fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

impl Shares {
    pub fn new(
        db: Db,
        files: Files,
        keys: ShareKeys,
        hasher: PasswordHasherPool,
        throttle: ThrottlePolicy,
        policy: SharePolicy,
        mailer: crate::mail::Mailer,
    ) -> Self {
        let clock = files.clock().clone();
        let throttle = Throttle::new(throttle, clock.clone());
        let policy = std::sync::RwLock::new(policy);
        let (resumes, views) = (resume::Resumes::default(), views::Views::default());
        Self { inner: Arc::new(Inner { db, clock, files, keys, hasher, throttle, policy, resumes, views, mailer }) }
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

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }
}
