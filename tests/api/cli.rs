//! `coffer user ...` against the database of a running server.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::auth::{login, login_admin, me_status};
use crate::helpers::{BIN, TestApp, spawn_default};

/// Runs `coffer user <args>` on the app's config, feeding `stdin`.
fn user_command(app: &TestApp, args: &[&str], stdin: &str) -> (i32, String, String) {
    let config = &app.config;
    let mut child = Command::new(BIN)
        .arg("user")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn user_commands_manage_accounts_while_the_server_runs() {
    let app = spawn_default();
    let (code, stdout, stderr) = user_command(&app, &["add", "grace", "--admin"], "plum-quartz-ladder-71\n");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("created grace (admin"), "{stdout}");
    let (status, tokens) = login(&app, "grace", "plum-quartz-ladder-71").await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    let (code, stdout, _) = user_command(&app, &["list"], "");
    assert_eq!(code, 0);
    assert!(stdout.contains("admin") && stdout.contains("grace"), "{stdout}");

    let (code, _, stderr) = user_command(&app, &["add", "heidi"], "1234567890\n");
    assert_ne!(code, 0);
    assert!(stderr.contains("commonly used"), "{stderr}");

    let (code, _, _) = user_command(&app, &["passwd", "grace"], "another-fine-passphrase\n");
    assert_eq!(code, 0);
    assert_eq!(me_status(&app, &access).await, 401, "a new password ends the sessions");
    assert_eq!(login(&app, "grace", "another-fine-passphrase").await.0, 200);

    assert_eq!(user_command(&app, &["disable", "grace"], "").0, 0);
    assert_eq!(login(&app, "grace", "another-fine-passphrase").await.0, 401);
    assert_eq!(user_command(&app, &["enable", "grace"], "").0, 0);
    assert_eq!(user_command(&app, &["role", "grace", "user"], "").0, 0);

    let (code, _, stderr) = user_command(&app, &["role", "admin", "user"], "");
    assert_ne!(code, 0, "the last admin was demoted");
    assert!(stderr.contains("no enabled admin"), "{stderr}");
    assert_eq!(user_command(&app, &["delete", "grace"], "").0, 0);
    assert_eq!(login(&app, "grace", "another-fine-passphrase").await.0, 401);
    let (code, _, stderr) = user_command(&app, &["delete", "nobody"], "");
    assert_ne!(code, 0);
    assert!(stderr.contains("no such user"), "{stderr}");

    let admin = login_admin(&app).await;
    let audit = crate::accounts::call(
        &app,
        "GET",
        "/api/v1/audit?event=user_deleted",
        admin["access_token"].as_str().unwrap(),
        None,
    )
    .await
    .1;
    assert_eq!(audit["entries"][0]["ip"], "cli");
}

#[test]
fn user_commands_refuse_to_run_as_another_user_than_the_state_dir_owner() {
    let dir = tempfile::tempdir().unwrap();
    // A state dir someone else owns: as root, one given away to `nobody`; otherwise root's /var.
    let state = if rustix::process::geteuid().is_root() {
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        rustix::fs::chown(&state, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        state
    } else {
        std::path::PathBuf::from("/var")
    };
    let config = crate::helpers::write_config(dir.path(), &state, "");
    let output = Command::new(BIN).args(["user", "--config", config.to_str().unwrap(), "list"]).output().unwrap();
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sudo -u coffer"), "{stderr}");
    assert!(!state.join("coffer.db").exists(), "it created files before refusing");
}
