//! Search through crashes, lost or damaged indexes, failing disks, rebuilds and hostile
//! documents: the index is derived data that always comes back, and nothing it suffers
//! reaches uploads or other requests.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::call;
use crate::files::{admin_token, user_token};
use crate::helpers::{BIN, Options, PATIENCE, TestApp, spawn_app};
use crate::search::{Hooks, found_within, id, ids, search, settled, spawn_with, status, upload};

fn restart(state_dir: &Path, hooks: &Hooks, toml: &str) -> TestApp {
    spawn_app(Options {
        state_dir: Some(state_dir.to_owned()),
        env: hooks.env(),
        toml: toml.into(),
        ..Options::default()
    })
}

/// A word of eight letters for file `index`, far (in edits) from every other one, so no typo
/// tolerance joins two of them.
fn word(index: usize) -> String {
    crate::files::sha256_hex(format!("fjord{index}").as_bytes())
        .chars()
        .take(8)
        .map(|c| (b'g' + c.to_digit(16).unwrap() as u8) as char)
        .collect()
}

async fn upload_numbered(app: &TestApp, token: &str, range: std::ops::Range<usize>) {
    for index in range {
        upload(app, token, &[("name", &format!("{}.txt", word(index)))], "fjordcommon").await;
    }
}

/// Every numbered file is found exactly once by its own word, and the index holds exactly as
/// many documents as there are files.
async fn each_found_once(app: &TestApp, token: &str, count: usize) {
    let body = settled(app, token).await;
    assert_eq!(body["docs"], count, "index documents against files: {body}");
    let (_, all, _) = search(app, token, &[("q", "fjordcommon"), ("limit", "100")]).await;
    let mut found = ids(&all);
    found.sort();
    found.dedup();
    assert_eq!(found.len(), count, "{all}");
    assert_eq!(ids(&all).len(), count, "a file came back twice");
    for index in 0..count {
        let (_, one, _) = search(app, token, &[("q", &word(index))]).await;
        assert_eq!(ids(&one).len(), 1, "{}: {one}", word(index));
    }
}

#[tokio::test]
async fn a_hard_kill_with_changes_pending_loses_none_of_them() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let hooks = Hooks::new();
    let mut app = restart(&state_dir, &hooks, "");
    let token = admin_token(&app).await;
    settled(&app, &token).await;
    hooks.pause();
    upload_numbered(&app, &token, 0..30).await;
    assert_eq!(status(&app, &token).await["docs"], 0, "the indexer was held back");
    app.kill_hard();
    app.wait_exit().await;
    hooks.resume();
    let app = restart(&state_dir, &hooks, "");
    let token = admin_token(&app).await;
    each_found_once(&app, &token, 30).await;
}

#[tokio::test]
async fn a_crash_between_the_index_commit_and_the_outbox_cleanup_repeats_nothing() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let hooks = Hooks::new();
    let mut app = restart(&state_dir, &hooks, "");
    let token = admin_token(&app).await;
    upload_numbered(&app, &token, 0..10).await;
    settled(&app, &token).await;
    std::fs::write(hooks.crash_file(), b"").unwrap();
    upload_numbered(&app, &token, 10..20).await;
    let exit = app.wait_exit().await;
    assert!(!exit.success(), "the hook aborts the server after its next commit");
    assert!(app.logs.text().contains("aborting between the index commit and the outbox cleanup"));
    std::fs::remove_file(hooks.crash_file()).unwrap();
    let app = restart(&state_dir, &hooks, "");
    let token = admin_token(&app).await;
    each_found_once(&app, &token, 20).await;
}

#[tokio::test]
async fn a_deleted_or_damaged_index_is_rebuilt_at_start() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let hooks = Hooks::new();
    let mut app = restart(&state_dir, &hooks, "");
    let token = admin_token(&app).await;
    upload_numbered(&app, &token, 0..5).await;
    each_found_once(&app, &token, 5).await;
    let index = state_dir.join("search/index");
    for damage in ["delete", "truncate meta.json", "garbage segment"] {
        app.terminate();
        assert!(app.wait_exit().await.success());
        match damage {
            "delete" => std::fs::remove_dir_all(&index).unwrap(),
            "truncate meta.json" => std::fs::write(index.join("meta.json"), b"{\"segm").unwrap(),
            _ => {
                for entry in std::fs::read_dir(&index).unwrap() {
                    let path = entry.unwrap().path();
                    if path.extension().is_some_and(|ext| ext == "idx" || ext == "term") {
                        std::fs::write(&path, b"not an index file").unwrap();
                    }
                }
            }
        }
        app = restart(&state_dir, &hooks, "");
        let token = admin_token(&app).await;
        let rebuilding = app.logs.wait_for(|line| {
            line["message"] == "no search index yet; building it"
                || line["message"] == "the search index cannot be used; rebuilding it"
        });
        assert!(rebuilding.is_some(), "{damage}: no rebuild logged:\n{}", app.logs.text());
        each_found_once(&app, &token, 5).await;
    }
}

