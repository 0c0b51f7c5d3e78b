//! No request can make the server fail: schemathesis runs every check against the OpenAPI
//! document the server serves, as an admin and as a plain user, with stateful sequences, a
//! fixed seed and a bounded time, and must find nothing. And the document is committed
//! (`docs/openapi.json`), so an API change shows in review.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::accounts::call;
use crate::files::{admin_token, user_token};
use crate::helpers::{TestApp, spawn_default};

/// Seconds each schemathesis run may take.
const FUZZ_SECONDS: u32 = 75;

fn venv_tool(name: &str) -> PathBuf {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: tests/run creates target/test-venv from tests/requirements.txt",
        tool.display()
    );
    tool
}

async fn api_token(app: &TestApp, session: &str) -> String {
    let body = json!({"name": "fuzzing", "scope": "read-write"});
    let (status, made) = call(app, "POST", "/api/v1/me/tokens", session, Some(body)).await;
    assert_eq!(status, 201, "{made}");
    made["token"].as_str().unwrap().to_owned()
}

/// Runs schemathesis against `app` with `token`; panics with its report on any failure.
fn fuzz(app: &TestApp, token: &str, who: &str) {
    let reports = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/schemathesis/{who}"));
    std::fs::create_dir_all(&reports).unwrap();
    let output = Command::new(venv_tool("st"))
        .arg("--config-file")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml"))
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--seed", "1", "--max-time", &FUZZ_SECONDS.to_string(), "--tls-verify", "false"])
        // The token the run uses must not revoke itself (token revocation is tested elsewhere).
        // The tus protocol (/uploads) sends raw `application/offset+octet-stream` bodies that
        // schemathesis cannot generate and answers 412/460 as tus requires; a real tus client
        // and raw HTTP drive it in resumable.rs and resumable_rules.rs instead.
        .args(["--exclude-path-regex", "^/(me/tokens/|uploads)"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&reports)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    std::fs::write(reports.join("output.txt"), &text).unwrap();
    assert!(output.status.success(), "schemathesis found failures as {who}:\n{text}");
    assert!(!app.logs.text().contains("panicked"), "the server panicked:\n{}", app.logs.text());
}

/// Each role gets its own server: the admin's run deletes and disables users, which would
/// end the user's run early.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_failure_as_an_admin_or_as_a_user() {
    let admin_app = spawn_default();
    let admin = admin_token(&admin_app).await;
    let admin_api = api_token(&admin_app, &admin).await;
    let user_app = spawn_default();
    let admin_of_user_app = admin_token(&user_app).await;
    let (user, _) = user_token(&user_app, &admin_of_user_app, "fuzzer").await;
    let user_api = api_token(&user_app, &user).await;
    let for_admin = tokio::task::spawn_blocking(move || fuzz(&admin_app, &admin_api, "admin"));
    let for_user = tokio::task::spawn_blocking(move || fuzz(&user_app, &user_api, "user"));
    for_admin.await.unwrap();
    for_user.await.unwrap();
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = spawn_default();
    let raw = app.get("/api/v1/openapi.json").await.text().await.unwrap();
    // poem-openapi writes a path once per API struct that has it, and readers keep the last:
    // a path split across two structs would lose its other methods from the document.
    let mut paths: Vec<&str> = raw
        .match_indices("\"/")
        .filter_map(|(at, _)| {
            let key_and_rest = &raw[at + 1..];
            let (key, rest) = key_and_rest.split_once('"')?;
            let rest = rest.trim_start().strip_prefix(':')?;
            rest.trim_start().starts_with('{').then_some(key)
        })
        .collect();
    let listed = paths.len();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), listed, "a path is written twice in the document: {paths:?}");
    assert!(paths.contains(&"/files"), "{paths:?}");
    let served: Value = serde_json::from_str(&raw).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    if std::env::var_os("UPDATE_API_DOCUMENT").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&served).unwrap() + "\n").unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        served == committed,
        "the API changed: review the difference, then write the new document with\n  UPDATE_API_DOCUMENT=1 cargo test --test api openapi_document"
    );
}
