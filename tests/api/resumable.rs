//! Resumable uploads (tus 1.0) driven by a real tus client, tuspy (from tests/requirements.txt,
//! installed by tests/run into target/test-venv): chunks, a dropped connection, a hard kill and
//! restart, deduplication, a full disk. Protocol edge cases over raw HTTP: resumable_rules.rs.

use std::path::{Path, PathBuf};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::accounts::call;
use crate::files::{admin_token, download, pseudo_random, put, sha256_hex};
use crate::helpers::{Options, PATIENCE, TestApp, eventually, spawn_app, spawn_default};

pub const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");

/// Runs tests/support/tus_upload.py (tuspy) on `file`; its JSON report and whether it succeeded.
pub async fn tuspy(app: &TestApp, token: &str, file: &Path, args: &[&str]) -> (bool, Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/test-venv/bin/python3");
    assert!(
        python.exists(),
        "no {}: run tests/run once, which installs tests/requirements.txt there",
        python.display()
    );
    let output = tokio::process::Command::new(python)
        .arg(root.join("tests/support/tus_upload.py"))
        .args(["--endpoint", &app.url("/api/v1/uploads"), "--token", token, "--file", file.to_str().unwrap()])
        .args(args)
        .env("REQUESTS_CA_BUNDLE", app.self_signed_cert())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("tuspy printed no report:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    (output.status.success(), report)
}

/// `key base64(value),...` as Upload-Metadata.
pub fn metadata(pairs: &[(&str, &str)]) -> String {
    let encode = |value: &str| base64::engine::general_purpose::STANDARD.encode(value);
    pairs.iter().map(|(key, value)| format!("{key} {}", encode(value))).collect::<Vec<_>>().join(",")
}

/// POST /api/v1/uploads with `Upload-Length` and `Upload-Metadata`.
pub async fn create(app: &TestApp, token: &str, length: u64, pairs: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(token)
        .header(TUS.0, TUS.1)
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", metadata(pairs))
        .send()
        .await
        .unwrap()
}

/// Creates an upload and returns its path (the `Location`).
pub async fn created(app: &TestApp, token: &str, length: u64, name: &str) -> String {
    let response = create(app, token, length, &[("name", name)]).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{:?}", response.text().await);
    response.headers()["location"].to_str().unwrap().to_owned()
}

pub fn patch(app: &TestApp, token: &str, location: &str, offset: u64) -> reqwest::RequestBuilder {
    app.client
        .patch(app.url(location))
        .bearer_auth(token)
        .header(TUS.0, TUS.1)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
}

pub async fn head(app: &TestApp, token: &str, location: &str) -> reqwest::Response {
    app.client.head(app.url(location)).bearer_auth(token).header(TUS.0, TUS.1).send().await.unwrap()
}

pub fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).map(|value| value.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The offset HEAD reports.
pub async fn offset(app: &TestApp, token: &str, location: &str) -> u64 {
    let response = head(app, token, location).await;
    assert_eq!(response.status(), 200);
    header(&response, "upload-offset").parse().unwrap()
}

/// The part file of the upload at `location`.
pub fn part_file(app: &TestApp, location: &str) -> PathBuf {
    app.state_dir.join("uploads").join(location.rsplit('/').next().unwrap())
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0)
}

/// A request body the test feeds piece by piece; dropping the sender with an error cuts it.
pub fn fed_body() -> (mpsc::Sender<std::io::Result<Vec<u8>>>, reqwest::Body) {
    let (sender, receiver) = mpsc::channel(4);
    (sender, reqwest::Body::wrap_stream(tokio_stream_of(receiver)))
}

