//! Removing expired uploads (their rows, part files and quota reservations) and, at start,
//! part files no unfinished upload owns.

use std::collections::HashMap;
use std::time::Duration;

use crate::db::uploads;
use crate::domain::UploadId;

use super::{UploadError, Uploads, blocking};

/// Rows removed per transaction.
const BATCH: i64 = 100;

impl Uploads {
    /// Removes every upload that expired by now, except one being appended to at this moment
    /// (the next round takes it if it is still expired then). Returns how many went.
    pub async fn remove_expired(&self) -> Result<usize, UploadError> {
        let mut removed = 0;
        let mut skipped = std::collections::HashSet::new();
        loop {
            let now = self.clock.now();
            let limit = BATCH + i64::try_from(skipped.len()).unwrap_or(i64::MAX);
            let expired = self.files.db().read(move |conn| uploads::expired(conn, now, limit)).await?;
            let candidates: Vec<UploadId> = expired.into_iter().filter(|id| !skipped.contains(id)).collect();
            if candidates.is_empty() {
                return Ok(removed);
            }
            for id in candidates {
                let slot = self.slot(&id);
                let Ok(_appending) = slot.try_lock_owned() else {
                    skipped.insert(id);
                    continue;
                };
                // Checked again under the lock: an append that just finished moved it on.
                let lookup = id.clone();
                let row = self.files.db().read(move |conn| uploads::by_id(conn, &lookup)).await?;
                if row.is_some_and(|row| row.expires_at > self.clock.now()) {
                    skipped.insert(id);
                    continue;
                }
                self.remove(&id).await?;
                removed += 1;
            }
        }
    }

    /// Removes part files without an unfinished upload (a crash between creating one and
    /// recording it, or between finishing one and removing it; an account deleted with its
    /// uploads) last changed at least `older_than` ago. At start (`older_than` zero, when no
    /// creation can be in flight) it also removes unfinished uploads whose part file lacks
    /// bytes their offset promises (a state dir restored from a backup, which leaves uploads
    /// in flight out): their clients get 404 and start again. Returns how many of each.
    pub async fn remove_orphans(&self, older_than: Duration) -> Result<(usize, usize), UploadError> {
        let unfinished = self.files.db().read(uploads::unfinished).await?;
        let dir = self.dir.clone();
        let clock = self.clock.clone();
        let at_start = older_than.is_zero();
        let (parts, broken) = blocking(move || {
            let keep: HashMap<String, u64> =
                unfinished.into_iter().map(|(id, received)| (id.0, u64::try_from(received).unwrap_or(0))).collect();
            let mut removed = 0;
            let mut present = HashMap::new();
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let metadata = entry.metadata()?;
                if keep.contains_key(&name) {
                    present.insert(name, metadata.len());
                } else if clock.since(metadata.modified()?) >= older_than {
                    // Already gone: a termination or a finish removed it meanwhile.
                    match std::fs::remove_file(entry.path()) {
                        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
                        _ => removed += 1,
                    }
                }
            }
            if !at_start {
                return Ok((removed, Vec::new()));
            }
            let broken: Vec<UploadId> = keep
                .into_iter()
                .filter(|(id, received)| present.get(id).is_none_or(|len| len < received))
                .map(|(id, _)| UploadId(id))
                .collect();
            Ok((removed, broken))
        })
        .await?;
        let lost = broken.len();
        for id in broken {
            tracing::warn!(target: "coffer::uploads", upload = %id, "a resumable upload's stored bytes are missing; it was removed");
            self.remove(&id).await?;
        }
        Ok((parts, lost))
    }
}
