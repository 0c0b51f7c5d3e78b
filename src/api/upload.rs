//! Uploads: `PUT /files/upload` (the raw body) and `POST /files` (a multipart form).
//!
//! Both end in `Files::receive` then `Files::commit`, so every rule (size, quota, names,
//! digests, preconditions, a credential that ended meanwhile) applies the same way. A form is
//! bounded outside its file: fields have their own limits, and everything but the file's
//! contents (fields, part headers, boundaries) may take at most [`FORM_OVERHEAD`] bytes, so a
//! huge field or part header is refused quickly instead of being buffered and rescanned. The
//! file must be the form's last part; anything after it refuses the whole upload and stores
//! nothing.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use poem::{Body, Request};
use poem_openapi::param::Query;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use super::conditions::precondition;
use super::failure::ApiFailure;
use super::files::{Conflict, FileView};
use super::security::BearerAuth;
use super::upload_form::UploadForm;
use crate::domain::{Description, FileName, FolderPath, MAX_DESCRIPTION_BYTES};
use crate::files::{Files, OnConflict, Precondition, UploadRequest};
use crate::storage::ExpectedDigests;

/// Bytes a form may spend outside its file's contents.
pub const FORM_OVERHEAD: u64 = 64 << 10;

pub struct UploadApi {
    pub files: Files,
}

#[derive(ApiResponse)]
pub(super) enum Stored {
    /// Stored; nothing is acknowledged before the contents are on disk and the record committed.
    #[oai(status = 201)]
    Created(Json<FileView>),
}

/// The digests of `Content-Digest` (RFC 9530) that Coffer checks: `sha-256` and `sha-512`.
/// A header naming only other algorithms is refused rather than silently left unchecked.
fn content_digest(req: &Request) -> Result<ExpectedDigests, ApiFailure> {
    let Some(header) = req.header("content-digest") else { return Ok(ExpectedDigests::default()) };
    let bad = || {
        ApiFailure::bad_request(
            "invalid",
            "Content-Digest must be like sha-256=:<base64 of the SHA-256 of the contents>:",
        )
    };
    let mut digests = ExpectedDigests::default();
    let mut others = Vec::new();
    for member in header.split(',').map(str::trim).filter(|member| !member.is_empty()) {
        let (algorithm, value) = member.split_once('=').ok_or_else(bad)?;
        let algorithm = algorithm.trim().to_ascii_lowercase();
        let decode = || -> Result<Vec<u8>, ApiFailure> {
            let encoded = value.trim().strip_prefix(':').and_then(|rest| rest.strip_suffix(':')).ok_or_else(bad)?;
            base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| bad())
        };
        match algorithm.as_str() {
            "sha-256" => digests.sha256 = Some(decode()?.try_into().map_err(|_| bad())?),
            "sha-512" => digests.sha512 = Some(decode()?.try_into().map_err(|_| bad())?),
            _ => others.push(algorithm),
        }
    }
    if digests == ExpectedDigests::default() && !others.is_empty() {
        return Err(ApiFailure::bad_request(
            "unsupported_digest",
            format!(
                "Content-Digest names only {}, which Coffer does not check; send sha-256 or sha-512",
                others.join(", ")
            ),
        ));
    }
    Ok(digests)
}

fn declared_size(req: &Request) -> Result<Option<u64>, ApiFailure> {
    req.header("content-length")
        .map(|value| value.parse().map_err(|_| ApiFailure::bad_request("invalid", "Content-Length is not a number")))
        .transpose()
}

/// `If-Match` on an upload names the contents it replaces.
fn upload_precondition(req: &Request, on_conflict: OnConflict) -> Result<Precondition, ApiFailure> {
    let precondition = precondition(req)?;
    if matches!(precondition, Precondition::Exists | Precondition::ContentsAre(_)) && on_conflict != OnConflict::Replace
    {
        return Err(ApiFailure::bad_request("invalid", "If-Match on an upload needs on_conflict=replace"));
    }
    Ok(precondition)
}

