//! What each `coffer backup` subcommand does around the work of its module: the checks and
//! locks it needs, what it prints, and the outcome it records in `status.json`. `run`, what
//! the timer starts, chains create, verify, prune and push, pruning only after a verified
//! backup.

use std::os::unix::fs::MetadataExt;

use super::command::{failed, human_bytes};
use super::layout::{BackupDir, SnapshotId};
use super::prune::{self, Policy};
use super::push::{self, PushRequest};
use super::restore::{self, RestoreRequest};
use super::verify::{self, ReadData};
use super::{BackupError, Setup, create, status};
use crate::cli::Outcome;
use crate::config::Settings;

pub(super) fn init(settings: &Settings, setup: &Setup) -> Result<Outcome, BackupError> {
    crate::cli::check_owner(settings).map_err(|err| BackupError::Refused(err.to_string()))?;
    let live = setup.state_dir.database();
    if !live.is_file() {
        return Err(BackupError::Failed(format!(
            "no database at {}: start the server once (or check storage.state_dir)",
            live.display()
        )));
    }
    let conn = crate::db::connect(&live, setup.busy_timeout)
        .map_err(|err| BackupError::Failed(format!("cannot open {}: {err}", live.display())))?;
    let instance_id = create::instance_id(&conn, &live)?;
    let backups = BackupDir::new(&setup.backup_dir);
    if backups.init(&instance_id)? {
        println!("{} is now the backup directory of this instance ({instance_id})", backups.root().display());
    } else {
        println!("{} already is the backup directory of this instance ({instance_id})", backups.root().display());
    }
    Ok(Outcome::Ok)
}

/// Records in `status.json`, but only in a directory that has its marker: never writes
/// into what may be an unmounted disk.
fn record(backups: &BackupDir, update: impl FnOnce(&mut status::Status)) -> std::io::Result<()> {
    match backups.read_marker() {
        Ok(Some(_)) => status::update(backups.root(), update),
        _ => Ok(()),
    }
}

/// `create`, recording the outcome in `status.json`.
pub(super) fn create_and_record(setup: &Setup) -> Result<SnapshotId, BackupError> {
    let outcome = create::create(setup);
    let now = super::now();
    let backups = BackupDir::new(&setup.backup_dir);
    let recorded = record(&backups, |status| {
        status.last_attempt_at = Some(now);
        match &outcome {
            Ok(created) => {
                status.last_status = Some("ok".into());
                status.last_error = None;
                status.last_success_at = Some(now);
                status.last_success_snapshot = Some(created.id.to_string());
            }
            Err(err) => {
                status.last_status = Some("failed".into());
                status.last_error = Some(err.to_string());
            }
        }
    });
    let created = outcome?;
    if let Err(err) = recorded {
        eprintln!("coffer: warning: cannot write {}: {err}", backups.status_file().display());
    }
    for leftover in &created.removed_leftovers {
        println!("removed the interrupted snapshot {}", leftover.display());
    }
    let manifest = &created.manifest;
    println!(
        "snapshot {} complete: {} files of {} users, {} blobs ({}), database {}",
        created.id,
        manifest.counts.files,
        manifest.counts.users,
        manifest.blobs.count,
        human_bytes(manifest.blobs.bytes),
        human_bytes(manifest.database.size)
    );
    println!(
        "blobs: {} already in the pool, {} hard-linked, {} copied ({})",
        created.reused,
        created.linked,
        created.copied,
        human_bytes(created.copied_bytes)
    );
    let same_disk = std::fs::metadata(setup.state_dir.root())
        .and_then(|state| std::fs::metadata(backups.root()).map(|backup| state.dev() == backup.dev()))
        .unwrap_or(false);
    if same_disk && setup.settings.push_to.is_none() {
        println!(
            "note: {} is on the same file system as the state directory and backup.push_to is not set: \
             this protects against deletion and damage, not against losing the disk",
            backups.root().display()
        );
    }
    Ok(created.id)
}

