//! `<state>/gc.lock`: holds blob collection off while a backup copies what it references.
//!
//! A backup takes the lock shared (`flock LOCK_SH`) before it copies the database and keeps it
//! until every blob that copy references is linked into its pool; collection (the server's
//! `blob-gc` task and `coffer check --repair`, in any process) takes it exclusively without
//! waiting and skips its round when it is held. Uploads never touch it, so a backup never
//! stalls them. A lock file, not an in-process lock, because backups and repairs run as
//! other processes; the kernel drops the lock when its holder dies, so a killed backup never
//! leaves collection off. Blocking calls.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

/// A held lock; released when dropped (or when the process ends).
pub struct GcLock {
    _file: File,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|err| io::Error::new(err.kind(), format!("cannot open the lock file {}: {err}", path.display())))
}

impl GcLock {
    /// For collection: the lock exclusively, or `None` at once when a backup holds it.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<Self>> {
        let file = open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// For a backup: the lock shared, waiting for a collection round in progress to finish.
    pub fn shared(path: &Path) -> io::Result<Self> {
        let file = open(path)?;
        flock(&file, FlockOperation::LockShared)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_holds_collection_off_and_backups_share() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gc.lock");
        let backup = GcLock::shared(&path).unwrap();
        let second_backup = GcLock::shared(&path).unwrap();
        assert!(GcLock::try_exclusive(&path).unwrap().is_none(), "collection ran during a backup");
        drop((backup, second_backup));
        let collection = GcLock::try_exclusive(&path).unwrap();
        assert!(collection.is_some());
        assert!(GcLock::try_exclusive(&path).unwrap().is_none(), "two collections at once");
    }
}
