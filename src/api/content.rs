//! `GET|HEAD /files/{id}/content` and the read grants of `/files/{id}/grants`. How a download
//! is answered is in `download.rs`, shared with share links.

use crate::api::strict::Text;
use poem::{Body, Request};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::download::{Download, DownloadPlan};
use super::failure::ApiFailure;
use super::security::{BearerAuth, client_ip};
use super::{ApiTags, rfc3339};
use crate::db::files::FileRow;
use crate::files::Files;

pub struct ContentApi {
    pub files: Files,
}

async fn open_at(files: &Files, file: &FileRow, start: u64, length: u64) -> Result<Body, ApiFailure> {
    let stream = files.store().read_range(&file.sha256, start, length).await.map_err(ApiFailure::internal)?;
    Ok(Body::from_bytes_stream(stream))
}

#[derive(Object)]
struct GrantRequest {
    /// Who may read the file.
    username: Text,
}

#[derive(Object)]
struct GrantView {
    user_id: String,
    username: String,
    granted_at: String,
}

#[derive(ApiResponse)]
enum Granted {
    /// Done: if an account has this username, it can now read the file. The answer is the
    /// same whether it exists or not (for admins an unknown name is 404), so grants cannot be
    /// used to find out which accounts exist; `GET .../grants` lists who can read the file.
    #[oai(status = 204)]
    Granted,
}

#[derive(ApiResponse)]
enum Revoked {
    #[oai(status = 204)]
    Revoked,
}

#[OpenApi(tag = "ApiTags::Files")]
impl ContentApi {
    /// Download a file (HEAD for the headers only). Supports `If-None-Match`, one `Range`
    /// and `If-Range`.
    #[oai(path = "/files/:id/content", method = "get")]
    async fn content(&self, req: &Request, caller: BearerAuth, id: Path<String>) -> Result<Download, ApiFailure> {
        let (file, _) = self.files.readable(&caller.0, &id, &client_ip(req)).await?;
        let plan = DownloadPlan::new(&file, req);
        let body = match plan.sends() {
            Some((start, length, _)) => open_at(&self.files, &file, start, length).await?,
            None => Body::empty(),
        };
        Ok(plan.respond(body))
    }

    /// Let another user read a file you own. Naming accounts that do not exist is limited
    /// (10 per caller, then waits doubling up to an hour: 429).
    #[oai(path = "/files/:id/grants", method = "post")]
    async fn grant(
        &self,
        req: &Request,
        caller: BearerAuth,
        id: Path<String>,
        body: Json<GrantRequest>,
    ) -> Result<Granted, ApiFailure> {
        self.files.grant(&caller.0, &id, &body.username, &client_ip(req)).await?;
        Ok(Granted::Granted)
    }

    /// Who may read a file you own.
    #[oai(path = "/files/:id/grants", method = "get")]
    async fn grants(&self, caller: BearerAuth, id: Path<String>) -> Result<Json<Vec<GrantView>>, ApiFailure> {
        let grants = self.files.grants(&caller.0, &id).await?;
        Ok(Json(
            grants
                .into_iter()
                .map(|(user_id, username, at)| GrantView { user_id, username, granted_at: rfc3339(at) })
                .collect(),
        ))
    }

    /// Stop letting a user read a file you own.
    #[oai(path = "/files/:id/grants/:user_id", method = "delete")]
    async fn revoke(&self, caller: BearerAuth, id: Path<String>, user_id: Path<String>) -> Result<Revoked, ApiFailure> {
        self.files.revoke_grant(&caller.0, &id, &user_id).await?;
        Ok(Revoked::Revoked)
    }
}
