//! Upload links ("file requests"): an owner lets people without an account upload files into
//! one of the owner's folders, within limits the owner sets (number of files, total size, size
//! per file), until the link expires or is revoked, optionally behind a password.
//!
//! Tokens are made, stored and shown like share links' (256 random bits; SHA-256 for lookup and
//! a sealed copy under the share-link key; logs and the audit log name the link's id only).
//! Owners' operations are in `owner.rs`; the public side (finding a link, its password, taking a
//! file) in [`public`]; safe names for what uploaders send in `names.rs`. An uploader can never
//! list, read or replace anything: a taken name gets a new one, and answers only echo what the
//! uploader sent. This module knows nothing of HTTP.

mod names;
mod owner;
pub mod public;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::auth::password::{HashError, PasswordHasherPool};
use crate::auth::throttle::{Throttle, ThrottlePolicy};
use crate::clock::Clock;
use crate::db::upload_links::UploadLinkEntry;
use crate::db::{Db, DbError};
use crate::files::{FileError, Files};
use crate::shares::{KeyError, ShareKeys, Shares};

pub use crate::shares::{Change, Expiry};
pub use names::safe_name;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no such upload link")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("this upload link has expired")]
    Expired,
    #[error("this upload link takes no more files")]
    Full,
    #[error("the file is larger than this link allows ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("this upload link needs a password")]
    PasswordRequired,
    #[error("the password is wrong")]
    WrongPassword,
    #[error("too many wrong passwords; try again later")]
    Throttled(std::time::Duration),
    #[error(transparent)]
    File(FileError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<FileError> for LinkError {
    fn from(err: FileError) -> Self {
        match err {
            FileError::LinkFull => Self::Full,
            FileError::CredentialsEnded => Self::NotFound,
            FileError::Db(err) => Self::Db(err),
            other => Self::File(other),
        }
    }
}

/// Whether a link takes files right now, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Active,
    Expired,
    Full,
    Disabled,
}

impl LinkState {
    pub fn of(entry: &UploadLinkEntry, now: i64) -> Self {
        let link = &entry.link;
        if link.disabled || entry.owner_disabled {
            Self::Disabled
        } else if link.expires_at <= now {
            Self::Expired
        } else if link.files_received >= link.max_files || link.bytes_received >= link.max_total_bytes {
            Self::Full
        } else {
            Self::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Full => "full",
            Self::Disabled => "disabled",
        }
    }
}

pub struct NewLink {
    pub folder: String,
    pub expiry: Expiry,
    pub password: Option<String>,
    pub max_files: i64,
    pub max_total_bytes: i64,
    /// `None`: as large as the total allows.
    pub max_file_bytes: Option<i64>,
    pub note: String,
    pub notify_uploads: bool,
}

#[derive(Default)]
pub struct LinkChanges {
    pub expiry: Option<Expiry>,
    pub password: Change<String>,
    pub max_files: Option<i64>,
    pub max_total_bytes: Option<i64>,
    pub max_file_bytes: Option<i64>,
    pub note: Option<String>,
    pub disabled: Option<bool>,
    pub notify_uploads: Option<bool>,
}

/// A link as its owner sees it: with the token when the key can still open it.
pub struct LinkView {
    pub entry: UploadLinkEntry,
    pub token: Option<String>,
    pub state: LinkState,
}

/// Files being received through a link and the bytes they may still take: counted against the
/// link's limits with what the database says was received, so parallel uploads cannot overrun
/// them (the commit's transaction checks again).
#[derive(Clone, Copy, Default)]
struct InFlight {
    files: i64,
    bytes: i64,
}

#[derive(Clone)]
pub struct UploadLinks {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    clock: Clock,
    files: Files,
    /// For `[shares]` expiry limits, which upload links follow too.
    shares: Shares,
    keys: ShareKeys,
    hasher: PasswordHasherPool,
    throttle: Throttle,
    mailer: crate::mail::Mailer,
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// Cancelled when a link is revoked, disabled or gets a new password: uploads through it stop.
    cuts: Mutex<HashMap<String, CancellationToken>>,
}

impl UploadLinks {
    pub fn new(
        db: Db,
        shares: Shares,
        keys: ShareKeys,
        hasher: PasswordHasherPool,
        throttle: ThrottlePolicy,
        mailer: crate::mail::Mailer,
    ) -> Self {
        let files = shares.files().clone();
        let clock = files.clock().clone();
        let throttle = Throttle::new(throttle, clock.clone());
        let (in_flight, cuts) = (Mutex::default(), Mutex::default());
        Self { inner: Arc::new(Inner { db, clock, files, shares, keys, hasher, throttle, mailer, in_flight, cuts }) }
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// The token that stops uploads through link `id` when cancelled.
    fn cut_of(&self, id: &str) -> CancellationToken {
        let mut cuts = self.inner.cuts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cuts.entry(id.to_owned()).or_default().clone()
    }

    /// Stops every upload through link `id` now.
    fn cut(&self, id: &str) {
        let mut cuts = self.inner.cuts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(token) = cuts.remove(id) {
            token.cancel();
        }
    }
}