#[tokio::test]
async fn search_answers_503_with_retry_after_until_a_first_index_exists() {
    let hooks = Hooks::new();
    hooks.pause();
    let app = spawn_with(&hooks, "");
    let token = admin_token(&app).await;
    let response = app.client.get(app.url("/api/v1/search?q=anything")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "search_unavailable");
    assert!(body["request_id"].is_string());
    let file = upload(&app, &token, &[("name", "waiting.txt")], "uploads never wait for search").await;
    hooks.resume();
    assert!(found_within(&app, &token, "waiting", &id(&file), PATIENCE).await);
}

fn reindex(config: &Path) -> (i32, String, String) {
    let output = std::process::Command::new(BIN).args(["reindex", "--config"]).arg(config).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn coffer_reindex_refuses_while_the_server_runs_and_rebuilds_with_progress_when_stopped() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let hooks = Hooks::new();
    let mut app = restart(&state_dir, &hooks, "");
    let token = admin_token(&app).await;
    upload_numbered(&app, &token, 0..12).await;
    settled(&app, &token).await;
    let (code, _, stderr) = reindex(&app.config);
    assert_eq!(code, 75, "{stderr}");
    assert!(stderr.contains("POST /api/v1/admin/search/rebuild"), "{stderr}");
    app.terminate();
    assert!(app.wait_exit().await.success());
    let config = app.config.clone();
    let (code, stdout, stderr) = reindex(&config);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("indexed 12/12 (100%)") && stderr.contains("ETA"), "{stderr}");
    assert!(stdout.contains("search index rebuilt"), "{stdout}");
    drop(app);
    let app = restart(&state_dir, &hooks, "");
    let token = admin_token(&app).await;
    assert!(app.logs.wait_for_message("search index opened").is_some(), "the reindexed index is used as it is");
    each_found_once(&app, &token, 12).await;
}

#[tokio::test]
async fn an_admin_rebuild_swaps_in_a_new_index_and_only_admins_may_ask() {
    let hooks = Hooks::new();
    let app = spawn_with(&hooks, "");
    let admin = admin_token(&app).await;
    let (user, _) = user_token(&app, &admin, "walter").await;
    upload_numbered(&app, &admin, 0..8).await;
    settled(&app, &admin).await;
    let (code, body) = call(&app, "POST", "/api/v1/admin/search/rebuild", &user, None).await;
    assert_eq!((code, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert_eq!(call(&app, "GET", "/api/v1/admin/search", &user, None).await.0, 403);
    let (code, body) = call(&app, "POST", "/api/v1/admin/search/rebuild", &admin, None).await;
    assert_eq!(code, 202, "{body}");
    let rebuilt = |line: &Value| line["message"] == "search index rebuilt" && line["docs"] == 8;
    assert!(app.logs.wait_for(rebuilt).is_some(), "{}", app.logs.text());
    each_found_once(&app, &admin, 8).await;
    let body = status(&app, &admin).await;
    assert!(body["last_commit_at"].is_string() && body["indexed_seq"].as_u64().unwrap() >= 8, "{body}");
}

#[tokio::test]
async fn index_write_failures_degrade_search_but_never_uploads_and_heal_without_a_restart() {
    let hooks = Hooks::new();
    let app = spawn_app(Options { env: hooks.env(), obey_permissions: true, ..Options::default() });
    let token = admin_token(&app).await;
    let before = upload(&app, &token, &[("name", "before.txt")], "fjordcommon").await;
    settled(&app, &token).await;
    let index = app.state_dir.join("search/index");
    std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o500)).unwrap();
    let during = upload(&app, &token, &[("name", "during.txt")], "fjordcommon").await;
    let deadline = Instant::now() + PATIENCE;
    let degraded = loop {
        let body = status(&app, &token).await;
        if body["state"] == "degraded" || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(degraded["state"], "degraded", "{degraded}");
    assert!(degraded["pending"].as_u64().unwrap() >= 1, "the change waits in the outbox: {degraded}");
    let (code, body, _) = search(&app, &token, &[("q", "fjordcommon")]).await;
    assert_eq!((code, ids(&body)), (StatusCode::OK, vec![id(&before)]), "the last commit keeps answering");
    std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(found_within(&app, &token, "during", &id(&during), PATIENCE).await, "{}", app.logs.text());
    assert_eq!(settled(&app, &token).await["docs"], 2);
}

#[tokio::test]
async fn search_is_in_the_api_document_open_to_read_only_tokens_and_refuses_bad_queries() {
    let hooks = Hooks::new();
    let app = spawn_with(&hooks, "");
    let token = admin_token(&app).await;
    let spec: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    for code in ["200", "400", "503"] {
        assert!(spec["paths"]["/search"]["get"]["responses"][code].is_object(), "/search {code}");
    }
    assert!(spec["paths"]["/admin/search"]["get"]["responses"]["403"].is_object());
    assert!(spec["paths"]["/admin/search/rebuild"]["post"]["responses"]["202"].is_object());
    let file = upload(&app, &token, &[("name", "scoped.txt")], "readonly reachable").await;
    settled(&app, &token).await;
    let new_token = json!({"name": "reader", "scope": "read-only", "expires_in_days": 1});
    let (_, created) = call(&app, "POST", "/api/v1/me/tokens", &token, Some(new_token)).await;
    let read_only = created["token"].as_str().unwrap();
    let (code, body, _) = search(&app, read_only, &[("q", "reachable")]).await;
    assert_eq!((code, ids(&body)), (StatusCode::OK, vec![id(&file)]));
    assert!(body.get("total").is_none() && !body.to_string().contains("score"), "{body}");
    let long = "x".repeat(257);
    let many = "a ".repeat(17);
    for params in [
        vec![],
        vec![("q", "   ")],
        vec![("q", "!!! ???")],
        vec![("q", long.as_str())],
        vec![("q", many.as_str())],
        vec![("q", "x"), ("limit", "0")],
        vec![("q", "x"), ("limit", "101")],
        vec![("q", "x"), ("type", "readers:*")],
        vec![("q", "x"), ("folder", "../etc")],
    ] {
        let (code, body, raw) = search(&app, &token, &params).await;
        assert_eq!(
            (code, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_query")),
            "{params:?}: {raw}"
        );
    }
    let (code, _, _) = search(&app, &token, &[("q", "x"), ("scope", "everyone")]).await;
    assert_eq!(code, 400);
}

// --- documents, friendly and hostile -------------------------------------------------------

/// A one-page PDF showing `text` in Helvetica.
fn pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 18 Tf 30 80 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{object}\nendobj\n", index + 1).into_bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).into_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").into_bytes());
    }
    out.extend(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).into_bytes(),
    );
    out
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    for (name, data) in entries {
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
    buffer.into_inner()
}

