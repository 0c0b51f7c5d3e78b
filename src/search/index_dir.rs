//! The search directory on disk (`<state>/search/`): the live index, an index being built
//! aside, the extracted-text cache and the lock that says who owns them.
//!
//! Each index commit carries a payload naming the schema version, the database instance and
//! the last outbox change it contains; an index is usable only when all three fit the
//! database it serves. A rebuilt index is swapped in by one atomic directory exchange, so a
//! crash leaves the old index or the new one, never a mix.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::Index;
use tantivy::directory::MmapDirectory;

use super::analyzer::{ANALYZER, analyzer};
use super::schema::{SCHEMA_VERSION, schema};

#[derive(Clone, Debug)]
pub struct SearchPaths {
    root: PathBuf,
}

impl SearchPaths {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn index(&self) -> PathBuf {
        self.root.join("index")
    }

    /// Where a rebuild writes before it is swapped in.
    pub fn next(&self) -> PathBuf {
        self.root.join("index.next")
    }

    pub fn text_cache(&self) -> PathBuf {
        self.root.join("text.db")
    }

    fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }
}

/// What each commit records about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// [`SCHEMA_VERSION`] of the index.
    pub v: u32,
    /// The database instance the index was built from.
    pub instance: String,
    /// The last outbox change the commit contains.
    pub seq: u64,
}

/// Why an existing index cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("there is no index yet")]
    Missing,
    #[error("the index cannot be read: {0}")]
    Damaged(String),
    #[error("the index has another schema (version {0})")]
    OtherSchema(String),
    #[error("the index was built from another database")]
    OtherInstance,
    #[error("the index holds changes the database does not (it was restored from a backup)")]
    AheadOfDatabase,
}

fn register(index: &Index) {
    index.tokenizers().register(ANALYZER, analyzer());
}

/// Opens the index at `dir` if it fits this database (`instance`, outbox at `last_seq`).
pub fn open(dir: &Path, instance: &str, last_seq: u64) -> Result<(Index, Payload), Unusable> {
    if !dir.join("meta.json").exists() {
        return Err(Unusable::Missing);
    }
    let damaged = |err: tantivy::TantivyError| Unusable::Damaged(err.to_string());
    let index = Index::open_in_dir(dir).map_err(damaged)?;
    let metas = index.load_metas().map_err(damaged)?;
    let payload: Payload = metas
        .payload
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| Unusable::OtherSchema("unknown".into()))?;
    if payload.v != SCHEMA_VERSION || index.schema() != schema() {
        return Err(Unusable::OtherSchema(payload.v.to_string()));
    }
    if payload.instance != instance {
        return Err(Unusable::OtherInstance);
    }
    if payload.seq > last_seq {
        return Err(Unusable::AheadOfDatabase);
    }
    register(&index);
    // Reading every segment's files now finds damage at start rather than at a search.
    index.reader().map_err(damaged)?;
    Ok((index, payload))
}

/// Makes an empty index in `dir`, replacing whatever was there.
pub fn create(dir: &Path) -> tantivy::Result<Index> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let index = Index::builder().schema(schema()).open_or_create(MmapDirectory::open(dir)?)?;
    register(&index);
    Ok(index)
}

/// Puts the index built in `paths.next()` in place of the live one, atomically where the file
/// system can exchange directories, and removes the old one.
pub fn swap_in(paths: &SearchPaths) -> io::Result<()> {
    let (live, next) = (paths.index(), paths.next());
    if live.exists() {
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &next,
            rustix::fs::CWD,
            &live,
            rustix::fs::RenameFlags::EXCHANGE,
        ) {
            Ok(()) => {}
            Err(_) => {
                // No exchange here: move the old one out of the way first. A crash between the
                // two renames leaves no index, which the next start rebuilds.
                let old = paths.root().join("index.old");
                let _ = std::fs::remove_dir_all(&old);
                std::fs::rename(&live, &old)?;
                std::fs::rename(&next, &live)?;
                std::fs::rename(&old, &next)?;
            }
        }
    } else {
        std::fs::rename(&next, &live)?;
    }
    File::open(paths.root())?.sync_all()?;
    match std::fs::remove_dir_all(&next) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Held for as long as a process owns the search directory (the server, or `coffer reindex`).
pub struct SearchLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another Coffer process (the server) holds the search index")]
    Busy,
    #[error("cannot lock the search index: {0}")]
    Io(#[from] io::Error),
}

impl SearchLock {
    /// Creates the search directory if needed and takes its lock, or says who has it.
    pub fn acquire(paths: &SearchPaths) -> Result<Self, LockError> {
        std::fs::create_dir_all(paths.root())?;
        let file = File::options().create(true).truncate(false).write(true).open(paths.lock())?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(LockError::Busy),
            Err(err) => Err(LockError::Io(err.into())),
        }
    }
}
