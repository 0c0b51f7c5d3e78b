//! `coffer backup verify`: is a snapshot complete, intact and restorable?
//!
//! Quick: the `COMPLETE` marker matches the manifest, the manifest matches `blobs.txt`, the
//! database copy has its recorded hash and passes `integrity_check`, keys and configuration
//! have theirs, every file row appears in `blobs.txt`, and every listed blob is in the pool
//! at its size. `--read-data` also re-hashes every blob (a `--read-data-subset N/T` share of
//! them), which is what a restore would read. Damage is reported as files and their owners.
//! Only reads.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::layout::{BackupDir, COMPLETE, SnapshotId};
use super::manifest::{self, BlobEntry, DATABASE, Manifest};
use super::progress::Progress;
use super::{BackupError, fsutil};
use crate::db::files::ContentRef;

/// How much blob content to read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadData {
    /// Sizes only.
    None,
    All,
    /// The blobs of group `part` (1-based) of `of`, grouped by hash: every blob is in exactly
    /// one group, so `of` runs with parts 1..=of read everything once.
    Subset {
        part: u64,
        of: u64,
    },
}

impl ReadData {
    /// Parses `N/T` with 1 <= N <= T.
    pub fn parse_subset(text: &str) -> Result<Self, String> {
        let problem = || format!("`{text}` is not a subset like 1/7 (part N of T, 1 <= N <= T)");
        let (part, of) = text.split_once('/').ok_or_else(problem)?;
        let (part, of): (u64, u64) =
            (part.trim().parse().map_err(|_| problem())?, of.trim().parse().map_err(|_| problem())?);
        if part == 0 || of == 0 || part > of {
            return Err(problem());
        }
        Ok(Self::Subset { part, of })
    }

