//! A search request, checked, and the index query built from it in code.
//!
//! The user's text is only ever cut into words by the [analyzer](super::analyzer); no query
//! syntax exists, so no one can name a field, widen the permission filter or craft an
//! expensive query. Each word must match the name (boosted, small typos forgiven), the
//! description or the contents; the last word also matches the start of a name word. The
//! permission filter (the caller among the file's readers) is always a required clause.

use base64::Engine;
use tantivy::Term;
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;

use super::analyzer::{analyzer, is_cjk, terms};
use super::schema::{FAMILIES, Fields, MAX_PREFIX_CHARS, family};
use crate::db::files::FileRow;
use crate::domain::{FolderPath, UserId};
use crate::files::Access;

pub const MAX_QUERY_CHARS: usize = 256;
pub const MAX_WORDS: usize = 16;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// How deep into the results a cursor may go.
pub const MAX_OFFSET: u32 = 5000;
/// Shortest last word that also matches name prefixes.
const MIN_PREFIX_CHARS: usize = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::Invalid(message.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Files the caller owns or was granted.
    All,
    Mine,
    /// Files others granted to the caller.
    Shared,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeFilter {
    Family(&'static str),
    Media(String),
}

/// A checked search request.
#[derive(Clone, Debug)]
pub struct SearchQuery {
    /// The query's words, analyzed.
    pub words: Vec<String>,
    /// The caller's own folder whose subtree is searched.
    pub folder: Option<String>,
    pub kind: Option<TypeFilter>,
    pub scope: Scope,
    pub limit: u32,
    /// A fingerprint of all of the above and the caller, which a cursor must carry.
    fingerprint: [u8; 8],
}

impl SearchQuery {
    pub fn parse(
        caller: &UserId,
        q: &str,
        folder: Option<&str>,
        kind: Option<&str>,
        scope: Scope,
        limit: Option<u32>,
    ) -> Result<Self, QueryError> {
        let q = q.trim();
        if q.is_empty() {
            return Err(invalid("q is empty: give one or more words to search for"));
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(invalid(format!("q is longer than {MAX_QUERY_CHARS} characters")));
        }
        let words: Vec<String> = terms(&mut analyzer(), q).into_iter().map(|term| term.text).collect();
        if words.is_empty() {
            return Err(invalid("q has no letters or digits to search for"));
        }
        if words.len() > MAX_WORDS {
            return Err(invalid(format!("q has more than {MAX_WORDS} words")));
        }
        let folder = match folder {
            None => None,
            Some(folder) => {
                let parsed = FolderPath::parse(folder).map_err(|err| invalid(format!("folder: {err}")))?;
                Some(parsed.as_str().to_owned()).filter(|path| !path.is_empty())
            }
        };
        let kind = kind.map(parse_type).transpose()?;
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let fingerprint = fingerprint(caller, &words, folder.as_deref(), kind.as_ref(), scope, limit);
        Ok(Self { words, folder, kind, scope, limit, fingerprint })
    }

    /// Whether a file (as SQLite has it now) passes the filters, given the caller's access:
    /// the same conditions the index query applies, checked again on the verified row.
    pub fn admits(&self, row: &FileRow, access: Access) -> bool {
        let scope_ok = match self.scope {
            Scope::All => true,
            Scope::Mine => access == Access::Owner,
            Scope::Shared => access == Access::Grantee,
        };
        let folder_ok = self.folder.as_deref().is_none_or(|folder| {
            access == Access::Owner
                && (row.folder == folder || row.folder.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/')))
        });
        let kind_ok = match &self.kind {
            None => true,
            Some(TypeFilter::Family(wanted)) => family(&row.content_type, &row.name) == *wanted,
            Some(TypeFilter::Media(media)) => row.content_type == *media,
        };
        scope_ok && folder_ok && kind_ok
    }
}

fn parse_type(text: &str) -> Result<TypeFilter, QueryError> {
    let text = text.trim().to_ascii_lowercase();
    if let Some(family) = FAMILIES.iter().find(|family| **family == text) {
        return Ok(TypeFilter::Family(family));
    }
    let token = |part: &str| {
        !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&byte))
    };
    match text.split_once('/') {
        Some((kind, sub)) if text.len() <= 127 && token(kind) && token(sub) => Ok(TypeFilter::Media(text)),
        _ => Err(invalid(format!("type is one of {} or a media type like text/plain", FAMILIES.join(", ")))),
    }
}

fn fingerprint(
    caller: &UserId,
    words: &[String],
    folder: Option<&str>,
    kind: Option<&TypeFilter>,
    scope: Scope,
    limit: u32,
) -> [u8; 8] {
    let text = format!("{}\u{0}{}\u{0}{folder:?}\u{0}{kind:?}\u{0}{scope:?}\u{0}{limit}", caller.0, words.join(" "));
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = [0; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

/// Where the next page starts: an offset into the index's results, bound to one search.
pub fn encode_cursor(query: &SearchQuery, offset: u32) -> String {
    let mut raw = offset.to_be_bytes().to_vec();
    raw.extend_from_slice(&query.fingerprint);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(query: &SearchQuery, cursor: &str) -> Result<u32, QueryError> {
    let bad = || invalid("cursor is not one this server gave out for this search");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    if raw.len() != 12 || raw[4..] != query.fingerprint {
        return Err(bad());
    }
    let offset = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    if offset > MAX_OFFSET {
        return Err(bad());
    }
    Ok(offset)
}

/// Edits forgiven when a query word is compared with name words (as Meilisearch does).
pub fn typo_distance(word: &str) -> u8 {
    if word.chars().any(is_cjk) || word.chars().all(|c| c.is_ascii_digit()) {
        return 0;
    }
    match word.chars().count() {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// Whether the last word also matches name prefixes.
pub fn prefix_allowed(word: &str) -> bool {
    word.chars().count() >= MIN_PREFIX_CHARS
}

fn term_query(field: tantivy::schema::Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, text), IndexRecordOption::WithFreqs))
}

fn filter(query: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(query, 0.0))
}

/// The index query for `query` on behalf of `caller`. `in_names` says whether a word is in
/// the name of a file the caller may read: typos are forgiven only for words that are not
/// (looking for near words is the costly part of a query, and a real word is rarely a typo).
pub fn build(fields: &Fields, query: &SearchQuery, caller: &UserId, in_names: &dyn Fn(&str) -> bool) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let last = query.words.len() - 1;
    for (index, word) in query.words.iter().enumerate() {
        let mut alternatives: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Should, Box::new(BoostQuery::new(term_query(fields.name, word), 3.0))),
            (Occur::Should, Box::new(BoostQuery::new(term_query(fields.description, word), 1.5))),
            (Occur::Should, term_query(fields.body, word)),
        ];
        let distance = typo_distance(word);
        if distance > 0 && !in_names(word) {
            let fuzzy = FuzzyTermQuery::new(Term::from_field_text(fields.name, word), distance, true);
            alternatives.push((Occur::Should, Box::new(BoostQuery::new(Box::new(fuzzy), 1.0))));
        }
        if index == last && prefix_allowed(word) {
            let prefix: Box<dyn Query> = if word.chars().count() <= MAX_PREFIX_CHARS {
                Box::new(TermQuery::new(Term::from_field_text(fields.name_prefix, word), IndexRecordOption::Basic))
            } else {
                Box::new(FuzzyTermQuery::new_prefix(Term::from_field_text(fields.name, word), 0, false))
            };
            alternatives.push((Occur::Should, Box::new(BoostQuery::new(prefix, 1.5))));
        }
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
    }
    let caller_term =
        |field| Box::new(TermQuery::new(Term::from_field_text(field, &caller.0), IndexRecordOption::Basic));
    clauses.push((Occur::Must, filter(caller_term(fields.readers))));
    match query.scope {
        Scope::All => {}
        Scope::Mine => clauses.push((Occur::Must, filter(caller_term(fields.owner)))),
        Scope::Shared => clauses.push((Occur::MustNot, caller_term(fields.owner))),
    }
    if let Some(folder) = &query.folder {
        clauses.push((Occur::Must, filter(caller_term(fields.owner))));
        clauses.push((
            Occur::Must,
            filter(Box::new(TermQuery::new(Term::from_field_text(fields.folder, folder), IndexRecordOption::Basic))),
        ));
    }
    match &query.kind {
        None => {}
        Some(TypeFilter::Family(family)) => clauses.push((
            Occur::Must,
            filter(Box::new(TermQuery::new(Term::from_field_text(fields.family, family), IndexRecordOption::Basic))),
        )),
        Some(TypeFilter::Media(media)) => clauses.push((
            Occur::Must,
            filter(Box::new(TermQuery::new(Term::from_field_text(fields.media, media), IndexRecordOption::Basic))),
        )),
    }
    Box::new(BooleanQuery::new(clauses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<SearchQuery, QueryError> {
        SearchQuery::parse(&UserId("u1".into()), q, None, None, Scope::All, None)
    }

    #[test]
    fn queries_are_words_and_nothing_else() {
        assert_eq!(parse("readers:u2 OR file_id:*").unwrap().words, ["readers", "u2", "or", "file", "id"]);
        assert!(parse("   ").is_err());
        assert!(parse("((((").is_err());
        assert!(parse(&"(".repeat(10_000)).is_err());
        assert!(parse(&"a ".repeat(17)).is_err());
        assert!(parse("Café").unwrap().words == ["cafe"]);
    }

    #[test]
    fn cursors_are_bound_to_their_search_and_caller() {
        let query = parse("report").unwrap();
        let cursor = encode_cursor(&query, 40);
        assert_eq!(decode_cursor(&query, &cursor), Ok(40));
        let other = SearchQuery::parse(&UserId("u2".into()), "report", None, None, Scope::All, None).unwrap();
        assert!(decode_cursor(&other, &cursor).is_err());
        assert!(decode_cursor(&parse("reports").unwrap(), &cursor).is_err());
        assert!(decode_cursor(&query, "garbage!").is_err());
    }

    #[test]
    fn types_are_families_or_media_types() {
        let with_type = |kind| SearchQuery::parse(&UserId("u".into()), "x", None, Some(kind), Scope::All, None);
        assert_eq!(with_type("PDF").unwrap().kind, Some(TypeFilter::Family("pdf")));
        assert_eq!(with_type("text/markdown").unwrap().kind, Some(TypeFilter::Media("text/markdown".into())));
        assert!(with_type("readers:*").is_err());
    }

    #[test]
    fn typos_allowed_grow_with_word_length() {
        assert_eq!(typo_distance("cat"), 0);
        assert_eq!(typo_distance("report"), 1);
        assert_eq!(typo_distance("quarterly"), 2);
        assert_eq!(typo_distance("20240101"), 0);
    }
}
