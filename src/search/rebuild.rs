//! Building a whole index aside (`<state>/search/index.next`) from one snapshot of the
//! database, for the server's background rebuilds and `coffer reindex` alike.
//!
//! The snapshot is one read transaction: the outbox position noted in it is exactly what the
//! new index contains, so replaying the outbox after it afterwards misses nothing and
//! repeats nothing that matters (applying a change twice gives the same document). Texts
//! come from the cache; missing plain texts are read at once, other formats are left
//! pending (names are searchable at once) and handed to `queue_extraction`. The live index is
//! not touched: the caller swaps the new one in.

use std::time::Instant;

use rusqlite::Connection;
use tantivy::{IndexWriter, TantivyDocument};

use super::extract::{self, Kind, Limits, Plan};
use super::index_dir::{self, Payload, SearchPaths};
use super::schema::{Body, Fields, FileDoc, SCHEMA_VERSION, document};
use super::state::Progress;
use super::store;
use super::text_cache::{Extracted, TextCache};
use crate::storage::BlobStore;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What building an index needs besides the database connection.
pub struct Sources<'a> {
    pub blobs: &'a BlobStore,
    pub cache: &'a TextCache,
    pub limits: &'a Limits,
    pub writer_memory: usize,
}

/// The text to index for a file: from the cache, read now (plain text, added to
/// `new_texts` for the caller to store in one go), or pending.
pub fn body_of(
    sources: &Sources<'_>,
    file: &FileDoc,
    queue_extraction: &mut dyn FnMut(&str, Kind),
    new_texts: &mut Vec<(String, Extracted)>,
) -> Result<Option<Extracted>, rusqlite::Error> {
    let sha256 = &file.row.sha256;
    if let Some((_, fresh)) = new_texts.iter().find(|(hash, _)| hash == sha256) {
        return Ok(Some(fresh.clone()));
    }
    if let Some(cached) = sources.cache.get(sha256)? {
        return Ok(Some(cached));
    }
    match extract::plan(sources.blobs, &file.row, sources.limits) {
        Ok(Plan::Done(outcome)) => {
            new_texts.push((sha256.clone(), outcome.clone()));
            Ok(Some(outcome))
        }
        Ok(Plan::Isolated(kind)) => {
            queue_extraction(sha256, kind);
            Ok(None)
        }
        // The blob is gone (the file was just deleted) or unreadable: index the name alone,
        // record nothing, so a later look tries again.
        Err(_) => Ok(Some(Extracted::Unsupported)),
    }
}

/// The document for a file, given what [`body_of`] found.
pub fn file_document(fields: &Fields, file: &FileDoc, body: &Option<Extracted>) -> TantivyDocument {
    let body = match body {
        Some(Extracted::Text(text)) => Body::Text(text),
        Some(_) => Body::None,
        None => Body::Pending,
    };
    document(fields, file, body)
}

/// Builds the index in `paths.next()` and returns the outbox position it contains.
pub fn build_aside(
    paths: &SearchPaths,
    conn: &mut Connection,
    sources: &Sources<'_>,
    progress: &mut dyn FnMut(&Progress),
    queue_extraction: &mut dyn FnMut(&str, Kind),
) -> Result<u64, RebuildError> {
    let index = index_dir::create(&paths.next())?;
    let fields = Fields::of(&index.schema())?;
    // Two threads when the budget allows each one tantivy's minimum.
    let threads = if sources.writer_memory >= 40 << 20 { 2 } else { 1 };
    let mut writer: IndexWriter<TantivyDocument> = index.writer_with_num_threads(threads, sources.writer_memory)?;
    let tx = conn.transaction()?;
    let instance = store::instance_id(&tx)?;
    let seq = store::last_seq(&tx)?;
    let mut state = Progress { done: 0, total: store::count_files(&tx)?, started: Instant::now() };
    progress(&state);
    let mut failure: Option<RebuildError> = None;
    let mut new_texts = Vec::new();
    store::each_file_doc(&tx, |file| {
        if failure.is_some() {
            return;
        }
        let added = body_of(sources, &file, queue_extraction, &mut new_texts)
            .map_err(RebuildError::from)
            .and_then(|body| Ok(writer.add_document(file_document(&fields, &file, &body))?));
        if new_texts.len() >= 500 {
            if let Err(err) = sources.cache.put_many(&new_texts) {
                failure = Some(err.into());
            }
            new_texts.clear();
        }
        if let Err(err) = added {
            failure = Some(err);
            return;
        }
        state.done += 1;
        if state.done.is_multiple_of(1000) {
            progress(&state);
        }
    })?;
    tx.finish()?;
    if let Some(err) = failure {
        return Err(err);
    }
    sources.cache.put_many(&new_texts)?;
    let payload = Payload { v: SCHEMA_VERSION, instance, seq };
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&serde_json::to_string(&payload).unwrap_or_default());
    prepared.commit()?;
    writer.wait_merging_threads()?;
    progress(&state);
    Ok(seq)
}