    fn includes(self, sha256: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Subset { part, of } => {
                u64::from_str_radix(sha256.get(..15).unwrap_or("0"), 16).unwrap_or(0) % of == part - 1
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Verified {
    pub manifest: Option<Manifest>,
    pub files_checked: usize,
    pub blobs_checked: usize,
    pub blobs_read: usize,
    pub bytes_read: u64,
    /// Each problem, naming the file (and owner) or snapshot file it affects.
    pub problems: Vec<String>,
}

impl Verified {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Opens a snapshot's database copy without writing anything beside it.
pub fn open_copy(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

pub fn verify(backups: &BackupDir, id: &SnapshotId, read: ReadData) -> Result<Verified, BackupError> {
    let dir = backups.snapshot(id);
    let mut verified = Verified::default();
    let problems = &mut verified.problems;
    let marker = match fs::read_to_string(dir.join(COMPLETE)) {
        Ok(marker) => marker,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            problems.push(format!("{}: no {COMPLETE} marker: this snapshot was never finished", dir.display()));
            return Ok(verified);
        }
        Err(err) => {
            return Err(BackupError::Io {
                context: format!("cannot read {}", dir.join(COMPLETE).display()),
                source: err,
            });
        }
    };
    let (manifest, manifest_sha256) = match manifest::read_manifest(&dir) {
        Ok(read) => read,
        Err(err) => {
            problems.push(err.to_string());
            return Ok(verified);
        }
    };
    if marker != manifest::complete_marker(&manifest_sha256) {
        problems
            .push(format!("{}: does not match manifest.json (one of them was changed)", dir.join(COMPLETE).display()));
    }
    if manifest.snapshot_id != id.as_str() {
        problems.push(format!("manifest.json names snapshot {}, not {id}", manifest.snapshot_id));
    }
    let entries = match manifest::read_blob_list(&dir) {
        Ok((entries, sha256)) => {
            if sha256 != manifest.blobs.list_sha256 {
                problems.push(format!("{}: does not match the manifest", dir.join(manifest::BLOB_LIST).display()));
            }
            entries
        }
        Err(err) => {
            problems.push(err.to_string());
            Vec::new()
        }
    };
    let database = dir.join(DATABASE);
    match fsutil::hash_path(&database) {
        Ok((size, sha256)) if size == manifest.database.size && sha256 == manifest.database.sha256 => {}
        Ok((size, _)) => problems.push(format!(
            "{}: {size} bytes whose hash differs from the manifest's ({} bytes): the database copy is damaged",
            database.display(),
            manifest.database.size
        )),
        Err(err) => problems.push(format!("{}: cannot read: {err}", database.display())),
    }
    for file in &manifest.files {
        let path = dir.join(&file.path);
        match fsutil::hash_path(&path) {
            Ok((size, sha256)) if size == file.size && sha256 == file.sha256 => {}
            Ok(_) => problems.push(format!("{}: differs from the manifest", path.display())),
            Err(err) => problems.push(format!("{}: cannot read: {err}", path.display())),
        }
    }
    let rows = match read_rows(&database) {
        Ok(rows) => rows,
        Err(problem) => {
            problems.push(format!("{}: {problem}", database.display()));
            Vec::new()
        }
    };
    verified.files_checked = rows.len();
    let listed: BTreeMap<&str, u64> = entries.iter().map(|entry| (entry.sha256.as_str(), entry.size)).collect();
    let mut by_blob: BTreeMap<&str, Vec<&ContentRef>> = BTreeMap::new();
    for row in &rows {
        by_blob.entry(row.sha256.as_str()).or_default().push(row);
        if listed.get(row.sha256.as_str()) != Some(&u64::try_from(row.size).unwrap_or(u64::MAX)) {
            problems.push(format!("{row}: blob {} is not in {} at its size", row.sha256, manifest::BLOB_LIST));
        }
    }
    let name = |entry: &BlobEntry| -> Vec<String> {
        match by_blob.get(entry.sha256.as_str()) {
            Some(rows) => rows.iter().map(|row| row.to_string()).collect(),
            None => vec![format!("blob {} (no file of this snapshot)", entry.sha256)],
        }
    };
    verified.blobs_checked = entries.len();
    let to_read: Vec<&BlobEntry> = entries.iter().filter(|entry| read.includes(&entry.sha256)).collect();
    for entry in &entries {
        let Some(pool) = backups.pool_path(&entry.sha256) else { continue };
        let problem = match fs::metadata(&pool) {
            Ok(metadata) if metadata.len() == entry.size => continue,
            Ok(metadata) => {
                format!("blob {} has {} bytes in the pool, {} recorded", entry.sha256, metadata.len(), entry.size)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                format!("blob {} is missing from the pool", entry.sha256)
            }
            Err(err) => format!("blob {}: {err}", entry.sha256),
        };
        problems.extend(name(entry).into_iter().map(|file| format!("{file}: {problem}")));
    }
    if !to_read.is_empty() {
        let progress = std::sync::Mutex::new(Progress::new("reading blobs", to_read.len() as u64));
        let hashed = fsutil::parallel(&to_read, |entry| {
            let outcome = backups.pool_path(&entry.sha256).map(|pool| fsutil::hash_path(&pool));
            if let Ok(mut progress) = progress.lock() {
                progress.advance(1);
            }
            outcome
        })
        .ok_or_else(|| BackupError::Failed("a verification thread died".into()))?;
        if let Ok(progress) = progress.into_inner() {
            progress.finish();
        }
        for (entry, outcome) in to_read.iter().zip(hashed) {
            match outcome {
                Some(Ok((size, sha256))) => {
                    verified.blobs_read += 1;
                    verified.bytes_read += size;
                    if sha256 != entry.sha256 {
                        let problem = format!("blob {}'s contents hash to {sha256}: damaged", entry.sha256);
                        problems.extend(name(entry).into_iter().map(|file| format!("{file}: {problem}")));
                    }
                }
                // Missing blobs were reported above.
                Some(Err(err)) if err.kind() == io::ErrorKind::NotFound => {}
                Some(Err(err)) => problems.push(format!("blob {}: cannot read: {err}", entry.sha256)),
                None => {}
            }
        }
    }
    verified.manifest = Some(manifest);
    Ok(verified)
}

fn read_rows(database: &Path) -> Result<Vec<ContentRef>, String> {
    let conn = open_copy(database).map_err(|err| format!("cannot open: {err}"))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|err| format!("cannot check its integrity: {err}"))?;
    if integrity != "ok" {
        return Err(format!("fails its integrity check: {integrity}"));
    }
    crate::db::files::content_refs(&conn).map_err(|err| format!("cannot read its files: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_cover_every_blob_exactly_once() {
        assert!(ReadData::parse_subset("0/7").is_err() && ReadData::parse_subset("8/7").is_err());
        assert!(ReadData::parse_subset("x").is_err());
        let parts: Vec<ReadData> = (1..=7).map(|part| ReadData::parse_subset(&format!("{part}/7")).unwrap()).collect();
        for seed in 0..500u32 {
            let sha256 = fsutil::sha256_hex(&seed.to_le_bytes());
            assert_eq!(parts.iter().filter(|part| part.includes(&sha256)).count(), 1);
        }
    }
}
