//! The bearer-token security scheme: turns `Authorization: Bearer <access token>` into the
//! authenticated [`Principal`], or a 401 in the one error shape.

use std::sync::Arc;

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::auth::{Auth, Principal};

/// A short-lived access token from `POST /api/v1/auth/login` or `/auth/refresh`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let auth = req.data::<Arc<Auth>>().ok_or_else(|| {
        poem::Error::from_string(
            "authentication is not set up",
            StatusCode::INTERNAL_SERVER_ERROR,
        )
    })?;
    auth.authenticate(&bearer.token).await.map_err(|_| {
        poem::Error::from_string(
            "the access token is invalid, expired or revoked",
            StatusCode::UNAUTHORIZED,
        )
    })
}

/// The client's IP address, for the audit log.
pub fn client_ip(req: &Request) -> String {
    req.remote_addr()
        .as_socket_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default()
}
