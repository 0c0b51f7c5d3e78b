//! Readiness: can this instance take work right now?
//!
//! Each check runs its blocking part off the async workers and says plainly what is wrong, so
//! the 503 from `/api/v1/ready` tells an admin where to look.

use std::sync::{Arc, RwLock};

use crate::acme::CertificateState;
use crate::clock::Clock;
use crate::db::Db;
use crate::state_dir::StateDir;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// Stable name: `database`, `state_dir_writable`, `disk_space`, `certificate` (ACME).
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

pub struct Readiness {
    db: Db,
    clock: Clock,
    state_dir: StateDir,
    disk_reserve: u64,
    certificate: Option<Arc<RwLock<CertificateState>>>,
}

impl Readiness {
    pub fn new(
        db: Db,
        clock: Clock,
        state_dir: StateDir,
        disk_reserve: u64,
        certificate: Option<Arc<RwLock<CertificateState>>>,
    ) -> Arc<Self> {
        Arc::new(Self { db, clock, state_dir, disk_reserve, certificate })
    }

    pub async fn check(&self) -> Vec<CheckResult> {
        let (database, writable, disk) = tokio::join!(self.database(), self.writable(), self.disk_space());
        let mut checks = vec![database, writable, disk];
        checks.extend(self.certificate());
        checks
    }

    /// With ACME: ready once a certificate is served; the detail says how long it lasts and
    /// the last renewal error, if any.
    fn certificate(&self) -> Option<CheckResult> {
        let state = self.certificate.as_ref()?.read().map(|state| state.clone()).unwrap_or_default();
        let error = state.last_error.as_deref().map(|error| format!("; last error: {error}")).unwrap_or_default();
        Some(match state.days_left(self.clock.now_utc()) {
            Some(days) => {
                CheckResult { name: "certificate", ok: true, detail: format!("valid {days} more days{error}") }
            }
            None => CheckResult {
                name: "certificate",
                ok: false,
                detail: format!("no certificate yet: obtaining one from the ACME CA{error}"),
            },
        })
    }

    async fn database(&self) -> CheckResult {
        let answer = self
            .db
            .read(|conn| Ok(conn.query_row("SELECT count(*) FROM instance", [], |row| row.get::<_, i64>(0))?))
            .await;
        match answer {
            Ok(_) => CheckResult { name: "database", ok: true, detail: "answers queries".into() },
            Err(err) => CheckResult { name: "database", ok: false, detail: format!("does not answer: {err}") },
        }
    }

    async fn writable(&self) -> CheckResult {
        let state_dir = self.state_dir.clone();
        let outcome = tokio::task::spawn_blocking(move || state_dir.probe_writable()).await;
        let root = self.state_dir.root().display();
        match outcome {
            Ok(Ok(())) => {
                CheckResult { name: "state_dir_writable", ok: true, detail: format!("{root} accepts writes") }
            }
            Ok(Err(err)) => CheckResult {
                name: "state_dir_writable",
                ok: false,
                detail: format!("{root} does not accept writes: {err}"),
            },
            Err(err) => CheckResult { name: "state_dir_writable", ok: false, detail: format!("check failed: {err}") },
        }
    }

    async fn disk_space(&self) -> CheckResult {
        let state_dir = self.state_dir.clone();
        let reserve = self.disk_reserve;
        let outcome = tokio::task::spawn_blocking(move || state_dir.free_bytes()).await;
        match outcome {
            Ok(Ok(free)) if free > reserve => {
                CheckResult { name: "disk_space", ok: true, detail: format!("{free} bytes free, reserve is {reserve}") }
            }
            Ok(Ok(free)) => CheckResult {
                name: "disk_space",
                ok: false,
                detail: format!("only {free} bytes free, at or below the reserve of {reserve} (storage.disk_reserve)"),
            },
            Ok(Err(err)) => {
                CheckResult { name: "disk_space", ok: false, detail: format!("cannot read free space: {err}") }
            }
            Err(err) => CheckResult { name: "disk_space", ok: false, detail: format!("check failed: {err}") },
        }
    }
}
