//! Following the outbox: batches of changes applied to the writer, commits that record the
//! last change they hold, and the degraded state (a failing write) with its growing pause.

use super::*;

impl Indexer {
    pub(super) fn step(&mut self) {
        if paused() {
            return;
        }
        if self.rebuild_at.is_some_and(|at| Instant::now() >= at) {
            self.rebuild_at = None;
            self.rebuild();
        }
        if let Some(at) = self.retry_at {
            if Instant::now() < at {
                return;
            }
            if !self.reopen_writer() {
                return;
            }
        }
        if self.live.is_none() {
            return;
        }
        if Instant::now() >= self.prune_texts_at {
            self.prune_texts_at = Instant::now() + PRUNE_TEXTS_EVERY;
            self.prune_text_cache();
        }
        let mut budget = 10;
        loop {
            let changes = match store::changes_after(&self.conn, self.applied, BATCH) {
                Ok(changes) => changes,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the search outbox; will try again");
                    return;
                }
            };
            let full = changes.len() == BATCH as usize;
            let Some(&(last, _)) = changes.last() else { break };
            let ids: HashSet<FileId> = changes.into_iter().map(|(_, id)| id).collect();
            if !self.apply(ids) {
                return;
            }
            self.applied = last;
            budget -= 1;
            if !full || budget == 0 {
                break;
            }
        }
        if !self.extra.is_empty() {
            let extra: HashSet<FileId> = self.extra.iter().cloned().collect();
            if !self.apply(extra.clone()) {
                return;
            }
            self.uncommitted_extra.extend(extra);
        }
        self.shared.set_unindexed_texts((self.extra.len() + self.uncommitted_extra.len()) as u64);
        if let Ok(pending) = store::pending_after(&self.conn, self.committed) {
            self.shared.set_pending(pending);
        }
        if self.dirty && self.last_commit.elapsed() >= self.config.commit_interval {
            self.commit();
        }
    }

    /// Replaces the documents of `ids` with their current state. `false` when that failed.
    fn apply(&mut self, ids: HashSet<FileId>) -> bool {
        match self.try_apply(ids) {
            Ok(()) => true,
            Err(Failure::Database(err)) => {
                tracing::warn!(error = %err, "cannot read a file for the search index; will try again");
                false
            }
            Err(Failure::Index(reason)) => {
                self.degrade(&reason);
                false
            }
        }
    }

    fn try_apply(&mut self, ids: HashSet<FileId>) -> Result<(), Failure> {
        let Some(live) = &mut self.live else { return Err(Failure::Index("no index".into())) };
        let Some(writer) = &mut live.writer else { return Err(Failure::Index("no index writer".into())) };
        let sources = Sources {
            blobs: &self.config.blobs,
            cache: &self.config.cache,
            limits: &self.config.limits,
            writer_memory: self.config.writer_memory,
        };
        let (jobs, shared) = (&self.jobs, &self.shared);
        let mut queue = |sha256: &str, kind: Kind| {
            if shared.queue(sha256) {
                let _ = jobs.send(Job { sha256: sha256.to_owned(), kind });
            }
        };
        let mut new_texts = Vec::new();
        for id in ids {
            let tx = self.conn.transaction().map_err(|err| Failure::Database(err.to_string()))?;
            let file = store::file_doc(&tx, &id).map_err(|err| Failure::Database(err.to_string()))?;
            tx.finish().map_err(|err| Failure::Database(err.to_string()))?;
            writer.delete_term(Term::from_field_text(live.fields.file_id, &id.0));
            match file {
                None => self.removed.push(id.clone()),
                Some(file) => {
                    let body = rebuild::body_of(&sources, &file, &mut queue, &mut new_texts).unwrap_or_else(|err| {
                        tracing::warn!(error = %err, "the extracted-text cache failed; indexing the name alone");
                        Some(crate::search::text_cache::Extracted::Failed)
                    });
                    writer
                        .add_document(rebuild::file_document(&live.fields, &file, &body))
                        .map_err(|err| Failure::Index(format!("cannot add to the index: {err}")))?;
                }
            }
            self.extra.remove(&id);
            self.dirty = true;
        }
        if let Err(err) = sources.cache.put_many(&new_texts) {
            // The texts are in the index; the cache only saves reading them again.
            tracing::warn!(error = %err, "cannot store extracted texts in the cache");
        }
        Ok(())
    }

    pub(super) fn commit(&mut self) {
        match self.try_commit() {
            Ok(docs) => self.committed(docs),
            Err(reason) => self.degrade(&reason),
        }
    }

    fn try_commit(&mut self) -> Result<u64, String> {
        let Some(live) = &mut self.live else { return Err("no index".into()) };
        let Some(writer) = &mut live.writer else { return Err("no index writer".into()) };
        let payload = Payload { v: SCHEMA_VERSION, instance: self.instance.clone(), seq: self.applied };
        let mut prepared = writer.prepare_commit().map_err(|err| format!("cannot commit to the index: {err}"))?;
        prepared.set_payload(&serde_json::to_string(&payload).unwrap_or_default());
        prepared.commit().map_err(|err| format!("cannot commit to the index: {err}"))?;
        live.reader.reload().map_err(|err| format!("cannot reload the index: {err}"))?;
        Ok(live.reader.searcher().num_docs())
    }

    fn committed(&mut self, docs: u64) {
        self.committed = self.applied;
        self.uncommitted_extra.clear();
        self.shared.set_unindexed_texts(self.extra.len() as u64);
        self.dirty = false;
        self.last_commit = Instant::now();
        crash_after_commit();
        let (seq, now) = (self.committed, self.config.clock.now());
        let was_degraded = self.retry_at.take().is_some();
        self.backoff = Duration::from_secs(1);
        // The status and the outbox change together, so a report never pairs an old mark
        // with an already pruned outbox.
        let shared = Arc::clone(&self.shared);
        let _gate = shared.commit_gate.blocking_lock();
        self.shared.update(|status| {
            status.docs = docs;
            status.indexed_seq = seq;
            status.last_commit_at = Some(now);
            if status.state == State::Degraded {
                status.state = State::Ready;
                status.last_error = None;
            }
        });
        let removed = std::mem::take(&mut self.removed);
        if let Err(err) = store::prune(&mut self.conn, self.committed, &removed) {
            // Harmless: the rows are applied again later, giving the same documents.
            tracing::warn!(error = %err, "cannot prune the search outbox; will try again");
        }
        let pending = store::pending_after(&self.conn, self.committed).unwrap_or(0);
        self.shared.set_pending(pending);
        if was_degraded {
            tracing::info!("the search index is writable again");
        }
    }

    /// A write failed: drop what was not committed (it is still in the outbox), keep
    /// answering from the last commit, and try again later.
    fn degrade(&mut self, reason: &str) {
        if let Some(live) = &mut self.live
            && let Some(mut writer) = live.writer.take()
        {
            let _ = writer.rollback();
        }
        self.applied = self.committed;
        self.dirty = false;
        self.removed.clear();
        let lost: Vec<FileId> = self.uncommitted_extra.drain().collect();
        self.extra.extend(lost);
        self.retry_at = Some(Instant::now() + self.backoff);
        tracing::error!(
            error = reason,
            retry_in_s = self.backoff.as_secs(),
            "search index degraded: uploads go on, search answers from the last commit"
        );
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        let reason = reason.to_owned();
        self.shared.update(|status| {
            status.state = State::Degraded;
            status.last_error = Some(reason);
        });
    }

    /// After a failure: a fresh writer (which also finds out whether writing works again).
    fn reopen_writer(&mut self) -> bool {
        let Some(live) = &mut self.live else { return true };
        if live.writer.is_some() {
            return true;
        }
        match live.index.writer_with_num_threads(1, self.config.writer_memory) {
            Ok(writer) => {
                live.writer = Some(writer);
                // Documents applied outside the outbox since the last commit are applied again.
                true
            }
            Err(err) => {
                self.degrade(&format!("cannot open the index writer: {err}"));
                false
            }
        }
    }

    /// Forgets the texts of contents no file has any more (blob GC removes their blobs).
    fn prune_text_cache(&self) {
        let referenced = match crate::db::files::referenced_blobs(&self.conn) {
            Ok(referenced) => referenced,
            Err(err) => return tracing::warn!(error = %err, "cannot list contents to prune the text cache"),
        };
        match self.config.cache.retain(&referenced) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(task = "search-indexer", removed, "dropped texts of contents no file has"),
            Err(err) => tracing::warn!(error = %err, "cannot prune the text cache"),
        }
    }
}
