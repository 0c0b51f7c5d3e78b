//! `UploadForm`: a `multipart/form-data` request body taken as a stream, so the OpenAPI
//! document describes the form truthfully while nothing is buffered (poem-openapi's own
//! multipart type reads whole files first).

use poem::{Body, FromRequest, Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};

pub struct UploadForm(pub Body);

fn string(description: &'static str, format: Option<&'static str>) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema { description: Some(description), format, ..MetaSchema::new("string") }))
}

impl Payload for UploadForm {
    const CONTENT_TYPE: &'static str = "multipart/form-data";

    fn check_content_type(content_type: &str) -> bool {
        content_type.starts_with(Self::CONTENT_TYPE)
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("Text fields first, then `file`; its filename names the stored file."),
            required: vec!["file"],
            properties: vec![
                ("folder", string("Folder path; empty for the top level.", None)),
                ("description", string("Free text.", None)),
                ("on_conflict", string("`fail` (default), `rename` or `replace`.", None)),
                ("file", string("The contents.", Some("binary"))),
            ],
            ..MetaSchema::new("object")
        }))
    }
}

impl ParsePayload for UploadForm {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(Body::from_request(request, body).await?))
    }
}

poem_openapi::impl_apirequest_for_payload!(UploadForm,);
