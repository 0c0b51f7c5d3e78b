//! Full-text search over the files a user may read: names, descriptions and contents.
//!
//! SQLite is the authority; the tantivy index under `<state>/search/` is derived data that
//! only proposes candidates. Triggers record every change to files and grants in an outbox in
//! the same transaction (`store`); one indexer thread owns the index writer and follows the
//! outbox (`indexer`), rebuilding aside when the index is missing, damaged, outdated or does
//! not fit the database (`rebuild`, `index_dir`); every candidate is re-checked against the
//! owner-or-grant rule in SQLite before it is shown (`searcher`). Contents are extracted in a
//! limited child process (`extract`) and cached by content hash (`text_cache`).
//!
//! This module never decides who may read a file (it asks `files`), never fails or slows an
//! upload (it only reads what uploads wrote), and never knows about HTTP.

pub mod analyzer;
pub mod extract;
mod highlight;
pub mod index_dir;
mod indexer;
pub mod query;
pub mod rebuild;
pub mod schema;
mod searcher;
pub mod state;
pub mod store;
pub mod text_cache;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

pub use highlight::Segment;
pub use searcher::{Found, Highlights, Page};
pub use state::State;

use crate::config::SearchSettings;
use crate::db::Db;
use crate::domain::UserId;
use crate::state_dir::StateDir;
use crate::storage::BlobStore;
use extract::{Kind, Limits};
use index_dir::SearchPaths;
use indexer::{Event, Indexer};
use query::{QueryError, SearchQuery};
use state::{Progress, Shared, Status};
use text_cache::TextCache;

