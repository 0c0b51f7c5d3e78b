//! `coffer backup restore`: a snapshot into an empty state directory, then a security
//! rollback made visible.
//!
//! Everything that can refuse is checked before the first write: the source's marker, the
//! snapshot being complete, its schema not newer than this Coffer's, the target being empty
//! (or absent), and a quick verification. Then keys and certificates are copied at 0600,
//! every blob is copied (or, with `--link`, hard-linked) with its hash checked, the database
//! copy goes to `tmp/` and has its sessions ended there, the file system is synced once, and
//! only then is the database renamed into place (no `-wal` or `-shm` beside it). A failure
//! after the first write removes what was written, leaving the target as empty as it was. An
//! older schema is migrated by the server at its next start.
//!
//! A restore rolls security state back to the snapshot's time T, so: every session in the
//! snapshot is ended (any of them may have rotated its refresh token after T, and the
//! restored database cannot tell a spent refresh token from a fresh one); sessions, refresh
//! and access tokens issued after T are unknown to the restored database and refused; API
//! tokens issued after T do not exist, those issued before T stay valid and are listed,
//! because a revocation made after T is undone. The audit log records the restore.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::layout::{BackupDir, SnapshotId};
use super::manifest::{self, DATABASE, Manifest};
use super::progress::Progress;
use super::verify::{self, ReadData};
use super::{BackupError, Context, fsutil};

pub struct RestoreRequest {
    pub from: BackupDir,
    pub snapshot: Option<SnapshotId>,
    pub to: PathBuf,
    /// Hard-link blobs from the pool instead of copying them (same file system only).
    pub link: bool,
}

#[derive(Debug)]
pub struct Restored {
    pub id: SnapshotId,
    pub manifest: Manifest,
    pub blobs: u64,
    pub bytes: u64,
    pub sessions_ended: u64,
    /// (token name, owner, created at) of API tokens valid in the restored database.
    pub live_api_tokens: Vec<(String, String, i64)>,
    /// The uid the restored files were given, when the restore ran as root.
    pub owner: Option<u32>,
    pub root_owned: bool,
}

impl Restored {
    /// What the rollback undid, for the admin who ran the restore.
    pub fn rollback_notes(&self, from: &BackupDir) -> String {
        let age_hours = (super::now() - self.manifest.created_at_unix) / 3600;
        let mut notes = format!(
            "\nThis is a rollback to {} ({age_hours} hours before now). Everything after that is undone:\n",
            self.manifest.created_at
        );
        notes.push_str("  - files uploaded, changed, moved, shared or deleted since then (deleted ones are back);\n");
        notes.push_str(
            "  - accounts created, deleted, disabled or changed since then; passwords are as they were then;\n",
        );
        notes.push_str(
            "  - share links created or revoked since then; download counters are back at their values then;\n",
        );
        notes.push_str(&format!(
            "  - all {} sessions of the snapshot were ended: everyone signs in again; sessions and tokens issued \
             since then are unknown and refused;\n",
            self.sessions_ended
        ));
        if self.live_api_tokens.is_empty() {
            notes.push_str("  - API tokens made since then are unknown and refused; no other API token is valid.\n");
        } else {
            notes.push_str(
                "  - API tokens made since then are unknown and refused; these are valid again, including any revoked \
                 since then:\n",
            );
            for (name, owner, created) in &self.live_api_tokens {
                notes.push_str(&format!("      {name:?} of {owner}, made {}\n", manifest::rfc3339(*created)));
            }
            notes.push_str("    revoke any that should stay revoked.\n");
        }
        notes.push_str(&format!(
            "The settings file as it was is in {} (not restored: compare it with yours).\n",
            from.snapshot(&self.id).join(manifest::CONFIG_COPY).display()
        ));
        notes
    }
}

/// Picks the snapshot: the one asked for (it must be complete), else the newest complete.
fn choose(from: &BackupDir, wanted: Option<&SnapshotId>) -> Result<SnapshotId, BackupError> {
    let listing = from.list()?;
    match wanted {
        Some(id) => match listing.snapshots.iter().find(|entry| &entry.id == id) {
            Some(entry) if entry.complete => Ok(id.clone()),
            Some(_) => Err(BackupError::Refused(format!(
                "snapshot {id} is incomplete (no COMPLETE marker): it cannot be restored"
            ))),
            None => Err(BackupError::Refused(format!("no snapshot {id} in {}", from.snapshots().display()))),
        },
        None => listing.newest_complete().cloned().ok_or_else(|| {
            BackupError::Refused(format!("{} holds no complete snapshot to restore", from.snapshots().display()))
        }),
    }
}

