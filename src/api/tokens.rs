//! Personal API tokens: `/me/tokens`.

use crate::api::strict::{Given, Text};
use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::failure::ApiFailure;
use super::security::{BearerAuth, client_ip, require_session};
use super::{ApiTags, rfc3339};
use crate::auth::Auth;
use crate::db::api_tokens::ApiTokenRow;

pub struct TokensApi {
    pub auth: Arc<Auth>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "kebab-case")]
enum Scope {
    /// GET and HEAD only.
    ReadOnly,
    ReadWrite,
}

#[derive(Object)]
struct NewToken {
    /// What the token is for, e.g. "nightly backup script" (1 to 100 characters).
    name: Text,
    scope: Scope,
    /// Days until it expires (1 to 3650); without it, the token lasts until revoked.
    expires_in_days: Given<u32>,
}

#[derive(Object)]
struct TokenView {
    id: String,
    name: String,
    scope: Scope,
    created_at: String,
    #[oai(skip_serializing_if_is_none)]
    expires_at: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    last_used_at: Option<String>,
}

impl From<ApiTokenRow> for TokenView {
    fn from(row: ApiTokenRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            scope: if row.read_only { Scope::ReadOnly } else { Scope::ReadWrite },
            created_at: rfc3339(row.created_at),
            expires_at: row.expires_at.map(rfc3339),
            last_used_at: row.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Object)]
struct CreatedToken {
    /// Send as `Authorization: Bearer <token>`. Shown only now: store it safely.
    token: String,
    #[oai(flatten)]
    details: TokenView,
}

#[derive(ApiResponse)]
enum Created {
    /// The token; this is the only time it is shown.
    #[oai(status = 201)]
    Created(Json<CreatedToken>),
}

#[derive(ApiResponse)]
enum Revoked {
    /// The token no longer works.
    #[oai(status = 204)]
    Revoked,
}

#[OpenApi(prefix_path = "/me/tokens", tag = "ApiTags::Account")]
impl TokensApi {
    /// Make a personal API token. Needs a password sign-in (not another API token).
    #[oai(path = "/", method = "post")]
    async fn create(&self, req: &Request, caller: BearerAuth, body: Json<NewToken>) -> Result<Created, ApiFailure> {
        require_session(&caller.0)?;
        let read_only = body.scope == Scope::ReadOnly;
        let created = self
            .auth
            .create_api_token(&caller.0, &body.name, read_only, body.expires_in_days.0, &client_ip(req))
            .await?;
        Ok(Created::Created(Json(CreatedToken { token: created.token, details: created.row.into() })))
    }

    /// The user's live tokens (never the token values).
    #[oai(path = "/", method = "get")]
    async fn list(&self, caller: BearerAuth) -> Result<Json<Vec<TokenView>>, ApiFailure> {
        Ok(Json(self.auth.api_tokens(&caller.0).await?.into_iter().map(TokenView::from).collect()))
    }

    /// Revoke a token.
    #[oai(path = "/:id", method = "delete")]
    async fn revoke(&self, req: &Request, caller: BearerAuth, id: Path<String>) -> Result<Revoked, ApiFailure> {
        if self.auth.revoke_api_token(&caller.0, &id, &client_ip(req)).await? {
            Ok(Revoked::Revoked)
        } else {
            Err(ApiFailure::not_found("token"))
        }
    }
}
