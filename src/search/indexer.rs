//! The indexer: one thread that owns the index writer. It takes changes from the outbox in
//! order, re-reads each named file (gone: its document is deleted; present: replaced), and
//! commits about once per `search.commit_interval`, recording in the commit the last change
//! it contains, then prunes the outbox up to there. After a crash it resumes after the last
//! committed change, so nothing is missed; a change applied twice gives the same document.
//!
//! A missing, damaged or outdated index, or one that does not fit the database (another
//! instance, or a database restored from a backup), is rebuilt aside while the old one, if
//! any, keeps answering. A failing write (full disk, I/O error) leaves the index degraded:
//! the last commit keeps answering, the changes stay in the outbox, and writing is retried
//! with a growing pause. Nothing here can fail an upload: the indexer only reads the files.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tantivy::collector::DocSetCollector;
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tokio::sync::mpsc::UnboundedSender;

use super::Job;
use super::extract::{Kind, Limits};
use super::index_dir::{self, Payload, SearchLock, SearchPaths, Unusable};
use super::rebuild::{self, Sources};
use super::schema::{Fields, SCHEMA_VERSION, TEXT_PENDING};
use super::state::{Progress, Served, Shared, State};
use super::store;
use super::text_cache::TextCache;
use crate::domain::FileId;
use crate::storage::BlobStore;

mod changes;

enum Failure {
    Database(String),
    Index(String),
}

/// What the rest of the server tells the indexer.
pub enum Event {
    /// Text for these contents is now in the cache: index it.
    Extracted(String),
    /// Build a new index aside and swap it in (admin request).
    Rebuild,
    /// Commit what is applied and stop.
    Shutdown,
}

/// Changes read from the outbox at a time.
const BATCH: u32 = 1000;
/// How often the outbox is looked at when idle.
const POLL: Duration = Duration::from_millis(100);
/// How often texts of contents no file has any more are dropped from the cache.
const PRUNE_TEXTS_EVERY: Duration = Duration::from_secs(3600);
/// Longest pause between attempts to write to a failing index.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct Config {
    pub paths: SearchPaths,
    pub db_path: std::path::PathBuf,
    pub busy_timeout: Duration,
    pub blobs: BlobStore,
    pub cache: Arc<TextCache>,
    pub limits: Limits,
    pub writer_memory: usize,
    pub commit_interval: Duration,
    /// The time commits are stamped with.
    pub clock: crate::clock::Clock,
}

struct Live {
    index: Index,
    writer: Option<IndexWriter<TantivyDocument>>,
    reader: IndexReader,
    fields: Fields,
}

pub struct Indexer {
    config: Config,
    shared: Arc<Shared>,
    events: Receiver<Event>,
    jobs: UnboundedSender<Job>,
    conn: Connection,
    instance: String,
    live: Option<Live>,
    /// Last outbox change applied to the writer / committed to the index.
    applied: u64,
    committed: u64,
    /// Files whose documents were deleted since the last commit (their versions get pruned).
    removed: Vec<FileId>,
    /// Files applied for reasons other than the outbox (extracted texts) since the last
    /// commit: applied again if that commit fails.
    extra: HashSet<FileId>,
    /// Of those, how many were applied but are not committed yet.
    uncommitted_extra: HashSet<FileId>,
    dirty: bool,
    last_commit: Instant,
    retry_at: Option<Instant>,
    /// When a rebuild that failed without any index to fall back on is tried again.
    rebuild_at: Option<Instant>,
    backoff: Duration,
    /// When the text cache is next pruned.
    prune_texts_at: Instant,
}

fn test_hook_file(variable: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        std::env::var_os(variable).is_some_and(|path| std::path::Path::new(&path).exists())
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = variable;
        false
    }
}

/// Debug builds: while the file named by `TESTING_COFFER_SEARCH_PAUSE_FILE` exists, the
/// indexer applies nothing (tests use it to prove searches never rely on the index being
/// current).
fn paused() -> bool {
    test_hook_file("TESTING_COFFER_SEARCH_PAUSE_FILE")
}

/// Debug builds: when the file named by `TESTING_COFFER_SEARCH_CRASH_FILE` exists, the process
/// aborts right after an index commit, before the outbox is pruned.
fn crash_after_commit() {
    if test_hook_file("TESTING_COFFER_SEARCH_CRASH_FILE") {
        tracing::warn!("test hook: aborting between the index commit and the outbox cleanup");
        std::process::abort();
    }
}

