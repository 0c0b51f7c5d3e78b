//! `GET /api/v1/audit`: the audit log, for admins.

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::failure::ApiFailure;
use super::security::{BearerAuth, require_admin};
use super::users::{given, next_cursor, page_size};
use super::{ApiTags, rfc3339};
use crate::auth::Auth;

pub struct AuditApi {
    pub auth: Arc<Auth>,
}

#[derive(Object)]
struct AuditEntry {
    id: i64,
    /// When, in UTC.
    at: String,
    /// What happened: `login_ok`, `login_failed`, `login_throttled`, `refresh_token_reuse`,
    /// `password_changed`, `session_revoked`, `user_created`, `authorization_denied`, ...
    event: String,
    /// Who did it (a user id), if anyone signed in.
    #[oai(skip_serializing_if_is_none)]
    actor_id: Option<String>,
    /// What it was done to (a user, session or token id, or an attempted username).
    #[oai(skip_serializing_if_is_none)]
    subject: Option<String>,
    /// The client's address (`cli` for the server's command line).
    ip: String,
    detail: String,
}

#[derive(Object)]
struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `cursor` for older entries; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

#[OpenApi(tag = "ApiTags::Users")]
impl AuditApi {
    /// Audit entries, newest first; filter by a user id (as actor or subject) and by event.
    #[oai(path = "/audit", method = "get")]
    async fn list(
        &self,
        req: &Request,
        caller: BearerAuth,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
        user: Query<Option<String>>,
        event: Query<Option<String>>,
    ) -> Result<Json<AuditPage>, ApiFailure> {
        require_admin(&self.auth, &caller.0, req).await?;
        let limit = page_size(limit.0)?;
        let before = match given(cursor.0) {
            Some(cursor) => Some(
                cursor
                    .parse::<i64>()
                    .map_err(|_| ApiFailure::bad_request("invalid", "cursor is not one this server gave out"))?,
            ),
            None => None,
        };
        let rows = self.auth.audit_log(before, limit, given(user.0), given(event.0)).await?;
        let next_cursor = next_cursor(&rows, limit, |row| row.id.to_string());
        let entries = rows
            .into_iter()
            .map(|row| AuditEntry {
                id: row.id,
                at: rfc3339(row.at),
                event: row.event,
                actor_id: row.actor_id,
                subject: row.subject,
                ip: row.ip,
                detail: row.detail,
            })
            .collect();
        Ok(Json(AuditPage { entries, next_cursor }))
    }
}
