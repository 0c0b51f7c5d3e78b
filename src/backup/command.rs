//! `coffer backup ...`: the command line over this module, its messages and exit statuses.
//!
//! Exit status: 0 done and nothing wrong; 1 failed or damage found (each problem named:
//! files with their owners, snapshot files, rsync's exit code and message); 3 refused before
//! anything changed (no marker, another instance's directory, a non-empty restore target, a
//! snapshot from a newer Coffer, another backup command running).

use std::path::PathBuf;

use clap::Subcommand;

use super::actions::{create_and_record, init, list, prune_now, push_now, restore_now, run_all, verify_snapshots};
use super::layout::{BackupDir, SnapshotId};
use super::push::PushRequest;
use super::restore::RestoreRequest;
use super::verify::ReadData;
use super::{BackupError, Setup};
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
pub(super) fn failed(err: &BackupError) -> Outcome {
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
