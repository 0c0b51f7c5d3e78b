//! `coffer backup push` with the real rsync: to an rsync daemon this test starts on
//! 127.0.0.1, over a remote shell, and to a directory; the marker arrives last, targets
//! without this instance's marker are refused, rsync's failures are named.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::accounts::call;
use crate::backup::{backup_toml, coffer_backup, complete_snapshots, reached, spawn_paused};
use crate::files::{admin_token, download, put, sha256_hex};
use crate::helpers::{Options, PATIENCE, TestApp, eventually, is_root, spawn_app};

const MODULE_PASSWORD: &str = "s3cret-module-pass";

/// An rsync daemon on 127.0.0.1 with one module, `coffer`, that needs a password.
struct RsyncDaemon {
    child: Child,
    port: u16,
    /// What the module holds (the remote backup directory).
    remote: PathBuf,
    dir: tempfile::TempDir,
}

impl RsyncDaemon {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote");
        std::fs::create_dir(&remote).unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::write(&secrets, format!("coffer:{MODULE_PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
        // As root the daemon would switch to `nobody`: keep it as the user running the test.
        let identity = if is_root() { "uid = root\ngid = root\n" } else { "" };
        let config = dir.path().join("rsyncd.conf");
        let base = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "pid file = {base}/rsyncd.pid\nlock file = {base}/rsyncd.lock\nlog file = {base}/rsyncd.log\n\
                 use chroot = false\n{identity}[coffer]\npath = {}\nread only = false\nauth users = coffer\n\
                 secrets file = {}\nstrict modes = true\n",
                remote.display(),
                secrets.display()
            ),
        )
        .unwrap();
        // A port this test owns: the kernel picks a free one, the daemon takes it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("rsync")
            .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--config={}", config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsync is installed (tests/run installs it)");
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the rsync daemon did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, port, remote, dir }
    }

    fn url(&self) -> String {
        format!("rsync://coffer@127.0.0.1:{}/coffer", self.port)
    }

    /// A password file (0600) holding `password`.
    fn password_file(&self, password: &str) -> PathBuf {
        let path = self.dir.path().join(format!("password-{}", sha256_hex(password.as_bytes())));
        std::fs::write(&path, format!("{password}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server with a few files, a marked backup directory and one snapshot in it.
async fn app_with_a_snapshot(temp: &Path, extra_toml: &str) -> (TestApp, PathBuf, Vec<(String, Vec<u8>)>) {
    let backups = temp.join("backups");
    let app = spawn_app(Options { toml: format!("{}{extra_toml}", backup_toml(&backups)), ..Options::default() });
    let token = admin_token(&app).await;
    let mut files = Vec::new();
    for index in 0..6u8 {
        let data = vec![index; 30_000 + index as usize];
        let (_, file) = put(&app, &token, &format!("name=pushed-{index}"), data.clone()).await;
        files.push((file["id"].as_str().unwrap().to_owned(), data));
    }
    assert_eq!(coffer_backup(&app.config, &["init"], &[]).0, 0);
    let (code, stdout, stderr) = coffer_backup(&app.config, &["create"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    (app, backups, files)
}

/// Restores the newest complete snapshot of `from` into a new state dir, serves it and checks
/// every file.
async fn restore_and_check(app: &TestApp, from: &Path, into: &Path, files: &[(String, Vec<u8>)]) {
    let (code, stdout, stderr) =
        coffer_backup(&app.config, &["restore", "--from", from.to_str().unwrap(), "--to", into.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let password = crate::auth::admin_password(app);
    let server = spawn_app(Options { state_dir: Some(into.to_path_buf()), ..Options::default() });
    let (status, session) = crate::auth::login(&server, "admin", &password).await;
    assert_eq!(status, 200, "{session}");
    let token = session["access_token"].as_str().unwrap();
    for (id, data) in files {
        let body = download(&server, token, id).await.bytes().await.unwrap();
        assert_eq!(sha256_hex(&body), sha256_hex(data), "file {id}");
    }
}

#[tokio::test]
async fn a_snapshot_pushed_to_an_rsync_daemon_restores_from_the_remote_copy() {
    let temp = tempfile::tempdir().unwrap();
    let daemon = RsyncDaemon::start();
    let password = daemon.password_file(MODULE_PASSWORD);
    let toml = format!("push_to = {:?}\npush_password_file = {:?}\n", daemon.url(), password.display().to_string());
    let (app, backups, files) = app_with_a_snapshot(temp.path(), &toml).await;

    // An empty target has no marker: nothing is pushed until it is started on purpose.
    let (code, _, stderr) = coffer_backup(&app.config, &["push"], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("has no COFFER-BACKUP marker") && stderr.contains("--init"), "{stderr}");
    assert_eq!(std::fs::read_dir(&daemon.remote).unwrap().count(), 0, "written into a target without a marker");

    let (code, stdout, stderr) = coffer_backup(&app.config, &["push", "--init"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("started a new remote copy"), "{stdout}");
    assert_eq!(complete_snapshots(&daemon.remote), complete_snapshots(&backups));
    let marker = std::fs::read_to_string(daemon.remote.join("COFFER-BACKUP")).unwrap();
    assert_eq!(marker, std::fs::read_to_string(backups.join("COFFER-BACKUP")).unwrap());
    // Pushing again sends nothing new and keeps the copy whole.
    let (code, stdout, stderr) = coffer_backup(&app.config, &["push"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, _) =
        coffer_backup(&app.config, &["verify", "--read-data", "--from", daemon.remote.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stdout}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backups.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["last_push_status"], "ok");

    restore_and_check(&app, &daemon.remote, &temp.path().join("restored"), &files).await;
}

#[tokio::test]
async fn a_push_killed_before_the_marker_leaves_no_restorable_remote_snapshot() {
    let temp = tempfile::tempdir().unwrap();
    let daemon = RsyncDaemon::start();
    let password = daemon.password_file(MODULE_PASSWORD);
    let toml = format!("push_to = {:?}\npush_password_file = {:?}\n", daemon.url(), password.display().to_string());
    let (app, backups, files) = app_with_a_snapshot(temp.path(), &toml).await;
    let pause = temp.path().join("pause");
    let mut push = spawn_paused(&app.config, &["push", "--init"], &pause);
    assert!(eventually(|| reached(&pause).exists()).await, "the push never got to the marker");
    push.kill().unwrap();
    push.wait().unwrap();
    std::fs::remove_file(&pause).unwrap();

    let id = complete_snapshots(&backups).remove(0);
    let remote_snapshot = daemon.remote.join("snapshots").join(&id);
    assert!(remote_snapshot.join("manifest.json").is_file(), "the data arrived");
    assert!(!remote_snapshot.join("COMPLETE").exists(), "the marker arrived before the push finished");
    let remote = daemon.remote.to_str().unwrap();
    let (_, listed, _) = coffer_backup(&app.config, &["list", "--from", remote], &[]);
    assert!(listed.contains(&format!("{id} incomplete")), "{listed}");
    let target = temp.path().join("from-the-partial-push");
    let (code, _, stderr) =
        coffer_backup(&app.config, &["restore", "--from", remote, "--to", target.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(!target.exists());

    // The next push finishes the copy.
    let (code, stdout, stderr) = coffer_backup(&app.config, &["push"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(remote_snapshot.join("COMPLETE").is_file());
    restore_and_check(&app, &daemon.remote, &temp.path().join("restored"), &files).await;
}

#[tokio::test]
async fn a_wrong_daemon_password_fails_with_rsyncs_exit_code_and_message() {
    let temp = tempfile::tempdir().unwrap();
    let daemon = RsyncDaemon::start();
    let wrong = daemon.password_file("not-the-password");
    let toml = format!("push_to = {:?}\npush_password_file = {:?}\n", daemon.url(), wrong.display().to_string());
    let (app, backups, _) = app_with_a_snapshot(temp.path(), &toml).await;
    let (code, _, stderr) = coffer_backup(&app.config, &["push", "--init"], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("exit code 5") && stderr.contains("wrong password"), "{stderr}");
    assert!(stderr.contains("@ERROR: auth failed on module coffer"), "rsync's own words: {stderr}");
    assert!(!stderr.contains("not-the-password"), "the password reached the output");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backups.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["last_push_status"], "failed");
    assert_eq!(std::fs::read_dir(&daemon.remote).unwrap().count(), 0);
}

#[tokio::test]
async fn push_refuses_a_target_that_holds_another_instances_backups() {
    let temp = tempfile::tempdir().unwrap();
    let (app, _, _) = app_with_a_snapshot(temp.path(), "").await;
    let disk = temp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    std::fs::write(disk.join("COFFER-BACKUP"), "format=1\ninstance_id=another-instance\n").unwrap();
    let (code, _, stderr) = coffer_backup(&app.config, &["push", "--to", disk.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("another Coffer instance (another-instance)"), "{stderr}");
    assert_eq!(std::fs::read_dir(&disk).unwrap().count(), 1);
    // --init starts only an empty target.
    std::fs::remove_file(disk.join("COFFER-BACKUP")).unwrap();
    std::fs::write(disk.join("family-photos.txt"), "not ours").unwrap();
    let (code, _, stderr) = coffer_backup(&app.config, &["push", "--init", "--to", disk.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("is not empty (family-photos.txt)"), "{stderr}");
}

/// Over a remote shell (`host:/path`): the shell here runs the command locally, as ssh would
/// on the remote host. The remote copy keeps what the retention rules keep.
#[tokio::test]
async fn push_over_a_remote_shell_applies_retention_to_the_remote_copy() {
    let temp = tempfile::tempdir().unwrap();
    let shell = temp.path().join("fakessh");
    std::fs::write(&shell, "#!/bin/sh\n# fakessh HOST COMMAND...: run COMMAND here.\nshift\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(&shell, std::fs::Permissions::from_mode(0o755)).unwrap();
    let remote = temp.path().join("offsite");
    let toml = format!(
        "push_to = \"vault:{}\"\npush_ssh_command = {:?}\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
        remote.display(),
        shell.display().to_string()
    );
    let (app, backups, files) = app_with_a_snapshot(temp.path(), &toml).await;
    let (code, stdout, stderr) = coffer_backup(&app.config, &["push", "--init"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let first = complete_snapshots(&remote);
    assert_eq!(first.len(), 1);
    let token = admin_token(&app).await;
    let (_, newer) = put(&app, &token, "name=newer", b"only in the second snapshot".to_vec()).await;
    let (deleted_id, _) = &files[0];
    assert_eq!(call(&app, "DELETE", &format!("/api/v1/files/{deleted_id}"), &token, None).await.0, 204);
    // `run`: create, verify, prune (keeps 1), push (the remote keeps 1 too).
    let (code, stdout, stderr) = coffer_backup(&app.config, &["run"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("removed remote snapshot {}", first[0])), "{stdout}");
    let kept = complete_snapshots(&remote);
    assert_eq!(kept, complete_snapshots(&backups));
    assert_eq!(kept.len(), 1);
    assert_ne!(kept, first);
    let mut all = files[1..].to_vec();
    all.push((newer["id"].as_str().unwrap().to_owned(), b"only in the second snapshot".to_vec()));
    restore_and_check(&app, &remote, &temp.path().join("restored"), &all).await;
    let (code, _, _) = coffer_backup(&app.config, &["verify", "--read-data", "--from", remote.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    // Nothing but the kept snapshot's blobs is left in the remote pool: the deleted file's
    // went with the first snapshot.
    assert!(stdout.contains("removed 1 unused remote blobs"), "{stdout}");
    assert_eq!(walk_files(&remote.join("pool")).len(), all.len());
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { found.extend(walk_files(&path)) } else { found.push(path) }
    }
    found
}

const BACKUP_UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/coffer-backup.service");
const UNIT_FILTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/unit-syscall-filter.py");

#[test]
fn the_backup_units_verify_cleanly_and_expose_at_most_1_5() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["coffer-backup.service", "coffer-backup.timer"] {
        let text = std::fs::read_to_string(format!("{}/systemd/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let text = text.replace("/usr/bin/coffer", crate::helpers::BIN).replace("man:coffer(1) ", "");
        assert!(!text.contains("/usr/bin/coffer"));
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let timer = std::fs::read_to_string(dir.path().join("coffer-backup.timer")).unwrap();
    for setting in ["OnCalendar=*-*-* 03:15:00", "RandomizedDelaySec=30m", "Persistent=true"] {
        assert!(timer.lines().any(|line| line == setting), "the timer lacks {setting}");
    }
    let service = std::fs::read_to_string(dir.path().join("coffer-backup.service")).unwrap();
    for setting in ["Type=oneshot", "User=coffer", "IOSchedulingClass=idle", "Nice=10", "ProtectSystem=strict"] {
        assert!(service.lines().any(|line| line == setting), "the service lacks {setting}");
    }
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .args(["coffer-backup.service", "coffer-backup.timer"].map(|name| dir.path().join(name)))
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(verify.status.success() && complaints.trim().is_empty(), "{complaints}");
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=15"])
        .arg(dir.path().join("coffer-backup.service"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout).into_owned();
    assert!(security.status.success(), "exposure above 1.5:\n{report}");
}

/// `coffer backup run` (and the rsync it starts) under the backup unit's system call filter
/// and MemoryDenyWriteExecute=, as systemd would run it.
#[tokio::test]
async fn backup_run_and_its_rsync_work_under_the_backup_units_syscall_filter() {
    let temp = tempfile::tempdir().unwrap();
    let offsite = temp.path().join("offsite");
    let toml = format!("push_to = {:?}\n", offsite.display().to_string());
    let (app, _, files) = app_with_a_snapshot(temp.path(), &toml).await;
    let (code, _, stderr) = coffer_backup(&app.config, &["push", "--init"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let output = Command::new(UNIT_FILTER)
        .args([BACKUP_UNIT, crate::helpers::BIN, "backup", "run", "--config", app.config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("pushed snapshot"), "{text}");
    assert_eq!(complete_snapshots(&offsite).len(), 2);
    restore_and_check(&app, &offsite, &temp.path().join("restored"), &files).await;
}
