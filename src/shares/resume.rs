//! Resumable share downloads that cannot be turned into extra copies.
//!
//! A counted download gets an id, carried in its resume cookie, and the server remembers how
//! far into the file that download has been served. A later partial request with the cookie is
//! not counted again only if it continues that download: it starts no earlier than the point
//! reached (less a little slack for bytes lost in flight when a connection dropped) and the
//! download has not reached the end yet. Anything else (a `Range: bytes=0-` after a finished
//! download, a forwarded cookie asking for the start) is a new download and counts. So a limit
//! of N yields at most N complete copies. The registry is in memory and bounded; a restart
//! forgets it, and a resume after a restart counts as a new download (towards the owner's
//! limit, never past it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How long a counted download may be resumed without counting again.
pub const RESUME_LIFETIME: i64 = 24 * 3600;
/// Most downloads remembered at once; the oldest are forgotten first.
const MAX_DOWNLOADS: usize = 100_000;
/// Bytes before the point reached that a resume may start at: what the server had sent but
/// a dropped connection lost (socket buffers, TLS records, read-ahead).
const RESUME_SLACK: u64 = 16 << 20;

/// One counted download: how far into the file it has been served.
pub struct Progress {
    share_id: String,
    size: u64,
    reached: AtomicU64,
    expires_at: i64,
}

impl Progress {
    /// Records that bytes up to `offset` (exclusive) were sent.
    pub fn reached(&self, offset: u64) {
        self.reached.fetch_max(offset, Ordering::AcqRel);
    }

    /// Whether a request for bytes from `start` continues this download.
    fn continued_by(&self, start: u64) -> bool {
        let reached = self.reached.load(Ordering::Acquire);
        let slack = RESUME_SLACK.min(self.size / 8);
        reached < self.size && start >= reached.saturating_sub(slack)
    }
}

#[derive(Default)]
pub struct Resumes {
    downloads: Mutex<HashMap<String, Arc<Progress>>>,
}

impl Resumes {
    /// Remembers a counted download of `share_id` (a file of `size` bytes) starting at `start`;
    /// returns its id and progress.
    pub fn start(&self, share_id: &str, size: u64, start: u64, now: i64) -> (String, Arc<Progress>) {
        let id = format!("{:032x}", rand::random::<u128>());
        let progress = Arc::new(Progress {
            share_id: share_id.to_owned(),
            size,
            reached: AtomicU64::new(start),
            expires_at: now.saturating_add(RESUME_LIFETIME),
        });
        let mut downloads = self.downloads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if downloads.len() >= MAX_DOWNLOADS {
            downloads.retain(|_, progress| progress.expires_at > now);
        }
        if downloads.len() >= MAX_DOWNLOADS {
            let mut oldest: Vec<(i64, String)> =
                downloads.iter().map(|(id, progress)| (progress.expires_at, id.clone())).collect();
            oldest.sort_unstable();
            for (_, id) in oldest.into_iter().take(MAX_DOWNLOADS / 100) {
                downloads.remove(&id);
            }
        }
        downloads.insert(id.clone(), Arc::clone(&progress));
        (id, progress)
    }

    /// The download `id` of `share_id` if a request for bytes from `start` continues it.
    pub fn resume(&self, id: &str, share_id: &str, start: u64, now: i64) -> Option<Arc<Progress>> {
        let downloads = self.downloads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let progress = downloads.get(id)?;
        (progress.share_id == share_id && progress.expires_at > now && progress.continued_by(start))
            .then(|| Arc::clone(progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_resume_continues_a_download_but_never_starts_a_copy() {
        let resumes = Resumes::default();
        let (id, progress) = resumes.start("share", 100 * MIB, 0, 1_000);
        progress.reached(60 * MIB);
        assert!(resumes.resume(&id, "share", 60 * MIB, 1_001).is_some(), "where it stopped");
        assert!(resumes.resume(&id, "share", 50 * MIB, 1_001).is_some(), "a little before: bytes lost in flight");
        assert!(resumes.resume(&id, "share", 0, 1_001).is_none(), "from the start: a new copy");
        assert!(resumes.resume(&id, "other", 60 * MIB, 1_001).is_none(), "another share");
        assert!(resumes.resume(&id, "share", 60 * MIB, 1_000 + RESUME_LIFETIME).is_none(), "too late");
        progress.reached(100 * MIB);
        assert!(resumes.resume(&id, "share", 99 * MIB, 1_001).is_none(), "nothing left to continue");
        assert!(resumes.resume("unknown", "share", 60 * MIB, 1_001).is_none());
    }

    #[test]
    fn small_files_get_proportionally_small_slack() {
        let resumes = Resumes::default();
        let (id, progress) = resumes.start("share", 8 * 1024, 0, 1_000);
        progress.reached(4 * 1024);
        assert!(resumes.resume(&id, "share", 3 * 1024, 1_001).is_some());
        assert!(resumes.resume(&id, "share", 2 * 1024, 1_001).is_none(), "slack is an eighth of the file");
    }
}
