//! Page views of share links, counted in memory and written in batches.
//!
//! A share link is public: anyone can load its page (or probe it with HEAD) as often as they
//! like. Writing a row per view would let that traffic contend for the database's write lock
//! with sign-ins and uploads, so views are tallied here and written every [`FLUSH_EVERY`]: one
//! update of the share's `views` and `last_access_at` and one `share_viewed` audit entry per
//! share and batch, with the count and the first few addresses. Downloads are not batched:
//! they are counted exactly, in the request. A crash loses at most one batch of view counts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shares;
use crate::db::DbError;
use crate::db::audit::{self, AuditEvent};
use crate::db::shares as table;

pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Addresses named in one batch's audit entry.
const ADDRESSES_NAMED: usize = 5;

#[derive(Default)]
struct Tally {
    views: u64,
    refused: u64,
    last_at: i64,
    addresses: BTreeSet<String>,
}

#[derive(Default)]
pub struct Views {
    pending: Mutex<HashMap<String, Tally>>,
}

impl Views {
    /// Counts one view of `share_id`; `refused` when the page said no (expired, used up).
    pub fn note(&self, share_id: &str, ip: &str, refused: bool, now: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tally = pending.entry(share_id.to_owned()).or_default();
        if refused {
            tally.refused += 1;
        } else {
            tally.views += 1;
        }
        tally.last_at = tally.last_at.max(now);
        if tally.addresses.len() < ADDRESSES_NAMED {
            tally.addresses.insert(ip.to_owned());
        }
    }

    fn take(&self) -> HashMap<String, Tally> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Shares {
    /// Counts a page view (or a body-less probe) of a share; written in the next batch.
    pub fn note_view(&self, share_id: &str, ip: &str, refused: bool) {
        crate::metrics::get().share_requests.with([if refused { "refused" } else { "view" }]).inc();
        self.inner.views.note(share_id, ip, refused, self.now());
    }

    /// Writes the views counted since the last batch, in one transaction.
    pub async fn flush_views(&self) -> Result<usize, DbError> {
        let batch = self.inner.views.take();
        if batch.is_empty() {
            return Ok(0);
        }
        let shares = batch.len();
        self.inner
            .db
            .write(move |tx| {
                for (id, tally) in &batch {
                    table::add_views(tx, id, tally.views + tally.refused, tally.last_at)?;
                    let addresses = tally.addresses.iter().cloned().collect::<Vec<_>>().join(",");
                    let detail = format!("views={} refused={} addresses={addresses}", tally.views, tally.refused);
                    let entry = AuditEvent {
                        event: "share_viewed",
                        actor_id: None,
                        subject: Some(id),
                        ip: "",
                        detail: &detail,
                    };
                    audit::record(tx, tally.last_at, &entry)?;
                }
                Ok(())
            })
            .await?;
        Ok(shares)
    }

    /// The `share-views` task: writes a batch every [`FLUSH_EVERY`], and a last one at shutdown.
    pub async fn write_views_until(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(FLUSH_EVERY);
        loop {
            let stopping = tokio::select! {
                _ = ticks.tick() => false,
                () = shutdown.cancelled() => true,
            };
            if let Err(err) = self.flush_views().await {
                tracing::error!(task = "share-views", error = %err, "cannot write share view counts; they are dropped");
            }
            if stopping {
                return;
            }
        }
    }
}
