//! Prometheus metrics: what the process counts as it works, and what it reads at each scrape.
//!
//! Counters live in one process-wide [`Metrics`] (a server is one process), updated where the
//! work happens: requests and their durations by route template (never the raw path, never a
//! token or id), bytes in and out, transfers in flight, TLS handshakes, sign-ins, share
//! traffic, errors of the database and the blob store, log events by level. Gauges that
//! describe state (counts, storage, free disk, the certificate, the process) are read when a
//! scrape asks ([`Scrape`]). The exposition is served on its own listener (`[metrics]`, off by
//! default), never on the public port unless the admin puts it there.

mod endpoint;
mod process;
mod registry;

use std::sync::{Arc, OnceLock, RwLock};

pub use endpoint::metrics_endpoint;
pub use registry::{Counter, Exposition, Family, Gauge, GaugeGuard, Histogram};

use crate::acme::CertificateState;
use crate::clock::Clock;
use crate::db::Db;
use crate::state_dir::StateDir;
use crate::tls::CertResolver;

/// Everything counted while the process runs.
pub struct Metrics {
    pub http_requests: Family<Counter, 3>,
    pub http_duration: Family<Histogram, 2>,
    pub http_in_flight: Gauge,
    pub received_bytes: Counter,
    pub sent_bytes: Counter,
    pub upload_bytes: Counter,
    pub download_bytes: Counter,
    pub uploads_in_flight: Gauge,
    pub downloads_in_flight: Gauge,
    pub tls_handshakes: Family<Counter, 1>,
    pub sign_ins: Family<Counter, 1>,
    pub mail_sent: Family<Counter, 1>,
    pub share_requests: Family<Counter, 1>,
    pub rate_limited: Family<Counter, 1>,
    pub database_errors: Counter,
    pub blob_store_errors: Counter,
    pub log_events: Family<Counter, 1>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics {
        http_requests: Family::new(
            "coffer_http_requests_total",
            "HTTP requests answered, by route template, method and status class.",
            ["route", "method", "status"],
            Counter::default,
        ),
        http_duration: Family::new(
            "coffer_http_request_duration_seconds",
            "Time to answer HTTP requests (until the response head; bodies stream on), by route template and method.",
            ["route", "method"],
            registry::histogram,
        ),
        http_in_flight: Gauge::default(),
        received_bytes: Counter::default(),
        sent_bytes: Counter::default(),
        upload_bytes: Counter::default(),
        download_bytes: Counter::default(),
        uploads_in_flight: Gauge::default(),
        downloads_in_flight: Gauge::default(),
        tls_handshakes: Family::new(
            "coffer_tls_handshakes_total",
            "TLS handshakes by result: ok, failed, timeout.",
            ["result"],
            Counter::default,
        ),
        sign_ins: Family::new(
            "coffer_sign_ins_total",
            "Password sign-ins by result: success, failure, throttled, busy.",
            ["result"],
            Counter::default,
        ),
        mail_sent: Family::new(
            "coffer_mail_attempts_total",
            "Attempts to deliver e-mail by outcome: sent, retry (temporary failure), failed (given up).",
            ["outcome"],
            Counter::default,
        ),
        share_requests: Family::new(
            "coffer_share_requests_total",
            "Public share-link requests by kind: view, download, resume, refused, wrong_password.",
            ["kind"],
            Counter::default,
        ),
        rate_limited: Family::new(
            "coffer_rate_limited_total",
            "Requests refused with 429 by a rate limit, by limit.",
            ["limit"],
            Counter::default,
        ),
        database_errors: Counter::default(),
        blob_store_errors: Counter::default(),
        log_events: Family::new(
            "coffer_log_events_total",
            "Log events at warn level and above, by level.",
            ["level"],
            Counter::default,
        ),
    })
}

/// The status class of an HTTP status: `2xx`, `4xx`...
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// What a scrape reads besides the counters.
#[derive(Clone)]
pub struct Scrape {
    pub db: Db,
    pub clock: Clock,
    pub state_dir: StateDir,
    pub disk_reserve: u64,
    pub resolver: Option<Arc<CertResolver>>,
    pub acme: Option<Arc<RwLock<CertificateState>>>,
    /// `backup.directory`, whose `status.json` says when the last backup succeeded.
    pub backup_dir: std::path::PathBuf,
    /// Full-text search, when it runs.
    pub search: Option<crate::search::Search>,
}

/// Counts read from the database at a scrape.
struct Counts {
    users: i64,
    files: i64,
    shares_active: i64,
    stored_bytes: i64,
    /// Messages waiting to be sent, and when the oldest was queued.
    mail_pending: i64,
    mail_oldest: Option<i64>,
}

impl Scrape {
    /// The whole exposition.
    pub async fn render(&self) -> String {
        let mut out = Exposition::default();
        let metrics = get();
        out.counters(&metrics.http_requests);
        out.histograms(&metrics.http_duration);
        out.gauge(
            "coffer_http_requests_in_flight",
            "HTTP requests being answered.",
            metrics.http_in_flight.get() as f64,
        );
        out.counter(
            "coffer_network_received_bytes_total",
            "Bytes received on client connections (TLS included).",
            metrics.received_bytes.get(),
        );
        out.counter(
            "coffer_network_sent_bytes_total",
            "Bytes sent on client connections (TLS included).",
            metrics.sent_bytes.get(),
        );
        out.counter("coffer_upload_bytes_total", "File contents received by uploads.", metrics.upload_bytes.get());
        out.counter("coffer_download_bytes_total", "File contents sent by downloads.", metrics.download_bytes.get());
        out.gauge("coffer_uploads_in_flight", "Uploads being received.", metrics.uploads_in_flight.get() as f64);
        out.gauge("coffer_downloads_in_flight", "Downloads being sent.", metrics.downloads_in_flight.get() as f64);
        out.counters(&metrics.tls_handshakes);
        out.counters(&metrics.sign_ins);
        out.counters(&metrics.mail_sent);
        out.counters(&metrics.share_requests);
        out.counters(&metrics.rate_limited);
        out.counter("coffer_database_errors_total", "Database operations that failed.", metrics.database_errors.get());
        out.counter(
            "coffer_blob_store_errors_total",
            "Reads and writes of file contents that failed (a full disk excepted).",
            metrics.blob_store_errors.get(),
        );
        out.counters(&metrics.log_events);
        self.state(&mut out).await;
        process::render(&mut out);
        out.finish()
    }

