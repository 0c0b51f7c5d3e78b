//! Request-rate limits: per client address on the public surface (share links, sign-in,
//! refresh), per account on the authenticated API. Over the limit: 429 with `Retry-After`,
//! counted in `coffer_rate_limited_total`. Health and readiness are never limited.

use std::sync::Arc;
use std::time::Duration;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use tokio_util::sync::CancellationToken;

use super::error_response;
use crate::clock::Clock;
use crate::config::RateLimitSettings;
use crate::domain::UserId;
use crate::rate_limit::{Quota, RateLimiter};

/// Paths (below the API prefix, or the share and upload links) counted per client address.
const PUBLIC_API_PATHS: &[&str] = &[
    "/auth/login",
    "/auth/refresh",
    "/auth/session",
    "/auth/password-reset",
    "/auth/password-reset/confirm",
    "/auth/providers",
];

pub struct RateLimits {
    public: RateLimiter,
    api: RateLimiter,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings, clock: Clock) -> Arc<Self> {
        Arc::new(Self {
            public: RateLimiter::new(
                Quota { per_minute: settings.public_per_minute, burst: settings.public_burst },
                clock.clone(),
            ),
            api: RateLimiter::new(Quota { per_minute: settings.api_per_minute, burst: settings.api_burst }, clock),
        })
    }

    /// One API request by `user`; `Err(wait)` when the account is over its rate.
    pub fn check_account(&self, user: &UserId) -> Result<(), Duration> {
        self.api.check(&format!("u:{user}")).inspect_err(|_| {
            crate::metrics::get().rate_limited.with(["api"]).inc();
        })
    }

    /// The `rate-limits` task: forgets keys back at a full burst every minute.
    pub async fn prune_until(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return,
            }
            self.public.prune();
            self.api.prune();
        }
    }
}

fn is_public(path: &str) -> bool {
    path.starts_with("/s/")
        || path.starts_with("/auth/oidc/")
        || path.starts_with("/u/")
        || path.strip_prefix(super::API_PREFIX).is_some_and(|rest| PUBLIC_API_PATHS.contains(&rest))
}

/// The 429 answer, in the one error shape.
pub fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests; try again in {seconds} s"),
        None,
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Middleware: the public surface, per client network.
pub async fn public<E: Endpoint>(endpoint: Arc<E>, req: Request, limits: Arc<RateLimits>) -> poem::Result<Response> {
    if is_public(req.uri().path()) {
        let key = crate::client_address::network_of_text(&super::security::client_ip(&req));
        if let Err(wait) = limits.public.check(&key) {
            crate::metrics::get().rate_limited.with(["public"]).inc();
            return Ok(too_many_requests(wait));
        }
    }
    endpoint.call(req).await.map(IntoResponse::into_response)
}
