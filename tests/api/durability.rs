//! Nothing acknowledged is lost, nothing half-stored is visible: full disks, power cuts,
//! and `coffer check`.

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::accounts::call;
use crate::auth::{admin_password, login};
use crate::files::{admin_token, download, put, sha256_hex};
use crate::helpers::{BIN, Options, TestApp, eventually, spawn_app};

fn slow_body(chunks: usize, chunk: usize, pause: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0usize, move |sent| async move {
        if sent == chunks {
            return None;
        }
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(vec![sent as u8; chunk]), sent + 1))
    });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn a_full_disk_gets_507_and_downloads_and_sign_in_keep_working() {
    let app = spawn_app(Options {
        tmpfs_mib: Some(24),
        toml: "[storage]\ndisk_reserve = \"0\"\n".into(),
        ..Options::default()
    });
    let token = admin_token(&app).await;
    let (status, small) = put(&app, &token, "name=small", b"still here".to_vec()).await;
    assert_eq!(status, 201);

    // Announced too big for the free space: refused before reading.
    let (status, body) = put(&app, &token, "name=announced", vec![1u8; 30 << 20]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::INSUFFICIENT_STORAGE, Some("insufficient_storage")));
    // Unannounced: the disk fills while streaming.
    let response = app
        .client
        .put(app.url("/api/v1/files/upload?name=streamed"))
        .bearer_auth(&token)
        .body(slow_body(60, 512 << 10, Duration::ZERO))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 507);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "insufficient_storage");
    assert_eq!(std::fs::read_dir(app.state_dir.join("tmp")).unwrap().count(), 0, "the partial upload was removed");

    let contents = download(&app, &token, small["id"].as_str().unwrap()).await.bytes().await.unwrap();
    assert_eq!(contents.as_ref(), b"still here");
    assert_eq!(login(&app, "admin", &admin_password(&app)).await.0, 200);
    assert!(!app.logs.text().contains("panicked"));
}

/// Runs `coffer check` on `app`'s state dir; (success, output).
fn coffer_check(app: &TestApp, repair: bool) -> (bool, String) {
    let config = &app.config;
    let mut command = Command::new(BIN);
    command.args(["check", "--config", config.to_str().unwrap()]);
    command.env("TESTING_COFFER_CLOCK_FILE", &app.clock_file);
    if repair {
        command.arg("--repair");
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
    )
}

#[tokio::test]
async fn repeated_hard_kills_during_uploads_lose_nothing_acknowledged_and_show_nothing_partial() {
    // The state outlives every server process, so the test owns it.
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let mut app = spawn_app(Options { state_dir: Some(state_dir.clone()), ..Options::default() });
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for round in 0..3 {
        let token = admin_token(&app).await;
        let (status, quick) = put(&app, &token, &format!("name=quick{round}"), vec![round as u8; 300_000]).await;
        assert_eq!(status, 201);
        acknowledged.push((quick["id"].as_str().unwrap().to_owned(), sha256_hex(&vec![round as u8; 300_000])));
        // Slow uploads that are still streaming when the power goes.
        let slow: Vec<_> = (0..3)
            .map(|index| {
                let request = app
                    .client
                    .put(app.url(&format!("/api/v1/files/upload?name=slow{round}-{index}")))
                    .bearer_auth(&token)
                    .body(slow_body(200, 16 << 10, Duration::from_millis(20)));
                tokio::spawn(request.send())
            })
            .collect();
        let tmp = state_dir.join("tmp");
        assert!(
            eventually(|| std::fs::read_dir(&tmp).map(|dir| dir.count() >= 2).unwrap_or(false)).await,
            "uploads started"
        );
        app.kill_hard();
        app.wait_exit().await;
        for upload in slow {
            let outcome = upload.await.unwrap();
            assert!(outcome.is_err() || outcome.unwrap().status() != StatusCode::CREATED, "a slow upload finished");
        }
        app = spawn_app(Options { state_dir: Some(state_dir.clone()), ..Options::default() });
    }
    assert_eq!(std::fs::read_dir(state_dir.join("tmp")).unwrap().count(), 0, "restart swept the temp files");
    let token = admin_token(&app).await;
    let (_, listing) = call(&app, "GET", "/api/v1/files?limit=100", &token, None).await;
    let names: Vec<&str> =
        listing["files"].as_array().unwrap().iter().map(|file| file["name"].as_str().unwrap()).collect();
    assert!(names.iter().all(|name| name.starts_with("quick")), "a row exists for an unfinished upload: {names:?}");
    for (id, sha256) in &acknowledged {
        let data = download(&app, &token, id).await.bytes().await.unwrap();
        assert_eq!(&sha256_hex(&data), sha256, "an acknowledged upload was lost or damaged");
    }
    let (healthy, report) = coffer_check(&app, false);
    assert!(healthy, "{report}");
    assert!(report.contains("database integrity: ok"), "{report}");
}

