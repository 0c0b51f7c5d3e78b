//! `/search` and the admins' `/admin/search`: turns requests into calls of `search` and its
//! results into JSON. Results carry the same file JSON as `GET /files/{id}` (read from SQLite,
//! never from the index), with highlights as plain segments. No scores and no totals are
//! returned: both would reveal statistics of other people's files.

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::error::ErrorBody;
use super::failure::ApiFailure;
use super::files::FileView;
use super::security::{BearerAuth, require_admin};
use super::users::given;
use super::{ApiTags, rfc3339};
use crate::auth::Auth;
use crate::files::Access;
use crate::search::query::{Scope, SearchQuery};
use crate::search::state::{Progress, State};
use crate::search::{Found, Search, SearchError, Segment};

pub struct SearchApi {
    pub search: Option<Search>,
    pub auth: Arc<Auth>,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
enum SearchScope {
    /// Files you own and files shared with you (the default).
    All,
    /// Files you own.
    Mine,
    /// Files others shared with you.
    Shared,
}

#[derive(Object)]
struct SegmentView {
    text: String,
    /// Whether this part matched the query.
    hit: bool,
}

#[derive(Object)]
struct HighlightsView {
    /// The whole name in parts, when it matched; empty otherwise.
    name: Vec<SegmentView>,
    /// A part of the description around what matched; empty when nothing did.
    description: Vec<SegmentView>,
    /// A part of the file's text around what matched (`…` marks cuts); empty when nothing did.
    content: Vec<SegmentView>,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
enum AccessView {
    Owner,
    Grantee,
}

#[derive(Object)]
struct SearchResult {
    /// As `GET /files/{id}` returns it.
    file: FileView,
    /// Why you may read it.
    access: AccessView,
    highlights: HighlightsView,
}

#[derive(Object)]
struct SearchPage {
    /// Best matches first.
    results: Vec<SearchResult>,
    /// Pass as `cursor` (with the same other parameters) for more; absent when there are no more.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

#[derive(Object)]
struct ProgressView {
    /// Files indexed so far.
    done: u64,
    total: u64,
    /// Estimated seconds left, once there is a rate to estimate from.
    #[oai(skip_serializing_if_is_none)]
    eta_seconds: Option<u64>,
}

#[derive(Object)]
struct UnavailableBody {
    /// `search_unavailable`.
    error: String,
    message: String,
    #[oai(skip_serializing_if_is_none)]
    request_id: Option<String>,
    /// How far the index build has come, while one runs.
    #[oai(skip_serializing_if_is_none)]
    progress: Option<ProgressView>,
}

#[derive(ApiResponse)]
enum SearchResponse {
    #[oai(status = 200)]
    Ok(Json<SearchPage>),
    /// `unauthorized`: no valid access token or API token was sent.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `too_many_requests`: over the account's API rate; wait the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `invalid_query`: `q` is empty, too long (256 characters, 16 words) or has no words;
    /// or `folder`, `type`, `limit` or `cursor` is not valid.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `search_unavailable`: the index is being built (first start, an upgrade) or search is
    /// turned off; try again after the given seconds.
    #[oai(status = 503)]
    Unavailable(Json<UnavailableBody>, #[oai(header = "Retry-After")] u64),
    /// `internal_error`: logged on the server under the request id.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

#[derive(Object)]
struct ExtractionCounts {
    /// Contents whose text is indexed.
    ok: u64,
    /// Contents that are not a format whose text is read (images, archives, binaries).
    unsupported: u64,
    /// Contents over `search.max_extract_size`.
    too_large: u64,
    /// Contents the extractor could not read (damaged or hostile files).
    failed: u64,
    /// Contents whose extraction ran past `search.extract_timeout`.
    timeout: u64,
    /// Contents waiting for extraction.
    queued: u64,
}

#[derive(Object)]
struct SearchStatusView {
    /// `ready`, `rebuilding` (a new index is being built aside), `degraded` (writing to the
    /// index fails; searches answer from the last commit), `starting`, or `disabled`.
    state: String,
    /// Changes to files and grants not yet in the index.
    pending: u64,
    /// Documents in the index (one per file).
    docs: u64,
    /// The last recorded change the index contains.
    indexed_seq: u64,
    #[oai(skip_serializing_if_is_none)]
    last_commit_at: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    rebuild: Option<ProgressView>,
    #[oai(skip_serializing_if_is_none)]
    last_error: Option<String>,
    extraction: ExtractionCounts,
}

#[derive(ApiResponse)]
enum StatusResponse {
    #[oai(status = 200)]
    Ok(Json<SearchStatusView>),
    /// `unauthorized`: no valid access token or API token was sent.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `too_many_requests`: over the account's API rate; wait the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `forbidden`: admins only.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

#[derive(ApiResponse)]
enum RebuildResponse {
    /// A rebuild is under way: the current index answers until the new one is swapped in.
    #[oai(status = 202)]
    Accepted(Json<SearchStatusView>),
    /// `unauthorized`: no valid access token or API token was sent.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `too_many_requests`: over the account's API rate; wait the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `forbidden`: admins only.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `search_unavailable`: search is turned off (`search.enabled`).
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

fn error(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody { error: code.into(), message: message.into(), request_id: None })
}

fn progress_view(progress: &Progress) -> ProgressView {
    ProgressView { done: progress.done, total: progress.total, eta_seconds: progress.eta_seconds() }
}

fn segments(segments: Vec<Segment>) -> Vec<SegmentView> {
    segments.into_iter().map(|segment| SegmentView { text: segment.text, hit: segment.hit }).collect()
}

fn result_view(found: Found) -> SearchResult {
    let access = match found.access {
        Access::Grantee => AccessView::Grantee,
        _ => AccessView::Owner,
    };
    let highlights = HighlightsView {
        name: segments(found.highlights.name),
        description: segments(found.highlights.description),
        content: segments(found.highlights.content),
    };
    SearchResult { file: found.file.into(), access, highlights }
}

fn unavailable(message: String, progress: Option<&Progress>) -> SearchResponse {
    let retry_after = progress.and_then(Progress::eta_seconds).unwrap_or(5).clamp(1, 60);
    let body = UnavailableBody {
        error: "search_unavailable".into(),
        message,
        request_id: None,
        progress: progress.map(progress_view),
    };
    SearchResponse::Unavailable(Json(body), retry_after)
}

async fn status_view(search: Option<&Search>) -> SearchStatusView {
    let Some(search) = search else {
        return SearchStatusView {
            state: "disabled".into(),
            pending: 0,
            docs: 0,
            indexed_seq: 0,
            last_commit_at: None,
            rebuild: None,
            last_error: None,
            extraction: ExtractionCounts { ok: 0, unsupported: 0, too_large: 0, failed: 0, timeout: 0, queued: 0 },
        };
    };
    let report = search.report().await;
    let count = |status: &str| report.extraction.iter().find(|(name, _)| name == status).map_or(0, |(_, count)| *count);
    let status = report.status;
    SearchStatusView {
        state: status.state.as_str().into(),
        pending: report.pending,
        docs: status.docs,
        indexed_seq: status.indexed_seq,
        last_commit_at: status.last_commit_at.map(rfc3339),
        rebuild: status.rebuild.as_ref().filter(|_| status.state != State::Ready).map(progress_view),
        last_error: status.last_error,
        extraction: ExtractionCounts {
            ok: count("ok"),
            unsupported: count("unsupported"),
            too_large: count("too_large"),
            failed: count("failed"),
            timeout: count("timeout"),
            queued: count("queued"),
        },
    }
}

fn internal() -> Json<ErrorBody> {
    error("internal_error", "the server could not complete the request; it has been logged")
}

/// The refusals of the security layer (`require_admin`, the account's rate limit) in each
/// operation's own response type, so the document lists them.
impl From<ApiFailure> for SearchResponse {
    fn from(failure: ApiFailure) -> Self {
        match failure {
            ApiFailure::Unauthorized(body) => Self::Unauthorized(body),
            ApiFailure::TooManyRequests(body, wait) => Self::TooManyRequests(body, wait),
            ApiFailure::BadRequest(body) => Self::BadRequest(body),
            _ => Self::Internal(internal()),
        }
    }
}

impl From<ApiFailure> for StatusResponse {
    fn from(failure: ApiFailure) -> Self {
        match failure {
            ApiFailure::Unauthorized(body) => Self::Unauthorized(body),
            ApiFailure::TooManyRequests(body, wait) => Self::TooManyRequests(body, wait),
            ApiFailure::Forbidden(body) => Self::Forbidden(body),
            _ => Self::Internal(internal()),
        }
    }
}

impl From<ApiFailure> for RebuildResponse {
    fn from(failure: ApiFailure) -> Self {
        match failure {
            ApiFailure::Unauthorized(body) => Self::Unauthorized(body),
            ApiFailure::TooManyRequests(body, wait) => Self::TooManyRequests(body, wait),
            ApiFailure::Forbidden(body) => Self::Forbidden(body),
            _ => Self::Internal(internal()),
        }
    }
}

#[OpenApi(tag = "ApiTags::Search")]
impl SearchApi {
    /// Find files you may read by words in their names, descriptions and contents. Every
    /// word must match; the last one also matches the start of a word in names, and small
    /// typos in names are forgiven. Plain words only: there is no query syntax.
    #[oai(path = "/search", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        caller: BearerAuth,
        /// The words to look for (1-256 characters, at most 16 words).
        q: Query<Option<String>>,
        /// Only your own files in this folder and its subfolders.
        folder: Query<Option<String>>,
        /// `pdf`, `image`, `text`, `office`, `audio`, `video`, `archive`, `other`, or a media
        /// type such as `text/markdown`.
        #[oai(name = "type")]
        kind: Query<Option<String>>,
        scope: Query<Option<SearchScope>>,
        /// Results per page, 1-100 (default 20).
        limit: Query<Option<u32>>,
        /// From the previous page's `next_cursor`.
        cursor: Query<Option<String>>,
    ) -> SearchResponse {
        let Some(search) = &self.search else {
            return unavailable(
                "search is turned off on this server, or its index directory cannot be used (see the server log)"
                    .into(),
                None,
            );
        };
        let scope = match scope.0 {
            None | Some(SearchScope::All) => Scope::All,
            Some(SearchScope::Mine) => Scope::Mine,
            Some(SearchScope::Shared) => Scope::Shared,
        };
        let caller = &caller.0.user_id;
        let q = q.0.unwrap_or_default();
        let parsed =
            SearchQuery::parse(caller, &q, given(folder.0).as_deref(), given(kind.0).as_deref(), scope, limit.0);
        let outcome = match parsed {
            Ok(query) => search.search(caller, &query, given(cursor.0).as_deref()).await,
            Err(err) => Err(err.into()),
        };
        match outcome {
            Ok(page) => SearchResponse::Ok(Json(SearchPage {
                results: page.results.into_iter().map(result_view).collect(),
                next_cursor: page.next_cursor,
            })),
            Err(SearchError::Invalid(err)) => SearchResponse::BadRequest(error("invalid_query", err.to_string())),
            Err(SearchError::Unavailable { reason, progress }) => unavailable(reason, progress.as_ref()),
            Err(SearchError::Internal(err)) => {
                tracing::error!(error = %err, "search failed");
                SearchResponse::Internal(internal())
            }
        }
    }

    /// The search index's state, pending changes, size, last commit and extraction counts
    /// (admins only).
    #[oai(path = "/admin/search", method = "get")]
    async fn status(&self, req: &Request, caller: BearerAuth) -> StatusResponse {
        if let Err(failure) = require_admin(&self.auth, &caller.0, req).await {
            return failure.into();
        }
        StatusResponse::Ok(Json(status_view(self.search.as_ref()).await))
    }

    /// Rebuild the search index aside from the database and swap it in; searches keep being
    /// answered by the current index meanwhile (admins only).
    #[oai(path = "/admin/search/rebuild", method = "post")]
    async fn rebuild(&self, req: &Request, caller: BearerAuth) -> RebuildResponse {
        if let Err(failure) = require_admin(&self.auth, &caller.0, req).await {
            return failure.into();
        }
        let Some(search) = &self.search else {
            return RebuildResponse::Unavailable(error(
                "search_unavailable",
                "search is turned off on this server, or its index directory cannot be used (see the server log)",
            ));
        };
        search.rebuild();
        RebuildResponse::Accepted(Json(status_view(Some(search)).await))
    }
}
