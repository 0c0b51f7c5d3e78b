//! Backups: snapshots of the database, the blobs it references, the keys and the
//! configuration, kept in a backup directory, verified, pruned, pushed off the machine with
//! rsync, and restored into an empty state directory.
//!
//! A snapshot is taken while the server runs and uploads continue: the database is copied with
//! `VACUUM INTO` (one read transaction: a consistent copy however busy the server is), then
//! exactly the blobs that copy references are hard-linked (or copied, on another file system)
//! into the backup directory's shared pool, while `<state>/gc.lock` is held shared so no blob
//! the copy references can be collected meanwhile. A snapshot is complete only once its
//! `COMPLETE` marker (the manifest's hash) is written and the directory renamed from
//! `<id>.partial`; anything else is never listed, counted or restored, and the next run
//! removes it. This module never copies `coffer.db` as a plain file, never writes into a
//! state directory that is not empty, never prunes below `keep_last` or the newest complete
//! snapshot, and knows nothing of HTTP.

mod actions;
pub mod command;
mod create;
mod fsutil;
mod layout;
mod manifest;
mod progress;
pub mod prune;
mod push;
mod restore;
mod rsync;
pub mod status;
mod verify;

use std::io;
use std::path::PathBuf;

pub use layout::{BackupDir, SnapshotId};
pub use manifest::Manifest;

/// The time every backup decision reads (snapshot ids, retention, status). The backup commands
/// run as their own process, so they read the system clock (which debug builds let tests move).
pub fn now() -> i64 {
    crate::clock::Clock::system().now()
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Refused before anything was changed.
    #[error("{0}")]
    Refused(String),
    /// Verification found damage (the report names it).
    #[error("{0}")]
    Damaged(String),
    #[error("{0}")]
    Failed(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("{context}: {source}")]
    Db { context: String, source: rusqlite::Error },
    #[error(transparent)]
    Rsync(#[from] rsync::RsyncError),
}

/// Attaches what was being done to I/O and SQLite errors.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, BackupError>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, BackupError> {
        self.map_err(|source| BackupError::Io { context: what(), source })
    }
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, BackupError> {
        self.map_err(|source| BackupError::Db { context: what(), source })
    }
}

/// What the backup commands work on, taken from the settings.
#[derive(Clone, Debug)]
pub struct Setup {
    pub state_dir: crate::state_dir::StateDir,
    pub backup_dir: PathBuf,
    /// The settings file in use, copied into each snapshot.
    pub config_file: Option<PathBuf>,
    pub busy_timeout: std::time::Duration,
    pub settings: crate::config::BackupSettings,
}
