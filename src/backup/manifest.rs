//! What a snapshot says about itself: `manifest.json`, `blobs.txt` and the `COMPLETE` marker.
//!
//! The manifest records the format, ids, times, the Coffer and schema versions, and the size
//! and SHA-256 of the database copy, of every key, certificate and configuration file, and
//! of the blob list. `COMPLETE` holds the manifest's SHA-256 and is written last, so a
//! snapshot whose marker matches its manifest was finished, and every file it names can be
//! checked against it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{BackupError, Context, fsutil};

pub const DATABASE: &str = "coffer.db";
pub const MANIFEST: &str = "manifest.json";
pub const BLOB_LIST: &str = "blobs.txt";
pub const CONFIG_COPY: &str = "coffer.toml";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Relative to the snapshot directory.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSummary {
    pub count: u64,
    pub bytes: u64,
    /// SHA-256 of `blobs.txt`.
    pub list_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub users: u64,
    pub files: u64,
    pub shares: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub snapshot_id: String,
    /// When the database was copied, RFC 3339 UTC.
    pub created_at: String,
    pub created_at_unix: i64,
    pub coffer_version: String,
    pub schema_version: u32,
    pub instance_id: String,
    pub host: String,
    pub database: FileDigest,
    /// Keys, certificates and the configuration file.
    pub files: Vec<FileDigest>,
    pub blobs: BlobSummary,
    pub counts: Counts,
}

/// One line of `blobs.txt`: `<sha256> <size>`, sorted by hash.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlobEntry {
    pub sha256: String,
    pub size: u64,
}

pub fn render_blob_list(entries: &[BlobEntry]) -> String {
    entries.iter().map(|entry| format!("{} {}\n", entry.sha256, entry.size)).collect()
}

pub fn parse_blob_list(text: &str) -> Result<Vec<BlobEntry>, String> {
    text.lines()
        .enumerate()
        .map(|(number, line)| {
            let bad = || format!("line {} of {BLOB_LIST} is not `<sha256> <size>`", number + 1);
            let (sha256, size) = line.split_once(' ').ok_or_else(bad)?;
            if !crate::storage::is_sha256_hex(sha256) {
                return Err(bad());
            }
            Ok(BlobEntry { sha256: sha256.to_owned(), size: size.parse().map_err(|_| bad())? })
        })
        .collect()
}

/// Reads `blobs.txt` of a snapshot directory.
pub fn read_blob_list(dir: &Path) -> Result<(Vec<BlobEntry>, String), BackupError> {
    let path = dir.join(BLOB_LIST);
    let text = std::fs::read_to_string(&path).context(|| format!("cannot read {}", path.display()))?;
    let entries =
        parse_blob_list(&text).map_err(|problem| BackupError::Damaged(format!("{}: {problem}", path.display())))?;
    Ok((entries, fsutil::sha256_hex(text.as_bytes())))
}

/// Reads `manifest.json` of a snapshot directory, with the SHA-256 of its bytes.
pub fn read_manifest(dir: &Path) -> Result<(Manifest, String), BackupError> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).context(|| format!("cannot read {}", path.display()))?;
    let manifest = serde_json::from_slice(&bytes)
        .map_err(|err| BackupError::Damaged(format!("{} does not parse: {err}", path.display())))?;
    Ok((manifest, fsutil::sha256_hex(&bytes)))
}

/// What `COMPLETE` holds for a manifest with this hash.
pub fn complete_marker(manifest_sha256: &str) -> String {
    format!("{manifest_sha256}\n")
}

pub fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|time| time.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_lists_round_trip_and_refuse_anything_else() {
        let entries =
            vec![BlobEntry { sha256: "a".repeat(64), size: 0 }, BlobEntry { sha256: "b".repeat(64), size: 1 << 40 }];
        assert_eq!(parse_blob_list(&render_blob_list(&entries)).unwrap(), entries);
        assert!(parse_blob_list("../../etc/passwd 1\n").is_err());
        assert!(parse_blob_list(&format!("{} -1\n", "a".repeat(64))).is_err());
    }
}