#[tokio::test]
async fn check_reports_missing_and_damaged_contents_and_repair_removes_old_orphans() {
    let mut app = spawn_app(Options::default());
    let token = admin_token(&app).await;
    let (_, damaged) = put(&app, &token, "name=damaged", b"original".to_vec()).await;
    let (_, missing) = put(&app, &token, "name=missing", b"soon gone".to_vec()).await;
    put(&app, &token, "name=fine", b"fine".to_vec()).await;
    app.terminate();
    assert!(app.wait_exit().await.success());
    let (healthy, report) = coffer_check(&app, false);
    assert!(healthy, "{report}");

    let blob = |sha: &str| app.state_dir.join("blobs").join(&sha[..2]).join(&sha[2..4]).join(sha);
    std::fs::write(blob(damaged["sha256"].as_str().unwrap()), b"tampered").unwrap();
    std::fs::remove_file(blob(missing["sha256"].as_str().unwrap())).unwrap();
    let orphan = sha256_hex(b"orphan");
    std::fs::create_dir_all(blob(&orphan).parent().unwrap()).unwrap();
    std::fs::write(blob(&orphan), b"orphan").unwrap();
    let temp = app.state_dir.join("tmp/upload-old");
    std::fs::write(&temp, b"left behind").unwrap();
    // Two hours pass (for `coffer check`, which reads the same clock); then an upload starts.
    app.advance_clock(2 * 3600);
    let recent = app.state_dir.join("tmp/upload-now");
    std::fs::write(&recent, b"in progress").unwrap();
    let clock_now = std::time::SystemTime::now() + Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(&recent).unwrap().set_modified(clock_now).unwrap();

    let (healthy, report) = coffer_check(&app, false);
    assert!(!healthy);
    assert!(report.contains(&format!("MISSING  file {}", missing["id"].as_str().unwrap())), "{report}");
    assert!(report.contains(&format!("DAMAGED  file {}", damaged["id"].as_str().unwrap())), "{report}");
    assert!(report.contains(&format!("orphan blob {orphan}")), "{report}");
    assert!(report.contains("upload-old") && report.contains("upload-now"), "{report}");

    let (_, repaired) = coffer_check(&app, true);
    assert!(repaired.contains("removed 2"), "{repaired}");
    assert!(!blob(&orphan).exists() && !temp.exists());
    assert!(recent.exists(), "a recent temp file (an upload in progress) was removed");
}

#[tokio::test]
async fn a_slow_upload_outlives_its_access_token_and_the_idle_timeout() {
    // Token times are whole seconds: a 2 s lifetime leaves at least 1 s to start uploading.
    let toml = "[auth]\naccess_token_ttl = \"2s\"\n[server]\nidle_timeout = \"1s\"\n";
    let app = spawn_app(Options { toml: toml.into(), ..Options::default() });
    let token = admin_token(&app).await;
    // 4 s of upload, a chunk every 250 ms: longer than the token lives, never idle for 1 s.
    let response = app
        .client
        .put(app.url("/api/v1/files/upload?name=slow"))
        .bearer_auth(&token)
        .body(slow_body(16, 4096, Duration::from_millis(250)))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let stored: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "an upload authorised at its start was cut off: {stored}\n{}", app.logs.text());
    assert_eq!(stored["size"], 16 * 4096);
    let expired = app.client.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(expired.status(), 401, "the token did expire meanwhile");
}

#[tokio::test]
async fn a_running_server_reclaims_deleted_contents_but_keeps_shared_blobs() {
    let app = spawn_app(Options { toml: "[storage]\ngc_interval = \"1s\"\n".into(), ..Options::default() });
    let token = admin_token(&app).await;
    let (_, gone) = put(&app, &token, "name=gone", b"only here".to_vec()).await;
    let (_, shared) = put(&app, &token, "name=first", b"twice".to_vec()).await;
    let (_, twin) = put(&app, &token, "name=second", b"twice".to_vec()).await;
    for file in [&gone, &shared] {
        call(&app, "DELETE", &format!("/api/v1/files/{}", file["id"].as_str().unwrap()), &token, None).await;
    }
    app.logs.wait_for(|line| line["message"] == "removed unused blobs").expect("the GC ran");
    let blob = |sha: &str| app.state_dir.join("blobs").join(&sha[..2]).join(&sha[2..4]).join(sha);
    assert!(!blob(gone["sha256"].as_str().unwrap()).exists());
    assert!(blob(twin["sha256"].as_str().unwrap()).exists(), "a blob another file uses was removed");
    assert_eq!(download(&app, &token, twin["id"].as_str().unwrap()).await.bytes().await.unwrap().as_ref(), b"twice");
}
