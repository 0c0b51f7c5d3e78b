//! `coffer user ...`: account administration on the server's own machine, through the same
//! rules and audit log as the admin API. Safe while the server runs (SQLite WAL with a busy
//! timeout; sessions are re-checked on every request, so changes apply at once).
//!
//! Passwords come from a prompt without echo, or from standard input when it is not a
//! terminal; never from the command line, where other users could read them.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::auth::{AccountChanges, AccountError, Actor, NewAccount};
use crate::config::Settings;
use crate::domain::Role;
use crate::startup::open_accounts;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is asked for (or read from standard input).
    Add {
        username: String,
        /// Make the account an admin.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        email: Option<String>,
        /// Storage quota in bytes.
        #[arg(long)]
        quota: Option<i64>,
    },
    /// List accounts.
    List,
    /// Set an account's password (ends its sessions).
    Passwd { username: String },
    /// Set an account's role (ends its sessions).
    Role {
        username: String,
        #[arg(value_parser = ["admin", "user"])]
        role: String,
    },
    /// Disable an account (ends its sessions; it can no longer sign in).
    Disable { username: String },
    /// Enable a disabled account.
    Enable { username: String },
    /// Delete an account and its sessions.
    Delete { username: String },
}

/// What a maintenance command (`check`, `backup ...`) found or did, as its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done, nothing wrong: exit 0.
    Ok,
    /// Damage found, or the operation failed: exit 1.
    Failed,
    /// Refused before changing anything (a backup running, a target that is not empty or not
    /// ours, a snapshot from a newer Coffer): exit 3.
    Refused,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failed => 1,
            Self::Refused => 3,
        }
    }
}

/// `coffer check [--repair]`: verifies every file's blob, naming each damaged file and its
/// owner, and lists what nothing needs; `--repair` hands the orphans to the collector, which
/// re-checks each under the database write lock before removing it.
pub fn run_check(settings: Settings, repair: bool) -> anyhow::Result<Outcome> {
    use crate::files::gc::{self, GcRound};
    use crate::storage::check::{self, REPAIR_MIN_AGE};
    check_owner(&settings)?;
    let state_dir = crate::state_dir::StateDir::new(&settings.storage.state_dir);
    if !state_dir.database().exists() {
        bail!("no database at {}; check storage.state_dir", state_dir.database().display());
    }
    let mut conn = crate::db::connect(&state_dir.database(), settings.database.busy_timeout.0)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    let rows = crate::db::files::content_refs(&conn)?;
    let store =
        crate::storage::BlobStore::new(state_dir.blobs_dir(), state_dir.tmp_dir(), crate::clock::Clock::system());
    let report = check::check(&store, rows)?;
    println!("database integrity: {integrity}");
    println!("files checked: {}", report.files_checked);
    for file in &report.missing {
        println!("MISSING  {file}: blob {} is gone", file.sha256);
    }
    for (file, problem) in &report.damaged {
        println!("DAMAGED  {file}: {problem}");
    }
    for blob in &report.orphan_blobs {
        println!("orphan blob {blob}");
    }
    for temp in &report.temp_files {
        println!("temp file {}", temp.display());
    }
    let healthy = integrity == "ok" && report.healthy();
    if !repair {
        return Ok(if healthy { Outcome::Ok } else { Outcome::Failed });
    }
    match gc::collect_blocking(&mut conn, &store, &state_dir.gc_lock(), &report.orphan_blobs, REPAIR_MIN_AGE)? {
        GcRound::HeldOff => {
            println!(
                "not repaired: a backup is running (it holds {}); run `coffer check --repair` again when it has finished",
                state_dir.gc_lock().display()
            );
            Ok(if healthy { Outcome::Refused } else { Outcome::Failed })
        }
        GcRound::Removed(removed) => {
            let mut temps = 0;
            for temp in report.temp_files.iter().filter(|path| check::untouched_for(&store, path, REPAIR_MIN_AGE)) {
                match std::fs::remove_file(temp) {
                    Ok(()) => temps += 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err).with_context(|| format!("cannot remove {}", temp.display())),
                }
            }
            println!(
                "removed {} orphan blobs and temp files (those untouched for an hour and still unreferenced)",
                removed.len() + temps
            );
            Ok(if healthy { Outcome::Ok } else { Outcome::Failed })
        }
    }
}

