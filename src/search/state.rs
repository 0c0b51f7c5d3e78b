//! What the indexer thread shares with searches and the admin view: the index searches read
//! (swapped whole after a commit or a rebuild), and the index's state.
//!
//! Locks here are held only to copy or replace a value, never across I/O or an `.await`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tantivy::{Index, IndexReader};

use super::schema::Fields;

/// The index searches read.
pub struct Served {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Opening the index, or waiting for the search directory's lock.
    Starting,
    /// Changes are being applied as they come.
    Ready,
    /// An index is being built aside; the old one (if any) answers meanwhile.
    Rebuilding,
    /// Writing to the index fails (disk full, I/O errors); the last committed index answers
    /// and changes wait in the outbox.
    Degraded,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Rebuilding => "rebuilding",
            Self::Degraded => "degraded",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub started: Instant,
}

impl Progress {
    /// Seconds left at the rate so far, when there is a rate.
    pub fn eta_seconds(&self) -> Option<u64> {
        let elapsed = self.started.elapsed().as_secs_f64();
        (self.done > 0 && elapsed > 0.0).then(|| {
            let rate = self.done as f64 / elapsed;
            (self.total.saturating_sub(self.done) as f64 / rate).ceil() as u64
        })
    }
}

#[derive(Clone, Debug)]
pub struct Status {
    pub state: State,
    /// Documents in the searchable index (one per file).
    pub docs: u64,
    /// The last outbox change committed to the index.
    pub indexed_seq: u64,
    /// Unix seconds of the last commit.
    pub last_commit_at: Option<i64>,
    pub rebuild: Option<Progress>,
    /// Why the index is degraded, or why the last rebuild failed.
    pub last_error: Option<String>,
}

pub struct Shared {
    served: RwLock<Option<Arc<Served>>>,
    status: Mutex<Status>,
    /// Changes recorded in the outbox and not yet committed to the index.
    pending: AtomicU64,
    /// Files whose freshly extracted text is not yet committed to the index.
    unindexed_texts: AtomicU64,
    /// Content hashes handed to the extractor and not yet back in the index's hands.
    queued: Mutex<HashSet<String>>,
    /// Held while a commit's new mark is published and the outbox pruned, and while a report
    /// reads the mark and counts the outbox, so the two always agree.
    pub commit_gate: tokio::sync::Mutex<()>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            served: RwLock::new(None),
            status: Mutex::new(Status {
                state: State::Starting,
                docs: 0,
                indexed_seq: 0,
                last_commit_at: None,
                rebuild: None,
                last_error: None,
            }),
            pending: AtomicU64::new(0),
            unindexed_texts: AtomicU64::new(0),
            queued: Mutex::new(HashSet::new()),
            commit_gate: tokio::sync::Mutex::new(()),
        }
    }
}

impl Shared {
    pub fn served(&self) -> Option<Arc<Served>> {
        self.served.read().ok().and_then(|served| served.clone())
    }

    pub fn serve(&self, served: Option<Arc<Served>>) {
        if let Ok(mut slot) = self.served.write() {
            *slot = served;
        }
    }

    pub fn status(&self) -> Option<Status> {
        self.status.lock().ok().map(|status| status.clone())
    }

    pub fn update(&self, change: impl FnOnce(&mut Status)) {
        if let Ok(mut status) = self.status.lock() {
            change(&mut status);
        }
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn set_pending(&self, pending: u64) {
        self.pending.store(pending, Ordering::Relaxed);
    }

    pub fn unindexed_texts(&self) -> u64 {
        self.unindexed_texts.load(Ordering::Relaxed)
    }

    pub fn set_unindexed_texts(&self, count: u64) {
        self.unindexed_texts.store(count, Ordering::Relaxed);
    }

    /// Marks contents as handed to the extractor; `false` when they already are.
    pub fn queue(&self, sha256: &str) -> bool {
        self.queued.lock().map(|mut queued| queued.insert(sha256.to_owned())).unwrap_or(false)
    }

    /// Contents the extractor is done with (its outcome is back with the indexer, or it could
    /// not run and the file is tried again at the next start).
    pub fn dequeue(&self, sha256: &str) {
        if let Ok(mut queued) = self.queued.lock() {
            queued.remove(sha256);
        }
    }

    pub fn queued(&self) -> u64 {
        self.queued.lock().map(|queued| queued.len() as u64).unwrap_or(0)
    }
}
