//! Answering a search: candidates from the index, each re-checked in SQLite, highlights from
//! the verified rows.
//!
//! The index only proposes. A candidate becomes a result only if SQLite says, now, that the
//! caller may read the file by the owner-or-grant rule ([`crate::files::readable_among`]) and
//! that the file has not changed since it was indexed (its latest change is the one the
//! document was built from). Dropped candidates are replaced from further down the list, so
//! pages stay full. Results carry SQLite's row, never anything the index stored, and
//! highlights come only from those rows and their contents' cached text. A stale index can
//! cost recall, never authorization.

use std::sync::Arc;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocAddress, TantivyDocument, Term};

use super::analyzer::analyzer;
use super::highlight::{self, Matcher, Segment};
use super::query::{self, MAX_OFFSET, SearchQuery};
use super::state::Served;
use super::store;
use super::text_cache::TextCache;
use crate::db::Db;
use crate::db::files::FileRow;
use crate::domain::{FileId, UserId};
use crate::files::{Access, readable_among};

#[derive(Clone, Debug, Default)]
pub struct Highlights {
    pub name: Vec<Segment>,
    pub description: Vec<Segment>,
    pub content: Vec<Segment>,
}

#[derive(Clone, Debug)]
pub struct Found {
    pub file: FileRow,
    pub access: Access,
    pub highlights: Highlights,
}

#[derive(Debug, Default)]
pub struct Page {
    pub results: Vec<Found>,
    pub next_cursor: Option<String>,
}

/// One candidate from the index: the file and the change it was indexed at.
struct Candidate {
    id: FileId,
    version: u64,
}

/// Rounds of fetching more candidates to refill a page after drops.
const MAX_ROUNDS: usize = 6;

fn candidates(
    served: &Served,
    query: &SearchQuery,
    caller: &UserId,
    offset: usize,
    count: usize,
) -> tantivy::Result<Vec<Candidate>> {
    let searcher = served.reader.searcher();
    // Whether the word is in the name of a file the caller may read. Asked of the caller's
    // files only: whether others' names hold a word must not change what the caller sees.
    let fields = served.fields;
    let in_names = |word: &str| {
        let term = |field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, text), IndexRecordOption::Basic))
        };
        let both = vec![(Occur::Must, term(fields.name, word)), (Occur::Must, term(fields.readers, &caller.0))];
        searcher.search(&BooleanQuery::new(both), &Count).is_ok_and(|count| count > 0)
    };
    let built = query::build(&served.fields, query, caller, &in_names);
    let top = searcher.search(&built, &TopDocs::with_limit(count).and_offset(offset).order_by_score())?;
    let addresses: Vec<DocAddress> = top.into_iter().map(|(_, address)| address).collect();
    let mut out = Vec::with_capacity(addresses.len());
    for address in addresses {
        let doc: TantivyDocument = searcher.doc(address)?;
        let id = doc.get_first(served.fields.file_id).and_then(|value| value.as_str().map(str::to_owned));
        let version = doc.get_first(served.fields.version).and_then(|value| value.as_u64()).unwrap_or(0);
        if let Some(id) = id {
            out.push(Candidate { id: FileId(id), version });
        }
    }
    Ok(out)
}

/// Verified rows for `candidates`, in order: readable now, and unchanged since indexed.
async fn verify(db: &Db, caller: &UserId, candidates: Vec<Candidate>) -> Result<Vec<(FileRow, Access)>, String> {
    let caller = caller.clone();
    db.read(move |conn| {
        let ids: Vec<FileId> = candidates.iter().map(|candidate| candidate.id.clone()).collect();
        let readable = readable_among(conn, &caller, &ids)?;
        // Read after the rows: a change in between makes the version newer, so the hit is
        // dropped rather than shown with data it was not found by.
        let versions = store::versions(conn, &ids)?;
        Ok(readable
            .into_iter()
            .filter(|(row, _)| {
                let indexed = candidates.iter().find(|candidate| candidate.id == row.id).map(|c| c.version);
                indexed.is_some() && indexed == versions.get(&row.id.0).copied()
            })
            .collect())
    })
    .await
    .map_err(|err| err.to_string())
}

/// Runs a search from `offset` (0, or a decoded cursor's).
pub async fn run(
    served: Arc<Served>,
    db: &Db,
    cache: &Arc<TextCache>,
    caller: &UserId,
    query: &SearchQuery,
    offset: u32,
) -> Result<Page, String> {
    let started = std::time::Instant::now();
    let (mut index_time, mut verify_time) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let limit = query.limit as usize;
    let mut offset = offset as usize;
    let mut verified: Vec<(FileRow, Access)> = Vec::new();
    let mut next: Option<usize> = None;
    for _ in 0..MAX_ROUNDS {
        // Most candidates pass; fetch a little more than is missing.
        let missing = limit - verified.len();
        let want = missing + missing / 2 + 2;
        let (served_now, query_now, caller_now) = (Arc::clone(&served), query.clone(), caller.clone());
        let phase = std::time::Instant::now();
        let found = tokio::task::spawn_blocking(move || candidates(&served_now, &query_now, &caller_now, offset, want))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.to_string())?;
        index_time += phase.elapsed();
        let phase = std::time::Instant::now();
        let fetched = found.len();
        let positions: Vec<FileId> = found.iter().map(|candidate| candidate.id.clone()).collect();
        let rows = verify(db, caller, found).await?;
        verify_time += phase.elapsed();
        let mut consumed = fetched;
        for (position, id) in positions.iter().enumerate() {
            let Some((row, access)) = rows.iter().find(|(row, _)| row.id == *id) else { continue };
            if !query.admits(row, *access) {
                continue;
            }
            verified.push((row.clone(), *access));
            if verified.len() == limit {
                consumed = position + 1;
                break;
            }
        }
        offset += consumed;
        let exhausted = fetched < want && consumed == fetched;
        if verified.len() == limit {
            next = (!exhausted && offset < MAX_OFFSET as usize).then_some(offset);
            break;
        }
        if exhausted || offset >= MAX_OFFSET as usize {
            break;
        }
        next = Some(offset);
    }
    if verified.len() < limit && next.is_some_and(|at| at >= MAX_OFFSET as usize) {
        next = None;
    }
    let (cache, words) = (Arc::clone(cache), query.words.clone());
    let results = tokio::task::spawn_blocking(move || highlight_all(&cache, &words, verified))
        .await
        .map_err(|err| err.to_string())?;
    let next_cursor = next.map(|at| query::encode_cursor(query, at as u32));
    tracing::debug!(
        index_ms = index_time.as_secs_f64() * 1000.0,
        verify_ms = verify_time.as_secs_f64() * 1000.0,
        total_ms = started.elapsed().as_secs_f64() * 1000.0,
        results = results.len(),
        "search phases"
    );
    Ok(Page { results, next_cursor })
}

fn highlight_all(cache: &TextCache, words: &[String], rows: Vec<(FileRow, Access)>) -> Vec<Found> {
    let matcher = Matcher::new(words);
    let mut analyzer = analyzer();
    rows.into_iter()
        .map(|(file, access)| {
            let text = cache.get(&file.sha256).ok().flatten();
            let highlights = Highlights {
                name: highlight::whole(&mut analyzer, &file.name, &matcher, true),
                description: highlight::fragment(&mut analyzer, &file.description, &matcher),
                content: text
                    .as_ref()
                    .and_then(|text| text.text())
                    .map_or_else(Vec::new, |text| highlight::fragment(&mut analyzer, text, &matcher)),
            };
            Found { file, access, highlights }
        })
        .collect()
}
