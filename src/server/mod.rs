//! Listeners, the accept loop and graceful shutdown.
//!
//! Connections beyond `server.max_connections` are not accepted until one ends, so they wait
//! in the kernel's backlog instead of costing memory here. On shutdown the listeners close
//! first (new connections are refused, unless the service manager holds the socket, which
//! then queues them for the next start), then requests in flight get `server.shutdown_grace`
//! to finish; whatever is still open after that is dropped.
//!
//! Each listener has its own TLS setting and endpoint (the API over HTTPS, or a redirect to
//! it over plain HTTP). Connection limits are read at each accept, so a reload changes them
//! for new connections.

mod connection;

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

pub use connection::ConnectionLimits;

/// The whole HTTP application, shared by every connection.
pub type AppEndpoint = Arc<BoxEndpoint<'static, Response>>;

/// Limits shared with the reloader.
pub type SharedLimits = Arc<RwLock<ConnectionLimits>>;

/// A bound socket and what is served on it.
pub struct Listener {
    pub socket: TcpListener,
    pub tls: Option<Arc<ServerConfig>>,
    pub endpoint: AppEndpoint,
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

impl HttpServer {
    pub fn new(listeners: Vec<Listener>, limits: SharedLimits, max_connections: usize) -> Self {
        Self { listeners, limits, max_connections }
    }

    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Serves until `shutdown` is cancelled, then drains for at most `grace`.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(self.max_connections));
        for listener in self.listeners {
            tracker.spawn(accept_loop(
                listener,
                Arc::clone(&self.limits),
                Arc::clone(&permits),
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
    Listener { socket: listener, tls, endpoint }: Listener,
    limits: SharedLimits,
    permits: Arc<Semaphore>,
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
        let _ = stream.set_nodelay(true);
        let limits = limits.read().map(|limits| *limits).unwrap_or_else(|poisoned| *poisoned.into_inner());
        let connection =
            connection::serve(stream, peer, local, tls.clone(), Arc::clone(&endpoint), limits, shutdown.clone());
        tracker.spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(%local, "stopped listening");
}
