//! `coffer backup create`: one consistent snapshot while the server runs.
//!
//! Order matters: take the backup directory's lock, hold blob collection off
//! (`gc.lock` shared), copy the database with `VACUUM INTO` (the snapshot's point in time),
//! check the copy, link exactly the blobs it references into the pool (a missing or
//! wrong-sized blob fails the backup, naming the files and owners), let collection run again,
//! copy keys, certificates and the configuration, write `blobs.txt` and the manifest, then
//! `COMPLETE`, then rename `<id>.partial` to `<id>`. Every row of the copy has its blob,
//! because uploads store and fsync a blob before its row commits, and nothing the copy
//! references can be collected before it is linked. Uploads never wait for any of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::layout::{BackupDir, COMPLETE, SnapshotId};
use super::manifest::{self, BLOB_LIST, BlobEntry, BlobSummary, CONFIG_COPY, Counts, DATABASE, FileDigest, Manifest};
use super::progress::Progress;
use super::{BackupError, Context, Setup, fsutil};
use crate::db::files::ContentRef;
use crate::storage::{BlobStore, GcLock};

/// What a finished `create` did.
#[derive(Debug)]
pub struct Created {
    pub id: SnapshotId,
    pub manifest: Manifest,
    /// Blobs hard-linked into the pool, copied into it (another file system), and already
    /// there from earlier snapshots.
    pub linked: u64,
    pub copied: u64,
    pub reused: u64,
    /// Bytes of blobs copied (not linked) into the pool.
    pub copied_bytes: u64,
    /// Interrupted snapshots of earlier runs that were removed.
    pub removed_leftovers: Vec<PathBuf>,
}

pub fn instance_id(conn: &Connection, what: &Path) -> Result<String, BackupError> {
    conn.query_row("SELECT instance_id FROM instance", [], |row| row.get(0))
        .context(|| format!("cannot read the instance id from {}", what.display()))
}

/// Removes `<id>.partial` and `.trash-<id>` directories: never complete, never restorable.
pub fn remove_leftovers(backups: &BackupDir) -> Result<Vec<PathBuf>, BackupError> {
    let leftovers = backups.list()?.leftovers;
    for path in &leftovers {
        fs::remove_dir_all(path).context(|| format!("cannot remove the interrupted snapshot {}", path.display()))?;
    }
    Ok(leftovers)
}

pub fn create(setup: &Setup) -> Result<Created, BackupError> {
    let live = setup.state_dir.database();
    if !live.is_file() {
        return Err(BackupError::Failed(format!("no database at {}; check storage.state_dir", live.display())));
    }
    let conn = crate::db::connect(&live, setup.busy_timeout).context(|| format!("cannot open {}", live.display()))?;
    let instance_id = instance_id(&conn, &live)?;
    let backups = BackupDir::new(&setup.backup_dir);
    backups.check_marker(Some(&instance_id))?;
    let _lock = backups.lock()?;
    let removed_leftovers = remove_leftovers(&backups)?;
    let id = next_id(&backups, super::now())?;
    let partial = backups.partial(&id);
    fsutil::create_private_dir(&partial).context(|| format!("cannot create {}", partial.display()))?;
    match fill(setup, &backups, &conn, &id, &partial, &instance_id) {
        Ok(mut created) => {
            created.removed_leftovers = removed_leftovers;
            Ok(created)
        }
        Err(err) => {
            let _ = fs::remove_dir_all(&partial);
            Err(err)
        }
    }
}

/// A new id that sorts after every snapshot of the same second, so "newest" is never a
/// coin toss between two snapshots taken within one second.
fn next_id(backups: &BackupDir, at: i64) -> Result<SnapshotId, BackupError> {
    let fresh = SnapshotId::new(at);
    let second = &fresh.as_str()[..18];
    let taken =
        backups.list()?.snapshots.into_iter().map(|entry| entry.id).filter(|id| id.as_str().starts_with(second)).max();
    let Some(taken) = taken else { return Ok(fresh) };
    let suffix = u16::from_str_radix(&taken.as_str()[19..], 16).unwrap_or(0);
    let next =
        suffix.checked_add(1).ok_or_else(|| BackupError::Failed("too many snapshots within one second".into()))?;
    SnapshotId::parse(&format!("{second}-{next:04x}"))
        .ok_or_else(|| BackupError::Failed("cannot make a snapshot id".into()))
}

fn count(conn: &Connection, table: &str) -> u64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get::<_, i64>(0))
        .map_or(0, |count| count.max(0) as u64)
}

