//! `POST /api/v1/auth/login`, `/auth/refresh` and `/auth/logout`.

use crate::api::strict::{Given, Text};
use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::failure::ApiFailure;
use super::security::{Caller, check_same_origin, client_ip, cookie};
use super::{ApiTags, ErrorBody};
use crate::auth::browser::SESSION_COOKIE;
use crate::auth::{Auth, AuthError, LoginAttempt, Tokens};
use crate::domain::password::MAX_CHARS;

pub struct AuthApi {
    pub auth: Arc<Auth>,
}

#[derive(Object)]
struct LoginRequest {
    username: Text,
    password: Text,
    /// The `device_token` of an earlier sign-in from this client, if kept: sign-ins from a
    /// client that signed in before do not wait when others guess at the account.
    device_token: Given<Text>,
}

#[derive(Object)]
struct RefreshRequest {
    /// The refresh token from the last login or refresh; it can be used once.
    refresh_token: Text,
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
    /// After a password sign-in: keep it and send it with later sign-ins (also set as the
    /// HttpOnly cookie `__Host-coffer_device`).
    #[oai(skip_serializing_if_is_none)]
    device_token: Option<String>,
}

impl From<Tokens> for TokenResponse {
    fn from(tokens: Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: "Bearer".into(),
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token,
            refresh_expires_in: tokens.refresh_expires_in,
            device_token: tokens.device_token,
        }
    }
}