pub(super) fn list(backups: &BackupDir) -> Result<Outcome, BackupError> {
    backups.check_marker(None)?;
    let listing = backups.list()?;
    println!(
        "{:<24} {:<10} {:<20} {:>7} {:>7} {:>10} {:>7}",
        "SNAPSHOT", "STATE", "CREATED (UTC)", "FILES", "BLOBS", "SIZE", "SCHEMA"
    );
    for entry in &listing.snapshots {
        let manifest = super::manifest::read_manifest(&backups.snapshot(&entry.id)).ok().map(|(manifest, _)| manifest);
        let state = if entry.complete { "complete" } else { "incomplete" };
        let created = super::manifest::rfc3339(entry.id.time());
        match manifest.filter(|_| entry.complete) {
            Some(manifest) => println!(
                "{:<24} {:<10} {:<20} {:>7} {:>7} {:>10} {:>7}",
                entry.id,
                state,
                created,
                manifest.counts.files,
                manifest.blobs.count,
                human_bytes(manifest.blobs.bytes + manifest.database.size),
                manifest.schema_version
            ),
            None => {
                println!("{:<24} {:<10} {:<20} {:>7} {:>7} {:>10} {:>7}", entry.id, state, created, "-", "-", "-", "-")
            }
        }
    }
    for leftover in &listing.leftovers {
        println!("{} (interrupted; removed by the next backup)", leftover.display());
    }
    let status = status::read(backups.root());
    if let Some(at) = status.last_attempt_at {
        let outcome = status.last_status.unwrap_or_default();
        println!("last backup run: {} at {}", outcome, super::manifest::rfc3339(at));
        if let Some(error) = status.last_error.filter(|_| outcome != "ok") {
            println!("last error: {error}");
        }
    }
    if let Some(at) = status.last_push_at {
        println!("last push: {} at {}", status.last_push_status.unwrap_or_default(), super::manifest::rfc3339(at));
    }
    Ok(Outcome::Ok)
}

pub(super) fn verify_snapshots(
    backups: &BackupDir,
    wanted: Option<SnapshotId>,
    all: bool,
    read: ReadData,
) -> Result<Outcome, BackupError> {
    backups.check_marker(None)?;
    let listing = backups.list()?;
    let ids: Vec<SnapshotId> = match (wanted, all) {
        (Some(id), _) => vec![id],
        (None, true) => listing.snapshots.iter().map(|entry| entry.id.clone()).collect(),
        (None, false) => match listing.newest_complete() {
            Some(id) => vec![id.clone()],
            None => {
                return Err(BackupError::Failed(format!("{} holds no complete snapshot", backups.root().display())));
            }
        },
    };
    let mut intact = true;
    for id in ids {
        if !backups.snapshot(&id).is_dir() {
            return Err(BackupError::Refused(format!("no snapshot {id} in {}", backups.snapshots().display())));
        }
        let verified = verify::verify(backups, &id, read)?;
        if verified.intact() {
            println!(
                "snapshot {id}: ok ({} files, {} blobs, {} read back, {})",
                verified.files_checked,
                verified.blobs_checked,
                verified.blobs_read,
                human_bytes(verified.bytes_read)
            );
        } else {
            intact = false;
            println!("snapshot {id}: DAMAGED ({} problems)", verified.problems.len());
            for problem in &verified.problems {
                println!("  {problem}");
            }
        }
    }
    Ok(if intact { Outcome::Ok } else { Outcome::Failed })
}

pub(super) fn prune_now(setup: &Setup, dry_run: bool) -> Result<Outcome, BackupError> {
    let backups = BackupDir::new(&setup.backup_dir);
    backups.check_marker(None)?;
    let _lock = backups.lock()?;
    let pruned = prune::prune(&backups, Policy::from_settings(&setup.settings), dry_run)?;
    let (keep, remove) = if dry_run { ("would keep", "would remove") } else { ("kept", "removed") };
    for decision in &pruned.decisions {
        let verb = if decision.keep { keep } else { remove };
        println!("{verb:<12} {}  {}", decision.id, decision.reasons.join("; "));
    }
    for id in &pruned.incomplete {
        println!("{remove:<12} {id}  incomplete (never finished)");
    }
    println!("{remove} {} unused blobs from the pool ({})", pruned.blobs_removed, human_bytes(pruned.bytes_freed));
    Ok(Outcome::Ok)
}

