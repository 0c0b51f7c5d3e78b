//! The `coffer` command line: parses arguments and hands over to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use coffer::cli::UserCommand;
use coffer::config::{self, Settings};
use coffer::reload::Reloader;
use coffer::startup::{Application, StatusLine};
use std::sync::Arc;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Coffer: self-hosted secure file sharing in one binary.
#[derive(Parser)]
#[command(name = "coffer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server until SIGTERM or SIGINT.
    Serve(ConfigArg),
    /// Validate the settings and print the effective ones (secrets redacted).
    ///
    /// Exits non-zero with a message naming the file, key and problem when they are invalid.
    CheckConfig(ConfigArg),
    /// Manage accounts on this server's database (safe while the server runs).
    ///
    /// Run it as the server's user, e.g. `sudo -u coffer coffer user list`.
    User {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Verify that every file's contents are stored intact; list orphan blobs and temp files.
    ///
    /// Names each missing or damaged file with its owner. Exits 0 when all is intact, 1 when
    /// a file's contents are missing or damaged (or the check failed), 3 when --repair was
    /// refused because a backup is running. Safe while the server runs.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Remove orphan blobs and temp files untouched for an hour (each blob re-checked
        /// against the database at the moment of removal).
        #[arg(long)]
        repair: bool,
    },
    /// Back up and restore: snapshots kept in backup.directory, verified, pruned, pushed
    /// off the machine with rsync, restored into an empty state directory.
    ///
    /// Run it as the server's user, e.g. `sudo -u coffer coffer backup list`. Exit status 0
    /// done, 1 failed or damage found, 2 unusable settings, 3 refused before changing anything.
    Backup {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: coffer::backup::command::BackupCommand,
    },
    /// Rebuild the search index from the database, with progress (the server must be stopped;
    /// while it runs, use POST /api/v1/admin/search/rebuild instead).
    ///
    /// Exits 75 when the server holds the index.
    Reindex(ConfigArg),
    /// E-mail: `coffer mail test ADDRESS` sends a test message and says what failed, if anything.
    Mail {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: coffer::mail::command::MailCommand,
    },
    /// Print the version.
    Version,
    /// Extract a document's text from standard input (run by the server, with limits).
    #[command(hide = true)]
    Extract {
        #[arg(value_enum)]
        kind: coffer::search::extract::Kind,
        #[arg(long)]
        max_chars: usize,
        #[arg(long)]
        max_bytes: u64,
        /// Address space limit, in bytes.
        #[arg(long)]
        memory: u64,
        #[arg(long)]
        cpu_seconds: u64,
    },
    /// Print the manual page (roff), for packaging.
    #[command(hide = true)]
    Manpage,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Settings file [default: /etc/coffer/coffer.toml when it exists, else built-in defaults].
    /// COFFER_* environment variables and $CREDENTIALS_DIRECTORY files override it.
    #[arg(long, short = 'c', value_name = "PATH", global = true)]
    config: Option<PathBuf>,
}

/// Exit code for unusable settings, as distinct from a failure while running.
const EXIT_CONFIG: u8 = 2;
/// Exit code for "try again later" (sysexits' EX_TEMPFAIL): the server holds the index.
const EXIT_TEMPFAIL: u8 = 75;

fn load_settings(explicit: Option<&Path>) -> Result<(Option<PathBuf>, Settings), config::ConfigError> {
    let file = config::config_file(explicit)?;
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let settings = Settings::load(file.as_deref(), credentials.as_deref())?;
    Ok((file, settings))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Manpage => {
            let page = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            match page.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("coffer: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Version => {
            println!("coffer {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig(args) => with_settings(&args, |file, settings| {
            let source = file.map_or_else(|| "built-in defaults".to_owned(), |file| file.display().to_string());
            println!("# effective settings (from {source}, environment and credentials)");
            print!("{}", settings.to_redacted_toml());
            ExitCode::SUCCESS
        }),
        Command::User { config, command } => {
            with_settings(&config, |_, settings| report(coffer::cli::run(settings, command).map(|()| true)))
        }
        Command::Mail { config, command } => {
            with_settings(&config, |_, settings| report(coffer::mail::command::run(settings, command).map(|()| true)))
        }
        Command::Check { config, repair } => {
            with_settings(&config, |_, settings| report_outcome(coffer::cli::run_check(settings, repair)))
        }
        Command::Backup { config, command } => with_settings(&config, |file, settings| {
            report_outcome(coffer::backup::command::run(settings, file, command))
        }),
        Command::Extract { kind, max_chars, max_bytes, memory, cpu_seconds } => {
            let limits = coffer::search::extract::child::ChildLimits { max_chars, max_bytes, memory, cpu_seconds };
            coffer::search::extract::child::run(kind, &limits)
        }
        Command::Reindex(args) => with_settings(&args, |_, settings| match coffer::reindex::run(&settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(coffer::reindex::ReindexError::ServerRunning) => {
                eprintln!("coffer: {}", coffer::reindex::ReindexError::ServerRunning);
                ExitCode::from(EXIT_TEMPFAIL)
            }
            Err(err) => {
                eprintln!("coffer: {err:#}");
                ExitCode::FAILURE
            }
        }),
        Command::Serve(args) => with_settings(&args, |_, settings| serve(args.config.clone(), settings)),
    }
}

