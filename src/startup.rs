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
use crate::auth::password::{HashParams, PasswordHasherPool};
use crate::auth::throttle::ThrottlePolicy;
use crate::auth::token::TokenSigner;
use crate::auth::{self, Auth, Lifetimes};
use crate::config::{Settings, TlsMode};
use crate::db::Db;
use crate::files::Files;
use crate::readiness::Readiness;
use crate::reload::{self, Reloader};
use crate::search::Search;
use crate::server::{self, AppEndpoint, HttpServer, Listener};
use crate::shares::{ShareKeys, SharePolicy, Shares};
use crate::state_dir::StateDir;
use crate::storage::BlobStore;
use crate::systemd;
use crate::tls::{self, CertResolver};
use tokio::net::TcpListener;

pub struct Application {
    server: HttpServer,
    settings: Settings,
    files: Files,
    db: Db,
    resolver: Option<Arc<CertResolver>>,
    reloader: Arc<Reloader>,
    acme: Option<tokio::task::JoinHandle<()>>,
    acme_stop: CancellationToken,
    certificate: Option<Arc<std::sync::RwLock<CertificateState>>>,
    search: Option<Search>,
    search_stop: CancellationToken,
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await.context("a startup task panicked")?
}

/// The password hasher, the token key and the first admin account.
async fn build_auth(settings: &Settings, db: &Db, state_dir: &StateDir) -> anyhow::Result<Arc<Auth>> {
    let config = &settings.auth;
    let params = HashParams {
        memory_kib: config.argon2_memory_kib,
        iterations: config.argon2_iterations,
        parallelism: config.argon2_parallelism,
    };
    let hasher = PasswordHasherPool::new(params, config.max_concurrent_hashes).context("settings under [auth]")?;
    let key_path = state_dir.token_signing_key();
    let signer = blocking(move || Ok(TokenSigner::load_or_create(&key_path)?)).await?;
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
    Ok(Arc::new(Auth::new(db.clone(), hasher, signer, lifetimes, throttle)))
}

/// Prepares the state directory, opens (creating and migrating) the database and builds the
/// account service. Shared by the server and the `coffer user` commands.
pub async fn open_accounts(settings: &Settings) -> anyhow::Result<(Db, Arc<Auth>)> {
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

    let auth = build_auth(settings, &db, &state_dir).await?;
    Ok((db, auth))
}

/// The file store: leftovers of uploads a crash interrupted are swept and unreferenced blobs
/// collected before anything is served, when no upload can be in flight.
async fn prepare_files(settings: &Settings, db: &Db, state_dir: &StateDir) -> anyhow::Result<Files> {
    let store = BlobStore::new(state_dir.blobs_dir(), state_dir.tmp_dir());
    let sweeper = store.clone();
    let swept = blocking(move || Ok(sweeper.sweep_tmp(std::time::Duration::ZERO)?)).await?;
    let files = Files::new(
        db.clone(),
        store,
        state_dir.clone(),
        settings.storage.max_file_size.0,
        settings.storage.disk_reserve.0,
    );
    let collected = files.collect_garbage().await.context("cannot collect unused blobs")?;
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
    Ok(Shares::new(db.clone(), files.clone(), keys, auth.hasher().clone(), throttle, policy))
}

/// The `blob-gc` task: removes unused blobs every `interval` until shutdown.
async fn collect_garbage_every(files: Files, interval: std::time::Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match files.collect_garbage().await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(task = "blob-gc", blobs = removed.len(), "removed unused blobs")
            }
            Ok(_) => {}
            Err(err) => tracing::error!(task = "blob-gc", error = %err, "cannot remove unused blobs; will try again"),
        }
    }
}

/// Whether a socket serves the application or only redirects to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SocketRole {
    Application,
    RedirectToHttps,
}

