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

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await.context("a startup task panicked")?
}

/// The password hasher, the token and device keys.
async fn build_auth(settings: &Settings, db: &Db, clock: &Clock, state_dir: &StateDir) -> anyhow::Result<Arc<Auth>> {
    let config = &settings.auth;
    let params = HashParams {
        memory_kib: config.argon2_memory_kib,
        iterations: config.argon2_iterations,
        parallelism: config.argon2_parallelism,
    };
    let hasher = PasswordHasherPool::new(params, config.max_concurrent_hashes, config.max_queued_hashes)
        .context("settings under [auth]")?;
    let (key_path, device_key_path) = (state_dir.token_signing_key(), state_dir.device_key());
    let signer = blocking(move || Ok(TokenSigner::load_or_create(&key_path)?)).await?;
    let device_secret = blocking(move || Ok(load_or_create_secret(&device_key_path)?)).await?;
    let seconds = |duration: crate::config::HumanDuration| i64::try_from(duration.0.as_secs()).unwrap_or(i64::MAX);
    let lifetimes = Lifetimes {
        access: seconds(config.access_token_ttl),
        refresh_idle: seconds(config.refresh_idle_timeout),
        refresh_absolute: seconds(config.refresh_lifetime),
    };
    let throttle = ThrottlePolicy {
        free_failures: config.login_free_failures,
        base_delay: std::time::Duration::from_secs(1),
        max_delay: config.login_max_delay.0,
    };
    Ok(Arc::new(Auth::new(AuthParts {
        db: db.clone(),
        clock: clock.clone(),
        hasher,
        signer,
        devices: DeviceTokens::new(&device_secret),
        lifetimes,
        throttle,
        mailer: crate::mail::Mailer::from_settings(settings),
        password_login: auth::PasswordLogin {
            enabled: config.password_login,
            break_glass: config.break_glass_admins.iter().map(|name| name.to_ascii_lowercase()).collect(),
        },
    })))
}

/// Prepares the state directory, opens (creating and migrating) the database and builds the
/// account service. Shared by the server and the `coffer user` commands.
pub async fn open_accounts(settings: &Settings, clock: &Clock) -> anyhow::Result<(Db, Arc<Auth>)> {
    let state_dir = StateDir::new(&settings.storage.state_dir);
    let db = {
        let state_dir = state_dir.clone();
        let busy_timeout = settings.database.busy_timeout.0;
        let max_connections = settings.database.max_connections;
        blocking(move || {
            state_dir.create().context("cannot prepare the state directory (storage.state_dir)")?;
            Ok(Db::open(&state_dir.database(), busy_timeout, max_connections)?)
        })
        .await?
    };

    let auth = build_auth(settings, &db, clock, &state_dir).await?;
    Ok((db, auth))
}

/// The file store: leftovers of uploads a crash interrupted are swept and unreferenced blobs
/// collected before anything is served, when no upload can be in flight.
async fn prepare_files(settings: &Settings, db: &Db, clock: &Clock, state_dir: &StateDir) -> anyhow::Result<Files> {
    let store = BlobStore::new(state_dir.blobs_dir(), state_dir.tmp_dir(), clock.clone());
    let sweeper = store.clone();
    let (swept, made_read_only) = blocking(move || {
        let swept = sweeper.sweep_tmp(std::time::Duration::ZERO)?;
        Ok((swept, sweeper.make_read_only().context("cannot make stored blobs read-only")?))
    })
    .await?;
    if made_read_only > 0 {
        tracing::info!(blobs = made_read_only, "made blobs stored by an earlier version read-only (0400)");
    }
    let files = Files::new(
        db.clone(),
        clock.clone(),
        store,
        state_dir.clone(),
        settings.storage.max_file_size.0,
        settings.storage.disk_reserve.0,
    );
    let collected = match files.collect_garbage().await.context("cannot collect unused blobs")? {
        GcRound::Removed(removed) => removed,
        GcRound::HeldOff => {
            tracing::info!("a backup is running: unused blobs are collected after it");
            Vec::new()
        }
    };
    if swept > 0 || !collected.is_empty() {
        tracing::info!(
            temp_files = swept,
            blobs = collected.len(),
            "removed leftovers of interrupted uploads and unused blobs"
        );
    }
    Ok(files)
}

