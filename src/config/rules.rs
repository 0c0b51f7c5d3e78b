//! What can be wrong with the settings, reported so that each problem names where the value
//! came from (file, environment variable or credential), the key and what is wrong; and the
//! rules that span fields or that types alone cannot express.

use std::fmt;

use super::{ENV_PREFIX, Settings, TlsMode};

/// Everything that can be wrong with the settings, each naming where and what.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration:")?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        let problems = error
            .into_iter()
            .map(|error| {
                let key = error.path.join(".");
                let origin = match &error.metadata {
                    Some(meta) if meta.name.contains("environment") => {
                        format!("environment variable {ENV_PREFIX}{}", error.path.join("__").to_uppercase())
                    }
                    Some(meta) => match &meta.source {
                        // figment displays file paths relative to the working directory.
                        Some(figment::Source::File(path)) => {
                            format!("{} {}", meta.name, path.display())
                        }
                        Some(source) => format!("{} {source}", meta.name),
                        None => meta.name.to_string(),
                    },
                    None => "settings".to_owned(),
                };
                if key.is_empty() {
                    format!("{origin}: {}", error.kind)
                } else {
                    format!("{origin}: key `{key}`: {}", error.kind)
                }
            })
            .collect();
        Self { problems }
    }
}

/// A web origin as browsers send it: `https://host` or `http://host:port`, nothing more.
fn check_origin(origin: &str) -> Result<(), String> {
    let problem = || format!("`{origin}` is not an origin like https://app.example.org (scheme and host, no path)");
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")).ok_or_else(problem)?;
    let valid = !rest.is_empty()
        && rest.bytes().all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
        && !rest.ends_with(':');
    if valid { Ok(()) } else { Err(problem()) }
}

