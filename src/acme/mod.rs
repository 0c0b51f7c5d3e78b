//! `tls.mode = "acme"`: certificates for `tls.domains` from an ACME CA, kept in
//! `<state>/acme/` (0600) and renewed in the background.
//!
//! At start a stored certificate that covers the domains and is not yet due for renewal is
//! served at once and no CA is contacted. Otherwise the server starts anyway with its
//! self-signed certificate (so `/api/v1/ready` can be asked, and says 503 with the reason in
//! its `certificate` check), and obtains one in the background. Renewal
//! starts when a third of the lifetime remains, with a little jitter; failures are retried
//! after 1 minute, doubling up to 6 hours, while the old certificate keeps being served. A new
//! certificate is swapped into the resolver: open connections keep theirs.

mod order;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::AcmeSettings;
use crate::state_dir::write_file_atomically;
use crate::tls::{self, CertResolver};

const LONGEST_RETRY: Duration = Duration::from_secs(6 * 3600);

/// What `/api/v1/ready` and the status line say about the certificate.
#[derive(Clone, Debug, Default)]
pub struct CertificateState {
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

impl CertificateState {
    /// Whole days the certificate has left at `now`.
    pub fn days_left(&self, now: OffsetDateTime) -> Option<i64> {
        self.not_after.map(|not_after| (not_after - now).whole_days())
    }
}

/// HTTP-01 answers: token -> key authorization, served by the plain-HTTP listener at
/// `/.well-known/acme-challenge/<token>` while an order is being validated.
#[derive(Debug, Default)]
pub struct Http01Answers {
    tokens: RwLock<std::collections::HashMap<String, String>>,
}

impl Http01Answers {
    pub fn get(&self, token: &str) -> Option<String> {
        self.tokens.read().ok()?.get(token).cloned()
    }

    fn set(&self, token: &str, key_authorization: &str) {
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.insert(token.to_owned(), key_authorization.to_owned());
        }
    }

    fn clear(&self) {
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.clear();
        }
    }
}

pub struct AcmeManager {
    settings: AcmeSettings,
    clock: Clock,
    http01: Arc<Http01Answers>,
    domains: Vec<String>,
    dir: PathBuf,
    resolver: Arc<CertResolver>,
    state: Arc<RwLock<CertificateState>>,
}

impl AcmeManager {
    /// Prepares `<state>/acme/` and serves a stored certificate if it still fits.
    pub async fn start(
        settings: AcmeSettings,
        clock: Clock,
        domains: Vec<String>,
        dir: PathBuf,
        resolver: Arc<CertResolver>,
        http01: Arc<Http01Answers>,
    ) -> anyhow::Result<Arc<Self>> {
        let manager = Arc::new(Self { settings, clock, http01, domains, dir, resolver, state: Arc::default() });
        let (dir, domains) = (manager.dir.clone(), manager.domains.clone());
        let stored = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !cert.exists() {
                return Ok(None);
            }
            let pair = tls::load_pem_pair(&cert, &key)?;
            let summary =
                pair.cert.first().map(|der| tls::summarize(der.as_ref())).transpose().map_err(anyhow::Error::msg)?;
            let fits =
                summary.as_ref().is_some_and(|summary| domains.iter().all(|domain| summary.names.contains(domain)));
            Ok(fits.then_some((pair, summary)))
        })
        .await??;
        if let Some((pair, Some(summary))) = stored {
            manager.resolver.set(pair);
            manager.record_certificate(&summary);
            tracing::info!(target: "coffer::acme", not_after = %summary.not_after, "serving the stored ACME certificate");
        }
        Ok(manager)
    }

    pub fn state(&self) -> Arc<RwLock<CertificateState>> {
        Arc::clone(&self.state)
    }

    fn record_certificate(&self, summary: &tls::CertSummary) {
        if let Ok(mut state) = self.state.write() {
            state.not_before = Some(summary.not_before);
            state.not_after = Some(summary.not_after);
            state.last_error = None;
        }
    }

    /// When the served certificate is due for renewal (now if there is none).
    fn renew_at(&self) -> OffsetDateTime {
        let state = self.state.read().map(|state| state.clone()).unwrap_or_default();
        match (state.not_before, state.not_after) {
            (Some(not_before), Some(not_after)) => {
                let lifetime = not_after - not_before;
                let jitter = lifetime / 30 * rand::random::<f64>();
                not_after - lifetime / 3 - jitter
            }
            _ => self.clock.now_utc(),
        }
    }

    /// Obtains, stores and serves a certificate.
    async fn renew(&self) -> anyhow::Result<()> {
        let issued = order::obtain(&self.settings, &self.dir, &self.domains, &self.resolver, &self.http01).await?;
        let dir = self.dir.clone();
        let pair = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            // The key first: a crash between the two leaves a pair that fails to load (and is
            // ordered again), never an old key with a new certificate served.
            write_file_atomically(&key, issued.key_pem.as_bytes(), 0o600)?;
            write_file_atomically(&cert, issued.chain_pem.as_bytes(), 0o600)?;
            Ok(tls::load_pem_pair(&cert, &key)?)
        })
        .await??;
        let summary =
            pair.cert.first().map(|der| tls::summarize(der.as_ref())).transpose().map_err(anyhow::Error::msg)?;
        self.resolver.set(pair);
        if let Some(summary) = summary {
            self.record_certificate(&summary);
            tracing::info!(target: "coffer::acme", not_after = %summary.not_after, "obtained a new certificate; serving it");
        }
        Ok(())
    }

    /// Keeps the certificate renewed until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let first_retry = self.settings.retry_after.0;
        let mut retry = first_retry;
        loop {
            let wait = (self.renew_at() - self.clock.now_utc()).try_into().unwrap_or(Duration::ZERO);
            if !wait.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => return,
                }
            }
            let outcome = tokio::select! {
                outcome = self.renew() => outcome,
                () = shutdown.cancelled() => return,
            };
            match outcome {
                Ok(()) => retry = first_retry,
                Err(err) => {
                    let message = format!("{err:#}");
                    tracing::error!(target: "coffer::acme", error = %message, retry_in_s = retry.as_secs(), "cannot obtain a certificate; the current one (if any) stays");
                    if let Ok(mut state) = self.state.write() {
                        state.last_error = Some(message);
                    }
                    tokio::select! {
                        () = tokio::time::sleep(retry) => {}
                        () = shutdown.cancelled() => return,
                    }
                    retry = (retry * 2).min(LONGEST_RETRY);
                }
            }
        }
    }
}
