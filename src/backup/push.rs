//! `coffer backup push`: a snapshot off the machine with rsync, the marker arriving last.
//!
//! First the target's `COFFER-BACKUP` marker is fetched and its instance id compared: a
//! target without it (an unmounted disk, a wrong path) is never written to, unless `--init`
//! is given for an empty one. Then, in separate passes: the snapshot's blobs into `pool/`
//! (only missing ones; rsync writes each to a temp name and renames it, so a partial blob is
//! never visible), the snapshot without `COMPLETE`, and finally `COMPLETE` alone. rsync sends
//! a directory in sorted order, so one pass could land `COMPLETE` before `blobs.txt`; an
//! interrupted push therefore leaves no remote snapshot that looks restorable. Then the
//! remote copy is pruned with the same rules as the local one, and its pool keeps exactly the
//! blobs its remaining snapshots list.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use super::layout::{BackupDir, COMPLETE, MARKER, Marker, SnapshotId};
use super::prune::{self, Policy};
use super::rsync::{Rsync, RsyncError, Target, contents_of, listed_names};
use super::verify::{self, ReadData};
use super::{BackupError, Context, fsutil, manifest};
use crate::config::BackupSettings;

pub struct PushRequest {
    pub to: String,
    pub snapshot: Option<SnapshotId>,
    /// Start a new remote copy in an empty target (writes its marker first).
    pub init: bool,
}

#[derive(Debug)]
pub struct Pushed {
    pub id: SnapshotId,
    pub target: String,
    pub blobs: u64,
    pub initialized: bool,
    pub remote_removed: Vec<SnapshotId>,
    pub remote_blobs_removed: u64,
}

/// A scratch directory inside the backup directory, removed when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn arg(path: &Path) -> OsString {
    path.as_os_str().to_owned()
}

pub fn push(backups: &BackupDir, settings: &BackupSettings, request: &PushRequest) -> Result<Pushed, BackupError> {
    let local = backups.check_marker(None)?;
    let _lock = backups.lock()?;
    let listing = backups.list()?;
    let id = match &request.snapshot {
        Some(id) if listing.snapshots.iter().any(|entry| &entry.id == id && entry.complete) => id.clone(),
        Some(id) => return Err(BackupError::Refused(format!("no complete snapshot {id} to push"))),
        None => listing.newest_complete().cloned().ok_or_else(|| {
            BackupError::Refused("no complete snapshot to push; run `coffer backup create` first".into())
        })?,
    };
    let verified = verify::verify(backups, &id, ReadData::None)?;
    if !verified.intact() {
        return Err(BackupError::Damaged(format!(
            "snapshot {id} is damaged and was not pushed:\n  {}",
            verified.problems.join("\n  ")
        )));
    }
    let target = Target::parse(&request.to);
    let rsync = Rsync::new(&target, settings);
    let work = WorkDir(backups.root().join(format!(".push-{:08x}", rand::random::<u32>())));
    fsutil::create_private_dir(&work.0).context(|| format!("cannot create {}", work.0.display()))?;

    let initialized = check_remote_marker(&rsync, &target, &local, &work.0, request.init)?;
    let snapshot = backups.snapshot(&id);
    let (entries, _) = manifest::read_blob_list(&snapshot)?;
    let list: String = entries
        .iter()
        .map(|entry| format!("{}/{}/{}\n", &entry.sha256[..2], &entry.sha256[2..4], entry.sha256))
        .collect();
    let list_path = work.0.join("blobs.list");
    fsutil::write_new_synced(&list_path, list.as_bytes(), 0o600)
        .context(|| format!("cannot write {}", list_path.display()))?;
    let mut files_from = OsString::from("--files-from=");
    files_from.push(&list_path);
    rsync.transfer(
        "blobs",
        &["-rlpt".into(), "--ignore-existing".into(), files_from, contents_of(&backups.pool()), target.at("pool/")],
    )?;
    rsync.transfer(
        "snapshot",
        &[
            "-rlpt".into(),
            format!("--exclude=/{COMPLETE}").into(),
            contents_of(&snapshot),
            target.at(&format!("snapshots/{id}/")),
        ],
    )?;
    #[cfg(debug_assertions)]
    super::create::pause_for_tests();
    rsync.transfer(
        "completion marker",
        &["-lpt".into(), arg(&snapshot.join(COMPLETE)), target.at(&format!("snapshots/{id}/{COMPLETE}"))],
    )?;

    let (remote_removed, remote_blobs_removed) =
        prune_remote(&rsync, &target, backups, &work.0, Policy::from_settings(settings))?;
    Ok(Pushed {
        id,
        target: target.to_string(),
        blobs: entries.len() as u64,
        initialized,
        remote_removed,
        remote_blobs_removed,
    })
}