/// How many bytes of the form the parser may still read; `u64::MAX` while the file streams.
struct Budget {
    consumed: AtomicU64,
    limit: AtomicU64,
    exceeded: AtomicBool,
}

impl Budget {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            consumed: AtomicU64::new(0),
            limit: AtomicU64::new(FORM_OVERHEAD),
            exceeded: AtomicBool::new(false),
        })
    }

    /// The file's contents are not counted.
    fn lift(&self) {
        self.limit.store(u64::MAX, Ordering::Release);
    }

    /// After the file: only a little more (its closing boundary) may follow.
    fn restrict(&self) {
        let consumed = self.consumed.load(Ordering::Acquire);
        self.limit.store(consumed.saturating_add(FORM_OVERHEAD), Ordering::Release);
    }
}

/// The request body as the form parser sees it, cut off when the budget runs out.
struct Budgeted<S> {
    inner: S,
    budget: Arc<Budget>,
}

impl<S: Stream<Item = std::io::Result<Bytes>> + Unpin> Stream for Budgeted<S> {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &item {
            let budget = &self.budget;
            let consumed = budget.consumed.fetch_add(chunk.len() as u64, Ordering::AcqRel) + chunk.len() as u64;
            if consumed > budget.limit.load(Ordering::Acquire) {
                budget.exceeded.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(std::io::Error::other("the form is too large outside its file"))));
            }
        }
        item
    }
}

fn form_error(budget: &Budget, err: multer::Error) -> ApiFailure {
    if budget.exceeded.load(Ordering::Acquire) {
        return ApiFailure::bad_request(
            "form_too_large",
            format!("a form's fields and part headers may take at most {} KiB besides the file", FORM_OVERHEAD >> 10),
        );
    }
    match err {
        multer::Error::UnknownField { field_name } => ApiFailure::bad_request(
            "invalid",
            format!(
                "unknown form field `{}`; a form has folder, description, on_conflict and file",
                field_name.unwrap_or_default()
            ),
        ),
        multer::Error::FieldSizeExceeded { field_name, limit } => ApiFailure::bad_request(
            "invalid",
            format!("the form field `{}` is longer than {limit} bytes", field_name.unwrap_or_default()),
        ),
        other => ApiFailure::bad_request("invalid", format!("malformed form: {other}")),
    }
}

#[OpenApi(tag = "ApiTags::Files")]
impl UploadApi {
    /// Upload a file as the raw request body. `Content-Length` is checked against the size
    /// limit before anything is read; `Content-Digest` (sha-256, sha-512) is verified; with
    /// `on_conflict=replace`, `If-Match: "<sha256>"` replaces only those contents, and
    /// `If-None-Match: *` stores only if the name is free.
    #[oai(path = "/files/upload", method = "put")]
    #[allow(clippy::too_many_arguments)]
    async fn upload(
        &self,
        req: &Request,
        caller: BearerAuth,
        name: Query<String>,
        folder: Query<Option<String>>,
        on_conflict: Query<Option<Conflict>>,
        description: Query<Option<String>>,
        body: Binary<Body>,
    ) -> Result<Stored, ApiFailure> {
        let on_conflict: OnConflict = on_conflict.0.into();
        let request = UploadRequest {
            folder: FolderPath::parse(folder.0.as_deref().unwrap_or(""))?,
            name: FileName::parse(&name.0)?,
            on_conflict,
            description: Description::parse(description.0.as_deref().unwrap_or(""))?,
            declared_size: declared_size(req)?,
            digests: content_digest(req)?,
            precondition: upload_precondition(req, on_conflict)?,
        };
        let row = self.files.upload(&caller.0, request, body.0.into_bytes_stream()).await?;
        Ok(Stored::Created(Json(row.into())))
    }
}

