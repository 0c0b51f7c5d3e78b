//! The settings of the services around the core: certificates from ACME, share and upload
//! links, resumable uploads, the audit log, backups, search, metrics, rate limits, mail and
//! logging. Each section with its defaults; the rules that check them are in `rules.rs`.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcmeChallenge {
    /// Answered on the HTTPS listener itself.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// Answered by the plain-HTTP listener (port 80).
    #[serde(rename = "http-01")]
    Http01,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeSettings {
    /// The CA's ACME directory.
    pub directory_url: String,
    /// Contact addresses for the CA, like `mailto:admin@example.org`.
    pub contact: Vec<String>,
    /// A root (PEM) trusted for the CA's API besides the system's roots, for private CAs and
    /// tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_root: Option<PathBuf>,
    pub challenge: AcmeChallenge,
    /// First wait after a failed order; each further failure doubles it, up to 6 hours.
    pub retry_after: HumanDuration,
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Default for AcmeSettings {
    fn default() -> Self {
        Self {
            directory_url: LETS_ENCRYPT.into(),
            contact: Vec::new(),
            ca_root: None,
            challenge: AcmeChallenge::TlsAlpn01,
            retry_after: HumanDuration(std::time::Duration::from_secs(60)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShareSettings {
    /// How long a share link lasts when its creator does not say.
    pub default_expiry: HumanDuration,
    /// Longest a share link may last, counted from its creation or last change of expiry.
    pub max_lifetime: HumanDuration,
    /// How long the right password unlocks a protected link in one browser.
    pub unlock_lifetime: HumanDuration,
}

impl Default for ShareSettings {
    fn default() -> Self {
        let days = |days: u64| HumanDuration(std::time::Duration::from_secs(days * 86_400));
        Self {
            default_expiry: days(7),
            max_lifetime: days(365),
            unlock_lifetime: HumanDuration(std::time::Duration::from_secs(3600)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadSettings {
    /// How long a resumable upload lives after its last received byte; then its part file and
    /// quota reservation are removed. A finished one answers HEAD with its file's id as long.
    pub resumable_expiry: HumanDuration,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self { resumable_expiry: HumanDuration(std::time::Duration::from_secs(86_400)) }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Audit entries older than this are deleted (daily); ended sessions, spent refresh tokens
    /// and expired or revoked API tokens go after 30 days.
    pub retention: HumanDuration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { retention: HumanDuration(std::time::Duration::from_secs(365 * 86_400)) }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// Where snapshots are kept; `coffer backup init` marks it as this instance's.
    pub directory: PathBuf,
    /// The newest this many complete snapshots are always kept, however old.
    pub keep_last: u32,
    /// The newest snapshot of each of this many days (UTC) that have one is kept.
    pub keep_daily: u32,
    /// The newest snapshot of each of this many ISO weeks that have one is kept.
    pub keep_weekly: u32,
    /// The newest snapshot of each of this many months that have one is kept.
    pub keep_monthly: u32,
    /// `coffer backup run` re-hashes a different share of the blobs each day, so that every
    /// blob is read back within this many days (0: only the quick verification).
    pub verify_read_data_days: u32,
    /// Where `backup push` (and `backup run`) copies snapshots with rsync: a directory,
    /// `[user@]host:/path` over ssh, or `rsync://[user@]host[:port]/module/path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_to: Option<String>,
    /// The rsync daemon's password, in a file only its owner may read (rsync:// targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_password_file: Option<PathBuf>,
    /// The remote shell for `host:/path` targets (rsync's `-e`).
    pub push_ssh_command: String,
    /// rsync gives up when no data moves for this long.
    pub push_timeout: HumanDuration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            directory: PathBuf::from("./coffer-backups"),
            keep_last: 3,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
            verify_read_data_days: 7,
            push_to: None,
            push_password_file: None,
            push_ssh_command: "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes".into(),
            push_timeout: HumanDuration(std::time::Duration::from_secs(300)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {
    /// Full-text search (`GET /api/v1/search`) and its index under `<state_dir>/search/`.
    pub enabled: bool,
    /// Memory the index writer may buffer before it writes a segment (at least 15 MiB).
    pub writer_memory: ByteSize,
    /// How often, at most, changes are committed to the index (and become searchable).
    pub commit_interval: HumanDuration,
    /// Files larger than this are indexed by name only, their contents not extracted (plain
    /// text is read up to `max_text_chars` whatever its size).
    pub max_extract_size: ByteSize,
    /// Characters of a file's text that are indexed; the rest is ignored.
    pub max_text_chars: u32,
    /// Wall-clock and CPU time one file's text extraction may take before it is stopped.
    pub extract_timeout: HumanDuration,
    /// Address space the extraction process may use.
    pub extract_memory: ByteSize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            writer_memory: ByteSize(48 << 20),
            commit_interval: HumanDuration(std::time::Duration::from_secs(1)),
            max_extract_size: ByteSize(50 << 20),
            max_text_chars: 100_000,
            extract_timeout: HumanDuration(std::time::Duration::from_secs(30)),
            extract_memory: ByteSize(512 << 20),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where Prometheus metrics are served (`/metrics`, plain HTTP); unset: not at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// A file holding the bearer token scrapes must send (at least 16 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests per minute one client address (an IPv6 /64) may make to the public surface:
    /// share links (`/s/...`), sign-in and token refresh.
    pub public_per_minute: u32,
    /// How many of those may come at once before the per-minute pace applies.
    pub public_burst: u32,
    /// Requests per minute one account may make to the API.
    pub api_per_minute: u32,
    /// How many of those may come at once.
    pub api_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self { public_per_minute: 120, public_burst: 60, api_per_minute: 1200, api_burst: 300 }
    }
}

/// How the connection to the mail server is protected; there is no plain-text mode, so the
/// password never crosses the network unencrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    /// Plain connection upgraded with STARTTLS, which is required (submission, port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// The SMTP server (a host name, checked against its certificate); unset: no mail is sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Unset: 587 for `starttls`, 465 for `tls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub security: MailSecurity,
    /// The account to sign in to the mail server with; unset: no sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding that account's password (or the systemd credential `mail.password_file`
    /// naming one); never the password itself in this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The sender, like `Coffer <coffer@example.org>`.
    pub from: String,
    /// A root (PEM) trusted for the mail server besides the system's roots (a private CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// One delivery attempt (connect, TLS, sign-in, send) is abandoned after this long.
    pub timeout: HumanDuration,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: None,
            security: MailSecurity::Starttls,
            username: None,
            password_file: None,
            from: String::new(),
            ca_file: None,
            timeout: HumanDuration(std::time::Duration::from_secs(30)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter: `info`, `debug`, or per module like `info,coffer::server=debug`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}