fn tokio_stream_of(
    receiver: mpsc::Receiver<std::io::Result<Vec<u8>>>,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> {
    futures_util::stream::unfold(receiver, |mut receiver| async move { Some((receiver.recv().await?, receiver)) })
}

/// Whether HEAD comes to report an offset `expected` accepts within the tests' patience (the server records a
/// cut-off chunk after the client is gone, so there is no answer to wait for).
pub async fn reaches_offset(app: &TestApp, token: &str, location: &str, expected: impl Fn(u64) -> bool) -> bool {
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::time::Instant::now() < deadline {
        if expected(offset(app, token, location).await) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

fn write_source(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// The stored file the finished upload at `url` became: its id, after checking HEAD says so.
async fn finished_file(app: &TestApp, token: &str, url: &str) -> String {
    let location = url.strip_prefix(&app.base_url).unwrap_or(url).to_owned();
    let response = head(app, token, &location).await;
    assert_eq!(header(&response, "upload-offset"), header(&response, "upload-length"));
    let id = header(&response, "coffer-file-id");
    assert_eq!(id.len(), 32, "HEAD names the file the upload became");
    id
}

#[tokio::test]
async fn tuspy_uploads_in_checksummed_chunks_and_the_file_is_stored_like_a_plain_upload() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let temp = tempfile::tempdir().unwrap();
    let data = pseudo_random(5 * (256 << 10) + 1234, 7);
    let source = write_source(temp.path(), "source.bin", &data);
    let args =
        ["--chunk-size", "262144", "--checksum", "--metadata", "filename=report.bin", "--metadata", "folder=work"];
    let (ok, report) = tuspy(&app, &token, &source, &args).await;
    assert!(ok, "{report}");
    assert_eq!(report["offset"], data.len());
    let id = finished_file(&app, &token, report["url"].as_str().unwrap()).await;

    let (_, file) = call(&app, "GET", &format!("/api/v1/files/{id}"), &token, None).await;
    assert_eq!((file["name"].as_str(), file["folder"].as_str()), (Some("report.bin"), Some("work")));
    assert_eq!(file["sha256"].as_str().unwrap(), sha256_hex(&data));
    let stored = download(&app, &token, &id).await.bytes().await.unwrap();
    assert!(stored.as_ref() == data.as_slice(), "the stored contents differ");
    let blob = sha256_hex(&data);
    let blob_path = app.state_dir.join("blobs").join(&blob[..2]).join(&blob[2..4]).join(&blob);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(blob_path).unwrap().permissions().mode() & 0o777, 0o400, "blobs are read-only");
    let uploads = app.state_dir.join("uploads");
    assert!(eventually(|| std::fs::read_dir(&uploads).unwrap().count() == 0).await, "the part file was removed");
    let tmp = app.state_dir.join("tmp");
    assert!(eventually(|| std::fs::read_dir(&tmp).unwrap().count() == 0).await, "nothing left in tmp/");
}

#[tokio::test]
async fn an_upload_resumes_after_the_client_drops_the_connection_mid_chunk() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let temp = tempfile::tempdir().unwrap();
    let data = pseudo_random(3 << 20, 11);
    let source = write_source(temp.path(), "source.bin", &data);
    let location = created(&app, &token, data.len() as u64, "dropped.bin").await;

    // 1.5 MiB of a 3 MiB chunk, then the connection is cut.
    let (feed, body) = fed_body();
    let request = tokio::spawn(patch(&app, &token, &location, 0).body(body).send());
    for piece in data[..3 << 19].chunks(64 << 10) {
        feed.send(Ok(piece.to_vec())).await.unwrap();
    }
    let part = part_file(&app, &location);
    assert!(eventually(|| file_len(&part) == 3 << 19).await, "the first bytes reached the disk");
    feed.send(Err(std::io::Error::other("network gone"))).await.unwrap();
    assert!(request.await.unwrap().is_err(), "the client saw its connection cut");
    assert!(reaches_offset(&app, &token, &location, |at| at == 3 << 19).await, "what arrived before the cut is kept");

    let url = app.url(&location);
    let (ok, report) = tuspy(&app, &token, &source, &["--url", &url, "--chunk-size", "1048576"]).await;
    assert!(ok, "{report}");
    let id = finished_file(&app, &token, &url).await;
    let stored = download(&app, &token, &id).await.bytes().await.unwrap();
    assert_eq!(sha256_hex(&stored), sha256_hex(&data), "no byte lost or duplicated");
}

#[tokio::test]
async fn an_upload_survives_a_hard_kill_mid_chunk_and_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let app = spawn_app(Options { state_dir: Some(state_dir.clone()), ..Options::default() });
    let token = admin_token(&app).await;
    let data = pseudo_random(100 << 20, 13);
    let source = write_source(state.path(), "source.bin", &data);
    // tuspy sends the first two 1 MiB chunks.
    let args = ["--chunk-size", "1048576", "--stop-at", "2097152", "--metadata", "filename=killed.bin"];
    let (ok, report) = tuspy(&app, &token, &source, &args).await;
    assert!(ok, "{report}");
    let location = report["url"].as_str().unwrap().strip_prefix(&app.base_url).unwrap().to_owned();
    assert_eq!(offset(&app, &token, &location).await, 2 << 20);

    // Then the rest in one PATCH (what tuspy and tus-js-client do by default). The power goes
    // after 80 MiB of it: a long PATCH records its durable progress as it goes.
    let (feed, body) = fed_body();
    let request = tokio::spawn(patch(&app, &token, &location, 2 << 20).body(body).send());
    let sent = data[2 << 20..82 << 20].to_vec();
    let sender = tokio::spawn(async move {
        for piece in sent.chunks(1 << 20) {
            if feed.send(Ok(piece.to_vec())).await.is_err() {
                return;
            }
        }
        // Keep the request open, as a client still sending would.
        feed.closed().await;
    });
    let checkpoint = (2 << 20) + (64 << 20);
    assert!(reaches_offset(&app, &token, &location, |at| at >= checkpoint).await, "progress recorded mid-PATCH");
    app.kill_hard();
    let mut app = app;
    app.wait_exit().await;
    sender.abort();
    let _ = request.await;

    let app = spawn_app(Options { state_dir: Some(state_dir.clone()), ..Options::default() });
    let token = admin_token(&app).await;
    let resumed_at = offset(&app, &token, &location).await;
    assert!(resumed_at >= checkpoint, "acknowledged progress survived: {resumed_at}");
    let on_disk = std::fs::read(part_file(&app, &location)).unwrap();
    assert!(on_disk.len() as u64 >= resumed_at);
    assert!(on_disk[..resumed_at as usize] == data[..resumed_at as usize], "every byte before the offset is on disk");

    let url = app.url(&location);
    let (ok, report) = tuspy(&app, &token, &source, &["--url", &url, "--chunk-size", "8388608"]).await;
    assert!(ok, "{report}");
    let id = finished_file(&app, &token, &url).await;
    let stored = download(&app, &token, &id).await.bytes().await.unwrap();
    assert_eq!(sha256_hex(&stored), sha256_hex(&data), "no byte lost or duplicated");
}

