//! `POST /api/v1/auth/login`, `/auth/refresh` and `/auth/logout`.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::failure::ApiFailure;
use super::security::{BearerAuth, client_ip};
use super::{ApiTags, ErrorBody};
use crate::auth::{Auth, AuthError, Tokens};
use crate::domain::password::MAX_CHARS;

pub struct AuthApi {
    pub auth: Arc<Auth>,
}

#[derive(Object)]
struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Object)]
struct RefreshRequest {
    /// The refresh token from the last login or refresh; it can be used once.
    refresh_token: String,
}

#[derive(Object)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: i64,
    /// Exchange at `/auth/refresh` for new tokens; each refresh token works once.
    refresh_token: String,
    /// Seconds the refresh token stays usable if not used.
    refresh_expires_in: i64,
}

impl From<Tokens> for TokenResponse {
    fn from(tokens: Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: "Bearer".into(),
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token,
            refresh_expires_in: tokens.refresh_expires_in,
        }
    }
}

#[derive(ApiResponse)]
enum TokenResult {
    /// Signed in.
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
    /// `invalid_credentials` (login) or `invalid_token` (refresh).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `too_many_requests`: too many failed sign-ins; wait the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

#[derive(ApiResponse)]
enum LogoutResult {
    /// The session is ended; its access and refresh tokens no longer work.
    #[oai(status = 204)]
    Ended,
}

fn unauthorized(code: &str, message: &str) -> TokenResult {
    TokenResult::Unauthorized(Json(ErrorBody { error: code.into(), message: message.into(), request_id: None }))
}

fn invalid_credentials() -> TokenResult {
    unauthorized("invalid_credentials", "wrong username or password")
}

#[OpenApi(prefix_path = "/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Sign in with username and password. Unknown users and wrong passwords get the same answer.
    #[oai(path = "/login", method = "post")]
    async fn login(&self, req: &Request, body: Json<LoginRequest>) -> Result<TokenResult, ApiFailure> {
        if body.password.chars().count() > MAX_CHARS {
            return Ok(invalid_credentials());
        }
        match self.auth.login(&body.username, &body.password, &client_ip(req)).await {
            Ok(tokens) => Ok(TokenResult::Ok(Json(tokens.into()))),
            Err(AuthError::InvalidCredentials) => Ok(invalid_credentials()),
            Err(AuthError::Throttled(wait)) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let message = format!("too many failed sign-ins; try again in {seconds} s");
                let body = ErrorBody { error: "too_many_requests".into(), message, request_id: None };
                Ok(TokenResult::TooManyRequests(Json(body), seconds.max(1)))
            }
            Err(err) => Err(ApiFailure::internal(err)),
        }
    }

    /// Exchange a refresh token for new tokens. The token presented is spent; presenting it
    /// again ends the whole session.
    #[oai(path = "/refresh", method = "post")]
    async fn refresh(&self, req: &Request, body: Json<RefreshRequest>) -> Result<TokenResult, ApiFailure> {
        match self.auth.refresh(&body.refresh_token, &client_ip(req)).await {
            Ok(tokens) => Ok(TokenResult::Ok(Json(tokens.into()))),
            Err(AuthError::InvalidToken) => {
                Ok(unauthorized("invalid_token", "the refresh token is invalid, spent, expired or revoked"))
            }
            Err(err) => Err(ApiFailure::internal(err)),
        }
    }

    /// End the current session. API tokens have no session: revoke them instead.
    #[oai(path = "/logout", method = "post")]
    async fn logout(&self, req: &Request, caller: BearerAuth) -> Result<LogoutResult, ApiFailure> {
        if self.auth.logout(&caller.0, &client_ip(req)).await? {
            Ok(LogoutResult::Ended)
        } else {
            Err(ApiFailure::bad_request("not_a_session", "an API token has no session; revoke it at /api/v1/me/tokens"))
        }
    }
}
