//! Running the real `rsync`: the target forms it accepts, the options every pass shares, and
//! its exit codes turned into errors that say what went wrong.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::BackupSettings;

#[derive(Debug, thiserror::Error)]
pub enum RsyncError {
    #[error("rsync is not installed; install it (apt install rsync) to push backups")]
    NotInstalled,
    #[error("cannot run rsync: {0}")]
    Spawn(std::io::Error),
    #[error("rsync ({what}) failed with exit code {code}: {meaning}{detail}")]
    Exit { what: String, code: i32, meaning: &'static str, detail: String },
    #[error("rsync ({what}) was killed by a signal")]
    Killed { what: String },
}

/// What rsync's exit codes mean (rsync(1), EXIT VALUES), with the likely cause.
pub fn meaning(code: i32) -> &'static str {
    match code {
        1 => "syntax or usage error",
        2 => "protocol incompatibility",
        3 => "errors selecting input/output files or directories (does the target path exist?)",
        4 => "requested action not supported by the other side",
        5 => "error starting the client-server protocol (wrong password, unknown module or user?)",
        6 => "the daemon cannot append to its log file",
        10 => "error in socket I/O (is the daemon reachable?)",
        11 => "error in file I/O (is the target full or read-only?)",
        12 => "error in the rsync protocol data stream (the connection broke, or the remote rsync failed)",
        13 => "errors with program diagnostics",
        14 => "error in IPC code",
        20 => "interrupted (SIGUSR1 or SIGINT)",
        21 => "some error returned by waitpid()",
        22 => "cannot allocate memory",
        23 => "partial transfer: some files could not be transferred",
        24 => "partial transfer: some source files vanished",
        25 => "the --max-delete limit stopped deletions",
        30 => "timeout in data send/receive (push_timeout)",
        35 => "timeout waiting for the daemon connection",
        255 => "the remote shell failed (ssh: host key, authentication or network?)",
        _ => "unknown error",
    }
}

/// Where a push goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A directory on this machine (a mounted disk).
    Local(PathBuf),
    /// `[user@]host:/path`, through the remote shell.
    Ssh(String),
    /// `rsync://[user@]host[:port]/module/path` or `[user@]host::module/path`.
    Daemon(String),
}

impl Target {
    pub fn parse(text: &str) -> Self {
        let text = text.trim().trim_end_matches('/');
        if text.starts_with("rsync://") {
            return Self::Daemon(text.to_owned());
        }
        // rsync's own rule: a colon before the first slash names a host.
        match text.find(':') {
            Some(colon) if !text[..colon].contains('/') => {
                if text[colon + 1..].starts_with(':') {
                    Self::Daemon(text.to_owned())
                } else {
                    Self::Ssh(text.to_owned())
                }
            }
            _ => Self::Local(PathBuf::from(text)),
        }
    }

    /// The argument naming `relative` inside the target (`""` for the target itself).
    pub fn at(&self, relative: &str) -> OsString {
        let base: OsString = match self {
            Self::Local(path) => path.clone().into_os_string(),
            Self::Ssh(text) | Self::Daemon(text) => text.into(),
        };
        let mut arg = base;
        arg.push("/");
        arg.push(relative);
        arg
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Ssh(text) | Self::Daemon(text) => f.write_str(text),
        }
    }
}

/// rsync with the options every pass to one target shares.
pub struct Rsync {
    common: Vec<OsString>,
}

impl Rsync {
    pub fn new(target: &Target, settings: &BackupSettings) -> Self {
        let seconds = settings.push_timeout.0.as_secs().max(1);
        let mut common: Vec<OsString> = vec![format!("--timeout={seconds}").into()];
        match target {
            Target::Ssh(_) => {
                common.push("-e".into());
                common.push(settings.push_ssh_command.clone().into());
            }
            Target::Daemon(_) => {
                common.push(format!("--contimeout={seconds}").into());
                if let Some(file) = &settings.push_password_file {
                    let mut arg = OsString::from("--password-file=");
                    arg.push(file);
                    common.push(arg);
                }
            }
            Target::Local(_) => {}
        }
        Self { common }
    }

    fn command(&self, args: &[OsString]) -> Command {
        let mut command = Command::new("rsync");
        command.args(&self.common).args(args).stdin(Stdio::null());
        // Never prompt for a password: a missing one is an error, not a hang.
        command.env_remove("RSYNC_PASSWORD");
        command
    }

    /// Runs a pass that prints nothing worth keeping; on a terminal, rsync's own overall
    /// progress is shown.
    pub fn transfer(&self, what: &str, args: &[OsString]) -> Result<(), RsyncError> {
        let mut args = args.to_vec();
        let terminal = std::io::stderr().is_terminal();
        if terminal {
            args.push("--info=progress2".into());
        }
        let mut command = self.command(&args);
        command.stdout(if terminal { Stdio::inherit() } else { Stdio::null() });
        run(what, command).map(|_| ())
    }

    /// Runs a pass and returns what it prints (listings).
    pub fn output(&self, what: &str, args: &[OsString]) -> Result<String, RsyncError> {
        let mut command = self.command(args);
        command.stdout(Stdio::piped());
        run(what, command)
    }
}

fn run(what: &str, mut command: Command) -> Result<String, RsyncError> {
    command.stderr(Stdio::piped());
    let output = command.output().map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound { RsyncError::NotInstalled } else { RsyncError::Spawn(err) }
    })?;
    match output.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        Some(code) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(4)..].join("\n    ");
            let detail = if tail.is_empty() { String::new() } else { format!("\n    {tail}") };
            Err(RsyncError::Exit { what: what.to_owned(), code, meaning: meaning(code), detail })
        }
        None => Err(RsyncError::Killed { what: what.to_owned() }),
    }
}

/// The names in `rsync --list-only` output (the last field of each line), without ".".
pub fn listed_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|name| *name != ".")
        .map(str::to_owned)
        .collect()
}

/// `path` as an rsync source argument for a directory's contents (trailing slash).
pub fn contents_of(path: &Path) -> OsString {
    let mut arg = path.as_os_str().to_owned();
    arg.push("/");
    arg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_told_apart_as_rsync_does() {
        assert_eq!(Target::parse("/mnt/usb/coffer/"), Target::Local("/mnt/usb/coffer".into()));
        assert_eq!(Target::parse("./a:b"), Target::Local("./a:b".into()));
        assert_eq!(Target::parse("backup@vault:/srv/coffer"), Target::Ssh("backup@vault:/srv/coffer".into()));
        assert_eq!(Target::parse("vault::coffer/x"), Target::Daemon("vault::coffer/x".into()));
        let daemon = Target::parse("rsync://coffer@127.0.0.1:8730/coffer/");
        assert_eq!(daemon.at("pool/"), OsString::from("rsync://coffer@127.0.0.1:8730/coffer/pool/"));
    }

    #[test]
    fn every_documented_exit_code_has_a_meaning() {
        for code in [1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24, 25, 30, 35, 255] {
            assert_ne!(meaning(code), "unknown error", "{code}");
        }
    }
}
