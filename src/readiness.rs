//! Readiness: can this instance take work right now?
//!
//! Each check runs its blocking part off the async workers. `/api/v1/ready` is public (load
//! balancers and monitors call it), so what it answers names the failing check and what to
//! look at, but never paths, byte counts or error texts; those go to the log, once each time a
//! check starts failing.

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
    /// Which checks failed at their last run, so a failure is logged once, not at every probe.
    failing: std::sync::Mutex<std::collections::HashSet<&'static str>>,
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
        Arc::new(Self { failing: std::sync::Mutex::default(), db, clock, state_dir, disk_reserve, certificate })
    }

    /// The checks as the public may see them; what exactly is wrong goes to the log.
    pub async fn check(&self) -> Vec<CheckResult> {
        let (database, writable, disk) = tokio::join!(self.database(), self.writable(), self.disk_space());
        let mut checks = vec![database, writable, disk];
        checks.extend(self.certificate());
        let mut failing = self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (check, _) in &checks {
            if !check.ok && failing.insert(check.name) {
                tracing::warn!(check = check.name, detail = %check.detail, "a readiness check fails");
            } else if check.ok && failing.remove(check.name) {
                tracing::info!(check = check.name, "a readiness check passes again");
            }
        }
        checks.into_iter().map(|(check, public)| CheckResult { detail: public, ..check }).collect()
    }

    /// With ACME: ready once a certificate is served; the detail says how long it lasts and
    /// the last renewal error, if any.
    fn certificate(&self) -> Option<(CheckResult, String)> {
        let state = self.certificate.as_ref()?.read().map(|state| state.clone()).unwrap_or_default();
        let error = state.last_error.as_deref().map(|error| format!("; last error: {error}")).unwrap_or_default();
        // The certificate's lifetime is public (anyone can read it off a handshake); the CA's
        // error text is not.
        let failed =
            if state.last_error.is_some() { "; the last attempt failed (the server log says why)" } else { "" };
        Some(match state.days_left(self.clock.now_utc()) {
            Some(days) => (
                CheckResult { name: "certificate", ok: true, detail: format!("valid {days} more days{error}") },
                format!("valid {days} more days{failed}"),
            ),
            None => (
                CheckResult {
                    name: "certificate",
                    ok: false,
                    detail: format!("no certificate yet: obtaining one from the ACME CA{error}"),
                },
                format!("no certificate yet: obtaining one from the ACME CA{failed}"),
            ),
        })
    }

    async fn database(&self) -> (CheckResult, String) {
        let answer = self
            .db
            .read(|conn| Ok(conn.query_row("SELECT count(*) FROM instance", [], |row| row.get::<_, i64>(0))?))
            .await;
        match answer {
            Ok(_) => {
                (CheckResult { name: "database", ok: true, detail: "answers queries".into() }, "answers queries".into())
            }
            Err(err) => (
                CheckResult { name: "database", ok: false, detail: format!("does not answer: {err}") },
                "does not answer (the server log says why)".into(),
            ),
        }
    }

    async fn writable(&self) -> (CheckResult, String) {
        let state_dir = self.state_dir.clone();
        let outcome = tokio::task::spawn_blocking(move || state_dir.probe_writable()).await;
        let root = self.state_dir.root().display();
        let failed = "the state directory does not accept writes (the server log says why)".to_owned();
        match outcome {
            Ok(Ok(())) => (
                CheckResult { name: "state_dir_writable", ok: true, detail: format!("{root} accepts writes") },
                "the state directory accepts writes".into(),
            ),
            Ok(Err(err)) => (
                CheckResult {
                    name: "state_dir_writable",
                    ok: false,
                    detail: format!("{root} does not accept writes: {err}"),
                },
                failed,
            ),
            Err(err) => {
                (CheckResult { name: "state_dir_writable", ok: false, detail: format!("check failed: {err}") }, failed)
            }
        }
    }

    async fn disk_space(&self) -> (CheckResult, String) {
        let state_dir = self.state_dir.clone();
        let reserve = self.disk_reserve;
        let outcome = tokio::task::spawn_blocking(move || state_dir.free_bytes()).await;
        let failed = "cannot read the free space (the server log says why)".to_owned();
        match outcome {
            Ok(Ok(free)) if free > reserve => (
                CheckResult {
                    name: "disk_space",
                    ok: true,
                    detail: format!("{free} bytes free, reserve is {reserve}"),
                },
                "free space is above the reserve".into(),
            ),
            Ok(Ok(free)) => (
                CheckResult {
                    name: "disk_space",
                    ok: false,
                    detail: format!(
                        "only {free} bytes free, at or below the reserve of {reserve} (storage.disk_reserve)"
                    ),
                },
                "free space is at or below the reserve (storage.disk_reserve)".into(),
            ),
            Ok(Err(err)) => (
                CheckResult { name: "disk_space", ok: false, detail: format!("cannot read free space: {err}") },
                failed,
            ),
            Err(err) => (CheckResult { name: "disk_space", ok: false, detail: format!("check failed: {err}") }, failed),
        }
    }
}