fn docx(body: &str) -> Vec<u8> {
    zip_of(&[("word/document.xml", body.as_bytes())])
}

/// A DOCX whose document part inflates from about 1 MB to 1 GiB.
fn zip_bomb_docx() -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let deflate = |data: &[u8], flush: FlushCompress| {
        let mut compressor = Compress::new(Compression::best(), false);
        let mut out = Vec::with_capacity(data.len() / 100 + 4096);
        compressor.compress_vec(data, &mut out, flush).unwrap();
        out
    };
    let mebibyte = vec![b'a'; 1 << 20];
    let mut head = b"<w:document><w:body><w:p><w:r><w:t>".to_vec();
    head.extend_from_slice(&mebibyte);
    // Full flushes end each part on a byte boundary with no final block, so parts chain.
    let mut data = deflate(&head, FlushCompress::Full);
    let chunk = deflate(&mebibyte, FlushCompress::Full);
    for _ in 1..1024 {
        data.extend_from_slice(&chunk);
    }
    data.extend(deflate(b"</w:t></w:r></w:p></w:body></w:document>", FlushCompress::Finish));
    let unpacked: u32 = u32::try_from(head.len() + 1023 * (1 << 20) + 40).unwrap();
    let name = b"word/document.xml";
    let mut zip = Vec::new();
    let header = |zip: &mut Vec<u8>, signature: u32, central: bool| {
        zip.extend(signature.to_le_bytes());
        if central {
            zip.extend(20u16.to_le_bytes());
        }
        for field in [20u16, 0, 8, 0, 0] {
            zip.extend(field.to_le_bytes());
        }
        zip.extend(0u32.to_le_bytes()); // CRC: never reached, reading stops at the cap
        zip.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
        zip.extend(unpacked.to_le_bytes());
        zip.extend(u16::try_from(name.len()).unwrap().to_le_bytes());
        zip.extend(0u16.to_le_bytes());
        if central {
            for field in [0u16, 0, 0] {
                zip.extend(field.to_le_bytes());
            }
            zip.extend(0u32.to_le_bytes());
            zip.extend(0u32.to_le_bytes()); // local header at offset 0
        }
        zip.extend_from_slice(name);
    };
    header(&mut zip, 0x0403_4b50, false);
    zip.extend_from_slice(&data);
    let central_at = zip.len();
    header(&mut zip, 0x0201_4b50, true);
    let central_size = zip.len() - central_at;
    zip.extend(0x0605_4b50u32.to_le_bytes());
    for field in [0u16, 0, 1, 1] {
        zip.extend(field.to_le_bytes());
    }
    zip.extend(u32::try_from(central_size).unwrap().to_le_bytes());
    zip.extend(u32::try_from(central_at).unwrap().to_le_bytes());
    zip.extend(0u16.to_le_bytes());
    zip
}

