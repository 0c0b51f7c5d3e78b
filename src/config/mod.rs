//! Settings: one typed struct, loaded once at start and passed down.
//!
//! Layers, lowest to highest: built-in defaults < TOML file (`--config`, else
//! `/etc/coffer/coffer.toml` when it exists) < `COFFER_*` environment variables (nested keys
//! joined with `__`) < files in `$CREDENTIALS_DIRECTORY`. Unknown keys and wrong types are
//! errors that name where the value came from, the key and the problem. Nothing else in the
//! program reads the environment for settings.

mod credentials;
mod oidc;
mod rules;
mod sections;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use credentials::CredentialsDir;
pub use oidc::{OidcProvider, OidcSettings, SUPPORTED_ALGS, acceptable_issuer};
pub use rules::ConfigError;
pub use sections::*;
pub use units::{ByteSize, HumanDuration};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/coffer/coffer.toml";
/// Prefix of environment variables that override settings.
pub const ENV_PREFIX: &str = "COFFER_";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub tls: TlsSettings,
    pub storage: StorageSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub shares: ShareSettings,
    pub acme: AcmeSettings,
    pub audit: AuditSettings,
    pub backup: BackupSettings,
    pub metrics: MetricsSettings,
    pub rate_limits: RateLimitSettings,
    pub search: SearchSettings,
    pub mail: MailSettings,
    pub uploads: UploadSettings,
    pub oidc: OidcSettings,
    pub log: LogSettings,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Addresses to listen on; port 0 picks a free port (the log says which).
    pub listen: Vec<SocketAddr>,
    /// Plain-HTTP addresses (port 80) that redirect to HTTPS and answer ACME HTTP-01.
    pub http_listen: Vec<SocketAddr>,
    /// How long in-flight requests may run after SIGTERM/SIGINT before the process exits.
    pub shutdown_grace: HumanDuration,
    /// A client must finish the TLS handshake, then send its first request, and then each
    /// request's headers, within this.
    pub header_read_timeout: HumanDuration,
    /// While a request is in progress, a connection on which nothing is read or written for this
    /// long is closed.
    pub idle_timeout: HumanDuration,
    /// A connection with no request in progress is closed after this long (keep-alive).
    pub keep_alive_timeout: HumanDuration,
    /// Largest request head (request line and headers) accepted.
    pub max_header_size: ByteSize,
    /// HTTP/2 flow-control window per request stream (the connection's is twice it): what a
    /// client may send ahead of the server's reading. One HTTP/2 upload runs at most at this
    /// divided by the round-trip time.
    pub http2_window: ByteSize,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one client address (an IPv6 /64) may hold at once; more are closed at once.
    pub max_connections_per_address: usize,
    /// Largest request body for API calls (uploads have their own limit).
    pub max_body_size: ByteSize,
    /// The address people reach this server at, such as `https://files.example.org`; share
    /// links are built on it. Unset: the address the link's creator used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Reverse proxies (addresses or networks like `10.0.0.0/8`) whose `Forwarded` or
    /// `X-Forwarded-For` header names the client; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// Web origins (`https://app.example.org`) whose pages may call the API from a browser
    /// (CORS, without credentials). None: no CORS at all.
    pub cors_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8443))],
            http_listen: Vec::new(),
            shutdown_grace: HumanDuration(std::time::Duration::from_secs(30)),
            header_read_timeout: HumanDuration(std::time::Duration::from_secs(10)),
            idle_timeout: HumanDuration(std::time::Duration::from_secs(120)),
            keep_alive_timeout: HumanDuration(std::time::Duration::from_secs(30)),
            max_header_size: ByteSize(16 << 10),
            http2_window: ByteSize(2 << 20),
            max_connections: 1024,
            max_connections_per_address: 64,
            max_body_size: ByteSize(1 << 20),
            public_url: None,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// A certificate generated at first start and kept in the state dir.
    SelfSigned,
    /// A certificate chain and key from PEM files.
    Files,
    /// Plain HTTP, for loopback or behind a reverse proxy.
    Off,
    /// Certificates for `tls.domains` from an ACME CA (Let's Encrypt by default).
    Acme,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// PEM certificate chain, leaf first (mode "files").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key (mode "files").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// DNS names and IP addresses the self-signed certificate is valid for.
    pub self_signed_names: Vec<String>,
    /// The domains the ACME certificate is for (mode "acme").
    pub domains: Vec<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            mode: TlsMode::SelfSigned,
            cert_file: None,
            key_file: None,
            self_signed_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            domains: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Database, file contents, keys and certificates live here.
    pub state_dir: PathBuf,
    /// Free space to keep on the state dir's file system; below it the server reports not
    /// ready and refuses uploads (507).
    pub disk_reserve: ByteSize,
    /// Largest file an upload may store (413 beyond it).
    pub max_file_size: ByteSize,
    /// How often unused blobs (of deleted or replaced files) are removed.
    pub gc_interval: HumanDuration,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("./coffer-data"),
            disk_reserve: ByteSize(1 << 30),
            max_file_size: ByteSize(10 << 30),
            gc_interval: HumanDuration(std::time::Duration::from_secs(3600)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// How long a statement waits for a lock held by another connection before failing.
    pub busy_timeout: HumanDuration,
    /// Most SQLite connections open at once (each serves one blocking call at a time).
    pub max_connections: usize,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { busy_timeout: HumanDuration(std::time::Duration::from_secs(5)), max_connections: 8 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Lifetime of an access token.
    pub access_token_ttl: HumanDuration,
    /// A session unused for this long cannot be refreshed any more.
    pub refresh_idle_timeout: HumanDuration,
    /// A session ends this long after its login, however active.
    pub refresh_lifetime: HumanDuration,
    /// argon2id memory cost in KiB for new password hashes (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// argon2id iterations (OWASP: 2).
    pub argon2_iterations: u32,
    /// argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Password hashes computed at once; more wait, so a login flood cannot exhaust memory.
    pub max_concurrent_hashes: usize,
    /// Password checks that may wait for a slot; beyond them sign-ins get 503 with Retry-After.
    pub max_queued_hashes: usize,
    /// Failed sign-ins to one account from one address before waits begin (an account from
    /// anywhere gets ten times as many, an address four times as many).
    pub login_free_failures: u32,
    /// Longest wait after failed sign-ins; each failure past the allowance doubles the wait.
    pub login_max_delay: HumanDuration,
    /// Sign-in with a password. `false` leaves only OpenID Connect providers, except for the
    /// accounts in `break_glass_admins`.
    pub password_login: bool,
    /// Admins who may still sign in with a password when `password_login` is false, for when
    /// the provider is down or misconfigured.
    pub break_glass_admins: Vec<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        let days = |days: u64| HumanDuration(std::time::Duration::from_secs(days * 86_400));
        Self {
            access_token_ttl: HumanDuration(std::time::Duration::from_secs(15 * 60)),
            refresh_idle_timeout: days(7),
            refresh_lifetime: days(30),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_concurrent_hashes: 4,
            max_queued_hashes: 64,
            login_free_failures: 5,
            login_max_delay: HumanDuration(std::time::Duration::from_secs(15 * 60)),
            password_login: true,
            break_glass_admins: Vec::new(),
        }
    }
}

/// Which config file applies: the explicit one (which must exist), else the system one if any.
pub fn config_file(explicit: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    match explicit {
        Some(path) if path.is_file() => Ok(Some(path.to_owned())),
        Some(path) => Err(ConfigError {
            problems: vec![format!("config file {} does not exist or is not a file", path.display())],
        }),
        None => Ok(Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|path| path.is_file())),
    }
}

impl Settings {
    /// Loads all layers. `credentials_dir` is `$CREDENTIALS_DIRECTORY` when systemd set it.
    pub fn load(file: Option<&Path>, credentials_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        if let Some(dir) = credentials_dir {
            figment = figment.merge(CredentialsDir::new(dir));
        }
        let settings: Settings = figment.extract()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The effective settings as TOML, for `coffer check-config`. No setting holds a secret
    /// yet; one that does must serialize as a placeholder so it never reaches this output.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|err| format!("# cannot render settings: {err}\n"))
    }
}