/// Runs `command` with the loaded settings, or says why they cannot be used (exit 2).
fn with_settings(config: &ConfigArg, command: impl FnOnce(Option<PathBuf>, Settings) -> ExitCode) -> ExitCode {
    match load_settings(config.config.as_deref()) {
        Ok((file, settings)) => command(file, settings),
        Err(err) => {
            eprintln!("coffer: {err}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Exit 0 when the command succeeded and found nothing wrong, 1 otherwise.
fn report(outcome: anyhow::Result<bool>) -> ExitCode {
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("coffer: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a maintenance command: 0 ok, 1 damage found or failed, 3 refused.
fn report_outcome(outcome: anyhow::Result<coffer::cli::Outcome>) -> ExitCode {
    match outcome {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) => {
            eprintln!("coffer: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Makes glibc hand every allocation of 1 MiB or more straight back to the kernel when freed.
/// By default it raises that threshold after the first large free, so the password hash's
/// working memory (19 MiB per login) would stay resident for the life of the process.
/// Fixing that threshold also fixes the trim threshold at its 128 KiB default, which returns
/// and re-faults heap pages constantly under a stream of 16 KiB network buffers (100,000 page
/// faults per GiB uploaded, some 15% of the upload's speed); up to 8 MiB of free heap is kept.
fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called before any other thread exists; mallopt only changes allocator tuning.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

fn serve(config: Option<PathBuf>, settings: Settings) -> ExitCode {
    return_large_allocations();
    // Everything Coffer writes (database, keys, files) is for its own user only.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    coffer::telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let (signals, hangups) =
            match stop_on_signal(shutdown.clone()).and_then(|stop| Ok((stop, signal(SignalKind::hangup())?))) {
                Ok(handlers) => handlers,
                Err(err) => {
                    tracing::error!(error = %err, "cannot install signal handlers");
                    return ExitCode::FAILURE;
                }
            };
        tokio::spawn(signals);
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(err) => {
                tracing::error!(error = format!("{err:#}"), "cannot start");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(reload_on_hangup(hangups, config, app.reloader(), app.status_line()));
        app.run_until_stopped(shutdown).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Reloads the configuration on every SIGHUP (`systemctl reload`). A file that does not load
/// is rejected whole and the running configuration stays.
async fn reload_on_hangup(mut hangups: Signal, config: Option<PathBuf>, reloader: Arc<Reloader>, status: StatusLine) {
    while hangups.recv().await.is_some() {
        coffer::systemd::reloading();
        tracing::info!(signal = "SIGHUP", "reloading the configuration");
        let outcome = match load_settings(config.as_deref()) {
            Ok((_, settings)) => reloader.apply(settings).await.map_err(|err| format!("{err:#}")),
            Err(err) => Err(err.to_string()),
        };
        match outcome {
            Ok(outcome) => {
                tracing::info!(
                    applied = %outcome.applied.join(", "),
                    certificate_reloaded = outcome.certificate_reloaded,
                    "configuration reloaded"
                );
                if !outcome.needs_restart.is_empty() {
                    tracing::warn!(
                        keys = %outcome.needs_restart.join(", "),
                        "these changed settings keep their running values until a restart"
                    );
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "configuration rejected; the running configuration stays")
            }
        }
        coffer::systemd::ready(&status.render().await);
    }
}

/// Installs the SIGTERM and SIGINT handlers at once (before anything is served, so an early
/// signal is never met by the default action) and returns the task that waits for them.
fn stop_on_signal(shutdown: CancellationToken) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        shutdown.cancel();
        coffer::systemd::stopping();
        tracing::info!(signal = name, "shutting down: refusing new connections, letting requests in flight finish");
    })
}
