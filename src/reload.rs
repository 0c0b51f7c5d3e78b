//! Applying a new configuration to the running server (SIGHUP, `systemctl reload`).
//!
//! The new settings were loaded and validated by the caller; everything that can fail (the
//! certificate files) is prepared before anything changes, so a reload applies fully or not at
//! all. Live: `log.level`, `server.max_body_size`, `server.header_read_timeout`,
//! `server.idle_timeout`, `server.keep_alive_timeout`, `server.max_connections_per_address`, `server.max_header_size`, `server.http2_window` (for new connections),
//! `storage.max_file_size` (for new uploads), `shares.*` (for shares made, changed or
//! unlocked from then on) and, in files mode,
//! the certificate and key (read again on every reload, so renewed files at the same paths are
//! picked up). Every other changed key is named in the log as needing a restart; the running
//! value stays.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::config::{Settings, TlsMode};
use crate::files::Files;
use crate::server::{ConnectionLimits, SharedLimits};
use crate::shares::{SharePolicy, Shares};
use crate::tls::{self, CertResolver};

/// Keys whose new value takes effect without a restart.
const LIVE_KEYS: &[&str] = &[
    "log.level",
    "server.max_body_size",
    "server.header_read_timeout",
    "server.idle_timeout",
    "server.keep_alive_timeout",
    "server.max_connections_per_address",
    "server.max_header_size",
    "server.http2_window",
    "storage.max_file_size",
    "shares.default_expiry",
    "shares.max_lifetime",
    "shares.unlock_lifetime",
    "tls.cert_file",
    "tls.key_file",
];

/// The running parts a reload can change.
pub struct Live {
    pub limits: SharedLimits,
    pub max_body_size: Arc<AtomicU64>,
    pub resolver: Option<Arc<CertResolver>>,
    pub files: Files,
    pub shares: Shares,
}

pub struct Reloader {
    current: Mutex<Settings>,
    live: Live,
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct ReloadOutcome {
    /// Changed keys now in effect.
    pub applied: Vec<String>,
    /// Changed keys that keep their running value until a restart.
    pub needs_restart: Vec<String>,
    /// Whether the certificate was read again.
    pub certificate_reloaded: bool,
}

pub fn connection_limits(settings: &Settings) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: settings.server.header_read_timeout.0,
        idle_timeout: settings.server.idle_timeout.0,
        keep_alive_timeout: settings.server.keep_alive_timeout.0,
        max_per_address: settings.server.max_connections_per_address,
        max_header_size: usize::try_from(settings.server.max_header_size.0).unwrap_or(usize::MAX),
        http2_window: u32::try_from(settings.server.http2_window.0).unwrap_or(u32::MAX),
    }
}

/// Dotted keys with their values, for comparing two settings.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, inner, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

/// The keys whose values differ, sorted.
pub fn changed_keys(old: &Settings, new: &Settings) -> Vec<String> {
    let (mut before, mut after) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &serde_json::to_value(old).unwrap_or_default(), &mut before);
    flatten("", &serde_json::to_value(new).unwrap_or_default(), &mut after);
    let mut keys: Vec<String> = before.keys().chain(after.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|key| before.get(key) != after.get(key));
    keys
}

impl Reloader {
    pub fn new(settings: Settings, live: Live) -> Self {
        Self { current: Mutex::new(settings), live }
    }

    pub async fn apply(&self, new: Settings) -> anyhow::Result<ReloadOutcome> {
        let old = self.current.lock().map(|current| current.clone()).unwrap_or_else(|p| p.into_inner().clone());
        let mut changed = changed_keys(&old, &new);
        // `[backup]` is read by each `coffer backup` command when it starts, not by the server.
        changed.retain(|key| !key.starts_with("backup."));
        let tls_mode_changed = changed.iter().any(|key| key == "tls.mode");
        let (mut applied, mut needs_restart): (Vec<String>, Vec<String>) =
            changed.into_iter().partition(|key| LIVE_KEYS.contains(&key.as_str()) && !key.starts_with("tls."));

        // Prepare: the certificate pair must load before anything changes.
        let mut certificate = None;
        if old.tls.mode == TlsMode::Files && !tls_mode_changed {
            if let (Some(cert), Some(key)) = (new.tls.cert_file.clone(), new.tls.key_file.clone()) {
                let loaded = tokio::task::spawn_blocking(move || tls::load_pem_pair(&cert, &key))
                    .await
                    .context("the certificate loader panicked")?
                    .context("the new certificate files are unusable; the running certificate stays")?;
                certificate = Some(loaded);
            }
            let (tls_live, tls_rest): (Vec<String>, Vec<String>) =
                needs_restart.into_iter().partition(|key| key == "tls.cert_file" || key == "tls.key_file");
            applied.extend(tls_live);
            needs_restart = tls_rest;
        }

        // Commit.
        crate::telemetry::set_level(&new.log.level).map_err(anyhow::Error::msg).context("log.level")?;
        if let Ok(mut limits) = self.live.limits.write() {
            *limits = connection_limits(&new);
        }
        self.live.max_body_size.store(new.server.max_body_size.0, Ordering::Relaxed);
        self.live.files.set_max_file_size(new.storage.max_file_size.0);
        self.live.shares.set_policy(SharePolicy::from_settings(&new.shares));
        let certificate_reloaded = match (certificate, &self.live.resolver) {
            (Some(certificate), Some(resolver)) => {
                resolver.set(certificate);
                true
            }
            _ => false,
        };
        // Keys needing a restart keep their running values, so the next reload names them again.
        let mut stored = old;
        stored.log.level = new.log.level;
        stored.server.max_body_size = new.server.max_body_size;
        stored.server.header_read_timeout = new.server.header_read_timeout;
        stored.server.idle_timeout = new.server.idle_timeout;
        stored.server.max_header_size = new.server.max_header_size;
        stored.server.http2_window = new.server.http2_window;
        stored.storage.max_file_size = new.storage.max_file_size;
        stored.shares = new.shares;
        if certificate_reloaded {
            stored.tls.cert_file = new.tls.cert_file;
            stored.tls.key_file = new.tls.key_file;
        }
        if let Ok(mut current) = self.current.lock() {
            *current = stored;
        }
        applied.sort();
        needs_restart.sort();
        Ok(ReloadOutcome { applied, needs_restart, certificate_reloaded })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_dotted_and_sorted() {
        let old = Settings::default();
        let mut new = old.clone();
        new.log.level = "debug".into();
        new.storage.max_file_size.0 = 5;
        new.server.listen.push("127.0.0.1:9000".parse().unwrap());
        assert_eq!(changed_keys(&old, &new), vec!["log.level", "server.listen", "storage.max_file_size"]);
        assert!(changed_keys(&old, &old).is_empty());
    }
}
