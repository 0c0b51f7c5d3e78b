//! Admin API for accounts: `/users`. Every route answers 403 to non-admins, before looking
//! anything up, so it reveals nothing about which accounts exist.

use crate::api::strict::{Given, Text};
use std::sync::Arc;

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use super::failure::ApiFailure;
use super::me::UserView;
use super::security::{BearerAuth, client_ip, require_admin};
use crate::auth::{AccountChanges, Actor, Auth, NewAccount};
use crate::domain::{Role, UserId};

pub struct UsersApi {
    pub auth: Arc<Auth>,
}

/// Page size when none is asked for, and the largest allowed.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 1000;

/// Checks a requested page size.
pub fn page_size(limit: Option<u32>) -> Result<u32, ApiFailure> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        0 => Err(ApiFailure::bad_request("invalid", "limit must be at least 1")),
        limit if limit > MAX_PAGE => {
            Err(ApiFailure::bad_request("invalid", format!("limit must be at most {MAX_PAGE}")))
        }
        limit => Ok(limit),
    }
}

/// The cursor for the page after `page`: only a full page can have one, made from its last row.
/// An empty query parameter (`cursor=`) counts as not given, as clients that always send
/// every parameter expect.
pub fn given(parameter: Option<String>) -> Option<String> {
    parameter.filter(|value| !value.is_empty())
}

pub fn next_cursor<T>(page: &[T], limit: u32, cursor_of: impl Fn(&T) -> String) -> Option<String> {
    page.last().filter(|_| page.len() == limit as usize).map(cursor_of)
}

#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "lowercase")]
enum RoleName {
    Admin,
    User,
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Self {
        match role {
            RoleName::Admin => Role::Admin,
            RoleName::User => Role::User,
        }
    }
}

#[derive(Object)]
struct NewUserRequest {
    /// 1 to 64 ASCII letters, digits, `.`, `_` or `-`, starting with a letter or digit.
    username: Text,
    /// 10 to 1024 characters, not a commonly used password.
    password: Text,
    email: Given<Text>,
    /// Defaults to `user`.
    role: Given<RoleName>,
    /// Bytes the user may store; absent means no limit.
    quota_bytes: Given<i64>,
}

#[derive(Object)]
struct UserUpdate {
    role: Given<RoleName>,
    disabled: Given<bool>,
    /// `null` removes the limit.
    quota_bytes: MaybeUndefined<i64>,
    /// `null` removes the address.
    email: MaybeUndefined<Text>,
    /// Sets a new password (10 to 1024 characters) and ends the user's sessions.
    password: Given<Text>,
}

#[derive(Object)]
struct UserPage {
    users: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

#[derive(Object)]
struct SessionsEnded {
    sessions_ended: u64,
}

#[derive(ApiResponse)]
enum Created {
    #[oai(status = 201)]
    Created(Json<UserView>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The account and its sessions are gone.
    #[oai(status = 204)]
    Deleted,
}

fn maybe<T, U: From<T>>(value: MaybeUndefined<T>) -> Option<Option<U>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(value) => Some(Some(value.into())),
    }
}

#[OpenApi(prefix_path = "/users", tag = "ApiTags::Users")]
impl UsersApi {
    /// List accounts by username, a page at a time.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        req: &Request,
        caller: BearerAuth,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> Result<Json<UserPage>, ApiFailure> {
        require_admin(&self.auth, &caller.0, req).await?;
        let limit = page_size(limit.0)?;
        let users = self.auth.list_users(given(cursor.0), limit).await?;
        let next_cursor = next_cursor(&users, limit, |user| user.username.to_ascii_lowercase());
        Ok(Json(UserPage { users: users.into_iter().map(UserView::from).collect(), next_cursor }))
    }

    /// Create an account.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        req: &Request,
        caller: BearerAuth,
        body: Json<NewUserRequest>,
    ) -> Result<Created, ApiFailure> {
        require_admin(&self.auth, &caller.0, req).await?;
        let body = body.0;
        let account = NewAccount {
            username: body.username.into_inner(),
            password: body.password.into_inner(),
            email: body.email.0.map(String::from),
            role: body.role.0.map_or(Role::User, Role::from),
            quota_bytes: body.quota_bytes.0,
        };
        let user = self.auth.create_user(&Actor::of(&caller.0, &client_ip(req)), account).await?;
        Ok(Created::Created(Json(user.into())))
    }

    /// One account.
    #[oai(path = "/:id", method = "get")]
    async fn get(&self, req: &Request, caller: BearerAuth, id: Path<String>) -> Result<Json<UserView>, ApiFailure> {
        require_admin(&self.auth, &caller.0, req).await?;
        let user = self.auth.user(&UserId(id.0)).await?.ok_or_else(|| ApiFailure::not_found("user"))?;
        Ok(Json(user.into()))
    }

    /// Change role, disabled state, quota, email or password. Demoting or disabling the last
    /// enabled admin is refused (409 `last_admin`). A role change, disabling or a new password
    /// ends the user's sessions.
    #[oai(path = "/:id", method = "patch")]
    async fn update(
        &self,
        req: &Request,
        caller: BearerAuth,
        id: Path<String>,
        body: Json<UserUpdate>,
    ) -> Result<Json<UserView>, ApiFailure> {
        require_admin(&self.auth, &caller.0, req).await?;
        let body = body.0;
        let changes = AccountChanges {
            role: body.role.0.map(Role::from),
            disabled: body.disabled.0,
            quota_bytes: maybe(body.quota_bytes),
            email: maybe(body.email),
            password: body.password.0.map(String::from),
        };
        let user = self.auth.update_user(&Actor::of(&caller.0, &client_ip(req)), &UserId(id.0), changes).await?;
        Ok(Json(user.into()))
    }

    /// Delete an account. Deleting the last enabled admin is refused (409 `last_admin`).
    #[oai(path = "/:id", method = "delete")]
    async fn delete(&self, req: &Request, caller: BearerAuth, id: Path<String>) -> Result<Deleted, ApiFailure> {
        require_admin(&self.auth, &caller.0, req).await?;
        self.auth.delete_user(&Actor::of(&caller.0, &client_ip(req)), &UserId(id.0)).await?;
        Ok(Deleted::Deleted)
    }

    /// End every session of an account (its access and refresh tokens stop working).
    #[oai(path = "/:id/sessions", method = "delete")]
    async fn end_sessions(
        &self,
        req: &Request,
        caller: BearerAuth,
        id: Path<String>,
    ) -> Result<Json<SessionsEnded>, ApiFailure> {
        require_admin(&self.auth, &caller.0, req).await?;
        let ended = self.auth.end_user_sessions(&Actor::of(&caller.0, &client_ip(req)), &UserId(id.0)).await?;
        Ok(Json(SessionsEnded { sessions_ended: ended as u64 }))
    }
}