/// Share links: their key, and the password throttle and hasher shared with sign-ins' settings.
async fn build_shares(
    settings: &Settings,
    db: &Db,
    files: &Files,
    auth: &Auth,
    state_dir: &StateDir,
) -> anyhow::Result<Shares> {
    let key_path = state_dir.share_key();
    let keys = blocking(move || Ok(ShareKeys::load_or_create(&key_path)?)).await?;
    let policy = SharePolicy::from_settings(&settings.shares);
    let throttle = ThrottlePolicy {
        free_failures: settings.auth.login_free_failures,
        base_delay: std::time::Duration::from_secs(1),
        max_delay: settings.auth.login_max_delay.0,
    };
    let mailer = auth.mailer().clone();
    Ok(Shares::new(db.clone(), files.clone(), keys, auth.hasher().clone(), throttle, policy, mailer))
}

/// Upload links: tokens sealed and cookies signed with the share-link key, passwords throttled
/// like share links', expiry limits from `[shares]` (read through `shares`, so reloads apply).
async fn build_upload_links(
    settings: &Settings,
    db: &Db,
    shares: &Shares,
    auth: &Auth,
    state_dir: &StateDir,
) -> anyhow::Result<crate::upload_links::UploadLinks> {
    let key_path = state_dir.share_key();
    let keys = blocking(move || Ok(ShareKeys::load_or_create(&key_path)?)).await?;
    let throttle = ThrottlePolicy {
        free_failures: settings.auth.login_free_failures,
        base_delay: std::time::Duration::from_secs(1),
        max_delay: settings.auth.login_max_delay.0,
    };
    let (hasher, mailer) = (auth.hasher().clone(), auth.mailer().clone());
    Ok(crate::upload_links::UploadLinks::new(db.clone(), shares.clone(), keys, hasher, throttle, mailer))
}

/// Resumable uploads: part files nothing owns (a crash mid-creation or mid-finish) and
/// expired uploads are removed before anything is served.
async fn prepare_uploads(settings: &Settings, files: &Files, clock: &Clock) -> anyhow::Result<Uploads> {
    let uploads = Uploads::new(files.clone(), clock.clone(), settings.uploads.resumable_expiry.0);
    let expired = uploads.remove_expired().await.context("cannot remove expired resumable uploads")?;
    let (orphans, lost) = uploads
        .remove_orphans(std::time::Duration::ZERO)
        .await
        .context("cannot remove leftover resumable upload parts")?;
    if expired > 0 || orphans > 0 || lost > 0 {
        tracing::info!(expired, orphans, lost, "removed expired resumable uploads and leftover part files");
    }
    Ok(uploads)
}

/// The `blob-gc` task: every `interval` until shutdown, removes expired resumable uploads
/// (freeing their quota reservations), then unused blobs.
async fn collect_garbage_every(
    files: Files,
    uploads: Uploads,
    interval: std::time::Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match uploads.remove_expired().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(task = "blob-gc", uploads = removed, "removed expired resumable uploads"),
            Err(err) => {
                tracing::error!(task = "blob-gc", error = %err, "cannot remove expired resumable uploads; will try again")
            }
        }
        // Part files nothing owns any more (an account deleted with its uploads); an hour
        // old at least, so a creation between its part file and its row is never caught.
        match uploads.remove_orphans(std::time::Duration::from_secs(3600)).await {
            Ok((0, _)) => {}
            Ok((parts, _)) => tracing::info!(task = "blob-gc", parts, "removed part files of removed uploads"),
            Err(err) => {
                tracing::error!(task = "blob-gc", error = %err, "cannot remove orphaned upload parts; will try again")
            }
        }
        match files.collect_garbage().await {
            Ok(GcRound::Removed(removed)) if !removed.is_empty() => {
                tracing::info!(task = "blob-gc", blobs = removed.len(), "removed unused blobs")
            }
            Ok(GcRound::Removed(_)) => {}
            Ok(GcRound::HeldOff) => {
                tracing::info!(task = "blob-gc", "a backup is running; unused blobs wait for the next round")
            }
            Err(err) => tracing::error!(task = "blob-gc", error = %err, "cannot remove unused blobs; will try again"),
        }
    }
}

