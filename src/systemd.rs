//! The service manager's side channels: readiness and status notifications (`NOTIFY_SOCKET`),
//! the watchdog, and sockets passed by socket activation (`LISTEN_FDS`).
//!
//! All of it is a no-op when the variables are absent, so the same binary runs under systemd,
//! by hand, or in a container.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::db::Db;

fn send(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(error = %err, "cannot notify the service manager");
    }
}

/// `READY=1` with a status line: listeners are bound and the database is migrated.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping: letting requests in flight finish")]);
}

/// `RELOADING=1` with `MONOTONIC_USEC`, as systemd wants before a reload's `READY=1`.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status("reloading the configuration")]),
        Err(err) => tracing::warn!(error = %err, "cannot read the monotonic clock for the reload notification"),
    }
}

/// Pings the watchdog at half of `WATCHDOG_USEC`, each time only after the runtime ran this
/// task and the database answered a query within the interval; a hung database or runtime
/// lets the pings stop and systemd restart the service.
pub async fn watchdog(db: Db, shutdown: CancellationToken) {
    let Some(timeout) = sd_notify::watchdog_enabled() else { return };
    let interval = timeout / 2;
    tracing::info!(interval_ms = interval.as_millis() as u64, "watchdog enabled");
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let probe = db.read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?));
        match tokio::time::timeout(interval, probe).await {
            Ok(Ok(1)) => send(&[NotifyState::Watchdog]),
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                tracing::warn!("the database did not answer in time; withholding the watchdog ping")
            }
        }
    }
}

/// A socket passed by the service manager, with its name from `FileDescriptorName=` (or
/// `--fdname`); `unknown` when it has none.
pub struct PassedSocket {
    pub name: String,
    pub listener: std::net::TcpListener,
}

/// The listening sockets passed by socket activation, if any.
pub fn passed_sockets() -> io::Result<Vec<PassedSocket>> {
    let named: Vec<(i32, String)> = match sd_notify::listen_fds_with_names() {
        Ok(fds) => fds.collect(),
        // Without names systemd still passes the fds; name them all `unknown`.
        Err(_) => sd_notify::listen_fds()?.map(|fd| (fd, "unknown".to_owned())).collect(),
    };
    named
        .into_iter()
        .map(|(fd, name)| {
            // SAFETY: systemd hands these descriptors to this process alone; each is taken once.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let listener = std::net::TcpListener::from(owned);
            listener.set_nonblocking(true)?;
            listener.local_addr().map_err(|err| {
                io::Error::new(err.kind(), format!("passed socket {name} (fd {fd}) is not a TCP listener: {err}"))
            })?;
            Ok(PassedSocket { name, listener })
        })
        .collect()
}