/// The target must be an empty directory, or not exist yet with an existing parent.
fn check_target(to: &Path) -> Result<(), BackupError> {
    match fs::read_dir(to) {
        Ok(entries) => {
            let mut names: Vec<String> =
                entries.filter_map(Result::ok).map(|entry| entry.file_name().to_string_lossy().into_owned()).collect();
            if names.is_empty() {
                return Ok(());
            }
            names.sort();
            let shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            Err(BackupError::Refused(format!(
                "{} is not empty ({shown}{}): a restore goes only into an empty state directory, and nothing was changed. \
                 Stop the server and move the old state directory aside first",
                to.display(),
                if names.len() > 5 { ", ..." } else { "" }
            )))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let parent = to.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if parent.is_dir() {
                Ok(())
            } else {
                Err(BackupError::Refused(format!("{} does not exist", parent.display())))
            }
        }
        Err(err) => Err(err).context(|| format!("cannot read {}", to.display())),
    }
}

pub fn restore(request: &RestoreRequest) -> Result<Restored, BackupError> {
    let from = &request.from;
    from.check_marker(None)?;
    let id = choose(from, request.snapshot.as_ref())?;
    let (manifest, _) = manifest::read_manifest(&from.snapshot(&id))?;
    if manifest.schema_version > crate::db::LATEST_VERSION {
        return Err(BackupError::Refused(format!(
            "snapshot {id} was made by Coffer {} with database schema {}; this Coffer ({}) knows schemas up to {}. \
             Install Coffer {} or newer to restore it. Nothing was changed",
            manifest.coffer_version,
            manifest.schema_version,
            env!("CARGO_PKG_VERSION"),
            crate::db::LATEST_VERSION,
            manifest.coffer_version
        )));
    }
    check_target(&request.to)?;
    let verified = verify::verify(from, &id, ReadData::None)?;
    if !verified.intact() {
        return Err(BackupError::Damaged(format!(
            "snapshot {id} is damaged; nothing was restored:\n  {}",
            verified.problems.join("\n  ")
        )));
    }
    let existed = request.to.exists();
    let owner = if existed { fs::metadata(&request.to).ok().map(|meta| (meta.uid(), meta.gid())) } else { None };
    let outcome = write(request, &id, &manifest);
    if outcome.is_err() {
        // Leave the target as empty as it was found.
        if existed {
            if let Ok(entries) = fs::read_dir(&request.to) {
                for entry in entries.flatten() {
                    let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
                }
            }
        } else {
            let _ = fs::remove_dir_all(&request.to);
        }
    }
    let mut restored = outcome?;
    let root = rustix::process::geteuid().is_root();
    match owner {
        Some((uid, gid)) if root && uid != 0 => {
            fsutil::chown_tree(&request.to, uid, gid)
                .context(|| format!("cannot give {} to uid {uid}", request.to.display()))?;
            restored.owner = Some(uid);
        }
        _ => restored.root_owned = root,
    }
    Ok(restored)
}

