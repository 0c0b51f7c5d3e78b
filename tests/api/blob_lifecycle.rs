//! Blobs against the uploads that reference them: deletion re-checks the database at the
//! moment it deletes, and stored blobs are read-only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::accounts::call;
use crate::files::{admin_token, download, put, sha256_hex};
use crate::helpers::{BIN, Options, TestApp, eventually, spawn_app, spawn_default};
use crate::search::found_within;

fn blob(app: &TestApp, sha256: &str) -> PathBuf {
    app.state_dir.join("blobs").join(&sha256[..2]).join(&sha256[2..4]).join(sha256)
}

/// `coffer check --repair` reads the file table, then hashes every blob (hours on a large
/// store), then removes the orphans it found. Here the hashing is held at an exact point
/// from outside: the one referenced blob is replaced by a named pipe, which the check blocks
/// on until the test writes the contents. Meanwhile an upload stores the contents of an old
/// orphan again, so its blob is referenced when the check gets to deleting it.
#[tokio::test]
async fn repair_keeps_an_orphan_that_an_upload_referenced_while_the_check_was_hashing() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let paused_contents = b"hashed while an upload commits".to_vec();
    let (_, paused) = put(&app, &token, "name=paused", paused_contents.clone()).await;
    let reused_contents = b"stored, deleted, stored again".to_vec();
    let (_, deleted) = put(&app, &token, "name=deleted", reused_contents.clone()).await;
    let (status, _) =
        call(&app, "DELETE", &format!("/api/v1/files/{}", deleted["id"].as_str().unwrap()), &token, None).await;
    assert_eq!(status, 204);
    let orphan = blob(&app, &sha256_hex(&reused_contents));
    // The orphan is hours old, as a deleted file's blob is long after the delete.
    let hours_ago = SystemTime::now() - Duration::from_secs(3 * 3600);
    std::fs::File::open(&orphan).unwrap().set_modified(hours_ago).unwrap();

    // The indexer reads new contents too: it must be done with the blob before the pipe
    // replaces it, or it could take the bytes meant for the check.
    let paused_id = paused["id"].as_str().unwrap();
    assert!(found_within(&app, &token, "hashed", paused_id, Duration::from_secs(10)).await, "never indexed");
    let pipe = blob(&app, paused["sha256"].as_str().unwrap());
    std::fs::remove_file(&pipe).unwrap();
    let path = std::ffi::CString::new(pipe.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let check = Command::new(BIN)
        .args(["check", "--repair", "--config", app.config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A writer can open the pipe without blocking only once its reader (the check) has. The
    // first writer that opens is kept: closing it would hand the check an empty blob.
    let writer = std::cell::RefCell::new(None);
    let reached = eventually(|| {
        let opened = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&pipe).ok();
        let found = opened.is_some();
        *writer.borrow_mut() = opened;
        found
    })
    .await;
    assert!(reached, "the check never reached the blob");
    let mut writer = writer.into_inner().unwrap();

    let (status, again) = put(&app, &token, "name=again", reused_contents.clone()).await;
    assert_eq!(status, 201, "{again}");
    writer.write_all(&paused_contents).unwrap();
    drop(writer);
    let output = tokio::task::spawn_blocking(move || check.wait_with_output().unwrap()).await.unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(report.contains(&format!("orphan blob {}", sha256_hex(&reused_contents))), "{report}");
    assert!(orphan.exists(), "repair deleted a blob a committed file references:\n{report}");
    let response = download(&app, &token, again["id"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), reused_contents.as_slice());
}

#[tokio::test]
async fn stored_blobs_are_read_only_and_blobs_of_older_versions_become_so_at_start() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let mut app = spawn_app(Options { state_dir: Some(state_dir.clone()), ..Options::default() });
    let token = admin_token(&app).await;
    let (_, stored) = put(&app, &token, "name=stored", b"never rewritten".to_vec()).await;
    let path = blob(&app, stored["sha256"].as_str().unwrap());
    let mode = || std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(), 0o400);
    app.terminate();
    assert!(app.wait_exit().await.success());
    // As an earlier version left it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let app = spawn_app(Options { state_dir: Some(state_dir), ..Options::default() });
    assert_eq!(mode(), 0o400);
    app.logs.wait_for_message("made blobs stored by an earlier version read-only (0400)").expect("logged");
}
