//! `GET /api/v1/me`: the signed-in user.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::auth::internal;
use super::security::BearerAuth;
use super::{ApiTags, rfc3339};
use crate::auth::Auth;

pub struct MeApi {
    pub auth: Arc<Auth>,
}

#[derive(Object)]
pub struct UserView {
    id: String,
    username: String,
    #[oai(skip_serializing_if_is_none)]
    email: Option<String>,
    /// `admin` or `user`.
    role: String,
    disabled: bool,
    /// Bytes this user may store; absent means no limit.
    #[oai(skip_serializing_if_is_none)]
    quota_bytes: Option<i64>,
    created_at: String,
    #[oai(skip_serializing_if_is_none)]
    last_login_at: Option<String>,
}

impl From<crate::db::users::UserRow> for UserView {
    fn from(user: crate::db::users::UserRow) -> Self {
        Self {
            id: user.id.0,
            username: user.username,
            email: user.email,
            role: user.role.as_str().into(),
            disabled: user.disabled,
            quota_bytes: user.quota_bytes,
            created_at: rfc3339(user.created_at),
            last_login_at: user.last_login_at.map(rfc3339),
        }
    }
}

#[OpenApi(tag = "ApiTags::Account")]
impl MeApi {
    /// The signed-in user's account.
    #[oai(path = "/me", method = "get")]
    async fn me(&self, caller: BearerAuth) -> poem::Result<Json<UserView>> {
        let user = self.auth.user(&caller.0.user_id).await.map_err(internal)?;
        let user =
            user.ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::UNAUTHORIZED))?;
        Ok(Json(user.into()))
    }
}
