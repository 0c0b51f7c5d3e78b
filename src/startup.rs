//! Startup in one place: from [`Settings`] to a bound, ready-to-run application.
//!
//! [`Application::build`] prepares the state dir, opens and migrates the database, loads or
//! makes the certificate and binds the listeners; it fails before serving anything if any of
//! that fails. Blocking steps run on the blocking pool.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiContext};
use crate::auth::password::{HashParams, PasswordHasherPool};
use crate::auth::throttle::ThrottlePolicy;
use crate::auth::token::TokenSigner;
use crate::auth::{self, Auth, Lifetimes};
use crate::config::{Settings, TlsMode};
use crate::db::Db;
use crate::files::Files;
use crate::readiness::Readiness;
use crate::server::{self, ConnectionLimits, HttpServer};
use crate::shares::{ShareKeys, SharePolicy, Shares};
use crate::state_dir::StateDir;
use crate::storage::BlobStore;
use crate::tls::{self, CertResolver};

pub struct Application {
    server: HttpServer,
    settings: Settings,
    files: Files,
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
    let seconds = |duration: crate::config::HumanDuration| i64::try_from(duration.0.as_secs()).unwrap_or(i64::MAX);
    let config = &settings.shares;
    let policy = SharePolicy {
        default_expiry: seconds(config.default_expiry),
        max_lifetime: seconds(config.max_lifetime),
        unlock_lifetime: seconds(config.unlock_lifetime),
    };
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

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let state_dir = StateDir::new(&settings.storage.state_dir);
        let (db, auth) = open_accounts(&settings).await?;
        auth::ensure_initial_admin(&db, auth.hasher(), &state_dir.initial_admin_password()).await?;

        let tls_config = match settings.tls.mode {
            TlsMode::Off => None,
            mode => {
                let tls_settings = settings.tls.clone();
                let tls_dir = state_dir.tls_dir();
                let key = blocking(move || match (mode, &tls_settings.cert_file, &tls_settings.key_file) {
                    (TlsMode::Files, Some(cert), Some(key)) => Ok(tls::load_pem_pair(cert, key)?),
                    _ => Ok(tls::ensure_self_signed(&tls_dir, &tls_settings.self_signed_names)?),
                })
                .await?;
                let resolver = Arc::new(CertResolver::new(key));
                Some(tls::server_config(resolver).context("cannot set up TLS")?)
            }
        };

        let listeners = server::bind_all(&settings.server.listen).await?;
        let files = prepare_files(&settings, &db, &state_dir).await?;
        let shares = build_shares(&settings, &db, &files, &auth, &state_dir).await?;
        let readiness = Readiness::new(db, state_dir, settings.storage.disk_reserve.0);
        let endpoint = api::build(ApiContext {
            readiness,
            auth,
            files: files.clone(),
            shares,
            max_body_size: settings.server.max_body_size.0,
            public_url: settings.server.public_url.as_ref().map(|url| url.trim_end_matches('/').to_owned()),
        });
        let limits = ConnectionLimits {
            header_read_timeout: settings.server.header_read_timeout.0,
            idle_timeout: settings.server.idle_timeout.0,
            max_header_size: usize::try_from(settings.server.max_header_size.0).unwrap_or(usize::MAX),
        };
        let server =
            HttpServer::new(listeners, tls_config, Arc::new(endpoint), limits, settings.server.max_connections);
        Ok(Self { server, settings, files })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.server.local_addrs()
    }

    fn scheme(&self) -> &'static str {
        if self.settings.tls.mode == TlsMode::Off { "http" } else { "https" }
    }

    /// Serves until `shutdown` is cancelled, then lets requests in flight finish within
    /// `server.shutdown_grace`.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        for addr in self.local_addrs() {
            let url = format!("{}://{addr}", self.scheme());
            tracing::info!(%url, "listening");
            if self.settings.tls.mode == TlsMode::Off && !addr.ip().is_loopback() {
                tracing::warn!(%addr, "TLS is off on a non-loopback address: traffic, passwords included, crosses the network unencrypted; use only behind a TLS-terminating proxy");
            }
        }
        let gc = tokio::spawn(collect_garbage_every(
            self.files.clone(),
            self.settings.storage.gc_interval.0,
            shutdown.clone(),
        ));
        self.server.run(shutdown, self.settings.server.shutdown_grace.0).await;
        let _ = gc.await;
    }
}