/// Runs as the state directory's owner only, so every file it creates stays usable by the
/// server (run it as `sudo -u coffer coffer user ...`).
pub(crate) fn check_owner(settings: &Settings) -> anyhow::Result<()> {
    let state_dir = &settings.storage.state_dir;
    let Ok(metadata) = std::fs::metadata(state_dir) else { return Ok(()) };
    let me = rustix::process::geteuid().as_raw();
    if metadata.uid() != me {
        bail!(
            "{} belongs to user id {}, but this runs as user id {me}; run it as the server's user, e.g. `sudo -u coffer coffer ...`",
            state_dir.display(),
            metadata.uid()
        );
    }
    Ok(())
}

/// Reads a new password: twice from a prompt without echo on a terminal, else one line of stdin.
fn read_new_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("cannot read the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = prompt_hidden("New password: ")?;
    let second = prompt_hidden("Repeat it: ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let original = tcgetattr(&stdin).context("cannot read terminal settings")?;
    let mut silent = original.clone();
    silent.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &silent).context("cannot turn off echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &original);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn explain(err: AccountError) -> anyhow::Error {
    anyhow::anyhow!("{err}")
}

pub fn run(settings: Settings, command: UserCommand) -> anyhow::Result<()> {
    check_owner(&settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (_, auth) = open_accounts(&settings, &crate::clock::Clock::system()).await?;
        let actor = Actor::cli();
        match command {
            UserCommand::Add { username, admin, email, quota } => {
                let password = read_new_password()?;
                let role = if admin { Role::Admin } else { Role::User };
                let account = NewAccount { username, password, email, role, quota_bytes: quota };
                let user = auth.create_user(&actor, account).await.map_err(explain)?;
                println!("created {} ({}, id {})", user.username, user.role, user.id);
            }
            UserCommand::List => {
                let mut after = None;
                println!("{:<32} {:<6} {:<9} ID", "USERNAME", "ROLE", "STATE");
                loop {
                    let page = auth.list_users(after.clone(), 500).await.map_err(explain)?;
                    for user in &page {
                        let state = if user.disabled { "disabled" } else { "enabled" };
                        println!("{:<32} {:<6} {:<9} {}", user.username, user.role, state, user.id);
                    }
                    match page.last() {
                        Some(last) if page.len() == 500 => after = Some(last.username.to_ascii_lowercase()),
                        _ => break,
                    }
                }
            }
            UserCommand::Passwd { username } => {
                let user = auth.find_user(&username).await.map_err(explain)?;
                let password = read_new_password()?;
                let changes = AccountChanges { password: Some(password), ..AccountChanges::default() };
                auth.update_user(&actor, &user.id, changes).await.map_err(explain)?;
                println!("password of {} changed; its sessions have ended", user.username);
            }
            UserCommand::Role { username, role } => {
                let user = auth.find_user(&username).await.map_err(explain)?;
                let role: Role = role.parse().map_err(anyhow::Error::msg)?;
                let changes = AccountChanges { role: Some(role), ..AccountChanges::default() };
                auth.update_user(&actor, &user.id, changes).await.map_err(explain)?;
                println!("{} is now {role}", user.username);
            }
            UserCommand::Disable { username } => set_disabled(&auth, &actor, &username, true).await?,
            UserCommand::Enable { username } => set_disabled(&auth, &actor, &username, false).await?,
            UserCommand::Delete { username } => {
                let user = auth.find_user(&username).await.map_err(explain)?;
                auth.delete_user(&actor, &user.id).await.map_err(explain)?;
                println!("deleted {}", user.username);
            }
        }
        Ok(())
    })
}

async fn set_disabled(auth: &crate::auth::Auth, actor: &Actor, username: &str, disabled: bool) -> anyhow::Result<()> {
    let user = auth.find_user(username).await.map_err(explain)?;
    let changes = AccountChanges { disabled: Some(disabled), ..AccountChanges::default() };
    auth.update_user(actor, &user.id, changes).await.map_err(explain)?;
    println!("{} is {}", user.username, if disabled { "disabled" } else { "enabled" });
    Ok(())
}
