//! Listeners, the accept loop and graceful shutdown.
//!
//! Connections beyond `server.max_connections` are not accepted until one ends, so they wait
//! in the kernel's backlog instead of costing memory here. One client network (an IPv4
//! address, an IPv6 /64) may hold at most `server.max_connections_per_address` of them; further
//! connections from it are closed as soon as they are accepted, so no single client can take
//! the whole budget and leave others waiting. On shutdown the listeners close
//! first (new connections are refused, unless the service manager holds the socket, which
//! then queues them for the next start), then requests in flight get `server.shutdown_grace`
//! to finish; whatever is still open after that is dropped.
//!
//! Each listener has its own TLS setting and endpoint (the API over HTTPS, or a redirect to
//! it over plain HTTP). Connection limits are read at each accept, so a reload changes them
//! for new connections.

mod connection;
mod parse_errors;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use poem::Response;
use poem::endpoint::BoxEndpoint;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client_address::TrustedProxies;

pub use connection::ConnectionLimits;

/// The whole HTTP application, shared by every connection.
pub type AppEndpoint = Arc<BoxEndpoint<'static, Response>>;

/// Limits shared with the reloader.
pub type SharedLimits = Arc<RwLock<ConnectionLimits>>;

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// The application (API, pages).
    Application,
    /// A redirect to HTTPS, and ACME HTTP-01 answers.
    RedirectToHttps,
    /// The Prometheus metrics.
    Metrics,
}

/// A bound socket and what is served on it.
pub struct Listener {
    pub socket: TcpListener,
    pub tls: Option<Arc<ServerConfig>>,
    pub endpoint: AppEndpoint,
    pub kind: ListenerKind,
}

impl Listener {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }
}

pub struct HttpServer {
    listeners: Vec<Listener>,
    limits: SharedLimits,
    max_connections: usize,
    /// Reverse proxies, which carry many clients' connections: no per-address cap for them.
    trusted_proxies: Arc<TrustedProxies>,
}

/// Binds every address, failing with the address named when one cannot be bound.
pub async fn bind_all(addrs: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|err| io::Error::new(err.kind(), format!("cannot listen on {addr}: {err}")))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Open connections per client network, shared by every listener.
#[derive(Default)]
struct PerAddress {
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One counted connection of a network; uncounts it when dropped.
struct AddressSlot {
    counts: Arc<PerAddress>,
    network: String,
}

impl PerAddress {
    /// Counts a new connection from `network`, unless it already holds `limit`.
    fn admit(self: &Arc<Self>, network: String, limit: usize) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(network.clone()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot { counts: Arc::clone(self), network })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.network) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.network);
            }
        }
    }
}

impl HttpServer {
    pub fn new(
        listeners: Vec<Listener>,
        limits: SharedLimits,
        max_connections: usize,
        trusted_proxies: Arc<TrustedProxies>,
    ) -> Self {
        Self { listeners, limits, max_connections, trusted_proxies }
    }

    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Serves until `shutdown` is cancelled, then drains for at most `grace`.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let per_address = Arc::new(PerAddress::default());
        for listener in self.listeners {
            tracker.spawn(accept_loop(
                listener,
                Arc::clone(&self.limits),
                Arc::clone(&permits),
                Arc::clone(&per_address),
                Arc::clone(&self.trusted_proxies),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        shutdown.cancelled().await;
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                open = tracker.len(),
                "shutdown grace of {grace:?} is over; dropping the connections still open"
            );
        }
    }
}

async fn accept_loop(
    Listener { socket: listener, tls, endpoint, .. }: Listener,
    limits: SharedLimits,
    permits: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    trusted_proxies: Arc<TrustedProxies>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let tls = tls.map(TlsAcceptor::from);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(error = %err, %local, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let limits = limits.read().map(|limits| *limits).unwrap_or_else(|poisoned| *poisoned.into_inner());
        let slot = if trusted_proxies.trusts(peer.ip()) {
            None
        } else {
            let network = crate::client_address::network_of(peer.ip());
            let Some(slot) = per_address.admit(network, limits.max_per_address) else {
                tracing::debug!(%peer, "closed a connection: the client holds server.max_connections_per_address already");
                continue;
            };
            Some(slot)
        };
        let _ = stream.set_nodelay(true);
        let connection =
            connection::serve(stream, peer, local, tls.clone(), Arc::clone(&endpoint), limits, shutdown.clone());
        tracker.spawn(async move {
            connection.await;
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(%local, "stopped listening");
}