/// `POST /files`, documented with `GET /files` in [`super::files::FilesApi`] (an OpenAPI path
/// lives in one API struct, or the document keeps only one of its methods).
pub(super) async fn receive_form(
    files: &Files,
    req: &Request,
    caller: BearerAuth,
    body: UploadForm,
) -> Result<Stored, ApiFailure> {
    let boundary = req
        .content_type()
        .and_then(|kind| multer::parse_boundary(kind).ok())
        .ok_or_else(|| ApiFailure::bad_request("invalid", "expected multipart/form-data with a boundary"))?;
    let budget = Budget::new();
    let stream = Budgeted { inner: body.0.into_bytes_stream(), budget: Arc::clone(&budget) };
    let limits = multer::SizeLimit::new()
        .for_field("folder", 9 << 10)
        .for_field("description", MAX_DESCRIPTION_BYTES as u64)
        .for_field("on_conflict", 16);
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["folder", "description", "on_conflict", "file"])
        .size_limit(limits);
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let (mut folder, mut description, mut on_conflict) = (String::new(), String::new(), None);
    let mut seen = HashSet::new();
    while let Some(field) = form.next_field().await.map_err(|err| form_error(&budget, err))? {
        let name = field.name().unwrap_or_default().to_owned();
        if !seen.insert(name.clone()) {
            return Err(ApiFailure::bad_request("invalid", format!("the form field `{name}` appears twice")));
        }
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let on_conflict: OnConflict = on_conflict.into();
                let request = UploadRequest {
                    folder: FolderPath::parse(&folder)?,
                    name: FileName::parse(&file_name)?,
                    on_conflict,
                    description: Description::parse(&description)?,
                    declared_size: None,
                    digests: ExpectedDigests::default(),
                    precondition: upload_precondition(req, on_conflict)?,
                };
                budget.lift();
                let contents = field.map_err(|err| std::io::Error::other(err.to_string()));
                let received = files.receive(&caller.0, &request, contents).await?;
                budget.restrict();
                if let Some(extra) = form.next_field().await.map_err(|err| form_error(&budget, err))? {
                    let extra = extra.name().unwrap_or_default().to_owned();
                    return Err(ApiFailure::bad_request(
                        "invalid",
                        format!("the file must be the form's last part, but `{extra}` follows it; nothing was stored"),
                    ));
                }
                let row = files.commit(&caller.0, request, received).await?;
                return Ok(Stored::Created(Json(row.into())));
            }
            "folder" => folder = field.text().await.map_err(|err| form_error(&budget, err))?,
            "description" => description = field.text().await.map_err(|err| form_error(&budget, err))?,
            _ => {
                on_conflict = match field.text().await.map_err(|err| form_error(&budget, err))?.as_str() {
                    "fail" => Some(Conflict::Fail),
                    "rename" => Some(Conflict::Rename),
                    "replace" => Some(Conflict::Replace),
                    _ => return Err(ApiFailure::bad_request("invalid", "on_conflict is fail, rename or replace")),
                }
            }
        }
    }
    Err(ApiFailure::bad_request("invalid", "the form has no `file` field"))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn the_budget_cuts_a_form_off_outside_its_file_only() {
        let budget = Budget::new();
        let chunks = (0..40).map(|_| Ok(Bytes::from(vec![b'x'; 4096])));
        let mut stream = Budgeted { inner: futures_util::stream::iter(chunks), budget: Arc::clone(&budget) };
        let mut read = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
        }
        assert_eq!(read as u64, FORM_OVERHEAD, "cut off right after the budget");
        assert!(budget.exceeded.load(Ordering::Acquire));

        let budget = Budget::new();
        budget.lift();
        let chunks = (0..40).map(|_| Ok(Bytes::from(vec![b'x'; 4096])));
        let stream = Budgeted { inner: futures_util::stream::iter(chunks), budget: Arc::clone(&budget) };
        assert_eq!(
            stream.filter_map(|item| async { item.ok() }).count().await,
            40,
            "a file's contents are not counted"
        );
    }
}