fn rss_kib(app: &TestApp, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid().as_raw_nonzero())).unwrap();
    let line = status.lines().find(|line| line.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn pdf_docx_odt_and_html_are_found_by_their_text_and_hostile_ones_end_within_the_timeout() {
    let hooks = Hooks::new();
    let app = spawn_with(&hooks, "[search]\nextract_timeout = \"3s\"\n");
    let token = admin_token(&app).await;
    let pdf_file = upload(&app, &token, &[("name", "scan.pdf")], pdf("pelicanword in a pdf")).await;
    let docx_file = upload(
        &app,
        &token,
        &[("name", "memo.docx")],
        docx("<w:document><w:body><w:p><w:r><w:t>walrusword</w:t></w:r></w:p></w:body></w:document>"),
    )
    .await;
    let odt = zip_of(&[
        ("mimetype", b"application/vnd.oasis.opendocument.text"),
        ("content.xml", b"<office:document-content><office:body><office:text><text:p>narwhalword</text:p></office:text></office:body></office:document-content>"),
    ]);
    let odt_file = upload(&app, &token, &[("name", "letter.odt")], odt).await;
    let html_file = upload(
        &app,
        &token,
        &[("name", "page.html")],
        "<html><script>var hiddenscript;</script><p>otterword</p></html>",
    )
    .await;
    for (word, file) in
        [("pelicanword", &pdf_file), ("walrusword", &docx_file), ("narwhalword", &odt_file), ("otterword", &html_file)]
    {
        assert!(found_within(&app, &token, word, &id(file), PATIENCE).await, "{word}: {}", app.logs.text());
    }
    let (_, scripts, _) = search(&app, &token, &[("q", "hiddenscript")]).await;
    assert!(ids(&scripts).is_empty(), "script text was indexed");
    settled(&app, &token).await;
    let healthy_rss = rss_kib(&app, "VmRSS");

    let mut hang = pdf("never read");
    hang.extend_from_slice(b"%coffer-test-hang\n");
    let mut entities = String::from("<!ENTITY lol \"lol\">");
    for level in 1..10 {
        let inner = if level == 1 { "&lol;".to_owned() } else { format!("&lol{};", level - 1) };
        entities.push_str(&format!("<!ENTITY lol{level} \"{}\">", inner.repeat(10)));
    }
    let laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE w [{entities}]><w:document><w:body><w:p><w:r><w:t>&lol9; laughsafe</w:t></w:r></w:p></w:body></w:document>"
    );
    let nested = format!("{}deepword{}", "<div>".repeat(100_000), "</div>".repeat(100_000));
    let started = Instant::now();
    let hostile = [
        upload(&app, &token, &[("name", "hangs.pdf")], hang).await,
        upload(&app, &token, &[("name", "bomb.docx")], zip_bomb_docx()).await,
        upload(&app, &token, &[("name", "laughs.docx")], docx(&laughs)).await,
        upload(&app, &token, &[("name", "nested.html")], nested).await,
    ];
    // While the hanging PDF holds the extractor, other requests and plain files go through.
    let plain = upload(&app, &token, &[("name", "meanwhile.txt")], "quietword").await;
    assert!(found_within(&app, &token, "quietword", &id(&plain), Duration::from_secs(2)).await);
    assert_eq!(app.get("/api/v1/health").await.status(), 200);
    for (name, file) in ["hangs", "bomb", "laughs", "nested"].iter().zip(&hostile) {
        assert!(found_within(&app, &token, name, &id(file), PATIENCE).await, "{name} is findable by name");
    }
    let body = settled(&app, &token).await;
    assert!(started.elapsed() < Duration::from_secs(4 * 3 + 8), "hostile files took {:?}", started.elapsed());
    assert_eq!(body["extraction"]["timeout"], 1, "the hanging PDF was stopped: {body}");
    for (word, file) in [("laughsafe", &hostile[2]), ("deepword", &hostile[3])] {
        assert!(found_within(&app, &token, word, &id(file), Duration::from_secs(2)).await, "{word}");
    }
    let (_, lol, _) = search(&app, &token, &[("q", "lollol")]).await;
    assert!(ids(&lol).is_empty(), "an entity was expanded");
    let peak = rss_kib(&app, "VmRSS");
    assert!(peak < healthy_rss + 64 * 1024, "the server grew from {healthy_rss} KiB to {peak} KiB");
}