fn fill(
    setup: &Setup,
    backups: &BackupDir,
    conn: &Connection,
    id: &SnapshotId,
    partial: &Path,
    instance_id: &str,
) -> Result<Created, BackupError> {
    let gc_lock = setup.state_dir.gc_lock();
    let hold_collection_off = GcLock::shared(&gc_lock).context(|| format!("cannot lock {}", gc_lock.display()))?;
    let created_at = super::now();
    let copy = partial.join(DATABASE);
    conn.execute("VACUUM INTO ?1", [copy.to_string_lossy()])
        .context(|| format!("cannot copy the database into {}", copy.display()))?;
    fs::File::open(&copy).and_then(|file| file.sync_all()).context(|| format!("cannot sync {}", copy.display()))?;
    fsutil::sync_dir(partial).context(|| format!("cannot sync {}", partial.display()))?;
    #[cfg(debug_assertions)]
    pause_for_tests();

    let snapshot = Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .context(|| format!("cannot open the copy {}", copy.display()))?;
    let integrity: String = snapshot
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .context(|| format!("cannot check {}", copy.display()))?;
    if integrity != "ok" {
        return Err(BackupError::Failed(format!("the database copy fails its integrity check: {integrity}")));
    }
    let schema_version: u32 = snapshot
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .context(|| format!("cannot read the schema version of {}", copy.display()))?;
    let refs = crate::db::files::content_refs(&snapshot)
        .map_err(|err| BackupError::Failed(format!("cannot read the files of {}: {err}", copy.display())))?;
    let counts =
        Counts { users: count(&snapshot, "users"), files: refs.len() as u64, shares: count(&snapshot, "shares") };
    drop(snapshot);

    let store = BlobStore::new(setup.state_dir.blobs_dir(), setup.state_dir.tmp_dir(), crate::clock::Clock::system());
    let linking = link_blobs(&store, backups, &refs)?;
    drop(hold_collection_off);

    let mut files = Vec::new();
    for (dir, name) in [
        (setup.state_dir.keys_dir(), "keys"),
        (setup.state_dir.tls_dir(), "tls"),
        (setup.state_dir.root().join("acme"), "acme"),
    ] {
        if dir.is_dir() {
            let copied = fsutil::copy_tree(&dir, &partial.join(name), partial)
                .context(|| format!("cannot copy {} into the snapshot", dir.display()))?;
            files.extend(copied.into_iter().map(|(path, size, sha256)| FileDigest { path, size, sha256 }));
        }
    }
    if let Some(config) = setup.config_file.as_deref().filter(|config| config.is_file()) {
        let (size, sha256) = fsutil::copy_synced(config, &partial.join(CONFIG_COPY), 0o600)
            .context(|| format!("cannot copy {} into the snapshot", config.display()))?;
        files.push(FileDigest { path: CONFIG_COPY.into(), size, sha256 });
    }

    let list = manifest::render_blob_list(&linking.entries);
    let list_path = partial.join(BLOB_LIST);
    fsutil::write_new_synced(&list_path, list.as_bytes(), 0o600)
        .context(|| format!("cannot write {}", list_path.display()))?;
    let (size, sha256) = fsutil::hash_path(&copy).context(|| format!("cannot read {}", copy.display()))?;
    let manifest = Manifest {
        format: super::layout::FORMAT,
        snapshot_id: id.to_string(),
        created_at: manifest::rfc3339(created_at),
        created_at_unix: created_at,
        coffer_version: env!("CARGO_PKG_VERSION").into(),
        schema_version,
        instance_id: instance_id.to_owned(),
        host: fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_owned()).unwrap_or_default(),
        database: FileDigest { path: DATABASE.into(), size, sha256 },
        files,
        blobs: BlobSummary {
            count: linking.entries.len() as u64,
            bytes: linking.entries.iter().map(|entry| entry.size).sum(),
            list_sha256: fsutil::sha256_hex(list.as_bytes()),
        },
        counts,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|err| BackupError::Failed(err.to_string()))?;
    let manifest_path = partial.join(manifest::MANIFEST);
    fsutil::write_new_synced(&manifest_path, &text, 0o600)
        .context(|| format!("cannot write {}", manifest_path.display()))?;
    fsutil::sync_dir(partial).context(|| format!("cannot sync {}", partial.display()))?;
    let marker = manifest::complete_marker(&fsutil::sha256_hex(&text));
    crate::state_dir::write_file_atomically(&partial.join(COMPLETE), marker.as_bytes(), 0o600)
        .context(|| format!("cannot write {}", partial.join(COMPLETE).display()))?;
    let done = backups.snapshot(id);
    fs::rename(partial, &done).context(|| format!("cannot rename {} to {}", partial.display(), done.display()))?;
    fsutil::sync_dir(&backups.snapshots()).context(|| format!("cannot sync {}", backups.snapshots().display()))?;
    Ok(Created {
        id: id.clone(),
        manifest,
        linked: linking.linked,
        copied: linking.copied,
        reused: linking.reused,
        copied_bytes: linking.copied_bytes,
        removed_leftovers: Vec::new(),
    })
}