pub(super) fn restore_now(request: &RestoreRequest) -> Result<Outcome, BackupError> {
    let restored = restore::restore(request)?;
    let manifest = &restored.manifest;
    println!(
        "restored snapshot {} into {}: {} files of {} users, {} blobs ({})",
        restored.id,
        request.to.display(),
        manifest.counts.files,
        manifest.counts.users,
        restored.blobs,
        human_bytes(restored.bytes)
    );
    print!("{}", restored.rollback_notes(&request.from));
    println!("The restore is in the audit log (backup_restored). Start the server on {}.", request.to.display());
    if let Some(uid) = restored.owner {
        println!("Files belong to user id {uid}, the owner of {}.", request.to.display());
    } else if restored.root_owned {
        println!(
            "warning: the restored files belong to root; give them to the service's user: chown -R coffer:coffer {}",
            request.to.display()
        );
    }
    Ok(Outcome::Ok)
}

pub(super) fn push_now(setup: &Setup, request: PushRequest) -> Result<Outcome, BackupError> {
    let backups = BackupDir::new(&setup.backup_dir);
    let outcome = push::push(&backups, &setup.settings, &request);
    let now = super::now();
    let recorded = record(&backups, |status| {
        status.last_push_at = Some(now);
        status.last_push_status = Some(if outcome.is_ok() { "ok" } else { "failed" }.into());
        status.last_push_error = outcome.as_ref().err().map(ToString::to_string);
    });
    let pushed = outcome?;
    if let Err(err) = recorded {
        eprintln!("coffer: warning: cannot write {}: {err}", backups.status_file().display());
    }
    if pushed.initialized {
        println!("started a new remote copy in {}", pushed.target);
    }
    println!("pushed snapshot {} ({} blobs) to {}", pushed.id, pushed.blobs, pushed.target);
    for id in &pushed.remote_removed {
        println!("removed remote snapshot {id} (retention)");
    }
    if pushed.remote_blobs_removed > 0 {
        println!("removed {} unused remote blobs", pushed.remote_blobs_removed);
    }
    Ok(Outcome::Ok)
}

/// What the timer runs: create, verify (quick, plus the day's share of blobs read back),
/// prune only after both succeeded, then push when a target is set.
pub(super) fn run_all(setup: &Setup) -> Outcome {
    let backups = BackupDir::new(&setup.backup_dir);
    let before = status::read(backups.root());
    let id = match create_and_record(setup) {
        Ok(id) => id,
        Err(err) => return failed(&err),
    };
    let days = u64::from(setup.settings.verify_read_data_days);
    let read = if days == 0 {
        ReadData::None
    } else {
        let day = u64::try_from(super::now().div_euclid(86_400)).unwrap_or(0);
        ReadData::Subset { part: day % days + 1, of: days }
    };
    match verify_snapshots(&backups, Some(id), false, read) {
        Ok(Outcome::Ok) => {}
        Ok(other) => {
            let _ = record(&backups, |status| {
                status.last_status = Some("failed".into());
                status.last_error = Some("the new snapshot failed verification".into());
                status.last_success_at = before.last_success_at;
                status.last_success_snapshot = before.last_success_snapshot.clone();
            });
            return other;
        }
        Err(err) => return failed(&err),
    }
    if let Err(err) = prune_now(setup, false) {
        return failed(&err);
    }
    match setup.settings.push_to.clone() {
        Some(to) => push_now(setup, PushRequest { to, snapshot: None, init: false }).unwrap_or_else(|err| failed(&err)),
        None => Outcome::Ok,
    }
}
