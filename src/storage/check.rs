//! `coffer check`: does every file row have its blob, with the right size and hash? Which
//! blobs and temp files does nothing need?
//!
//! Safe while the server runs: it only reads, and `--repair` removes only orphan blobs and
//! temp files untouched for [`REPAIR_MIN_AGE`], so an upload in progress (its temp file keeps
//! changing) or a blob published a moment before its row commits is never touched. Blocking.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::BlobStore;

pub const REPAIR_MIN_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub struct CheckReport {
    pub files_checked: usize,
    /// (file id, sha256) whose blob is missing.
    pub missing: Vec<(String, String)>,
    /// (file id, problem) whose blob has the wrong size or contents.
    pub damaged: Vec<(String, String)>,
    pub orphan_blobs: Vec<String>,
    pub temp_files: Vec<PathBuf>,
    pub removed: usize,
}

impl CheckReport {
    /// Whether every file's contents are intact.
    pub fn healthy(&self) -> bool {
        self.missing.is_empty() && self.damaged.is_empty()
    }
}

fn hash_file(file: &mut std::fs::File) -> io::Result<(u64, String)> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        size += read as u64;
        digest.update(&buffer[..read]);
    }
    Ok((size, digest.finish().as_ref().iter().map(|byte| format!("{byte:02x}")).collect()))
}

fn old_enough(path: &std::path::Path, now: SystemTime) -> bool {
    let modified = std::fs::metadata(path).and_then(|meta| meta.modified());
    modified.is_ok_and(|at| now.duration_since(at).unwrap_or_default() >= REPAIR_MIN_AGE)
}

/// `rows` are (file id, sha256, size) of every file row.
pub fn check(store: &BlobStore, rows: Vec<(String, String, i64)>, repair: bool) -> io::Result<CheckReport> {
    let mut report = CheckReport { files_checked: rows.len(), ..CheckReport::default() };
    let mut by_blob: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for (id, sha256, size) in rows {
        by_blob.entry(sha256).or_default().push((id, size));
    }
    for (sha256, files) in &by_blob {
        match store.open(sha256) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                report.missing.extend(files.iter().map(|(id, _)| (id.clone(), sha256.clone())));
            }
            Err(err) => return Err(err),
            Ok(mut blob) => {
                let (size, actual) = hash_file(&mut blob)?;
                for (id, expected_size) in files {
                    if actual != *sha256 {
                        report.damaged.push((id.clone(), format!("contents hash to {actual}, not {sha256}")));
                    } else if size != *expected_size as u64 {
                        report.damaged.push((id.clone(), format!("{size} bytes stored, {expected_size} recorded")));
                    }
                }
            }
        }
    }
    let referenced: HashSet<&String> = by_blob.keys().collect();
    report.orphan_blobs = store.list_blobs()?.into_iter().filter(|blob| !referenced.contains(blob)).collect();
    report.temp_files =
        std::fs::read_dir(store.tmp_dir())?.map(|entry| entry.map(|entry| entry.path())).collect::<io::Result<_>>()?;
    if repair {
        let now = SystemTime::now();
        for blob in &report.orphan_blobs {
            if let Some(path) = store.blob_path(blob).filter(|path| old_enough(path, now)) {
                std::fs::remove_file(path)?;
                report.removed += 1;
            }
        }
        for temp in report.temp_files.iter().filter(|path| old_enough(path, now)) {
            std::fs::remove_file(temp)?;
            report.removed += 1;
        }
    }
    Ok(report)
}