#[derive(Default)]
struct Linking {
    entries: Vec<BlobEntry>,
    linked: u64,
    copied: u64,
    reused: u64,
    copied_bytes: u64,
}

/// Puts every blob `refs` name into the pool: kept when already there at the right size,
/// else hard-linked from the store, else (another file system) copied and fsynced.
fn link_blobs(store: &BlobStore, backups: &BackupDir, refs: &[ContentRef]) -> Result<Linking, BackupError> {
    let mut by_blob: BTreeMap<&str, Vec<&ContentRef>> = BTreeMap::new();
    for row in refs {
        by_blob.entry(row.sha256.as_str()).or_default().push(row);
    }
    let mut linking = Linking::default();
    let mut problems: Vec<String> = Vec::new();
    let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut progress = Progress::new("linking blobs", by_blob.len() as u64);
    for (sha256, rows) in &by_blob {
        progress.advance(1);
        let expected = u64::try_from(rows[0].size).unwrap_or(u64::MAX);
        let mut fail = |problem: String| problems.extend(rows.iter().map(|row| format!("{row}: {problem}")));
        let (Some(pool), Some(live)) = (backups.pool_path(sha256), store.blob_path(sha256)) else {
            fail(format!("{sha256:?} is not a SHA-256"));
            continue;
        };
        match fs::metadata(&pool) {
            Ok(metadata) if metadata.len() == expected => {
                linking.reused += 1;
                linking.entries.push(BlobEntry { sha256: (*sha256).to_owned(), size: expected });
                continue;
            }
            // A damaged pool entry: replaced from the store below.
            Ok(_) => fs::remove_file(&pool).context(|| format!("cannot replace {}", pool.display()))?,
            Err(_) => {}
        }
        match fs::metadata(&live) {
            Ok(metadata) if metadata.len() == expected => {}
            Ok(metadata) => {
                fail(format!("blob {sha256} has {} bytes, {expected} recorded", metadata.len()));
                continue;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fail(format!("blob {sha256} is missing from {}", live.display()));
                continue;
            }
            Err(err) => {
                fail(format!("cannot read blob {}: {err}", live.display()));
                continue;
            }
        }
        let shard = pool.parent().map(Path::to_path_buf).unwrap_or_default();
        fsutil::create_private_dir(&shard).context(|| format!("cannot create {}", shard.display()))?;
        match fs::hard_link(&live, &pool) {
            Ok(()) => linking.linked += 1,
            Err(err) if err.kind() == io::ErrorKind::CrossesDevices => {
                let incoming = backups.pool().join(format!(".incoming-{:016x}", rand::random::<u64>()));
                let copied = fsutil::copy_synced(&live, &incoming, crate::storage::BLOB_MODE)
                    .and_then(|(size, _)| fs::rename(&incoming, &pool).map(|()| size));
                match copied {
                    Ok(size) => {
                        linking.copied += 1;
                        linking.copied_bytes += size;
                    }
                    Err(err) => {
                        let _ = fs::remove_file(&incoming);
                        fail(format!("cannot copy blob {}: {err}", live.display()));
                        continue;
                    }
                }
            }
            Err(err) => {
                fail(format!("cannot link blob {} into {}: {err}", live.display(), pool.display()));
                continue;
            }
        }
        if let Some(top) = shard.parent() {
            touched.insert(top.to_path_buf());
        }
        touched.insert(shard);
        linking.entries.push(BlobEntry { sha256: (*sha256).to_owned(), size: expected });
    }
    progress.finish();
    if !problems.is_empty() {
        return Err(BackupError::Failed(format!(
            "the backup failed: {} file(s) have missing or damaged contents in the store (run `coffer check`):\n  {}",
            problems.len(),
            problems.join("\n  ")
        )));
    }
    touched.insert(backups.pool());
    for dir in &touched {
        fsutil::sync_dir(dir).context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(linking)
}

/// Debug builds (the black-box tests): while the file named by
/// `TESTING_COFFER_BACKUP_PAUSE_FILE` exists, wait, having created `<file>.reached`: `create`
/// waits right after the database copy (holding blob collection off), `push` right before
/// sending `COMPLETE`. Release builds have no such pause.
#[cfg(debug_assertions)]
pub(super) fn pause_for_tests() {
    let Some(path) = std::env::var_os("TESTING_COFFER_BACKUP_PAUSE_FILE").map(PathBuf::from) else { return };
    let mut reached = path.clone().into_os_string();
    reached.push(".reached");
    let _ = fs::write(PathBuf::from(reached), b"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
