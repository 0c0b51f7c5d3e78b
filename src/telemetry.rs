//! Logging: readable text on a terminal, JSON lines with `log.format = "json"`, always on
//! stderr so stdout stays for command output.
//!
//! Nothing logs secrets: request lines carry no headers, bodies or query strings, and modules
//! log ids instead of tokens.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Settings were validated, so the filter parses.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
    // Already installed (tests build several applications in one process): keep the first.
    let _ = installed;
}