/// The sockets passed by systemd (named `https` or `http`), else `server.listen` bound here.
async fn listen_sockets(settings: &Settings) -> anyhow::Result<Vec<(SocketRole, TcpListener)>> {
    let passed = systemd::passed_sockets().context("cannot use the sockets passed by the service manager")?;
    if passed.is_empty() {
        let bound = server::bind_all(&settings.server.listen).await?;
        let mut sockets: Vec<_> = bound.into_iter().map(|socket| (SocketRole::Application, socket)).collect();
        let plain = server::bind_all(&settings.server.http_listen).await?;
        sockets.extend(plain.into_iter().map(|socket| (SocketRole::RedirectToHttps, socket)));
        return Ok(sockets);
    }
    let tls_off = settings.tls.mode == TlsMode::Off;
    let mut sockets = Vec::new();
    for socket in passed {
        let role = match socket.name.as_str() {
            "https" | "unknown" => SocketRole::Application,
            "http" if tls_off => SocketRole::Application,
            "http" => SocketRole::RedirectToHttps,
            other => anyhow::bail!("a passed socket is named {other:?}; name sockets https or http"),
        };
        sockets.push((role, TcpListener::from_std(socket.listener)?));
    }
    tracing::info!(sockets = sockets.len(), "using sockets passed by the service manager; server.listen is not used");
    Ok(sockets)
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
        let state_dir = StateDir::new(&settings.storage.state_dir);
        let (db, auth) = open_accounts(&settings).await?;

        let resolver = match settings.tls.mode {
            TlsMode::Off => None,
            mode => {
                let tls_settings = settings.tls.clone();
                let tls_dir = state_dir.tls_dir();
                let key = blocking(move || match (mode, &tls_settings.cert_file, &tls_settings.key_file) {
                    (TlsMode::Files, Some(cert), Some(key)) => Ok(tls::load_pem_pair(cert, key)?),
                    _ => Ok(tls::ensure_self_signed(&tls_dir, &tls_settings.self_signed_names)?),
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
                let manager = AcmeManager::start(acme, domains, dir, Arc::clone(resolver), Arc::clone(&http01));
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
        auth::ensure_initial_admin(&db, auth.hasher(), &state_dir.initial_admin_password()).await?;
        let files = prepare_files(&settings, &db, &state_dir).await?;
        let shares = build_shares(&settings, &db, &files, &auth, &state_dir).await?;
        let search_stop = CancellationToken::new();
        let search = match settings.search.enabled {
            true => {
                let started = Search::start(
                    &settings.search,
                    &state_dir,
                    db.clone(),
                    files.store().clone(),
                    settings.database.busy_timeout.0,
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
        let readiness = Readiness::new(db.clone(), state_dir, settings.storage.disk_reserve.0, certificate.clone());
        let max_body_size = Arc::new(AtomicU64::new(settings.server.max_body_size.0));
        let public_url = settings.server.public_url.as_ref().map(|url| url.trim_end_matches('/').to_owned());
        let endpoint: AppEndpoint = Arc::new(api::build(ApiContext {
            readiness,
            auth,
            files: files.clone(),
            shares: shares.clone(),
            search: search.clone(),
            max_body_size: Arc::clone(&max_body_size),
            public_url: public_url.clone(),
        }));
        let https_port = sockets
            .iter()
            .filter(|(role, _)| *role == SocketRole::Application)
            .find_map(|(_, socket)| socket.local_addr().ok())
            .map_or(443, |addr| addr.port());
        let redirect: AppEndpoint = Arc::new(api::to_https(public_url, https_port, http01));
        let listeners = sockets
            .into_iter()
            .map(|(role, socket)| match role {
                SocketRole::Application => {
                    Listener { socket, tls: tls_config.clone(), endpoint: Arc::clone(&endpoint) }
                }
                SocketRole::RedirectToHttps => Listener { socket, tls: None, endpoint: Arc::clone(&redirect) },
            })
            .collect();
        let limits = Arc::new(RwLock::new(reload::connection_limits(&settings)));
        let server = HttpServer::new(listeners, Arc::clone(&limits), settings.server.max_connections);
        let live = reload::Live { limits, max_body_size, resolver: resolver.clone(), files: files.clone(), shares };
        let reloader = Arc::new(Reloader::new(settings.clone(), live));
        Ok(Self { server, settings, files, db, resolver, reloader, acme, acme_stop, certificate, search, search_stop })
    }

    /// Whether a listener serves the application (not the redirect to HTTPS).
    fn serves_application(&self, listener: &Listener) -> bool {
        listener.tls.is_some() || self.settings.tls.mode == TlsMode::Off
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
            if !self.serves_application(listener) {
                tracing::info!(url = %format!("http://{addr}"), "redirecting plain HTTP to HTTPS");
                continue;
            }
            let scheme = if listener.tls.is_some() { "https" } else { "http" };
            tracing::info!(url = %format!("{scheme}://{addr}"), "listening");
            if listener.tls.is_none() && !addr.ip().is_loopback() {
                tracing::warn!(%addr, "TLS is off on a non-loopback address: traffic, passwords included, crosses the network unencrypted; use only behind a TLS-terminating proxy");
            }
        }
        let gc = tokio::spawn(collect_garbage_every(
            self.files.clone(),
            self.settings.storage.gc_interval.0,
            shutdown.clone(),
        ));
        let watchdog = tokio::spawn(systemd::watchdog(self.db.clone(), shutdown.clone()));
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
        if let Some(acme) = self.acme {
            let _ = acme.await;
        }
    }
}
