//! `<backup dir>/status.json`: the outcome of the last backup run, for people and monitoring.
//!
//! Written atomically by `coffer backup create`, `run` and `push` when they finish. The server
//! (and the metrics to come: `coffer_backup_last_success_timestamp_seconds`) read it with
//! [`read`], one small file, without touching the snapshots.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// Unix seconds of the last backup that completed (and, for `run`, verified).
    pub last_success_at: Option<i64>,
    pub last_success_snapshot: Option<String>,
    pub last_attempt_at: Option<i64>,
    /// "ok" or "failed".
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub last_push_at: Option<i64>,
    pub last_push_status: Option<String>,
    pub last_push_error: Option<String>,
}

/// The status in `backup_dir`; the default when there is none yet or it does not parse.
pub fn read(backup_dir: &Path) -> Status {
    std::fs::read(backup_dir.join("status.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Unix seconds of the last successful backup in `backup_dir`, if any.
pub fn last_success(backup_dir: &Path) -> Option<i64> {
    read(backup_dir).last_success_at
}

/// Changes the status with `update` and writes it atomically. Blocking.
pub fn update(backup_dir: &Path, update: impl FnOnce(&mut Status)) -> std::io::Result<()> {
    let mut status = read(backup_dir);
    update(&mut status);
    let text = serde_json::to_vec_pretty(&status).map_err(std::io::Error::other)?;
    crate::state_dir::write_file_atomically(&backup_dir.join("status.json"), &text, 0o600)
}
