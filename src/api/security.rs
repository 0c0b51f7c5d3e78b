//! Who is calling: the bearer and cookie security schemes, the CSRF check for cookies, and
//! the admin guard.
//!
//! `Authorization: Bearer <token>` takes an access token or a personal API token. A read-only
//! API token is refused (403) for anything but GET and HEAD, whatever the route. A browser
//! instead sends the session cookie `__Host-coffer_session` (see `auth/browser.rs`); when a
//! request carries both, the bearer token decides and the cookie is ignored.
//!
//! A cookie rides along with any request the browser makes to this origin, including one a
//! form or script on another site starts, and `SameSite=Strict` does not cover another port
//! of the same host. So a cookie-authenticated request that is not GET or HEAD must come from
//! this origin's own pages: `Sec-Fetch-Site: same-origin` (or, from a browser that sends no
//! fetch metadata, an `Origin` equal to this server's), and it must carry `X-Coffer-CSRF`, a
//! header no form can send and no cross-origin script can send without a CORS preflight that
//! Coffer never grants to credentialed requests. GET and HEAD change nothing.

use std::sync::Arc;

use poem::http::{Method, StatusCode, header};
use poem::{Request, RequestBody};
use poem_openapi::auth::Bearer;
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};

use super::failure::ApiFailure;
use crate::auth::browser::SESSION_COOKIE;
use crate::auth::{Auth, Principal};

/// The name of the cookie scheme in the OpenAPI document.
const COOKIE_SCHEME: &str = "SessionCookie";

/// The header a cookie-authenticated state-changing request must carry (any value).
pub const CSRF_HEADER: &str = "x-coffer-csrf";

/// An access token from `POST /api/v1/auth/login` or `/auth/refresh`, or a personal API token
/// (`cfr_...`) from `POST /api/v1/me/tokens`.
#[derive(SecurityScheme)]
#[oai(rename = "BearerAuth", ty = "bearer", checker = "check_bearer")]
struct BearerScheme(Principal);

/// How the caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

/// The authenticated caller of an operation: a bearer token, else the session cookie.
pub struct Caller(pub Principal, pub Via);

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <BearerScheme as ApiExtractor>::register(registry);
        registry.create_security_scheme(
            COOKIE_SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some(
                    "The web app's session cookie, set by `POST /api/v1/auth/session`. Requests other than GET and \
                     HEAD made with it also need `Sec-Fetch-Site: same-origin` (or a same-origin `Origin`) and an \
                     `X-Coffer-CSRF` header. A bearer token, when sent too, is used instead.",
                ),
                name: Some(SESSION_COOKIE),
                key_in: Some("cookie"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        let mut schemes = <BearerScheme as ApiExtractor>::security_schemes();
        schemes.push(COOKIE_SCHEME);
        schemes
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if req.headers().contains_key(header::AUTHORIZATION) || cookie(req, SESSION_COOKIE).is_none() {
            let BearerScheme(principal) = BearerScheme::from_request(req, body, param_opts).await?;
            return Ok(Self(principal, Via::Bearer));
        }
        let secret = cookie(req, SESSION_COOKIE).unwrap_or_default();
        Ok(Self(check_cookie(req, secret).await?, Via::Cookie))
    }
}

fn auth_of(req: &Request) -> poem::Result<&Arc<Auth>> {
    req.data::<Arc<Auth>>()
        .ok_or_else(|| poem::Error::from_string("authentication is not set up", StatusCode::INTERNAL_SERVER_ERROR))
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let principal = auth_of(req)?
        .authenticate(&bearer.token)
        .await
        .map_err(|_| poem::Error::from_string("the token is invalid, expired or revoked", StatusCode::UNAUTHORIZED))?;
    if principal.read_only() && req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiFailure::forbidden("this API token is read-only").into());
    }
    limit_account(req, &principal)?;
    Ok(principal)
}

async fn check_cookie(req: &Request, secret: &str) -> poem::Result<Principal> {
    check_same_origin(req)?;
    let principal = auth_of(req)?.authenticate_cookie(secret).await.map_err(|_| {
        poem::Error::from_string("your session ended or expired; sign in again", StatusCode::UNAUTHORIZED)
    })?;
    limit_account(req, &principal)?;
    Ok(principal)
}

fn limit_account(req: &Request, principal: &Principal) -> poem::Result<()> {
    if let Some(limits) = req.data::<Arc<super::RateLimits>>()
        && let Err(wait) = limits.check_account(&principal.user_id)
    {
        return Err(poem::Error::from_response(super::rate_limits::too_many_requests(wait)));
    }
    Ok(())
}

/// The value of a request cookie.
pub fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// The CSRF rule for requests a browser sends with its cookies (see the module comment):
/// GET and HEAD pass; anything else must come from this origin's own script.
pub fn check_same_origin(req: &Request) -> Result<(), ApiFailure> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return Ok(());
    }
    let refuse = |why: &str| Err(ApiFailure::cross_site(why));
    match req.header("sec-fetch-site") {
        Some("same-origin") => {}
        Some(_) => return refuse("the request did not come from this site's own pages"),
        None => {
            let own = own_origin(req);
            match req.header(header::ORIGIN) {
                Some(origin) if own.as_deref() == Some(origin) => {}
                _ => return refuse("the request did not come from this site's own pages"),
            }
        }
    }
    if !req.headers().contains_key(CSRF_HEADER) {
        return refuse("the request lacks the X-Coffer-CSRF header");
    }
    Ok(())
}

/// `scheme://host[:port]` of this server as the request addressed it.
fn own_origin(req: &Request) -> Option<String> {
    let host = req
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| req.header(header::HOST).map(str::to_owned))?;
    Some(format!("{}://{host}", req.scheme()))
}

/// The client's IP address, as decided once per request (trusted proxies' headers included):
/// what throttles, rate limits, sessions and the audit log use.
pub fn client_ip(req: &Request) -> String {
    match req.extensions().get::<super::ClientIp>() {
        Some(client) => client.0.to_string(),
        None => req.remote_addr().as_socket_addr().map(|addr| addr.ip().to_string()).unwrap_or_default(),
    }
}

/// Lets admins through; anyone else gets 403 and an `authorization_denied` audit entry.
pub async fn require_admin(auth: &Auth, principal: &Principal, req: &Request) -> Result<(), ApiFailure> {
    if principal.is_admin() {
        return Ok(());
    }
    let attempt = format!("{} {}", req.method(), req.uri().path());
    auth.record_denial(principal, &attempt, &client_ip(req)).await?;
    Err(ApiFailure::forbidden("only admins may do this"))
}

/// Operations that need a password sign-in, not an API token (changing the password,
/// making tokens), so a leaked token cannot entrench itself.
pub fn require_session(principal: &Principal) -> Result<(), ApiFailure> {
    match principal.session() {
        Some(_) => Ok(()),
        None => Err(ApiFailure::forbidden("this needs a password sign-in, not an API token")),
    }
}
