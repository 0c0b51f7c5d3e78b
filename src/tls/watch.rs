//! `tls.mode = "files"`: the certificate and key files are watched and read again when they
//! change (a renewal by certbot or another tool), so the new certificate is served without a
//! reload or restart. A pair that does not load (half-written, mismatched) is rejected with
//! an error and the running certificate stays; the next change is tried again.
//!
//! The directories are watched, not the files: renewal tools usually replace files by rename
//! or move a symlink, which a watch on the old file would miss. Events are coalesced for a
//! moment so that a cert and key written one after the other are read as one pair.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use super::{CertResolver, load_pem_pair};

/// How long to wait after the last change before reading the pair.
const SETTLE: Duration = Duration::from_millis(300);

/// Watches `cert` and `key` until `shutdown`; returns an error if the watch cannot be set up.
pub fn watch_pair(
    cert: PathBuf,
    key: PathBuf,
    resolver: Arc<CertResolver>,
    shutdown: CancellationToken,
) -> notify::Result<()> {
    let (changes, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let watched: Vec<PathBuf> = [&cert, &key].iter().map(|path| directory_of(path)).collect();
    let names = [cert.clone(), key.clone()];
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            // Any change to a file of either name counts, whatever the kind of event.
            let relevant = event.paths.iter().any(|path| names.iter().any(|name| same_name(path, name)));
            if relevant {
                let _ = changes.send(());
            }
        }
    })?;
    for dir in &watched {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                event = changed.recv() => if event.is_none() { return },
                () = shutdown.cancelled() => return,
            }
            // Let a burst of writes finish: wait until the files have been quiet for SETTLE.
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, changed.recv()).await {}
            let (cert, key) = (cert.clone(), key.clone());
            match tokio::task::spawn_blocking(move || load_pem_pair(&cert, &key)).await {
                Ok(Ok(pair)) => {
                    resolver.set(pair);
                    tracing::info!("certificate files changed: serving the new certificate");
                }
                Ok(Err(err)) => tracing::error!(
                    error = %err,
                    "the changed certificate files are unusable; the running certificate stays"
                ),
                Err(err) => tracing::error!(error = %err, "the certificate loader failed"),
            }
        }
    });
    Ok(())
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn same_name(event_path: &Path, watched: &Path) -> bool {
    event_path.file_name().is_some_and(|name| Some(name) == watched.file_name())
}
