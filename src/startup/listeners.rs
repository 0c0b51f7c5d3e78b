//! Where the server listens (systemd's sockets or its own, the metrics listener) and the
//! status line systemd shows.

use super::*;

/// The sockets passed by systemd (named `https` or `http`), else `server.listen` bound here.
pub(super) async fn listen_sockets(settings: &Settings) -> anyhow::Result<Vec<(ListenerKind, TcpListener)>> {
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
pub(super) async fn metrics_listener(
    settings: &Settings,
    scrape: crate::metrics::Scrape,
) -> anyhow::Result<Option<Listener>> {
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
    pub(super) db: Db,
    pub(super) urls: Vec<String>,
    pub(super) resolver: Option<Arc<CertResolver>>,
    pub(super) acme: Option<Arc<std::sync::RwLock<CertificateState>>>,
}

impl StatusLine {
    pub async fn render(&self) -> String {
        status_line(&self.db, &self.urls, self.resolver.as_deref(), self.acme.as_deref()).await
    }
}

/// How often the status line is sent again while serving (counts and certificates change).
pub(super) const STATUS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

pub(super) async fn status_line(
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
