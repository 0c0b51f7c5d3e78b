//! Logging: readable text on a terminal, JSON lines with `log.format = "json"`, always on
//! stderr so stdout stays for command output. The level filter can be replaced at run time
//! (config reload); the format cannot.
//!
//! Nothing logs secrets: request lines carry no headers, bodies or query strings, and modules
//! log ids instead of tokens.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::config::{LogFormat, LogSettings};

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber. Settings were validated, so the filter parses.
pub fn init(settings: &LogSettings) {
    let filter = level_filter(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter).with(CountWarnings);
    let installed = match settings.format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true).with_current_span(false).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // Already installed (tests build several applications in one process): keep the first.
    if installed.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// The admin's level, with one exception unless they name rustls themselves: rustls warns
/// on every handshake whose SNI is an IP address (wrk, curl and browsers opened on
/// `https://<ip>/` send one), which would fill the log and the warning count with noise.
fn level_filter(level: &str) -> Result<EnvFilter, String> {
    let filter = EnvFilter::try_new(level).map_err(|err| err.to_string())?;
    if level.contains("rustls") {
        return Ok(filter);
    }
    let quiet = "rustls::msgs::handshake=error"
        .parse()
        .map_err(|err: tracing_subscriber::filter::ParseError| err.to_string())?;
    Ok(filter.add_directive(quiet))
}

/// Counts log events at warn level and above for the metrics (`coffer_log_events_total`),
/// after the level filter, so what is counted is what is logged.
struct CountWarnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let level = *event.metadata().level();
        if level == tracing::Level::ERROR {
            crate::metrics::get().log_events.with(["error"]).inc();
        } else if level == tracing::Level::WARN {
            crate::metrics::get().log_events.with(["warn"]).inc();
        }
    }
}

/// Replaces the level filter of the installed subscriber.
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = level_filter(level)?;
    let handle = FILTER.get().ok_or("logging is not set up")?;
    handle.reload(filter).map_err(|err| err.to_string())
}
