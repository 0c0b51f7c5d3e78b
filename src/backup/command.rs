//! `coffer backup ...`: the command line over this module, its messages and exit statuses.
//!
//! Exit status: 0 done and nothing wrong; 1 failed or damage found (each problem named:
//! files with their owners, snapshot files, rsync's exit code and message); 3 refused before
//! anything changed (no marker, another instance's directory, a non-empty restore target, a
//! snapshot from a newer Coffer, another backup command running).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use clap::Subcommand;

use super::layout::{BackupDir, SnapshotId};
use super::prune::{self, Policy};
use super::push::{self, PushRequest};
use super::restore::{self, RestoreRequest};
use super::verify::{self, ReadData};
use super::{BackupError, Setup, create, status};
use crate::cli::Outcome;
use crate::config::Settings;

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Mark backup.directory as this instance's backup directory (once, before the first backup).
    Init,
    /// Take a snapshot now: safe while the server runs and uploads continue.
    Create,
    /// List the snapshots, complete or not, and the last run's outcome.
    List {
        /// Another backup directory (a pushed copy, a mounted disk) instead of backup.directory.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
    },
    /// Check that snapshots are complete and intact; damage is reported as files and owners.
    Verify {
        /// The snapshot to check [default: the newest complete one].
        snapshot: Option<String>,
        /// Check every snapshot.
        #[arg(long, conflicts_with = "snapshot")]
        all: bool,
        /// Also read back and hash every blob.
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Also read back and hash part N of T of the blobs (by hash): 1/7 .. 7/7 read all once.
        #[arg(long, value_name = "N/T")]
        read_data_subset: Option<String>,
        /// Another backup directory instead of backup.directory.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
    },
    /// Remove the snapshots the retention rules (backup.keep_*) do not keep, then unused blobs.
    Prune {
        /// Show what would be kept and removed, and why, without removing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Restore a snapshot into an empty state directory (stop the server first).
    Restore {
        /// The backup directory to restore from [default: backup.directory].
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// The snapshot [default: the newest complete one].
        #[arg(long, value_name = "ID")]
        snapshot: Option<String>,
        /// The empty state directory to restore into [default: storage.state_dir].
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Hard-link blobs from the backup instead of copying them (same file system only).
        #[arg(long)]
        link: bool,
    },
    /// Copy a snapshot off the machine with rsync; the completion marker arrives last.
    Push {
        /// A directory, [user@]host:/path (ssh) or rsync://[user@]host/module/path [default: backup.push_to].
        #[arg(long, value_name = "TARGET")]
        to: Option<String>,
        /// The snapshot [default: the newest complete one].
        #[arg(long, value_name = "ID")]
        snapshot: Option<String>,
        /// Start a new remote copy in an empty target (writes its COFFER-BACKUP marker first).
        #[arg(long)]
        init: bool,
    },
    /// Create, verify, prune and push (when backup.push_to is set): what the timer runs.
    Run,
}

fn setup(settings: &Settings, config_file: Option<PathBuf>) -> Setup {
    Setup {
        state_dir: crate::state_dir::StateDir::new(&settings.storage.state_dir),
        backup_dir: settings.backup.directory.clone(),
        config_file,
        busy_timeout: settings.database.busy_timeout.0.max(std::time::Duration::from_secs(30)),
        settings: settings.backup.clone(),
    }
}

/// Says what went wrong and turns it into the exit status.
fn failed(err: &BackupError) -> Outcome {
    eprintln!("coffer: {err}");
    match err {
        BackupError::Refused(_) => Outcome::Refused,
        _ => Outcome::Failed,
    }
}