/// Copies everything without an fsync per file, then makes the whole file system durable at
/// once, and only then renames the database into place: until that rename the target holds
/// no `coffer.db`, so an interrupted restore never looks like a state directory.
fn write(request: &RestoreRequest, id: &SnapshotId, manifest: &Manifest) -> Result<Restored, BackupError> {
    let (from, to) = (&request.from, &request.to);
    let snapshot = from.snapshot(id);
    let state = crate::state_dir::StateDir::new(to);
    state.create().context(|| format!("cannot create {}", to.display()))?;

    for file in &manifest.files {
        let top = file.path.split('/').next().unwrap_or_default();
        if !["keys", "tls", "acme"].contains(&top) || file.path.split('/').any(|part| part == ".." || part.is_empty()) {
            continue;
        }
        let target = to.join(&file.path);
        if let Some(parent) = target.parent() {
            fsutil::create_private_dir(parent).context(|| format!("cannot create {}", parent.display()))?;
        }
        let (_, sha256) = fsutil::copy_hashed(&snapshot.join(&file.path), &target, 0o600, false)
            .context(|| format!("cannot copy {}", file.path))?;
        if sha256 != file.sha256 {
            return Err(BackupError::Damaged(format!(
                "{}: differs from the manifest",
                snapshot.join(&file.path).display()
            )));
        }
    }

    let (entries, _) = manifest::read_blob_list(&snapshot)?;
    let blobs = crate::storage::BlobStore::new(state.blobs_dir(), state.tmp_dir(), crate::clock::Clock::system());
    let mut shards = BTreeSet::new();
    for entry in &entries {
        if let Some(shard) = blobs.blob_path(&entry.sha256).and_then(|path| path.parent().map(Path::to_path_buf)) {
            shards.insert(shard);
        }
    }
    for shard in &shards {
        fsutil::create_private_dir(shard).context(|| format!("cannot create {}", shard.display()))?;
    }
    let progress = std::sync::Mutex::new(Progress::new("restoring blobs", entries.len() as u64));
    let copied = fsutil::parallel(&entries, |entry| -> Result<u64, String> {
        let (Some(source), Some(target)) = (from.pool_path(&entry.sha256), blobs.blob_path(&entry.sha256)) else {
            return Err(format!("{} is not a SHA-256", entry.sha256));
        };
        let outcome = if request.link {
            fs::hard_link(&source, &target).map(|()| entry.size).map_err(|err| {
                format!("cannot link {} (--link needs the backup on the same file system): {err}", source.display())
            })
        } else {
            let staged = state.tmp_dir().join(format!("restore-{}", entry.sha256));
            match fsutil::copy_hashed(&source, &staged, crate::storage::BLOB_MODE, false) {
                Ok((size, sha256)) if sha256 == entry.sha256 && size == entry.size => fs::rename(&staged, &target)
                    .map(|()| size)
                    .map_err(|err| format!("cannot store {}: {err}", target.display())),
                Ok((_, sha256)) => {
                    let _ = fs::remove_file(&staged);
                    Err(format!("blob {} in the backup hashes to {sha256}: damaged", entry.sha256))
                }
                Err(err) => Err(format!("cannot copy {}: {err}", source.display())),
            }
        };
        if let Ok(mut progress) = progress.lock() {
            progress.advance(1);
        }
        outcome
    })
    .ok_or_else(|| BackupError::Failed("a restore thread died".into()))?;
    if let Ok(progress) = progress.into_inner() {
        progress.finish();
    }
    let mut bytes = 0;
    let mut problems = Vec::new();
    for outcome in copied {
        match outcome {
            Ok(size) => bytes += size,
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(BackupError::Damaged(format!("the restore failed and was undone:\n  {}", problems.join("\n  "))));
    }

    let staged = state.tmp_dir().join("restore-coffer.db");
    let (_, sha256) = fsutil::copy_hashed(&snapshot.join(DATABASE), &staged, 0o600, false)
        .context(|| format!("cannot copy the database into {}", staged.display()))?;
    if sha256 != manifest.database.sha256 {
        return Err(BackupError::Damaged(format!("{} changed while it was copied", snapshot.join(DATABASE).display())));
    }
    let (sessions_ended, live_api_tokens) = roll_back_security(&staged, id, manifest)?;
    fsutil::sync_file_system(to).context(|| format!("cannot sync {}", to.display()))?;
    for stale in ["coffer.db-wal", "coffer.db-shm", "coffer.db-journal"] {
        let _ = fs::remove_file(to.join(stale));
    }
    fs::rename(&staged, state.database()).context(|| format!("cannot move the database into {}", to.display()))?;
    fsutil::sync_dir(to).context(|| format!("cannot sync {}", to.display()))?;
    for stale in ["coffer.db-wal", "coffer.db-shm", "coffer.db-journal"] {
        if to.join(stale).exists() {
            return Err(BackupError::Failed(format!("{} was left beside the database", to.join(stale).display())));
        }
    }
    Ok(Restored {
        id: id.clone(),
        manifest: manifest.clone(),
        blobs: entries.len() as u64,
        bytes,
        sessions_ended,
        live_api_tokens,
        owner: None,
        root_owned: false,
    })
}

fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

type RolledBack = (u64, Vec<(String, String, i64)>);

/// Ends every session of the snapshot, lists the API tokens still valid, and audits the
/// restore, in one transaction of the restored database (left in rollback-journal mode, so
/// nothing is left beside it; the server switches it to WAL at start).
fn roll_back_security(database: &Path, id: &SnapshotId, manifest: &Manifest) -> Result<RolledBack, BackupError> {
    let what = || format!("cannot update {}", database.display());
    let mut conn = Connection::open(database).context(what)?;
    let tx = conn.transaction().context(what)?;
    let now = super::now();
    let reason = format!("restored from backup {id}");
    let ended = if has_table(&tx, "sessions").context(what)? {
        tx.execute(
            "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2 WHERE revoked_at IS NULL",
            params![now, reason],
        )
        .context(what)? as u64
    } else {
        0
    };
    let mut tokens = Vec::new();
    if has_table(&tx, "api_tokens").context(what)? {
        let mut statement = tx
            .prepare(
                "SELECT t.name, coalesce(u.username, t.user_id), t.created_at FROM api_tokens t
                 LEFT JOIN users u ON u.id = t.user_id
                 WHERE t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?1) ORDER BY t.created_at",
            )
            .context(what)?;
        let rows = statement.query_map([now], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).context(what)?;
        tokens = rows.collect::<rusqlite::Result<_>>().context(what)?;
    }
    if has_table(&tx, "audit_log").context(what)? {
        let detail = format!(
            "snapshot {id} of {} (Coffer {}, schema {}); {ended} sessions ended",
            manifest.created_at, manifest.coffer_version, manifest.schema_version
        );
        let event = crate::db::audit::AuditEvent {
            event: "backup_restored",
            actor_id: None,
            subject: Some(id.as_str()),
            ip: "cli",
            detail: &detail,
        };
        crate::db::audit::record(&tx, now, &event).map_err(|err| BackupError::Failed(format!("{}: {err}", what())))?;
    }
    tx.commit().context(what)?;
    Ok((ended, tokens))
}