/// The sockets passed by systemd (named `https` or `http`), else `server.listen` bound here.
async fn listen_sockets(settings: &Settings) -> anyhow::Result<Vec<(ListenerKind, TcpListener)>> {
    let passed = systemd::passed_sockets().context("cannot use the sockets passed by the service manager")?;
    if passed.is_empty() {
        let bound = server::bind_all(&settings.server.listen).await?;
        let mut sockets: Vec<_> = bound.into_iter().map(|socket| (ListenerKind::Application, socket)).collect();
        let plain = server::bind_all(&settings.server.http_listen).await?;
        sockets.extend(plain.into_iter().map(|socket| (ListenerKind::RedirectToHttps, socket)));
        return Ok(sockets);
    }
    let tls_off = settings.tls.mode == TlsMode::Off;
    let mut sockets = Vec::new();
    for socket in passed {
        let role = match socket.name.as_str() {
            "https" | "unknown" => ListenerKind::Application,
            "http" if tls_off => ListenerKind::Application,
            "http" => ListenerKind::RedirectToHttps,
            other => anyhow::bail!("a passed socket is named {other:?}; name sockets https or http"),
        };
        sockets.push((role, TcpListener::from_std(socket.listener)?));
    }
    tracing::info!(sockets = sockets.len(), "using sockets passed by the service manager; server.listen is not used");
    Ok(sockets)
}

/// The Prometheus listener (`[metrics]`), when one is configured.
async fn metrics_listener(settings: &Settings, scrape: crate::metrics::Scrape) -> anyhow::Result<Option<Listener>> {
    let Some(addr) = settings.metrics.listen else { return Ok(None) };
    let token = match settings.metrics.bearer_token_file.clone() {
        Some(path) => {
            let shown = path.display().to_string();
            let text = blocking(move || Ok(std::fs::read_to_string(&path)?))
                .await
                .with_context(|| format!("cannot read metrics.bearer_token_file {shown}"))?;
            let token = text.trim().to_owned();
            anyhow::ensure!(
                token.len() >= 16,
                "metrics.bearer_token_file {shown}: the token must be at least 16 characters"
            );
            Some(token)
        }
        None => None,
    };
    let socket = server::bind_all(&[addr]).await?.pop().context("no metrics socket")?;
    let endpoint: AppEndpoint = Arc::new(crate::metrics::metrics_endpoint(scrape, token));
    Ok(Some(Listener { socket, tls: None, endpoint, kind: ListenerKind::Metrics }))
}

/// Makes the line `systemctl status` shows: addresses, certificate, counts.
#[derive(Clone)]
pub struct StatusLine {
    db: Db,
    urls: Vec<String>,
    resolver: Option<Arc<CertResolver>>,
    acme: Option<Arc<std::sync::RwLock<CertificateState>>>,
}

impl StatusLine {
    pub async fn render(&self) -> String {
        status_line(&self.db, &self.urls, self.resolver.as_deref(), self.acme.as_deref()).await
    }
}

/// How often the status line is sent again while serving (counts and certificates change).
const STATUS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

async fn status_line(
    db: &Db,
    urls: &[String],
    tls: Option<&CertResolver>,
    acme: Option<&std::sync::RwLock<CertificateState>>,
) -> String {
    let acme = acme.and_then(|state| state.read().ok().map(|state| state.clone()));
    let certificate = match (acme, tls.and_then(CertResolver::current)) {
        (Some(state), _) if state.not_after.is_none() => match state.last_error {
            Some(error) => format!("obtaining a certificate from the ACME CA (last error: {error})"),
            None => "obtaining a certificate from the ACME CA".to_owned(),
        },
        (_, Some(key)) => match key.cert.first().map(|cert| tls::summarize(cert.as_ref())) {
            Some(Ok(summary)) => format!("certificate valid until {}", summary.not_after.date()),
            _ => "certificate unreadable".to_owned(),
        },
        (_, None) => "TLS off".to_owned(),
    };
    let counts = db
        .read(|conn| {
            let count =
                |table: &str| conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get::<_, i64>(0));
            Ok((count("users")?, count("files")?, count("shares")?))
        })
        .await;
    let counts = match counts {
        Ok((users, files, shares)) => format!("{users} users, {files} files, {shares} share links"),
        Err(_) => "database unavailable".to_owned(),
    };
    format!("serving {}; {certificate}; {counts}", urls.join(" "))
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
        if let Some(mail) = mail {
            let _ = mail.await;
        }
        if let Some(acme) = self.acme {
            let _ = acme.await;
        }
    }
}