    async fn state(&self, out: &mut Exposition) {
        let now = self.clock.now();
        let counts = self
            .db
            .read(move |conn| {
                let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0));
                Ok(Counts {
                    users: count("SELECT count(*) FROM users")?,
                    files: count("SELECT count(*) FROM files")?,
                    shares_active: conn.query_row(
                        "SELECT count(*) FROM shares WHERE disabled = 0 AND expires_at > ?1
                           AND (max_downloads IS NULL OR downloads < max_downloads)",
                        [now],
                        |row| row.get(0),
                    )?,
                    stored_bytes: count(
                        "SELECT coalesce(sum(size), 0) FROM (SELECT DISTINCT sha256, size FROM files)",
                    )?,
                    mail_pending: count("SELECT count(*) FROM mail_outbox WHERE status IN ('pending', 'sending')")?,
                    mail_oldest: conn.query_row(
                        "SELECT min(created_at) FROM mail_outbox WHERE status IN ('pending', 'sending')",
                        [],
                        |row| row.get(0),
                    )?,
                })
            })
            .await;
        out.gauge("coffer_up", "1 while the server answers scrapes; see coffer_database_up for the database.", 1.0);
        out.gauge(
            "coffer_database_up",
            "1 when the database answered this scrape.",
            f64::from(u8::from(counts.is_ok())),
        );
        if let Ok(counts) = counts {
            out.gauge("coffer_users", "Accounts.", counts.users as f64);
            out.gauge("coffer_files", "Files (not blobs: files sharing contents count each).", counts.files as f64);
            out.gauge("coffer_shares_active", "Share links that work now.", counts.shares_active as f64);
            out.gauge(
                "coffer_storage_used_bytes",
                "Bytes of file contents stored (each blob once).",
                counts.stored_bytes as f64,
            );
            out.gauge(
                "coffer_mail_outbox_pending",
                "E-mail messages waiting to be delivered.",
                counts.mail_pending as f64,
            );
            out.gauge(
                "coffer_mail_outbox_oldest_age_seconds",
                "How long the oldest message waiting to be delivered has waited (0: none waits).",
                counts.mail_oldest.map_or(0.0, |oldest| (now - oldest).max(0) as f64),
            );
        }
        let state_dir = self.state_dir.clone();
        if let Ok(Ok(free)) = tokio::task::spawn_blocking(move || state_dir.free_bytes()).await {
            out.gauge("coffer_disk_free_bytes", "Free bytes on the state directory's file system.", free as f64);
        }
        out.gauge(
            "coffer_disk_reserve_bytes",
            "storage.disk_reserve: below it uploads are refused and the server is not ready.",
            self.disk_reserve as f64,
        );
        let not_after = self
            .resolver
            .as_deref()
            .and_then(CertResolver::current)
            .and_then(|key| key.cert.first().and_then(|cert| crate::tls::summarize(cert.as_ref()).ok()))
            .map(|summary| summary.not_after.unix_timestamp());
        if let Some(not_after) = not_after {
            out.gauge(
                "coffer_tls_certificate_expiry_timestamp_seconds",
                "When the certificate served expires (Unix time).",
                not_after as f64,
            );
        }
        let backup_dir = self.backup_dir.clone();
        if let Ok(status) = tokio::task::spawn_blocking(move || crate::backup::status::read(&backup_dir)).await {
            if let Some(at) = status.last_success_at {
                out.gauge(
                    "coffer_backup_last_success_timestamp_seconds",
                    "When the last backup (coffer backup create or run) succeeded (Unix time).",
                    at as f64,
                );
            }
            let failed = status.last_status.as_deref() == Some("failed");
            out.gauge(
                "coffer_backup_last_failed",
                "1 when the last backup attempt failed.",
                f64::from(u8::from(failed)),
            );
            if status.last_push_status.is_some() {
                let push_failed = status.last_push_status.as_deref() == Some("failed");
                out.gauge(
                    "coffer_backup_last_push_failed",
                    "1 when the last push of a backup off the machine failed.",
                    f64::from(u8::from(push_failed)),
                );
            }
        }
        if let Some(search) = &self.search {
            out.gauge(
                "coffer_search_pending_changes",
                "Changes to files and grants (and extracted texts) not yet in the search index.",
                search.pending() as f64,
            );
            let report = search.report().await;
            let ready = matches!(report.status.state, crate::search::State::Ready);
            out.gauge(
                "coffer_search_ready",
                "1 while the search index keeps up (not starting, rebuilding or degraded).",
                f64::from(u8::from(ready)),
            );
            out.gauge("coffer_search_documents", "Documents in the search index.", report.status.docs as f64);
        }
        if let Some(acme) = &self.acme {
            let failing = acme.read().map(|state| state.last_error.is_some()).unwrap_or(false);
            out.gauge(
                "coffer_acme_renewal_failing",
                "1 while the last attempt to obtain or renew the ACME certificate failed.",
                f64::from(u8::from(failing)),
            );
        }
    }
}
