//! The services the server is made of, built and readied before anything is served: accounts
//! and their keys, files (leftovers swept, blobs collected), share and upload links, resumable
//! uploads, and the periodic blob collection.

use super::*;

pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await.context("a startup task panicked")?
}

/// The password hasher, the token and device keys.
pub(super) async fn build_auth(
    settings: &Settings,
    db: &Db,
    clock: &Clock,
    state_dir: &StateDir,
) -> anyhow::Result<Arc<Auth>> {
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
pub(super) async fn prepare_files(
    settings: &Settings,
    db: &Db,
    clock: &Clock,
    state_dir: &StateDir,
) -> anyhow::Result<Files> {
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
pub(super) async fn build_shares(
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
pub(super) async fn build_upload_links(
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
pub(super) async fn prepare_uploads(settings: &Settings, files: &Files, clock: &Clock) -> anyhow::Result<Uploads> {
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
pub(super) async fn collect_garbage_every(
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
