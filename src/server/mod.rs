//! Listeners, the accept loop and graceful shutdown.
//!
//! Connections beyond `server.max_connections` are not accepted until one ends, so they wait
//! in the kernel's backlog instead of costing memory here. On shutdown the listeners close
//! first (new connections are refused), then requests in flight get `server.shutdown_grace`
//! to finish; whatever is still open after that is dropped.

mod connection;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
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

pub struct HttpServer {
    listeners: Vec<TcpListener>,
    tls: Option<TlsAcceptor>,
    endpoint: AppEndpoint,
    limits: ConnectionLimits,
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
    pub fn new(
        listeners: Vec<TcpListener>,
        tls: Option<Arc<ServerConfig>>,
        endpoint: AppEndpoint,
        limits: ConnectionLimits,
        max_connections: usize,
    ) -> Self {
        Self { listeners, tls: tls.map(TlsAcceptor::from), endpoint, limits, max_connections }
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|listener| listener.local_addr().ok()).collect()
    }

    /// Serves until `shutdown` is cancelled, then drains for at most `grace`.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(self.max_connections));
        for listener in self.listeners {
            tracker.spawn(accept_loop(
                listener,
                self.tls.clone(),
                Arc::clone(&self.endpoint),
                self.limits,
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
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    endpoint: AppEndpoint,
    limits: ConnectionLimits,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
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
