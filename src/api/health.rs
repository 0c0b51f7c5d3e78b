//! `GET /api/v1/health` (liveness) and `GET /api/v1/ready` (readiness).

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::readiness::Readiness;

pub struct HealthApi {
    pub readiness: Arc<Readiness>,
}

#[derive(Object)]
struct Health {
    /// Always `ok` when the process answers.
    status: String,
    /// Coffer's version.
    version: String,
}

#[derive(Object)]
struct Check {
    /// `database`, `state_dir_writable` or `disk_space`.
    name: String,
    ok: bool,
    detail: String,
}

#[derive(Object)]
struct Ready {
    /// `ready`.
    status: String,
    checks: Vec<Check>,
}

#[derive(Object)]
struct NotReady {
    /// `not_ready`.
    error: String,
    /// Names the failing checks.
    message: String,
    checks: Vec<Check>,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// Every check passed.
    #[oai(status = 200)]
    Ready(Json<Ready>),
    /// At least one check failed; `message` names which.
    #[oai(status = 503)]
    NotReady(Json<NotReady>),
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process is up and answering.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> Json<Health> {
        Json(Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
    }

    /// Readiness: the database answers, the state directory accepts writes and free disk space
    /// is above `storage.disk_reserve`.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self) -> ReadyResponse {
        let results = self.readiness.check().await;
        let failing: Vec<&str> = results.iter().filter(|check| !check.ok).map(|check| check.name).collect();
        let checks = results
            .iter()
            .map(|check| Check { name: check.name.into(), ok: check.ok, detail: check.detail.clone() })
            .collect();
        if failing.is_empty() {
            ReadyResponse::Ready(Json(Ready { status: "ready".into(), checks }))
        } else {
            let message = format!("not ready: {}", failing.join(", "));
            ReadyResponse::NotReady(Json(NotReady { error: "not_ready".into(), message, checks }))
        }
    }
}
