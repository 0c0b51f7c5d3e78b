//! The state directory: where every path under it is named, and the checks readiness needs.
//!
//! All paths on disk are derived here from the configured root; no path is ever built from
//! user input. These are blocking file-system calls: async callers run them through
//! `spawn_blocking`.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;

#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the directory tree (mode 0700: it holds keys and everyone's files).
    pub fn create(&self) -> io::Result<()> {
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for dir in
            [self.root.clone(), self.tmp_dir(), self.tls_dir(), self.keys_dir(), self.blobs_dir(), self.uploads_dir()]
        {
            builder
                .create(&dir)
                .map_err(|err| io::Error::new(err.kind(), format!("cannot create {}: {err}", dir.display())))?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("coffer.db")
    }

    /// Work in progress (uploads, probes); on the same file system as the final files.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Resumable uploads in progress, one part file each; on the same file system as the
    /// final files, which their last byte turns them into.
    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Certificates this instance made or obtained itself.
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// File contents, named by their SHA-256.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The search index and the extracted-text cache: derived data, never backed up.
    pub fn search_dir(&self) -> PathBuf {
        self.root.join("search")
    }

    /// Secret keys this instance made for itself.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub fn token_signing_key(&self) -> PathBuf {
        self.keys_dir().join("token-signing.key")
    }

    /// Seals share-link tokens in the database and signs share cookies.
    pub fn share_key(&self) -> PathBuf {
        self.keys_dir().join("share-links.key")
    }

    /// Signs the device tokens that let a client which signed in before skip account-wide waits.
    pub fn device_key(&self) -> PathBuf {
        self.keys_dir().join("device-tokens.key")
    }

    /// Held shared by a backup, exclusively by blob collection (`storage::GcLock`).
    pub fn gc_lock(&self) -> PathBuf {
        self.root.join("gc.lock")
    }

    /// Where the first admin's generated password is left for the operator.
    pub fn initial_admin_password(&self) -> PathBuf {
        self.root.join("initial-admin-password")
    }

    /// Proves the state dir accepts writes right now, by creating, syncing and removing a file.
    pub fn probe_writable(&self) -> io::Result<()> {
        let name = format!(".probe-{:016x}", rand::rng().random::<u64>());
        let path = self.tmp_dir().join(name);
        let result = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).and_then(|mut file| {
            file.write_all(b"probe")?;
            file.sync_all()
        });
        let removed = fs::remove_file(&path);
        result?;
        removed
    }

    /// Bytes an unprivileged writer may still use on the state dir's file system.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let stats = rustix::fs::statvfs(&self.root)?;
        Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
    }
}

/// A 32-byte secret kept in `path` (0600), made from the OS CSPRNG on first use. Blocking.
/// A file of another length is an error naming it.
pub fn load_or_create_secret(path: &Path) -> io::Result<[u8; 32]> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let fresh: [u8; 32] = rand::random();
            write_file_atomically(path, &fresh, 0o600)?;
            fresh.to_vec()
        }
        Err(err) => return Err(err),
    };
    bytes.try_into().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a 32-byte key; move it away to make a new one", path.display()),
        )
    })
}

/// Writes `contents` to `path` so that after a crash the file is either absent or complete:
/// write a temp file beside it, fsync, rename over, fsync the directory.
pub fn write_file_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{file_name}.{:016x}.tmp", rand::rng().random::<u64>()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_contents_with_the_requested_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_file_atomically(&path, b"first", 0o600).unwrap();
        write_file_atomically(&path, b"second", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn state_dir_is_created_private_and_writable() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        state.create().unwrap();
        assert_eq!(fs::metadata(state.root()).unwrap().permissions().mode() & 0o777, 0o700);
        state.probe_writable().unwrap();
        assert_eq!(fs::read_dir(state.tmp_dir()).unwrap().count(), 0);
        assert!(state.free_bytes().unwrap() > 0);
    }
}
