//! `coffer backup prune`: which snapshots to keep, restic's way, and removing the rest.
//!
//! The rules work on UTC calendar buckets taken from each snapshot's id (never from file
//! times) and are ORed: the newest `keep_last` complete snapshots; then, newest first, the
//! newest snapshot of each of the `keep_daily` days, `keep_weekly` ISO weeks and
//! `keep_monthly` months that have a snapshot (a day without a backup uses up nothing, so
//! failed nights never push good snapshots out). The newest complete snapshot is always
//! kept, and so is any snapshot dated in the future (it uses up no bucket: a wrong clock
//! must not push real ones out). Incomplete snapshots never count; those older than the
//! newest complete one are removed. Then the pool keeps exactly the blobs the remaining
//! snapshots list. Pure decisions in [`decide`]; [`prune`] applies them.

use std::collections::HashSet;
use std::fs;

use super::layout::{BackupDir, SnapshotId};
use super::{BackupError, Context, fsutil, manifest};

/// Snapshots dated more than this after "now" are treated as dated in the future.
const CLOCK_SKEW: i64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

impl Policy {
    pub fn from_settings(settings: &crate::config::BackupSettings) -> Self {
        Self {
            keep_last: settings.keep_last.max(1),
            keep_daily: settings.keep_daily,
            keep_weekly: settings.keep_weekly,
            keep_monthly: settings.keep_monthly,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: SnapshotId,
    pub keep: bool,
    /// Why it is kept (every rule that keeps it), or why it goes.
    pub reasons: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Day(i32, u16),
    Week(i32, u8),
    Month(i32, u8),
}

fn buckets(at: i64) -> [Bucket; 3] {
    let date = time::OffsetDateTime::from_unix_timestamp(at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH).date();
    let (iso_year, week, _) = date.to_iso_week_date();
    [
        Bucket::Day(date.year(), date.ordinal()),
        Bucket::Week(iso_year, week),
        Bucket::Month(date.year(), u8::from(date.month())),
    ]
}

/// Keep or remove each complete snapshot, newest first.
pub fn decide(complete: &[SnapshotId], now: i64, policy: Policy) -> Vec<Decision> {
    let mut sorted: Vec<&SnapshotId> = complete.iter().collect();
    sorted.sort_by(|a, b| b.time().cmp(&a.time()).then_with(|| b.cmp(a)));
    let rules = [("daily", policy.keep_daily), ("weekly", policy.keep_weekly), ("monthly", policy.keep_monthly)];
    let mut kept_buckets: [Vec<Bucket>; 3] = Default::default();
    let mut counted = 0u32;
    sorted
        .into_iter()
        .enumerate()
        .map(|(index, id)| {
            let mut reasons = Vec::new();
            if index == 0 {
                reasons.push("the newest complete snapshot".to_owned());
            }
            if id.time() > now + CLOCK_SKEW {
                reasons.push("dated in the future (check the clock); never removed".to_owned());
            } else {
                counted += 1;
                if counted <= policy.keep_last {
                    reasons.push(format!("keep_last ({counted} of {})", policy.keep_last));
                }
                for (rule, ((name, limit), kept)) in
                    buckets(id.time()).into_iter().zip(rules.iter().zip(kept_buckets.iter_mut()))
                {
                    if !kept.contains(&rule) && kept.len() < *limit as usize {
                        kept.push(rule);
                        reasons.push(format!("keep_{name} ({} of {limit})", kept.len()));
                    }
                }
            }
            let keep = !reasons.is_empty();
            if !keep {
                reasons.push("matches no keep rule".to_owned());
            }
            Decision { id: id.clone(), keep, reasons }
        })
        .collect()
}

#[derive(Debug, Default)]
pub struct Pruned {
    pub decisions: Vec<Decision>,
    /// Incomplete snapshots (no `COMPLETE`) older than the newest complete one.
    pub incomplete: Vec<SnapshotId>,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
}

/// Applies [`decide`] to the backup directory (nothing is changed when `dry_run`). The caller
/// holds the directory's lock. Refused when there is no complete snapshot at all.
pub fn prune(backups: &BackupDir, policy: Policy, dry_run: bool) -> Result<Pruned, BackupError> {
    let listing = backups.list()?;
    let complete: Vec<SnapshotId> = listing.complete().cloned().collect();
    let Some(newest) = listing.newest_complete().cloned() else {
        return Err(BackupError::Refused(format!(
            "{} holds no complete snapshot: nothing is pruned until a backup succeeds",
            backups.root().display()
        )));
    };
    let decisions = decide(&complete, super::now(), policy);
    let incomplete: Vec<SnapshotId> = listing
        .snapshots
        .iter()
        .filter(|entry| !entry.complete && entry.id < newest)
        .map(|entry| entry.id.clone())
        .collect();
    let removed: HashSet<SnapshotId> = decisions
        .iter()
        .filter(|decision| !decision.keep)
        .map(|decision| decision.id.clone())
        .chain(incomplete.iter().cloned())
        .collect();
    let remaining: Vec<&SnapshotId> =
        listing.snapshots.iter().map(|entry| &entry.id).filter(|id| !removed.contains(*id)).collect();
    // Mark: every blob a remaining snapshot lists. A remaining complete snapshot whose list
    // cannot be read stops the sweep: the pool is never emptied on a guess.
    let mut marked: HashSet<String> = HashSet::new();
    for id in &remaining {
        let complete = listing.snapshots.iter().any(|entry| &entry.id == *id && entry.complete);
        match manifest::read_blob_list(&backups.snapshot(id)) {
            Ok((entries, _)) => marked.extend(entries.into_iter().map(|entry| entry.sha256)),
            Err(err) if complete => {
                return Err(BackupError::Failed(format!(
                    "cannot prune: snapshot {id}'s blob list is unreadable: {err}"
                )));
            }
            Err(_) => {}
        }
    }
    let unmarked: Vec<(std::path::PathBuf, u64)> = pool_entries(backups)?
        .into_iter()
        .filter(|(name, _, _)| !marked.contains(name))
        .map(|(_, path, size)| (path, size))
        .collect();
    let mut pruned = Pruned {
        decisions,
        incomplete,
        blobs_removed: unmarked.len() as u64,
        bytes_freed: unmarked.iter().map(|(_, size)| size).sum(),
    };
    if dry_run {
        return Ok(pruned);
    }
    for id in &removed {
        let (dir, trash) = (backups.snapshot(id), backups.snapshots().join(format!(".trash-{id}")));
        // Renamed first: a prune interrupted while deleting leaves a `.trash-` directory,
        // never a half-deleted snapshot that looks like one.
        fs::rename(&dir, &trash).context(|| format!("cannot move {} aside", dir.display()))?;
        fsutil::sync_dir(&backups.snapshots()).context(|| format!("cannot sync {}", backups.snapshots().display()))?;
        fs::remove_dir_all(&trash).context(|| format!("cannot remove {}", trash.display()))?;
    }
    for (path, _) in &unmarked {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => pruned.blobs_removed -= 1,
            Err(err) => return Err(err).context(|| format!("cannot remove {}", path.display())),
        }
    }
    Ok(pruned)
}

/// Every file in the pool: (name, path, size). Names that are not blobs (an interrupted
/// copy's `.incoming-*`) are listed too, so the sweep removes them.
pub fn pool_entries(backups: &BackupDir) -> Result<Vec<(String, std::path::PathBuf, u64)>, BackupError> {
    fn walk(dir: &std::path::Path, depth: u8, out: &mut Vec<(String, std::path::PathBuf, u64)>) -> std::io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() && depth < 2 {
                walk(&entry.path(), depth + 1, out)?;
            } else if kind.is_file() {
                out.push((entry.file_name().to_string_lossy().into_owned(), entry.path(), entry.metadata()?.len()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&backups.pool(), 0, &mut out).context(|| format!("cannot list {}", backups.pool().display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// 2026-12-02T03:15:00Z, a Wednesday.
    const NOW: i64 = 1_796_181_300;

    fn id(at: i64, suffix: u16) -> SnapshotId {
        let time = SnapshotId::new(at);
        SnapshotId::parse(&format!("{}-{suffix:04x}", &time.as_str()[..18])).unwrap()
    }

    fn policy(keep_last: u32, keep_daily: u32, keep_weekly: u32, keep_monthly: u32) -> Policy {
        Policy { keep_last, keep_daily, keep_weekly, keep_monthly }
    }

    fn kept(decisions: &[Decision]) -> Vec<SnapshotId> {
        decisions.iter().filter(|decision| decision.keep).map(|decision| decision.id.clone()).collect()
    }

    #[test]
    fn one_snapshot_a_day_for_sixty_days_keeps_the_documented_set() {
        let snapshots: Vec<SnapshotId> = (0..60).map(|day| id(NOW - day * DAY, 0)).collect();
        let decisions = decide(&snapshots, NOW, policy(3, 7, 4, 6));
        let kept = kept(&decisions);
        // 7 daily (days 0-6), then weekly buckets: this week (in the dailies), the three
        // weeks before (their newest: the Sundays, days 3, 10 and 17), monthly: Dec
        // (day 0), Nov (day 2), Oct (day 32+), ... as far as 60 days reach.
        for day in 0..7 {
            assert!(kept.contains(&id(NOW - day * DAY, 0)), "day {day}");
        }
        for sunday in [10, 17] {
            assert!(kept.contains(&id(NOW - sunday * DAY, 0)), "week of day {sunday}");
        }
        assert!(kept.contains(&id(NOW - 32 * DAY, 0)), "the newest of October (Oct 31)");
        assert!(!kept.contains(&id(NOW - 40 * DAY, 0)));
        assert_eq!(decisions.iter().filter(|decision| decision.keep).count(), kept.len());
        assert_eq!(kept.len(), 7 + 2 + 1, "{kept:?}");
    }

    #[test]
    fn keep_last_is_a_floor_at_any_age() {
        let old: Vec<SnapshotId> = (0..5).map(|n| id(NOW - 400 * DAY - n * 3600, n as u16)).collect();
        let decisions = decide(&old, NOW, policy(3, 0, 0, 0));
        assert_eq!(kept(&decisions), old[..3].to_vec());
        assert!(decisions[3].reasons.contains(&"matches no keep rule".to_owned()));
    }

    #[test]
    fn the_newest_complete_snapshot_is_kept_whatever_the_policy_says() {
        let decisions = decide(&[id(NOW - 3 * DAY, 1), id(NOW - 2 * DAY, 2)], NOW, policy(1, 0, 0, 0));
        assert_eq!(kept(&decisions), vec![id(NOW - 2 * DAY, 2)]);
        assert!(decisions[0].reasons.contains(&"the newest complete snapshot".to_owned()));
    }

    #[test]
    fn failed_nights_push_out_no_good_snapshot() {
        // Backups on 10 days, then fifteen nights without one: still the same 7 daily kept.
        let snapshots: Vec<SnapshotId> = (15..25).map(|day| id(NOW - day * DAY, 0)).collect();
        let decisions = decide(&snapshots, NOW, policy(3, 7, 0, 0));
        assert_eq!(kept(&decisions), snapshots[..7].to_vec());
    }

    #[test]
    fn several_snapshots_a_day_keep_the_newest_of_each_day() {
        let snapshots = vec![id(NOW - 3600, 1), id(NOW - 7200, 2), id(NOW - DAY - 60, 3), id(NOW - DAY - 120, 4)];
        let decisions = decide(&snapshots, NOW, policy(1, 2, 0, 0));
        assert_eq!(kept(&decisions), vec![id(NOW - 3600, 1), id(NOW - DAY - 60, 3)]);
        let reasons = &decisions[1].reasons;
        assert_eq!(reasons, &vec!["matches no keep rule".to_owned()]);
    }

    #[test]
    fn snapshots_dated_in_the_future_are_kept_and_use_up_no_bucket() {
        let future = id(NOW + 30 * DAY, 9);
        let snapshots = vec![future.clone(), id(NOW - 60, 1), id(NOW - DAY, 2)];
        let decisions = decide(&snapshots, NOW, policy(1, 1, 0, 0));
        assert_eq!(kept(&decisions), vec![future, id(NOW - 60, 1)]);
        assert!(decisions[0].reasons.iter().any(|reason| reason.contains("future")));
        assert!(decisions[1].reasons.contains(&"keep_last (1 of 1)".to_owned()));
    }

    #[test]
    fn weekly_buckets_are_iso_weeks_and_monthly_buckets_calendar_months() {
        // Sunday 2026-11-29 and Monday 2026-11-30 are in different ISO weeks, same month.
        let sunday = id(NOW - 3 * DAY, 1);
        let monday = id(NOW - 2 * DAY, 2);
        let weekly = decide(&[sunday.clone(), monday.clone()], NOW, policy(1, 0, 2, 0));
        assert_eq!(kept(&weekly), vec![monday.clone(), sunday.clone()]);
        let monthly = decide(&[sunday.clone(), monday.clone()], NOW, policy(1, 0, 0, 2));
        assert_eq!(kept(&monthly), vec![monday]);
    }
}
