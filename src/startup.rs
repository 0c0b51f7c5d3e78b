//! Startup in one place: from [`Settings`] to a bound, ready-to-run application.
//!
//! [`Application::build`] prepares the state dir, opens and migrates the database, loads or
//! makes the certificate and binds the listeners; it fails before serving anything if any of
//! that fails. Blocking steps run on the blocking pool.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::acme::{AcmeManager, CertificateState, Http01Answers};
use crate::api::{self, ApiContext};
use crate::auth::device::DeviceTokens;
use crate::auth::password::{HashParams, PasswordHasherPool};
use crate::auth::throttle::ThrottlePolicy;
use crate::auth::token::TokenSigner;
use crate::auth::{self, Auth, AuthParts, Lifetimes};
use crate::client_address::TrustedProxies;
use crate::clock::Clock;
use crate::config::{Settings, TlsMode};
use crate::db::Db;
use crate::files::{Files, GcRound};
use crate::readiness::Readiness;
use crate::reload::{self, Reloader};
use crate::search::Search;
use crate::server::{self, AppEndpoint, HttpServer, Listener, ListenerKind};
use crate::shares::{ShareKeys, SharePolicy, Shares};
use crate::state_dir::{StateDir, load_or_create_secret};
use crate::storage::BlobStore;
use crate::systemd;
use crate::tls::{self, CertResolver};
use crate::uploads::Uploads;
use tokio::net::TcpListener;

mod listeners;
mod services;

use listeners::*;
use services::*;

pub use listeners::StatusLine;
pub use services::open_accounts;

pub struct Application {
    server: HttpServer,
    settings: Settings,
    clock: Clock,
    files: Files,
    uploads: Uploads,
    shares: Shares,
    rate_limits: Arc<api::RateLimits>,
    db: Db,
    resolver: Option<Arc<CertResolver>>,
    reloader: Arc<Reloader>,
    acme: Option<tokio::task::JoinHandle<()>>,
    acme_stop: CancellationToken,
    certificate: Option<Arc<std::sync::RwLock<CertificateState>>>,
    search: Option<Search>,
    search_stop: CancellationToken,
    /// The mail server's client and the queue, when `[mail]` is set.
    mail: Option<(Arc<crate::mail::Transport>, crate::mail::Mailer)>,
    oidc: Arc<crate::oidc::Oidc>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let clock = Clock::system();
        let state_dir = StateDir::new(&settings.storage.state_dir);
        let (db, auth) = open_accounts(&settings, &clock).await?;

        let resolver = match settings.tls.mode {
            TlsMode::Off => None,
            mode => {
                let tls_settings = settings.tls.clone();
                let (tls_dir, clock) = (state_dir.tls_dir(), clock.clone());
                let key = blocking(move || match (mode, &tls_settings.cert_file, &tls_settings.key_file) {
                    (TlsMode::Files, Some(cert), Some(key)) => Ok(tls::load_pem_pair(cert, key)?),
                    _ => Ok(tls::ensure_self_signed(&tls_dir, &tls_settings.self_signed_names, &clock)?),
                })
                .await?;
                Some(Arc::new(CertResolver::new(key)))
            }
        };
        let tls_config = match &resolver {
            Some(resolver) => Some(tls::server_config(Arc::clone(resolver)).context("cannot set up TLS")?),
            None => None,
        };