/// Fetches the target's marker and checks it is this instance's. Without one: refused, or
/// with `init` and an empty target, writes the marker (and empty `pool/`, `snapshots/`).
/// Returns whether it initialized the target.
fn check_remote_marker(
    rsync: &Rsync,
    target: &Target,
    local: &Marker,
    work: &Path,
    init: bool,
) -> Result<bool, BackupError> {
    let fetched = work.join("remote-marker");
    match rsync.output("fetch the target's marker", &[target.at(MARKER), arg(&fetched)]) {
        Ok(_) => {
            let text = fs::read_to_string(&fetched).context(|| format!("cannot read {}", fetched.display()))?;
            let remote = Marker::parse(&text)
                .ok_or_else(|| BackupError::Refused(format!("{target}/{MARKER} is not a Coffer backup marker")))?;
            if remote.instance_id != local.instance_id {
                return Err(BackupError::Refused(format!(
                    "{target} holds the backups of another Coffer instance ({}); this one is {}. Nothing was pushed",
                    remote.instance_id, local.instance_id
                )));
            }
            Ok(false)
        }
        // rsync says 23 when the file does not exist (and for other partial failures; the
        // listing below tells them apart).
        Err(RsyncError::Exit { code: 23, .. }) => {
            if !init {
                return Err(BackupError::Refused(format!(
                    "{target} has no {MARKER} marker: it is not a Coffer backup target, or its disk is not mounted. \
                     Nothing was pushed. To start a new remote copy in an empty target, run `coffer backup push --init`"
                )));
            }
            let existing = match rsync.output("list the target", &["--list-only".into(), target.at("")]) {
                Ok(listing) => listed_names(&listing),
                Err(RsyncError::Exit { code: 23, .. }) => Vec::new(),
                Err(err) => return Err(err.into()),
            };
            if !existing.is_empty() {
                return Err(BackupError::Refused(format!(
                    "{target} is not empty ({}) and has no {MARKER} marker; --init starts only an empty target",
                    existing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            let seed = work.join("init");
            for dir in [seed.join("pool"), seed.join("snapshots")] {
                fsutil::create_private_dir(&dir).context(|| format!("cannot create {}", dir.display()))?;
            }
            fsutil::write_new_synced(&seed.join(MARKER), local.render().as_bytes(), 0o600)
                .context(|| format!("cannot write {}", seed.join(MARKER).display()))?;
            rsync.transfer("start the remote copy", &["-rlpt".into(), contents_of(&seed), target.at("")])?;
            Ok(true)
        }
        Err(err) => Err(err.into()),
    }
}

/// Applies the retention rules to the target's snapshots, then removes the blobs no remaining
/// remote snapshot lists. Deleting is done by rsync itself: an empty source with `--delete`
/// and filter rules that name exactly what goes (everything else is excluded, so protected).
fn prune_remote(
    rsync: &Rsync,
    target: &Target,
    backups: &BackupDir,
    work: &Path,
    policy: Policy,
) -> Result<(Vec<SnapshotId>, u64), BackupError> {
    let listing = rsync.output(
        "list the remote snapshots",
        &[
            "--list-only".into(),
            "-r".into(),
            "--include=/*/".into(),
            format!("--include=/*/{COMPLETE}").into(),
            "--exclude=*".into(),
            target.at("snapshots/"),
        ],
    )?;
    let names = listed_names(&listing);
    let mut remote: BTreeSet<SnapshotId> = BTreeSet::new();
    let mut complete: Vec<SnapshotId> = Vec::new();
    for name in &names {
        match name.split_once('/') {
            None => remote.extend(SnapshotId::parse(name)),
            Some((dir, file)) if file == COMPLETE => complete.extend(SnapshotId::parse(dir)),
            Some(_) => {}
        }
    }
    let Some(newest) = complete.iter().max().cloned() else { return Ok((Vec::new(), 0)) };
    let decisions = prune::decide(&complete, super::now(), policy);
    let mut removed: Vec<SnapshotId> =
        decisions.into_iter().filter(|decision| !decision.keep).map(|decision| decision.id).collect();
    removed.extend(remote.iter().filter(|id| !complete.contains(id) && **id < newest).cloned());
    removed.sort();
    let empty = work.join("empty");
    fsutil::create_private_dir(&empty).context(|| format!("cannot create {}", empty.display()))?;
    if !removed.is_empty() {
        let mut args: Vec<OsString> = vec!["-r".into(), "--delete".into()];
        args.extend(removed.iter().map(|id| OsString::from(format!("--include=/{id}/***"))));
        args.extend(["--exclude=*".into(), contents_of(&empty), target.at("snapshots/")]);
        rsync.transfer("remove expired remote snapshots", &args)?;
    }

    // Mark: the blob lists of every remaining remote snapshot (our copy when we have it;
    // snapshots never change once complete). Any list that cannot be had stops the sweep.
    let mut marked: HashSet<String> = HashSet::new();
    for id in remote.iter().filter(|id| !removed.contains(id)) {
        let local = backups.snapshot(id);
        let dir = if local.join(COMPLETE).is_file() {
            local
        } else {
            let fetched = work.join(format!("remote-{id}"));
            fsutil::create_private_dir(&fetched).context(|| format!("cannot create {}", fetched.display()))?;
            match rsync.output(
                "fetch a remote blob list",
                &[target.at(&format!("snapshots/{id}/{}", manifest::BLOB_LIST)), arg(&fetched)],
            ) {
                Ok(_) => fetched,
                Err(_) if !complete.contains(id) => continue,
                Err(err) => return Err(err.into()),
            }
        };
        let (entries, _) = manifest::read_blob_list(&dir)?;
        marked.extend(entries.into_iter().map(|entry| entry.sha256));
    }
    let pool_listing =
        rsync.output("list the remote pool", &["--list-only".into(), "-r".into(), target.at("pool/")])?;
    let unmarked: Vec<String> = listed_names(&pool_listing)
        .into_iter()
        .filter(|path| {
            let parts: Vec<&str> = path.split('/').collect();
            parts.len() == 3 && crate::storage::is_sha256_hex(parts[2]) && !marked.contains(parts[2])
        })
        .collect();
    if !unmarked.is_empty() {
        let sweep = work.join("sweep");
        let mut rules = String::new();
        let mut dirs = BTreeSet::new();
        for path in &unmarked {
            dirs.insert(path[..2].to_owned());
            dirs.insert(path[..5].to_owned());
        }
        for dir in &dirs {
            fsutil::create_private_dir(&sweep.join(dir)).context(|| format!("cannot create {}", sweep.display()))?;
            rules.push_str(&format!("+ /{dir}/\n"));
        }
        for path in &unmarked {
            rules.push_str(&format!("+ /{path}\n"));
        }
        rules.push_str("- *\n");
        let rules_path = work.join("sweep.rules");
        fsutil::write_new_synced(&rules_path, rules.as_bytes(), 0o600)
            .context(|| format!("cannot write {}", rules_path.display()))?;
        let mut filter = OsString::from("--filter=merge ");
        filter.push(&rules_path);
        rsync.transfer(
            "remove unused remote blobs",
            &["-r".into(), "--delete".into(), filter, contents_of(&sweep), target.at("pool/")],
        )?;
    }
    Ok((removed, unmarked.len() as u64))
}
