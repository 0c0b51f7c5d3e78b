//! The signed-in user's own account: `GET /me`, `PUT /me/password`, `/me/sessions`.

use crate::api::strict::{Given, Text};
use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::TokenResponse;
use super::failure::ApiFailure;
use super::security::{Caller, Via, client_ip, require_session};
use super::{ApiTags, rfc3339};
use crate::auth::{Auth, MailChanges, Principal};
use crate::db::users::UserRow;

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
    /// Whether security notices (new sign-ins, password changes) are sent to `email`.
    mail_notices: bool,
}

impl From<UserRow> for UserView {
    fn from(user: UserRow) -> Self {
        Self {
            id: user.id.0,
            username: user.username,
            email: user.email,
            role: user.role.as_str().into(),
            disabled: user.disabled,
            quota_bytes: user.quota_bytes,
            created_at: rfc3339(user.created_at),
            last_login_at: user.last_login_at.map(rfc3339),
            mail_notices: user.mail_notices,
        }
    }
}

#[derive(Object)]
struct PasswordChange {
    current_password: Text,
    /// 10 to 1024 characters, not a commonly used password.
    new_password: Text,
}

#[derive(Object)]
struct MailSettings {
    /// Your e-mail address, for password resets and notices; `null` removes it.
    email: MaybeUndefined<Text>,
    /// Send security notices (new sign-ins, password changes, a token used twice).
    mail_notices: Given<bool>,
}

#[derive(Object)]
struct SessionView {
    id: String,
    created_at: String,
    last_used_at: String,
    expires_at: String,
    client_ip: String,
    /// How it was made: `password`, or `oidc:<provider id>` for a sign-in with a provider.
    method: String,
    /// The session this request was made with.
    current: bool,
}

#[derive(ApiResponse)]
enum Ended {
    /// Done.
    #[oai(status = 204)]
    Ended,
}

async fn own_account(auth: &Auth, caller: &Principal) -> Result<UserRow, ApiFailure> {
    auth.user(&caller.user_id).await?.ok_or_else(|| ApiFailure::not_found("user"))
}

#[OpenApi(prefix_path = "/me", tag = "ApiTags::Account")]
impl MeApi {
    /// The signed-in user's account.
    #[oai(path = "/", method = "get")]
    async fn me(&self, caller: Caller) -> Result<Json<UserView>, ApiFailure> {
        Ok(Json(own_account(&self.auth, &caller.0).await?.into()))
    }

    /// Set or remove your e-mail address (needs a password sign-in, not an API token) and turn
    /// notices on or off.
    #[oai(path = "/", method = "patch")]
    async fn update_mail(
        &self,
        req: &Request,
        caller: Caller,
        body: Json<MailSettings>,
    ) -> Result<Json<UserView>, ApiFailure> {
        let body = body.0;
        // The address receives password resets: only a password sign-in may change it.
        if !body.email.is_undefined() {
            require_session(&caller.0)?;
        }
        let email = match body.email {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(email) => Some(Some(email.into_inner())),
        };
        let changes = MailChanges { email, notices: body.mail_notices.0 };
        Ok(Json(self.auth.update_own_mail(&caller.0, changes, &client_ip(req)).await?.into()))
    }

    /// Change the password. Every session ends, this one included; the answer carries the
    /// tokens of a new session (and, when signed in by the web app's cookie, a new cookie).
    /// Needs a password sign-in (not an API token).
    #[oai(path = "/password", method = "put")]
    async fn change_password(
        &self,
        req: &Request,
        caller: Caller,
        body: Json<PasswordChange>,
    ) -> Result<poem_openapi::payload::Response<Json<TokenResponse>>, ApiFailure> {
        require_session(&caller.0)?;
        let body = body.0;
        let tokens = self
            .auth
            .change_own_password(
                &caller.0,
                &body.current_password,
                body.new_password.into_inner(),
                &client_ip(req),
                caller.1 == Via::Cookie,
            )
            .await?;
        let cookie = tokens.session_cookie.clone();
        let mut answer = poem_openapi::payload::Response::new(Json(tokens.into()));
        if let Some(secret) = cookie {
            let cookie = super::auth::session_cookie(&secret, self.auth.session_cookie_max_age());
            answer = answer.header(poem::http::header::SET_COOKIE, cookie);
        }
        Ok(answer)
    }

    /// The user's live sessions, newest first.
    #[oai(path = "/sessions", method = "get")]
    async fn sessions(&self, caller: Caller) -> Result<Json<Vec<SessionView>>, ApiFailure> {
        let current = caller.0.session().cloned();
        let sessions = self.auth.own_sessions(&caller.0).await?;
        Ok(Json(
            sessions
                .into_iter()
                .map(|session| SessionView {
                    current: current.as_ref() == Some(&session.id),
                    id: session.id.0,
                    created_at: rfc3339(session.created_at),
                    last_used_at: rfc3339(session.last_used_at),
                    expires_at: rfc3339(session.expires_at),
                    client_ip: session.client_ip,
                    method: session.method,
                })
                .collect(),
        ))
    }

    /// End one of the user's sessions (sign out a device).
    #[oai(path = "/sessions/:id", method = "delete")]
    async fn end_session(&self, req: &Request, caller: Caller, id: Path<String>) -> Result<Ended, ApiFailure> {
        if self.auth.end_own_session(&caller.0, &id, &client_ip(req)).await? {
            Ok(Ended::Ended)
        } else {
            Err(ApiFailure::not_found("session"))
        }
    }
}