fn parse_id(text: Option<&str>) -> Result<Option<SnapshotId>, BackupError> {
    text.map(|text| {
        SnapshotId::parse(text).ok_or_else(|| {
            BackupError::Refused(format!("`{text}` is not a snapshot id (like 2026-12-02T031500Z-3f9a)"))
        })
    })
    .transpose()
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

pub fn run(settings: Settings, config_file: Option<PathBuf>, command: BackupCommand) -> anyhow::Result<Outcome> {
    let setup = setup(&settings, config_file);
    let outcome = match command {
        BackupCommand::Init => init(&settings, &setup),
        BackupCommand::Create => {
            crate::cli::check_owner(&settings)?;
            create_and_record(&setup).map(|_| Outcome::Ok)
        }
        BackupCommand::List { from } => list(&BackupDir::new(from.unwrap_or_else(|| setup.backup_dir.clone()))),
        BackupCommand::Verify { snapshot, all, read_data, read_data_subset, from } => {
            let read = match (read_data, read_data_subset) {
                (true, _) => ReadData::All,
                (false, Some(subset)) => ReadData::parse_subset(&subset).map_err(BackupError::Refused)?,
                (false, None) => ReadData::None,
            };
            let backups = BackupDir::new(from.unwrap_or_else(|| setup.backup_dir.clone()));
            let wanted = parse_id(snapshot.as_deref());
            wanted.and_then(|wanted| verify_snapshots(&backups, wanted, all, read))
        }
        BackupCommand::Prune { dry_run } => {
            crate::cli::check_owner(&settings)?;
            prune_now(&setup, dry_run)
        }
        BackupCommand::Restore { from, snapshot, to, link } => parse_id(snapshot.as_deref()).and_then(|snapshot| {
            let request = RestoreRequest {
                from: BackupDir::new(from.unwrap_or_else(|| setup.backup_dir.clone())),
                snapshot,
                to: to.unwrap_or_else(|| setup.state_dir.root().to_path_buf()),
                link,
            };
            restore_now(&request)
        }),
        BackupCommand::Push { to, snapshot, init } => {
            crate::cli::check_owner(&settings)?;
            let Some(to) = to.or_else(|| setup.settings.push_to.clone()) else {
                eprintln!("coffer: no push target: set backup.push_to or give --to");
                return Ok(Outcome::Refused);
            };
            parse_id(snapshot.as_deref()).and_then(|snapshot| push_now(&setup, PushRequest { to, snapshot, init }))
        }
        BackupCommand::Run => {
            crate::cli::check_owner(&settings)?;
            Ok(run_all(&setup))
        }
    };
    Ok(outcome.unwrap_or_else(|err| failed(&err)))
}

fn init(settings: &Settings, setup: &Setup) -> Result<Outcome, BackupError> {
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
fn create_and_record(setup: &Setup) -> Result<SnapshotId, BackupError> {
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

fn list(backups: &BackupDir) -> Result<Outcome, BackupError> {
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

fn verify_snapshots(
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

fn prune_now(setup: &Setup, dry_run: bool) -> Result<Outcome, BackupError> {
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

fn restore_now(request: &RestoreRequest) -> Result<Outcome, BackupError> {
    let restored = restore::restore(request)?;
    let manifest = &restored.manifest;
    let age = super::now() - manifest.created_at_unix;
    println!(
        "restored snapshot {} into {}: {} files of {} users, {} blobs ({})",
        restored.id,
        request.to.display(),
        manifest.counts.files,
        manifest.counts.users,
        restored.blobs,
        human_bytes(restored.bytes)
    );
    println!(
        "\nThis is a rollback to {} ({} hours before now). Everything after that is undone:",
        manifest.created_at,
        age / 3600
    );
    println!("  - files uploaded, changed, moved, shared or deleted since then (deleted ones are back);");
    println!("  - accounts created, deleted, disabled or changed since then; passwords are as they were then;");
    println!("  - share links created or revoked since then; download counters are back at their values then;");
    println!(
        "  - all {} sessions of the snapshot were ended: everyone signs in again; sessions and tokens issued since then are unknown and refused;",
        restored.sessions_ended
    );
    if restored.live_api_tokens.is_empty() {
        println!("  - API tokens made since then are unknown and refused; no other API token is valid.");
    } else {
        println!(
            "  - API tokens made since then are unknown and refused; these are valid again, including any revoked since then:"
        );
        for (name, owner, created) in &restored.live_api_tokens {
            println!("      {name:?} of {owner}, made {}", super::manifest::rfc3339(*created));
        }
        println!("    revoke any that should stay revoked.");
    }
    println!(
        "The settings file as it was is in {} (not restored: compare it with yours).",
        request.from.snapshot(&restored.id).join(super::manifest::CONFIG_COPY).display()
    );
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

fn push_now(setup: &Setup, request: PushRequest) -> Result<Outcome, BackupError> {
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
fn run_all(setup: &Setup) -> Outcome {
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
