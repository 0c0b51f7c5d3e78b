//! Sign-in with OpenID Connect providers, over HTTP.
//!
//! Browser navigations (not part of the JSON API): `GET /auth/oidc/<provider>` sends the
//! browser to the provider; `GET /auth/oidc/callback` is where it comes back, and answers with
//! the web app's session cookie and a redirect to `/app/`, or with a readable page saying why
//! not (never a redirect back to the provider, so a refusal cannot loop). The JSON API lists
//! the providers, starts a link from the account page (password confirmed), unlinks, and
//! shows admins every linked identity.
//!
//! The cookie `__Host-coffer_oidc` binds a started sign-in to the browser that started it
//! (SameSite=Lax: it must come along on the provider's top-level redirect back).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{IntoResponse, Request, Response, handler};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::failure::ApiFailure;
use super::security::{Caller, client_ip, cookie, require_admin, require_session};
use super::share_html::escape;
use super::{ApiTags, ErrorBody, rfc3339};
use crate::api::strict::Text;
use crate::auth::Auth;
use crate::oidc::{Callback, Finished, Oidc, OidcError, PENDING_LIFETIME};

const BINDING_COOKIE: &str = "__Host-coffer_oidc";

fn binding_cookie(secret: &str) -> String {
    format!("{BINDING_COOKIE}={secret}; Max-Age={PENDING_LIFETIME}; Path=/; Secure; HttpOnly; SameSite=Lax")
}

fn cleared_binding_cookie() -> String {
    format!("{BINDING_COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax")
}

/// The page a refused or failed sign-in ends on: what happened, and a link back to the
/// sign-in page (a link, not a redirect, so nothing loops).
fn problem_page(status: StatusCode, message: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\"><title>Sign-in failed · Coffer</title>\
         <link rel=\"stylesheet\" href=\"/app/assets/app.css\"></head><body><main class=\"share-page card\">\
         <h1>Sign-in failed</h1><p id=\"problem\">{}</p><p><a href=\"/app/\">Back to Coffer</a></p></main></body></html>\n",
        escape(message)
    );
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        )
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header("set-cookie", cleared_binding_cookie())
        .body(html)
}

fn provider_trouble(err: &OidcError) -> Response {
    match err {
        OidcError::UnknownProvider(_) => problem_page(StatusCode::NOT_FOUND, "There is no such sign-in provider here."),
        OidcError::Provider(detail) => {
            tracing::warn!(error = %detail, "an OpenID provider cannot be used");
            problem_page(StatusCode::BAD_GATEWAY, "The sign-in provider cannot be reached right now. Try again later.")
        }
        OidcError::Auth(err) => {
            tracing::error!(error = %err, "a provider sign-in failed");
            problem_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not complete the sign-in; it has been logged.",
            )
        }
    }
}

fn see_other(location: &str) -> poem::ResponseBuilder {
    Response::builder().status(StatusCode::SEE_OTHER).header("location", location).header("cache-control", "no-store")
}

/// `GET /auth/oidc/:provider`: off to the provider.
#[handler]
pub async fn start(req: &Request, Path(provider): Path<String>, oidc: Data<&Arc<Oidc>>) -> Response {
    let base = super::shares::base_url(oidc_public_url(req).as_deref(), req);
    match oidc.start(&provider, &base, None).await {
        Ok(started) => see_other(&started.url).header("set-cookie", binding_cookie(&started.browser_secret)).finish(),
        Err(err) => provider_trouble(&err),
    }
}

/// `server.public_url`, as the API context gave it to the routes.
fn oidc_public_url(req: &Request) -> Option<String> {
    req.data::<PublicUrl>().and_then(|url| url.0.clone())
}