#[derive(ApiResponse)]
enum LoginResult {
    /// Signed in. The device cookie remembers this client for throttling only.
    #[oai(status = 200)]
    Ok(Json<TokenResponse>, #[oai(header = "Set-Cookie")] String),
    /// `invalid_credentials`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `password_login_disabled`: `auth.password_login` is false and the account is not a
    /// break-glass admin.
    #[oai(status = 403)]
    Disabled(Json<ErrorBody>),
    /// `too_many_requests`: too many failed sign-ins; wait the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `server_busy`: too many sign-ins are being checked at once; wait the given seconds.
    #[oai(status = 503)]
    Busy(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

#[derive(ApiResponse)]
enum TokenResult {
    /// New tokens.
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
    /// `invalid_token`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
}

#[derive(Object)]
struct ResetRequest {
    /// The account's e-mail address.
    email: Text,
}

#[derive(Object)]
struct ResetConfirmation {
    /// The token from the reset link (the part after `#`).
    token: Text,
    /// 10 to 1024 characters, not a commonly used password.
    new_password: Text,
}

#[derive(ApiResponse)]
enum ResetRequested {
    /// Accepted. The answer is the same whether or not an account has this address; if one
    /// has, a link valid for an hour is on its way.
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
enum ResetDone {
    /// The password is set and every session of the account has ended; sign in with it.
    #[oai(status = 204)]
    Done,
}

fn error_body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody { error: code.into(), message: message.into(), request_id: None })
}

fn invalid_credentials() -> LoginResult {
    LoginResult::Unauthorized(error_body("invalid_credentials", "wrong username or password"))
}

/// The device cookie: only ever read by the sign-in, so scoped to it.
const DEVICE_COOKIE: &str = "__Host-coffer_device";

fn device_cookie(token: &str) -> String {
    format!(
        "{DEVICE_COOKIE}={token}; Max-Age={}; Path=/; Secure; HttpOnly; SameSite=Strict",
        crate::auth::device::DEVICE_TOKEN_LIFETIME
    )
}

#[derive(ApiResponse)]
enum BrowserLoginResult {
    /// Signed in: the session cookie `__Host-coffer_session` is set (HttpOnly, Secure,
    /// SameSite=Strict) with the device cookie; no token is given to the page.
    #[oai(status = 204)]
    SignedIn(#[oai(header = "Set-Cookie")] String),
    /// `invalid_credentials`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// `cross_site_request`: not sent by this site's own page; `password_login_disabled`:
    /// password sign-in is turned off for this account.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `too_many_requests`: too many failed sign-ins; wait the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `server_busy`: too many sign-ins are being checked at once; wait the given seconds.
    #[oai(status = 503)]
    Busy(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

#[derive(ApiResponse)]
enum LogoutResult {
    /// The session is ended; its access and refresh tokens (and its cookie) no longer work.
    /// The session cookie is cleared.
    #[oai(status = 204)]
    Ended(#[oai(header = "Set-Cookie")] String),
}

pub fn session_cookie(secret: &str, max_age: i64) -> String {
    format!("{SESSION_COOKIE}={secret}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

fn cleared_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The answer to a sign-in the password check refused or could not do.
fn login_refusal(err: AuthError) -> Result<LoginResult, ApiFailure> {
    match err {
        AuthError::InvalidCredentials => Ok(invalid_credentials()),
        AuthError::Throttled(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let message = format!("too many failed sign-ins; try again in {seconds} s");
            Ok(LoginResult::TooManyRequests(error_body("too_many_requests", message), seconds.max(1)))
        }
        AuthError::PasswordLoginDisabled => Ok(LoginResult::Disabled(error_body(
            "password_login_disabled",
            "password sign-in is turned off here; sign in with your organisation's provider",
        ))),
        AuthError::Busy => Ok(LoginResult::Busy(
            error_body("server_busy", "the server is busy checking passwords; try again in a second"),
            1,
        )),
        err => Err(ApiFailure::internal(err)),
    }
}

#[OpenApi(prefix_path = "/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Sign in with username and password. Unknown users and wrong passwords get the same answer.
    #[oai(path = "/login", method = "post")]
    async fn login(&self, req: &Request, body: Json<LoginRequest>) -> Result<LoginResult, ApiFailure> {
        if body.password.chars().count() > MAX_CHARS {
            return Ok(invalid_credentials());
        }
        let ip = client_ip(req);
        let attempt = LoginAttempt {
            username: &body.username,
            password: &body.password,
            ip: &ip,
            device_token: body.device_token.0.as_deref().or_else(|| cookie(req, DEVICE_COOKIE)),
            browser: false,
        };
        match self.auth.login(attempt).await {
            Ok(tokens) => {
                let cookie = tokens.device_token.as_deref().map(device_cookie).unwrap_or_default();
                Ok(LoginResult::Ok(Json(tokens.into()), cookie))
            }
            Err(err) => login_refusal(err),
        }
    }

    /// Sign in from the web app: like `/auth/login`, but the session is carried by the cookie
    /// `__Host-coffer_session` (HttpOnly, so no script can read it) instead of tokens. Must
    /// come from this site's own page: `Sec-Fetch-Site: same-origin` (or a same-origin
    /// `Origin`) and an `X-Coffer-CSRF` header, so no other site can sign a browser in.
    #[oai(path = "/session", method = "post")]
    async fn browser_login(
        &self,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> Result<poem_openapi::payload::Response<BrowserLoginResult>, ApiFailure> {
        if let Err(refused) = check_same_origin(req) {
            let ApiFailure::Forbidden(body) = refused else { return Err(refused) };
            return Ok(poem_openapi::payload::Response::new(BrowserLoginResult::Forbidden(body)));
        }
        if body.password.chars().count() > MAX_CHARS {
            return Ok(poem_openapi::payload::Response::new(BrowserLoginResult::Unauthorized(error_body(
                "invalid_credentials",
                "wrong username or password",
            ))));
        }
        let ip = client_ip(req);
        let attempt = LoginAttempt {
            username: &body.username,
            password: &body.password,
            ip: &ip,
            device_token: body.device_token.0.as_deref().or_else(|| cookie(req, DEVICE_COOKIE)),
            browser: true,
        };
        let tokens = match self.auth.login(attempt).await {
            Ok(tokens) => tokens,
            Err(err) => {
                let answer = match login_refusal(err)? {
                    LoginResult::Unauthorized(body) => BrowserLoginResult::Unauthorized(body),
                    LoginResult::TooManyRequests(body, wait) => BrowserLoginResult::TooManyRequests(body, wait),
                    LoginResult::Busy(body, wait) => BrowserLoginResult::Busy(body, wait),
                    LoginResult::Disabled(body) => BrowserLoginResult::Forbidden(body),
                    LoginResult::Ok(..) => return Err(ApiFailure::internal("a refused sign-in signed in")),
                };
                return Ok(poem_openapi::payload::Response::new(answer));
            }
        };
        let Some(secret) = tokens.session_cookie.as_deref() else {
            return Err(ApiFailure::internal("a browser sign-in made no cookie"));
        };
        let session = session_cookie(secret, self.auth.session_cookie_max_age());
        let mut answer = poem_openapi::payload::Response::new(BrowserLoginResult::SignedIn(session.clone()))
            .header(poem::http::header::SET_COOKIE, session);
        if let Some(device) = tokens.device_token.as_deref() {
            answer = answer.header(poem::http::header::SET_COOKIE, device_cookie(device));
        }
        Ok(answer)
    }

    /// Exchange a refresh token for new tokens. The token presented is spent; presenting it
    /// again ends the whole session.
    #[oai(path = "/refresh", method = "post")]
    async fn refresh(&self, req: &Request, body: Json<RefreshRequest>) -> Result<TokenResult, ApiFailure> {
        match self.auth.refresh(&body.refresh_token, &client_ip(req)).await {
            Ok(tokens) => Ok(TokenResult::Ok(Json(tokens.into()))),
            Err(AuthError::InvalidToken) => Ok(TokenResult::Unauthorized(error_body(
                "invalid_token",
                "the refresh token is invalid, spent, expired or revoked",
            ))),
            Err(err) => Err(ApiFailure::internal(err)),
        }
    }

    /// Ask for a password-reset link by e-mail. Answers 202 whether or not an account has the
    /// address (`mail_off` when the server sends no mail).
    #[oai(path = "/password-reset", method = "post")]
    async fn request_reset(&self, req: &Request, body: Json<ResetRequest>) -> Result<ResetRequested, ApiFailure> {
        self.auth.request_password_reset(&body.email, &client_ip(req)).await?;
        Ok(ResetRequested::Accepted)
    }

    /// Set a new password with the token from a reset link. The token works once, for an hour;
    /// every session of the account ends.
    #[oai(path = "/password-reset/confirm", method = "post")]
    async fn confirm_reset(&self, req: &Request, body: Json<ResetConfirmation>) -> Result<ResetDone, ApiFailure> {
        let body = body.0;
        self.auth.reset_password(&body.token, body.new_password.into_inner(), &client_ip(req)).await?;
        Ok(ResetDone::Done)
    }

    /// End the current session (a browser's cookie is cleared too). API tokens have no
    /// session: revoke them instead.
    #[oai(path = "/logout", method = "post")]
    async fn logout(&self, req: &Request, caller: Caller) -> Result<LogoutResult, ApiFailure> {
        if self.auth.logout(&caller.0, &client_ip(req)).await? {
            Ok(LogoutResult::Ended(cleared_session_cookie()))
        } else {
            Err(ApiFailure::bad_request("not_a_session", "an API token has no session; revoke it at /api/v1/me/tokens"))
        }
    }
}