#[tokio::test]
async fn an_upload_of_contents_already_stored_is_deduplicated() {
    let app = spawn_default();
    let token = admin_token(&app).await;
    let data = pseudo_random(700_000, 17);
    let (status, plain) = put(&app, &token, "name=first.bin", data.clone()).await;
    assert_eq!(status, 201);
    let temp = tempfile::tempdir().unwrap();
    let source = write_source(temp.path(), "source.bin", &data);
    let args = ["--chunk-size", "200000", "--metadata", "filename=second.bin"];
    let (ok, report) = tuspy(&app, &token, &source, &args).await;
    assert!(ok, "{report}");
    let id = finished_file(&app, &token, report["url"].as_str().unwrap()).await;
    assert_ne!(id, plain["id"].as_str().unwrap());
    let (_, second) = call(&app, "GET", &format!("/api/v1/files/{id}"), &token, None).await;
    assert_eq!(second["sha256"], plain["sha256"]);
    let blobs: Vec<_> = walk(&app.state_dir.join("blobs"));
    assert_eq!(blobs.len(), 1, "one blob for both files: {blobs:?}");
    let tmp = app.state_dir.join("tmp");
    assert!(eventually(|| std::fs::read_dir(&tmp).unwrap().count() == 0).await, "the redundant copy was removed");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { found.extend(walk(&path)) } else { found.push(path) }
    }
    found
}

#[tokio::test]
async fn a_full_disk_while_appending_gives_507_and_the_upload_resumes_once_space_is_back() {
    let app = spawn_app(Options {
        tmpfs_mib: Some(24),
        toml: "[storage]\ndisk_reserve = \"0\"\n".into(),
        ..Options::default()
    });
    let token = admin_token(&app).await;
    let data = pseudo_random(8 << 20, 19);
    let location = created(&app, &token, data.len() as u64, "big.bin").await;
    let first = patch(&app, &token, &location, 0).body(data[..1 << 20].to_vec()).send().await.unwrap();
    assert_eq!(first.status(), 204);

    // Something else fills the disk.
    let filler = app.state_dir.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        while file.write_all(&[0u8; 64 << 10]).is_ok() {}
    }
    // Streamed without a length, so the chunk is refused while being written, not up front.
    let (feed, body) = fed_body();
    let request = tokio::spawn(patch(&app, &token, &location, 1 << 20).body(body).send());
    let sender = tokio::spawn(async move {
        for piece in data[1 << 20..].chunks(256 << 10).map(<[u8]>::to_vec).collect::<Vec<_>>() {
            if feed.send(Ok(piece)).await.is_err() {
                break;
            }
        }
        data
    });
    let response = tokio::time::timeout(PATIENCE, request).await.unwrap().unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "insufficient_storage");
    let data = sender.await.unwrap();
    assert_eq!(offset(&app, &token, &location).await, 1 << 20, "nothing of the refused chunk counts");

    std::fs::remove_file(&filler).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let source = write_source(temp.path(), "source.bin", &data);
    let url = app.url(&location);
    let (ok, report) = tuspy(&app, &token, &source, &["--url", &url, "--chunk-size", "2097152"]).await;
    assert!(ok, "{report}");
    let id = finished_file(&app, &token, &url).await;
    let stored = download(&app, &token, &id).await.bytes().await.unwrap();
    assert_eq!(sha256_hex(&stored), sha256_hex(&data));
}