/// `server.public_url` for the browser routes.
#[derive(Clone)]
pub struct PublicUrl(pub Option<String>);

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /auth/oidc/callback`: the provider's answer.
#[handler]
pub async fn callback(
    req: &Request,
    Query(query): Query<CallbackQuery>,
    oidc: Data<&Arc<Oidc>>,
    auth: Data<&Arc<Auth>>,
) -> Response {
    let answer = Callback { state: query.state, code: query.code, iss: query.iss, error: query.error };
    let binding = cookie(req, BINDING_COOKIE);
    match oidc.finish(answer, binding, &client_ip(req)).await {
        // The cookie lasts as long as its session: `reauth_after` when shorter.
        Ok(Finished::SignedIn { cookie, lifetime }) => see_other("/app/")
            .header("set-cookie", super::auth::session_cookie(&cookie, lifetime.min(auth.session_cookie_max_age())))
            .header("set-cookie", cleared_binding_cookie())
            .finish(),
        Ok(Finished::Linked) => see_other("/app/account").header("set-cookie", cleared_binding_cookie()).finish(),
        Ok(Finished::Refused(reason)) => problem_page(StatusCode::FORBIDDEN, &format!("{reason}.")),
        Err(err) => provider_trouble(&err),
    }
    .into_response()
}

pub struct OidcApi {
    pub oidc: Arc<Oidc>,
    pub auth: Arc<Auth>,
    pub public_url: Option<String>,
}

#[derive(Object)]
struct ProviderView {
    id: String,
    /// The button's text.
    label: String,
    /// Where the browser goes to sign in with it.
    sign_in_url: String,
}

#[derive(Object)]
struct SignInOptions {
    /// Whether everyone may sign in with a password (otherwise only break-glass admins).
    password_login: bool,
    providers: Vec<ProviderView>,
}

#[derive(Object)]
struct IdentityView {
    user_id: String,
    username: String,
    provider: String,
    issuer: String,
    subject: String,
    #[oai(skip_serializing_if_is_none)]
    email: Option<String>,
    linked_at: String,
    #[oai(skip_serializing_if_is_none)]
    last_login_at: Option<String>,
}

impl From<crate::db::oidc::IdentityRow> for IdentityView {
    fn from(row: crate::db::oidc::IdentityRow) -> Self {
        Self {
            user_id: row.user_id.0,
            username: row.username,
            provider: row.provider,
            issuer: row.issuer,
            subject: row.subject,
            email: row.email,
            linked_at: rfc3339(row.linked_at),
            last_login_at: row.last_login_at.map(rfc3339),
        }
    }
}

#[derive(Object)]
struct LinkRequest {
    /// Your current password: linking lets the provider account sign in as you.
    password: Text,
}

#[derive(Object)]
struct LinkStarted {
    /// Send the browser here; it comes back to the account page with the link made.
    authorization_url: String,
}

#[derive(ApiResponse)]
enum LinkResult {
    /// Started: the binding cookie is set; navigate to `authorization_url` within 10 minutes.
    #[oai(status = 200)]
    Started(Json<LinkStarted>, #[oai(header = "Set-Cookie")] String),
    /// `wrong_password`.
    #[oai(status = 400)]
    WrongPassword(Json<ErrorBody>),
    /// `provider_unavailable`: the provider cannot be reached.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
enum Unlinked {
    /// The identity no longer signs in as you.
    #[oai(status = 204)]
    Done,
}

fn error_body(code: &str, message: &str) -> Json<ErrorBody> {
    Json(ErrorBody { error: code.into(), message: message.into(), request_id: None })
}

#[OpenApi(tag = "ApiTags::Auth")]
impl OidcApi {
    /// How one may sign in here: password sign-in on or off, and a button per provider.
    #[oai(path = "/auth/providers", method = "get")]
    async fn providers(&self) -> Json<SignInOptions> {
        let providers = self
            .oidc
            .providers()
            .into_iter()
            .map(|(id, label)| ProviderView { sign_in_url: format!("/auth/oidc/{id}"), id, label })
            .collect();
        Json(SignInOptions { password_login: self.auth.password_login_enabled(), providers })
    }

    /// Your linked provider accounts.
    #[oai(path = "/me/identities", method = "get", tag = "ApiTags::Account")]
    async fn own_identities(&self, caller: Caller) -> Result<Json<Vec<IdentityView>>, ApiFailure> {
        let rows = self.auth.identities(Some(caller.0.user_id.clone())).await?;
        Ok(Json(rows.into_iter().map(Into::into).collect()))
    }

    /// Start linking a provider account to yours (password confirmed; a password sign-in's
    /// session, not an API token). The browser then goes to `authorization_url`.
    #[oai(path = "/me/identities/:provider", method = "post", tag = "ApiTags::Account")]
    async fn link(
        &self,
        req: &Request,
        caller: Caller,
        provider: poem_openapi::param::Path<String>,
        body: Json<LinkRequest>,
    ) -> Result<LinkResult, ApiFailure> {
        require_session(&caller.0)?;
        if !self.oidc.providers().iter().any(|(id, _)| *id == *provider) {
            return Err(ApiFailure::not_found("provider"));
        }
        if !self.auth.confirm_password(&caller.0.user_id, &body.password, &client_ip(req)).await? {
            let reason = "link refused: wrong password";
            self.auth
                .record_provider_refusal(&provider, reason, Some(caller.0.user_id.clone()), &client_ip(req))
                .await?;
            return Ok(LinkResult::WrongPassword(error_body("wrong_password", "the password is wrong")));
        }
        let base = super::shares::base_url(self.public_url.as_deref(), req);
        match self.oidc.start(&provider, &base, Some(caller.0.user_id.clone())).await {
            Ok(started) => Ok(LinkResult::Started(
                Json(LinkStarted { authorization_url: started.url }),
                binding_cookie(&started.browser_secret),
            )),
            Err(OidcError::Provider(detail)) => {
                tracing::warn!(error = %detail, "an OpenID provider cannot be used");
                Ok(LinkResult::Unavailable(error_body(
                    "provider_unavailable",
                    "the provider cannot be reached; try again later",
                )))
            }
            Err(OidcError::UnknownProvider(_)) => Err(ApiFailure::not_found("provider")),
            Err(OidcError::Auth(err)) => Err(err.into()),
        }
    }

    /// Unlink your account at a provider; it can no longer sign in as you.
    #[oai(path = "/me/identities/:provider", method = "delete", tag = "ApiTags::Account")]
    async fn unlink(
        &self,
        req: &Request,
        caller: Caller,
        provider: poem_openapi::param::Path<String>,
    ) -> Result<Unlinked, ApiFailure> {
        require_session(&caller.0)?;
        if self.auth.unlink_provider(&caller.0.user_id, &provider, &client_ip(req)).await? {
            Ok(Unlinked::Done)
        } else {
            Err(ApiFailure::not_found("linked identity"))
        }
    }

    /// Every linked provider account (admins only).
    #[oai(path = "/identities", method = "get", tag = "ApiTags::Users")]
    async fn all_identities(&self, req: &Request, caller: Caller) -> Result<Json<Vec<IdentityView>>, ApiFailure> {
        require_admin(&self.auth, &caller.0, req).await?;
        let rows = self.auth.identities(None).await?;
        Ok(Json(rows.into_iter().map(Into::into).collect()))
    }
}
