//! The bearer security scheme and the admin guard.
//!
//! `Authorization: Bearer <token>` takes an access token or a personal API token. A read-only
//! API token is refused (403) for anything but GET and HEAD, whatever the route.

use std::sync::Arc;

use poem::Request;
use poem::http::{Method, StatusCode};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::failure::ApiFailure;
use crate::auth::{Auth, Principal};

/// An access token from `POST /api/v1/auth/login` or `/auth/refresh`, or a personal API token
/// (`cfr_...`) from `POST /api/v1/me/tokens`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct BearerAuth(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let auth = req
        .data::<Arc<Auth>>()
        .ok_or_else(|| poem::Error::from_string("authentication is not set up", StatusCode::INTERNAL_SERVER_ERROR))?;
    let principal = auth
        .authenticate(&bearer.token)
        .await
        .map_err(|_| poem::Error::from_string("the token is invalid, expired or revoked", StatusCode::UNAUTHORIZED))?;
    if principal.read_only() && req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiFailure::forbidden("this API token is read-only").into());
    }
    if let Some(limits) = req.data::<Arc<super::RateLimits>>()
        && let Err(wait) = limits.check_account(&principal.user_id)
    {
        return Err(poem::Error::from_response(super::rate_limits::too_many_requests(wait)));
    }
    Ok(principal)
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
