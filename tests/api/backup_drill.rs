//! The restore drill, end to end through the binary: seeded accounts, deduplicated files, a
//! deleted file, a password share with a download limit and an API token; a backup taken while
//! 20 uploads stream and blob collection runs every second; restored into an empty directory
//! and served again.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::accounts::call;
use crate::auth::{admin_password, login, login_admin, me_status, refresh};
use crate::backup::{
    backup_toml, coffer_backup, complete_snapshots, contents, finish, pool_blob, reached, spawn_paused,
};
use crate::files::{PASSWORD, download, put, sha256_hex, user_token};
use crate::helpers::{BIN, Options, TestApp, eventually, spawn_app};
use crate::shares::{audit_of, share};

/// (id, owner id, name, size, sha256) of every file row in a snapshot's database copy.
fn snapshot_rows(snapshot: &Path) -> Vec<(String, String, String, i64, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(snapshot.join("coffer.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = conn.prepare("SELECT id, owner_id, name, size, sha256 FROM files ORDER BY id").unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A body that arrives in `chunks` pieces of 16 KiB, one every `pause`.
fn trickle(seed: u64, chunks: usize, pause: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0usize, move |sent| async move {
        if sent == chunks {
            return None;
        }
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(contents(seed * 1000 + sent as u64, 16 << 10)), sent + 1))
    });
    reqwest::Body::wrap_stream(stream)
}