/// A content hash whose text needs the isolated extractor.
pub struct Job {
    pub sha256: String,
    pub kind: Kind,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Invalid(#[from] QueryError),
    /// No index can answer yet (first build, schema change, search turned off).
    #[error("{reason}")]
    Unavailable { reason: String, progress: Option<Progress> },
    #[error("search failed: {0}")]
    Internal(String),
}

/// The state of search for admins.
#[derive(Clone, Debug)]
pub struct Report {
    pub status: Status,
    pub pending: u64,
    /// Content hashes by extraction outcome (`ok`, `failed`, ...), plus `queued`.
    pub extraction: Vec<(String, u64)>,
}

#[derive(Clone)]
pub struct Search {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    db: Db,
    cache: Arc<TextCache>,
    events: Mutex<std::sync::mpsc::Sender<Event>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Search {
    /// Opens the text cache and starts the indexer thread and the extraction task. Returns at
    /// once: a first build or a rebuild runs in the background.
    pub async fn start(
        settings: &SearchSettings,
        state_dir: &StateDir,
        db: Db,
        blobs: BlobStore,
        busy_timeout: Duration,
        clock: crate::clock::Clock,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let paths = SearchPaths::new(state_dir.search_dir());
        let cache_path = paths.text_cache();
        let root = paths.root().to_owned();
        let cache = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&root)?;
            Ok::<_, anyhow::Error>(TextCache::open(&cache_path)?)
        })
        .await??;
        let cache = Arc::new(cache);
        let shared = Arc::new(Shared::default());
        let (events, receive_events) = std::sync::mpsc::channel();
        let (jobs, receive_jobs) = tokio::sync::mpsc::unbounded_channel();
        let limits = Limits::from_settings(settings);
        let config = indexer::Config {
            paths,
            db_path: db.path().to_owned(),
            busy_timeout,
            blobs: blobs.clone(),
            cache: Arc::clone(&cache),
            limits: limits.clone(),
            writer_memory: usize::try_from(settings.writer_memory.0).unwrap_or(usize::MAX),
            commit_interval: settings.commit_interval.0,
            clock,
        };
        let indexer = tokio::task::spawn_blocking({
            let (shared, jobs) = (Arc::clone(&shared), jobs.clone());
            move || Indexer::new(config, shared, receive_events, jobs)
        })
        .await??;
        let thread = std::thread::Builder::new().name("search-indexer".into()).spawn(move || indexer.run())?;
        tokio::spawn(extract_in_turn(
            receive_jobs,
            events.clone(),
            blobs,
            Arc::clone(&cache),
            limits,
            Arc::clone(&shared),
            shutdown,
        ));
        Ok(Self {
            inner: Arc::new(Inner { shared, db, cache, events: Mutex::new(events), thread: Mutex::new(Some(thread)) }),
        })
    }

    /// Searches on behalf of `caller`.
    pub async fn search(
        &self,
        caller: &UserId,
        query: &SearchQuery,
        cursor: Option<&str>,
    ) -> Result<Page, SearchError> {
        let offset = cursor.map(|cursor| query::decode_cursor(query, cursor)).transpose()?.unwrap_or(0);
        let Some(served) = self.inner.shared.served() else {
            let status = self.inner.shared.status();
            return Err(SearchError::Unavailable {
                reason: "the search index is being built".into(),
                progress: status.and_then(|status| status.rebuild),
            });
        };
        searcher::run(served, &self.inner.db, &self.inner.cache, caller, query, offset)
            .await
            .map_err(SearchError::Internal)
    }

    /// Asks for a rebuild aside; the current index answers until the new one is swapped in.
    pub fn rebuild(&self) {
        self.send(Event::Rebuild);
        self.inner.shared.update(|status| {
            if status.state == State::Ready {
                status.state = State::Rebuilding;
            }
        });
    }

    fn send(&self, event: Event) {
        if let Ok(events) = self.inner.events.lock() {
            let _ = events.send(event);
        }
    }

    /// Changes recorded and not yet committed to the index, as the indexer last counted
    /// them (within about 100 ms). Cheap: no I/O.
    pub fn pending(&self) -> u64 {
        self.inner.shared.pending() + self.inner.shared.unindexed_texts()
    }

    pub async fn report(&self) -> Report {
        let _gate = self.inner.shared.commit_gate.lock().await;
        let status = self.inner.shared.status().unwrap_or_else(|| Status {
            state: State::Degraded,
            docs: 0,
            indexed_seq: 0,
            last_commit_at: None,
            rebuild: None,
            last_error: Some("status unavailable".into()),
        });
        let cache = Arc::clone(&self.inner.cache);
        let mut extraction =
            tokio::task::spawn_blocking(move || cache.counts().unwrap_or_default()).await.unwrap_or_default();
        extraction.push(("queued".into(), self.inner.shared.queued()));
        // Counted afresh: the indexer's own count lags while it is held back or failing.
        let committed = status.indexed_seq;
        let outbox = self.inner.db.read(move |conn| store::pending_after(conn, committed)).await;
        let pending = outbox.unwrap_or_else(|_| self.pending()) + self.inner.shared.unindexed_texts();
        Report { status, pending, extraction }
    }

    /// Commits what the indexer has applied and stops it.
    pub async fn stop(&self) {
        self.send(Event::Shutdown);
        let thread = self.inner.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The `search-extract` task: one isolated extraction at a time. Jobs arrive deduplicated
/// (`Shared::queue`); the indexer takes each content hash off the queue once it has the outcome.
async fn extract_in_turn(
    mut jobs: UnboundedReceiver<Job>,
    events: std::sync::mpsc::Sender<Event>,
    blobs: BlobStore,
    cache: Arc<TextCache>,
    limits: Limits,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let work = async {
        while let Some(job) = jobs.recv().await {
            let cached = {
                let (cache, sha256) = (Arc::clone(&cache), job.sha256.clone());
                tokio::task::spawn_blocking(move || cache.get(&sha256)).await.ok().and_then(Result::ok).flatten()
            };
            let mut settled = cached.is_some();
            if cached.is_none() {
                match extract::isolated(&blobs, &job.sha256, job.kind, &limits).await {
                    Ok(outcome) => {
                        if outcome.text().is_none() {
                            tracing::info!(task = "search-extract", sha256 = %job.sha256, outcome = outcome.status(), "no text extracted; the file stays findable by name");
                        }
                        let (cache, sha256) = (Arc::clone(&cache), job.sha256.clone());
                        let stored = tokio::task::spawn_blocking(move || cache.put(&sha256, &outcome)).await;
                        settled = matches!(stored, Ok(Ok(())));
                        if !settled {
                            tracing::warn!(task = "search-extract", "cannot record an extraction outcome");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(task = "search-extract", error = %err, "cannot run the text extractor; the file will be tried again at the next start");
                    }
                }
            }
            if settled {
                let _ = events.send(Event::Extracted(job.sha256));
            } else {
                // Unsettled contents stay pending in the index and are tried again at the next start.
                shared.dequeue(&job.sha256);
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown.cancelled() => {}
    }
}