        let http01 = Arc::new(Http01Answers::default());
        let acme = match (&resolver, settings.tls.mode) {
            (Some(resolver), TlsMode::Acme) => {
                let dir = state_dir.root().join("acme");
                let (acme, domains) = (settings.acme.clone(), settings.tls.domains.clone());
                let manager =
                    AcmeManager::start(acme, clock.clone(), domains, dir, Arc::clone(resolver), Arc::clone(&http01));
                Some(manager.await.context("ACME (tls.mode = \"acme\")")?)
            }
            _ => None,
        };
        let sockets = listen_sockets(&settings).await?;
        // The certificate order starts as soon as the sockets exist (validation connections
        // wait in the backlog until serving starts); the rest of startup overlaps with it.
        let acme_stop = CancellationToken::new();
        let certificate = acme.as_ref().map(|acme| acme.state());
        let acme = acme.map(|acme| tokio::spawn(acme.run(acme_stop.clone())));
        auth::ensure_initial_admin(&auth, &state_dir.initial_admin_password()).await?;
        let mail = match auth.mailer().enabled() {
            true => {
                let (mail, public_url) =
                    (settings.mail.clone(), settings.server.public_url.clone().unwrap_or_default());
                let transport = blocking(move || crate::mail::Transport::from_settings(&mail, &public_url))
                    .await
                    .context("settings under [mail]")?;
                Some((Arc::new(transport), auth.mailer().clone()))
            }
            false => None,
        };
        let files = prepare_files(&settings, &db, &clock, &state_dir).await?;
        let uploads = prepare_uploads(&settings, &files, &clock).await?;
        let shares = build_shares(&settings, &db, &files, &auth, &state_dir).await?;
        let upload_links = build_upload_links(&settings, &db, &shares, &auth, &state_dir).await?;
        let search_stop = CancellationToken::new();
        let search = match settings.search.enabled {
            true => {
                let started = Search::start(
                    &settings.search,
                    &state_dir,
                    db.clone(),
                    files.store().clone(),
                    settings.database.busy_timeout.0,
                    clock.clone(),
                    search_stop.clone(),
                )
                .await;
                // Search is derived data: a search directory that cannot be used costs search
                // (answered with 503), never the server.
                match started {
                    Ok(search) => Some(search),
                    Err(err) => {
                        tracing::error!(
                            error = format!("{err:#}"),
                            "search is unavailable; the server runs without it"
                        );
                        None
                    }
                }
            }
            false => None,
        };
        let scrape = crate::metrics::Scrape {
            db: db.clone(),
            clock: clock.clone(),
            state_dir: state_dir.clone(),
            disk_reserve: settings.storage.disk_reserve.0,
            resolver: resolver.clone(),
            acme: certificate.clone(),
            backup_dir: settings.backup.directory.clone(),
            search: search.clone(),
        };
        let readiness =
            Readiness::new(db.clone(), clock.clone(), state_dir, settings.storage.disk_reserve.0, certificate.clone());
        let max_body_size = Arc::new(AtomicU64::new(settings.server.max_body_size.0));
        let trusted_proxies = Arc::new(TrustedProxies::new(
            settings.server.trusted_proxies.iter().filter_map(|proxy| proxy.parse().ok()).collect(),
        ));
        let rate_limits = api::RateLimits::new(&settings.rate_limits, clock.clone());
        let public_url = settings.server.public_url.as_ref().map(|url| url.trim_end_matches('/').to_owned());
        let oidc = {
            let (oidc_settings, db, clock, auth) =
                (settings.oidc.clone(), db.clone(), clock.clone(), Arc::clone(&auth));
            Arc::new(blocking(move || crate::oidc::Oidc::new(&oidc_settings, db, clock, auth)).await?)
        };
        let endpoint: AppEndpoint = Arc::new(api::build(ApiContext {
            readiness,
            auth,
            oidc: Arc::clone(&oidc),
            files: files.clone(),
            uploads: uploads.clone(),
            shares: shares.clone(),
            upload_links,
            search: search.clone(),
            max_body_size: Arc::clone(&max_body_size),
            public_url: public_url.clone(),
            trusted_proxies: Arc::clone(&trusted_proxies),
            rate_limits: Arc::clone(&rate_limits),
            cors_origins: settings.server.cors_origins.clone(),
        }));
        let https_port = sockets
            .iter()
            .filter(|(role, _)| *role == ListenerKind::Application)
            .find_map(|(_, socket)| socket.local_addr().ok())
            .map_or(443, |addr| addr.port());
        let redirect: AppEndpoint = Arc::new(api::to_https(public_url, https_port, http01));
        let mut listeners: Vec<Listener> = sockets
            .into_iter()
            .map(|(role, socket)| match role {
                ListenerKind::RedirectToHttps => {
                    Listener { socket, tls: None, endpoint: Arc::clone(&redirect), kind: ListenerKind::RedirectToHttps }
                }
                kind => Listener { socket, tls: tls_config.clone(), endpoint: Arc::clone(&endpoint), kind },
            })
            .collect();
        listeners.extend(metrics_listener(&settings, scrape).await?);
        let limits = Arc::new(RwLock::new(reload::connection_limits(&settings)));
        let server = HttpServer::new(
            listeners,
            Arc::clone(&limits),
            settings.server.max_connections,
            Arc::clone(&trusted_proxies),
        );
        let live = reload::Live {
            limits,
            max_body_size,
            resolver: resolver.clone(),
            files: files.clone(),
            shares: shares.clone(),
        };
        let reloader = Arc::new(Reloader::new(settings.clone(), live));
        Ok(Self {
            server,
            settings,
            clock,
            files,
            uploads,
            shares,
            rate_limits,
            db,
            resolver,
            reloader,
            oidc,
            acme,
            acme_stop,
            certificate,
            search,
            search_stop,
            mail,
        })
    }

    pub fn reloader(&self) -> Arc<Reloader> {
        Arc::clone(&self.reloader)
    }

    /// The status line for the service manager.
    pub fn status_line(&self) -> StatusLine {
        let urls = self
            .server
            .listeners()
            .iter()
            .filter(|listener| listener.kind != ListenerKind::Metrics)
            .filter_map(|listener| {
                let scheme = if listener.tls.is_some() { "https" } else { "http" };
                listener.local_addr().map(|addr| format!("{scheme}://{addr}"))
            })
            .collect();
        StatusLine { db: self.db.clone(), urls, resolver: self.resolver.clone(), acme: self.certificate.clone() }
    }

    /// Serves until `shutdown` is cancelled, then lets requests in flight finish within
    /// `server.shutdown_grace`. Tells the service manager it is ready once serving starts.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        for listener in self.server.listeners() {
            let Some(addr) = listener.local_addr() else { continue };
            match listener.kind {
                ListenerKind::RedirectToHttps => {
                    tracing::info!(url = %format!("http://{addr}"), "redirecting plain HTTP to HTTPS");
                    continue;
                }
                ListenerKind::Metrics => {
                    tracing::info!(url = %format!("http://{addr}/metrics"), "serving metrics");
                    if !addr.ip().is_loopback() && self.settings.metrics.bearer_token_file.is_none() {
                        tracing::warn!(%addr, "metrics are served beyond loopback without a bearer token (metrics.bearer_token_file)");
                    }
                    continue;
                }
                ListenerKind::Application => {}
            }
            let scheme = if listener.tls.is_some() { "https" } else { "http" };
            tracing::info!(url = %format!("{scheme}://{addr}"), "listening");
            if listener.tls.is_none() && !addr.ip().is_loopback() {
                tracing::warn!(%addr, "TLS is off on a non-loopback address: traffic, passwords included, crosses the network unencrypted; use only behind a TLS-terminating proxy");
            }
        }
        let gc = tokio::spawn(collect_garbage_every(
            self.files.clone(),
            self.uploads.clone(),
            self.settings.storage.gc_interval.0,
            shutdown.clone(),
        ));
        let watchdog = tokio::spawn(systemd::watchdog(self.db.clone(), shutdown.clone()));
        let views = tokio::spawn(self.shares.clone().write_views_until(shutdown.clone()));
        let rate_limits = tokio::spawn(Arc::clone(&self.rate_limits).prune_until(shutdown.clone()));
        let oidc_keys = tokio::spawn(Arc::clone(&self.oidc).refresh_keys_until(shutdown.clone()));
        let retention = tokio::spawn(crate::retention::run(
            self.db.clone(),
            self.clock.clone(),
            self.settings.audit.retention.0,
            shutdown.clone(),
        ));
        let checkpoint = tokio::spawn(crate::db::checkpoint::run(self.db.path().to_owned(), shutdown.clone()));
        let mail = self.mail.clone().map(|(transport, mailer)| {
            let (db, clock) = (self.db.clone(), self.clock.clone());
            tokio::spawn(crate::mail::run_sender(db, clock, mailer, transport, shutdown.clone()))
        });
        let acme_stop = self.acme_stop.clone();
        let stop_acme = shutdown.clone();
        tokio::spawn(async move {
            stop_acme.cancelled().await;
            acme_stop.cancel();
        });
        if let (TlsMode::Files, Some(cert), Some(key), Some(resolver)) =
            (self.settings.tls.mode, &self.settings.tls.cert_file, &self.settings.tls.key_file, &self.resolver)
        {
            let (cert, key, resolver) = (cert.clone(), key.clone(), Arc::clone(resolver));
            if let Err(err) = tls::watch_pair(cert, key, resolver, shutdown.clone()) {
                tracing::warn!(error = %err, "cannot watch the certificate files; reload (SIGHUP) picks up changes");
            }
        }
        let status = self.status_line();
        systemd::ready(&status.render().await);
        let refresh = shutdown.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + STATUS_EVERY, STATUS_EVERY);
            loop {
                tokio::select! {
                    _ = ticks.tick() => systemd::status(&status.render().await),
                    () = refresh.cancelled() => return,
                }
            }
        });
        self.server.run(shutdown, self.settings.server.shutdown_grace.0).await;
        self.search_stop.cancel();
        if let Some(search) = &self.search {
            search.stop().await;
        }
        let _ = gc.await;
        let _ = watchdog.await;
        let _ = views.await;
        let _ = rate_limits.await;
        let _ = oidc_keys.await;
        let _ = retention.await;
        let _ = checkpoint.await;
        if let Some(mail) = mail {
            let _ = mail.await;
        }
        if let Some(acme) = self.acme {
            let _ = acme.await;
        }
    }
}