impl Indexer {
    pub fn new(
        config: Config,
        shared: Arc<Shared>,
        events: Receiver<Event>,
        jobs: UnboundedSender<Job>,
    ) -> Result<Self, crate::db::DbError> {
        let conn = crate::db::connect(&config.db_path, config.busy_timeout)?;
        let instance = store::instance_id(&conn)?;
        Ok(Self {
            config,
            shared,
            events,
            jobs,
            conn,
            instance,
            live: None,
            applied: 0,
            committed: 0,
            removed: Vec::new(),
            extra: HashSet::new(),
            uncommitted_extra: HashSet::new(),
            dirty: false,
            last_commit: Instant::now(),
            retry_at: None,
            rebuild_at: None,
            prune_texts_at: Instant::now(),
            backoff: Duration::from_secs(1),
        })
    }

    /// The thread's whole life: take the lock, open or rebuild, then follow the outbox until
    /// told to stop.
    pub fn run(mut self) {
        let Some(_lock) = self.wait_for_lock() else { return };
        let _ = std::fs::remove_dir_all(self.config.paths.next());
        // The test hook holds the first build too, so tests can see search answer 503.
        while paused() {
            match self.events.recv_timeout(POLL) {
                Ok(Event::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                _ => {}
            }
        }
        self.open_or_rebuild();
        loop {
            let wait = if self.dirty || self.retry_at.is_some() { POLL / 2 } else { POLL };
            match self.events.recv_timeout(wait) {
                Ok(Event::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
            }
            while let Ok(event) = self.events.try_recv() {
                match event {
                    Event::Shutdown => return self.finish(),
                    event => self.handle(event),
                }
            }
            self.step();
        }
        self.finish();
    }

    fn finish(&mut self) {
        if self.dirty && !paused() {
            self.commit();
        }
        tracing::info!(task = "search-indexer", "stopped");
    }

    fn wait_for_lock(&self) -> Option<SearchLock> {
        let mut warned = false;
        loop {
            match SearchLock::acquire(&self.config.paths) {
                Ok(lock) => return Some(lock),
                Err(err) => {
                    if !warned {
                        tracing::warn!(error = %err, "search is unavailable until the search index is free (is `coffer reindex` running?)");
                        self.shared.update(|status| status.last_error = Some(err.to_string()));
                        warned = true;
                    }
                }
            }
            match self.events.recv_timeout(Duration::from_secs(1)) {
                Ok(Event::Shutdown) | Err(RecvTimeoutError::Disconnected) => return None,
                _ => {}
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Extracted(sha256) => {
                match store::files_with_contents(&self.conn, &sha256) {
                    Ok(ids) => self.extra.extend(ids),
                    Err(err) => tracing::warn!(error = %err, "cannot look up files for extracted text"),
                }
                self.shared.dequeue(&sha256);
                self.shared.set_unindexed_texts((self.extra.len() + self.uncommitted_extra.len()) as u64);
            }
            Event::Rebuild => self.rebuild(),
            Event::Shutdown => {}
        }
    }

    fn open_or_rebuild(&mut self) {
        let last_seq = match store::last_seq(&self.conn) {
            Ok(seq) => seq,
            Err(err) => {
                tracing::error!(error = %err, "search cannot read the database; it stays unavailable");
                return;
            }
        };
        match index_dir::open(&self.config.paths.index(), &self.instance, last_seq) {
            Ok((index, payload)) => match self.go_live(index, &payload) {
                Ok(()) => {
                    self.requeue_pending_texts();
                    tracing::info!(indexed_seq = payload.seq, "search index opened");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the search index cannot be used; rebuilding it");
                    self.rebuild();
                }
            },
            Err(Unusable::Missing) => {
                tracing::info!("no search index yet; building it");
                self.rebuild();
            }
            Err(reason) => {
                tracing::warn!(reason = %reason, "the search index cannot be used; rebuilding it");
                self.rebuild();
            }
        }
    }

    fn go_live(&mut self, index: Index, payload: &Payload) -> tantivy::Result<()> {
        let fields = Fields::of(&index.schema())?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let writer = index.writer_with_num_threads(1, self.config.writer_memory)?;
        self.shared.serve(Some(Arc::new(Served { index: index.clone(), reader: reader.clone(), fields })));
        let docs = reader.searcher().num_docs();
        self.shared.set_pending(store::pending_after(&self.conn, payload.seq).unwrap_or(0));
        self.live = Some(Live { index, writer: Some(writer), reader, fields });
        self.applied = payload.seq;
        self.committed = payload.seq;
        self.dirty = false;
        self.removed.clear();
        self.shared.update(|status| {
            status.state = State::Ready;
            status.docs = docs;
            status.indexed_seq = payload.seq;
            status.rebuild = None;
        });
        Ok(())
    }

    /// Documents whose text was still being extracted when the last process stopped.
    fn requeue_pending_texts(&mut self) {
        let Some(live) = &self.live else { return };
        let searcher = live.reader.searcher();
        let query =
            TermQuery::new(Term::from_field_text(live.fields.text_state, TEXT_PENDING), IndexRecordOption::Basic);
        let Ok(found) = searcher.search(&query, &DocSetCollector) else { return };
        for address in found {
            let Ok(doc) = searcher.doc::<TantivyDocument>(address) else { continue };
            if let Some(id) = doc.get_first(live.fields.file_id).and_then(|value| value.as_str()) {
                self.extra.insert(FileId(id.to_owned()));
            }
        }
    }

    /// Builds a new index aside from one snapshot and swaps it in; the old one (if any)
    /// answers meanwhile.
    fn rebuild(&mut self) {
        let started = Instant::now();
        self.shared.update(|status| {
            status.state = State::Rebuilding;
            status.rebuild = Some(Progress { done: 0, total: 0, started });
        });
        let shared = Arc::clone(&self.shared);
        let mut report = |progress: &Progress| {
            let progress = progress.clone();
            shared.update(|status| status.rebuild = Some(progress));
        };
        let (jobs, queued) = (self.jobs.clone(), Arc::clone(&self.shared));
        let mut queue = |sha256: &str, kind: Kind| {
            if queued.queue(sha256) {
                let _ = jobs.send(Job { sha256: sha256.to_owned(), kind });
            }
        };
        let sources = Sources {
            blobs: &self.config.blobs,
            cache: &self.config.cache,
            limits: &self.config.limits,
            writer_memory: self.config.writer_memory,
        };
        let built = rebuild::build_aside(&self.config.paths, &mut self.conn, &sources, &mut report, &mut queue);
        let outcome = built.map_err(|err| err.to_string()).and_then(|seq| {
            // Release the old index's writer before its directory moves.
            if let Some(live) = &mut self.live {
                live.writer.take();
            }
            index_dir::swap_in(&self.config.paths).map_err(|err| format!("cannot swap the new index in: {err}"))?;
            let last_seq = store::last_seq(&self.conn).map_err(|err| err.to_string())?;
            let (index, payload) = index_dir::open(&self.config.paths.index(), &self.instance, last_seq)
                .map_err(|err| format!("the new index does not open: {err}"))?;
            if payload.seq != seq {
                return Err(format!("the new index holds change {} instead of {seq}", payload.seq));
            }
            self.go_live(index, &payload).map_err(|err| err.to_string())
        });
        match outcome {
            Ok(()) => {
                let docs = self.shared.status().map_or(0, |status| status.docs);
                self.last_commit = Instant::now();
                let now = self.config.clock.now();
                self.shared.update(|status| status.last_commit_at = Some(now));
                tracing::info!(docs, seconds = started.elapsed().as_secs_f64(), "search index rebuilt");
            }
            Err(err) => {
                tracing::error!(error = %err, "rebuilding the search index failed; will try again");
                let _ = std::fs::remove_dir_all(self.config.paths.next());
                let writer_lost = self.live.as_ref().is_some_and(|live| live.writer.is_none());
                if writer_lost {
                    self.retry_at = Some(Instant::now() + self.backoff);
                }
                let state = match &self.live {
                    None => {
                        // No index at all: the whole rebuild is tried again after a pause.
                        self.rebuild_at = Some(Instant::now() + self.backoff);
                        State::Starting
                    }
                    Some(_) if writer_lost => State::Degraded,
                    Some(_) => State::Ready,
                };
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.shared.update(|status| {
                    status.state = state;
                    status.rebuild = None;
                    status.last_error = Some(err.clone());
                });
            }
        }
    }
}