async fn listing(app: &TestApp, token: &str) -> BTreeSet<(String, String, u64)> {
    let (status, page) = call(app, "GET", "/api/v1/files?limit=1000", token, None).await;
    assert_eq!(status, 200, "{page}");
    page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| {
            (
                file["id"].as_str().unwrap().to_owned(),
                file["name"].as_str().unwrap().to_owned(),
                file["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn share_download(app: &TestApp, token: &str, password: &str) -> reqwest::RequestBuilder {
    app.client.get(app.url(&format!("/s/{token}/download"))).header("x-share-password", password)
}

/// The drill an admin would run, end to end: seeded accounts, deduplicated files, a deleted
/// file, a password share with a download limit and an API token; a backup taken while 20
/// uploads stream and the collector runs every second; restored into an empty directory and
/// served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_drill_backup_under_load_restores_everything_and_rolls_sessions_back() {
    let temp = tempfile::tempdir().unwrap();
    let backups = temp.path().join("backups");
    let toml = format!("[storage]\ngc_interval = \"1s\"\n{}", backup_toml(&backups));
    let app = spawn_app(Options { toml: toml.clone(), ..Options::default() });
    let admin_session = login_admin(&app).await;
    let admin = admin_session["access_token"].as_str().unwrap().to_owned();
    let (alice, alice_id) = user_token(&app, &admin, "alice").await;
    let (bob, bob_id) = user_token(&app, &admin, "bob").await;
    let twin = contents(1, 300_000);
    let (_, report) = put(&app, &alice, "name=report.pdf", twin.clone()).await;
    let (status, copy) = put(&app, &bob, "name=copy-of-report.pdf", twin.clone()).await;
    assert_eq!((status, &copy["sha256"]), (StatusCode::CREATED, &report["sha256"]), "deduplicated");
    for index in 0..10u64 {
        assert_eq!(put(&app, &alice, &format!("name=notes-{index}.txt"), contents(10 + index, 5_000)).await.0, 201);
        assert_eq!(put(&app, &bob, &format!("name=data-{index}.bin"), contents(20 + index, 70_000)).await.0, 201);
    }
    let (_, gone) = put(&app, &admin, "name=gone.txt", b"deleted before the backup".to_vec()).await;
    let gone_path = format!("/api/v1/files/{}", gone["id"].as_str().unwrap());
    assert_eq!(call(&app, "DELETE", &gone_path, &admin, None).await.0, 204);
    let (_, doomed) = put(&app, &alice, "name=deleted-during-the-backup.txt", contents(3, 40_000)).await;
    let made =
        share(&app, &alice, report["id"].as_str().unwrap(), json!({"password": "share-secret-77", "max_downloads": 3}))
            .await;
    let (share_id, share_token) = (made["id"].as_str().unwrap().to_owned(), made["token"].as_str().unwrap().to_owned());
    let first = share_download(&app, &share_token, "share-secret-77").send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.bytes().await.unwrap().as_ref(), twin.as_slice());
    let (status, api_token) = call(
        &app,
        "POST",
        "/api/v1/me/tokens",
        &bob,
        Some(json!({"name": "nightly script", "scope": "read-only", "expires_in_days": 30})),
    )
    .await;
    assert_eq!(status, 201, "{api_token}");
    let api_token = api_token["token"].as_str().unwrap().to_owned();
    let (code, stdout, stderr) = coffer_backup(&app.config, &["init"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // Twenty uploads stream throughout the backup (about 3 s each).
    let uploads: Vec<_> = (0..20u64)
        .map(|index| {
            let token = if index % 2 == 0 { alice.clone() } else { bob.clone() };
            let request = app
                .client
                .put(app.url(&format!("/api/v1/files/upload?name=streaming-{index}.bin")))
                .bearer_auth(token)
                .body(trickle(100 + index, 40, Duration::from_millis(75)));
            tokio::spawn(async move { request.send().await.map(|response| response.status()) })
        })
        .collect();
    let tmp = app.state_dir.join("tmp");
    assert!(
        eventually(|| std::fs::read_dir(&tmp).map(|dir| dir.count() >= 10).unwrap_or(false)).await,
        "uploads started"
    );
    let pause = temp.path().join("pause");
    let backup = spawn_paused(&app.config, &["create"], &pause);
    assert!(eventually(|| reached(&pause).exists()).await, "the backup never copied the database");
    // The database is copied (this is the snapshot's moment). A file deleted now leaves a
    // blob that collection would remove, but the backup holds collection off.
    let doomed_path = format!("/api/v1/files/{}", doomed["id"].as_str().unwrap());
    assert_eq!(call(&app, "DELETE", &doomed_path, &alice, None).await.0, 204);
    let held_off = app.logs.wait_for_message("a backup is running; unused blobs wait for the next round");
    assert!(held_off.is_some(), "collection ran during the backup");
    std::fs::remove_file(&pause).unwrap();
    let (code, output) = finish(backup).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("complete"), "{output}");
    for upload in uploads {
        assert_eq!(upload.await.unwrap().unwrap(), StatusCode::CREATED, "an upload failed during the backup");
    }
    // Collection resumes: the deleted file's blob leaves the store, but not the snapshot.
    let doomed_sha = doomed["sha256"].as_str().unwrap().to_owned();
    let live_blob = app.state_dir.join("blobs").join(&doomed_sha[..2]).join(&doomed_sha[2..4]).join(&doomed_sha);
    assert!(eventually(|| !live_blob.exists()).await, "collection did not resume after the backup");

    let ids = complete_snapshots(&backups);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let snapshot = backups.join("snapshots").join(&ids[0]);
    let rows = snapshot_rows(&snapshot);
    assert!(rows.iter().any(|row| row.0 == doomed["id"].as_str().unwrap()), "the file deleted after the copy is in it");
    assert!(!rows.iter().any(|row| row.0 == gone["id"].as_str().unwrap()), "the file deleted before is not");
    for (id, _, name, size, sha256) in &rows {
        let data = std::fs::read(pool_blob(&backups, sha256)).unwrap_or_else(|err| panic!("{name} ({id}): {err}"));
        assert_eq!((data.len() as i64, sha256_hex(&data)), (*size, sha256.clone()), "{name} ({id})");
    }
    let (code, stdout, stderr) = coffer_backup(&app.config, &["verify", "--read-data"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let restored = temp.path().join("restored");
    let (code, stdout, stderr) = coffer_backup(&app.config, &["restore", "--to", restored.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("sessions of the snapshot were ended"), "{stdout}");
    assert!(stdout.contains("\"nightly script\" of bob"), "the valid API token is named: {stdout}");
    for stale in ["coffer.db-wal", "coffer.db-shm"] {
        assert!(!restored.join(stale).exists(), "{stale} beside the restored database");
    }
    let server = spawn_app(Options { state_dir: Some(restored.clone()), toml, ..Options::default() });

    let admin_again = login(&server, "admin", &admin_password(&app)).await;
    assert_eq!(admin_again.0, 200, "{}", admin_again.1);
    let admin_again = admin_again.1["access_token"].as_str().unwrap().to_owned();
    let mut tokens = std::collections::HashMap::new();
    for (name, id) in [("alice", &alice_id), ("bob", &bob_id)] {
        let (status, session) = login(&server, name, PASSWORD).await;
        assert_eq!(status, 200, "{name} cannot sign in: {session}");
        tokens.insert(id.clone(), session["access_token"].as_str().unwrap().to_owned());
    }
    for (owner, token) in &tokens {
        let expected: BTreeSet<(String, String, u64)> =
            rows.iter().filter(|row| &row.1 == owner).map(|row| (row.0.clone(), row.2.clone(), row.3 as u64)).collect();
        assert_eq!(listing(&server, token).await, expected, "listing of {owner}");
    }
    for (id, owner, name, _, sha256) in &rows {
        let token = tokens.get(owner).unwrap_or(&admin_again);
        let response = download(&server, token, id).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(&sha256_hex(&response.bytes().await.unwrap()), sha256, "{name} came back different");
    }

    // The share works with its password and kept its counter (1 of 3 used).
    assert_eq!(share_download(&server, &share_token, "wrong-password-1").send().await.unwrap().status(), 401);
    let again = share_download(&server, &share_token, "share-secret-77").send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().await.unwrap().as_ref(), twin.as_slice());
    let alice_token = &tokens[&alice_id];
    let (_, shared) = call(&server, "GET", &format!("/api/v1/shares/{share_id}"), alice_token, None).await;
    assert_eq!(shared["downloads"], 2, "{shared}");

    // Old sessions are refused; the API token made before the snapshot still works.
    assert_eq!(me_status(&server, &admin).await, 401, "a session from before the restore still works");
    let old_refresh = admin_session["refresh_token"].as_str().unwrap();
    assert_ne!(refresh(&server, old_refresh).await.0, 200, "a refresh token from before the restore still works");
    assert_eq!(me_status(&server, &api_token).await, 200);
    assert_eq!(audit_of(&server, &admin_again, "backup_restored").await.len(), 1);

    let check = Command::new(BIN).args(["check", "--config", server.config.to_str().unwrap()]).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{report}");
    assert!(report.contains(&format!("files checked: {}", rows.len())), "{report}");
}