impl Settings {
    /// `[mail]`: only checked when a host is set (no host: no mail).
    fn mail_problems(&self) -> Vec<String> {
        let mail = &self.mail;
        let mut problems = Vec::new();
        let Some(host) = &mail.host else { return problems };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b)) {
            problems.push(format!("key `mail.host`: `{host}` is not a host name like smtp.example.org"));
        }
        if mail.from.parse::<lettre::message::Mailbox>().is_err() {
            problems
                .push(format!("key `mail.from`: `{}` is not a sender like \"Coffer <coffer@example.org>\"", mail.from));
        }
        if mail.password_file.is_some() && mail.username.is_none() {
            problems.push("key `mail.password_file`: set `mail.username` too (the account it signs in)".to_owned());
        }
        if mail.timeout.0.as_secs() == 0 {
            problems.push("key `mail.timeout`: must be at least 1s".to_owned());
        }
        if self.server.public_url.is_none() {
            problems.push(
                "key `server.public_url`: needed when `mail.host` is set (links in e-mail are built on it)".to_owned(),
            );
        }
        problems
    }

    /// Rules that span fields or that types alone cannot express.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.oidc.problems();
        for name in &self.auth.break_glass_admins {
            if crate::domain::Username::parse(name).is_err() {
                problems.push(format!("key `auth.break_glass_admins`: `{name}` is not a username"));
            }
        }
        if self.server.listen.is_empty() {
            problems.push("key `server.listen`: at least one address is needed".to_owned());
        }
        if self.server.max_connections == 0 {
            problems.push("key `server.max_connections`: must be at least 1".to_owned());
        }
        if self.server.max_connections_per_address == 0 {
            problems.push("key `server.max_connections_per_address`: must be at least 1".to_owned());
        }
        if self.server.max_header_size.0 < 8192 {
            problems.push("key `server.max_header_size`: must be at least 8 KiB".to_owned());
        }
        if !(64 << 10..=64 << 20).contains(&self.server.http2_window.0) {
            problems.push("key `server.http2_window`: must be between 64 KiB and 64 MiB".to_owned());
        }
        if self.uploads.resumable_expiry.0.as_secs() < 60 {
            problems.push("key `uploads.resumable_expiry`: must be at least 1m".to_owned());
        }
        if self.storage.gc_interval.0.is_zero() {
            problems.push("key `storage.gc_interval`: must be above 0s".to_owned());
        }
        if self.server.header_read_timeout.0.is_zero()
            || self.server.idle_timeout.0.is_zero()
            || self.server.keep_alive_timeout.0.is_zero()
        {
            problems.push(
                "keys `server.header_read_timeout`, `server.idle_timeout` and `server.keep_alive_timeout`: must be above 0s"
                    .to_owned(),
            );
        }
        if self.auth.max_concurrent_hashes == 0 {
            problems.push("key `auth.max_concurrent_hashes`: must be at least 1".to_owned());
        }
        if self.auth.access_token_ttl.0.as_secs() == 0 || self.auth.refresh_idle_timeout.0.as_secs() == 0 {
            problems
                .push("keys `auth.access_token_ttl` and `auth.refresh_idle_timeout`: must be at least 1s".to_owned());
        }
        if self.audit.retention.0.as_secs() < 86_400 {
            problems.push("key `audit.retention`: must be at least 1d".to_owned());
        }
        if self.database.max_connections == 0 {
            problems.push("key `database.max_connections`: must be at least 1".to_owned());
        }
        if self.tls.mode == TlsMode::Files && (self.tls.cert_file.is_none() || self.tls.key_file.is_none()) {
            problems.push(
                "keys `tls.cert_file` and `tls.key_file`: both are required when `tls.mode` is \"files\"".to_owned(),
            );
        }
        if self.tls.mode == TlsMode::Acme && self.tls.domains.is_empty() {
            problems.push("key `tls.domains`: at least one domain is needed when `tls.mode` is \"acme\"".to_owned());
        }
        if self.tls.mode == TlsMode::SelfSigned && self.tls.self_signed_names.is_empty() {
            problems.push("key `tls.self_signed_names`: at least one name is needed".to_owned());
        }
        if let Some(url) = &self.server.public_url {
            let valid = ["https://", "http://"].iter().any(|scheme| {
                url.strip_prefix(scheme)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains(['?', '#', ' ', '"', '<', '>', '\\']))
            });
            if !valid {
                problems.push(format!(
                    "key `server.public_url`: `{url}` is not an http(s) URL like https://files.example.org"
                ));
            }
        }
        for proxy in &self.server.trusted_proxies {
            if let Err(problem) = proxy.parse::<crate::client_address::Network>() {
                problems.push(format!("key `server.trusted_proxies`: {problem}"));
            }
        }
        for origin in &self.server.cors_origins {
            if let Err(problem) = check_origin(origin) {
                problems.push(format!("key `server.cors_origins`: {problem}"));
            }
        }
        let limits = &self.rate_limits;
        if [limits.public_per_minute, limits.public_burst, limits.api_per_minute, limits.api_burst].contains(&0) {
            problems.push("keys under `rate_limits`: must be at least 1".to_owned());
        }
        let shares = &self.shares;
        if shares.default_expiry.0.is_zero() || shares.unlock_lifetime.0.is_zero() {
            problems.push("keys `shares.default_expiry` and `shares.unlock_lifetime`: must be above 0s".to_owned());
        }
        if shares.default_expiry.0 > shares.max_lifetime.0 {
            problems.push("key `shares.default_expiry`: must not exceed `shares.max_lifetime`".to_owned());
        }
        let backup = &self.backup;
        if backup.keep_last == 0 {
            problems.push(
                "key `backup.keep_last`: must be at least 1 (the floor that pruning never goes below)".to_owned(),
            );
        }
        if backup.push_timeout.0.as_secs() == 0 {
            problems.push("key `backup.push_timeout`: must be at least 1s".to_owned());
        }
        if backup.push_ssh_command.split_whitespace().next().is_none() {
            problems.push("key `backup.push_ssh_command`: must name a command, like \"ssh\"".to_owned());
        }
        if backup.push_to.as_deref().is_some_and(|to| to.trim().is_empty()) {
            problems.push("key `backup.push_to`: empty; remove the key to push nowhere".to_owned());
        }
        let search = &self.search;
        if search.writer_memory.0 < 15 << 20 || search.writer_memory.0 > 4 << 30 {
            problems.push("key `search.writer_memory`: must be between 15 MiB and 4 GiB".to_owned());
        }
        if search.commit_interval.0.is_zero() || search.extract_timeout.0.as_secs() == 0 {
            problems.push("keys `search.commit_interval` and `search.extract_timeout`: must be above 0s (the timeout at least 1s)".to_owned());
        }
        if search.max_text_chars == 0 || search.extract_memory.0 < 64 << 20 {
            problems.push(
                "keys `search.max_text_chars` and `search.extract_memory`: must be at least 1 and 64 MiB".to_owned(),
            );
        }
        problems.extend(self.mail_problems());
        if self.log.level.parse::<tracing_subscriber::EnvFilter>().is_err() {
            problems
                .push(format!("key `log.level`: `{}` is not a valid log filter (try info or debug)", self.log.level));
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError { problems }) }
    }
}
