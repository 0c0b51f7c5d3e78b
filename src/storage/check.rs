//! `coffer check`: does every file row have its blob, with the right size and hash? Which
//! blobs and temp files does nothing need?
//!
//! Only reads. What it finds is a report taken over a while (hashing a large store takes
//! hours), so it is never a reason to delete anything by itself: `coffer check --repair`
//! hands the orphans it found to the collector, which re-checks each one under the database
//! write lock at the moment of deletion. Blocking.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::BlobStore;
use crate::db::files::ContentRef;

/// Orphan blobs and temp files younger than this are left alone by `--repair`: a temp file
/// that changed recently belongs to an upload in progress.
pub const REPAIR_MIN_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub struct CheckReport {
    pub files_checked: usize,
    /// Files whose blob is missing.
    pub missing: Vec<ContentRef>,
    /// Files whose blob has the wrong size or contents, with what is wrong.
    pub damaged: Vec<(ContentRef, String)>,
    pub orphan_blobs: Vec<String>,
    pub temp_files: Vec<PathBuf>,
}

impl CheckReport {
    /// Whether every file's contents are intact.
    pub fn healthy(&self) -> bool {
        self.missing.is_empty() && self.damaged.is_empty()
    }
}

/// The size and SHA-256 (lowercase hex) of everything `file` holds from where it stands.
pub fn hash_file(file: &mut std::fs::File) -> io::Result<(u64, String)> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        size += read as u64;
        digest.update(&buffer[..read]);
    }
    Ok((size, digest.finish().as_ref().iter().map(|byte| format!("{byte:02x}")).collect()))
}

/// Whether `path` was last changed at least `min_age` ago, by the store's clock.
pub fn untouched_for(store: &BlobStore, path: &Path, min_age: Duration) -> bool {
    store.age_of(path).is_ok_and(|age| age >= min_age)
}

/// Hashes the blob of every file in `rows` and lists blobs and temp files no row needs.
pub fn check(store: &BlobStore, rows: Vec<ContentRef>) -> io::Result<CheckReport> {
    let mut report = CheckReport { files_checked: rows.len(), ..CheckReport::default() };
    let mut by_blob: BTreeMap<String, Vec<ContentRef>> = BTreeMap::new();
    for row in rows {
        by_blob.entry(row.sha256.clone()).or_default().push(row);
    }
    for (sha256, files) in &by_blob {
        match store.open(sha256) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => report.missing.extend(files.iter().cloned()),
            Err(err) => return Err(io::Error::new(err.kind(), format!("cannot read blob {sha256}: {err}"))),
            Ok(mut blob) => {
                let (size, actual) = hash_file(&mut blob)?;
                for file in files {
                    if actual != *sha256 {
                        report.damaged.push((file.clone(), format!("contents hash to {actual}, not {sha256}")));
                    } else if size != file.size as u64 {
                        report.damaged.push((file.clone(), format!("{size} bytes stored, {} recorded", file.size)));
                    }
                }
            }
        }
    }
    let referenced: HashSet<&String> = by_blob.keys().collect();
    report.orphan_blobs = store.list_blobs()?.into_iter().filter(|blob| !referenced.contains(blob)).collect();
    report.temp_files =
        std::fs::read_dir(store.tmp_dir())?.map(|entry| entry.map(|entry| entry.path())).collect::<io::Result<_>>()?;
    Ok(report)
}
