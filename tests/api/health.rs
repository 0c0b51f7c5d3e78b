//! Liveness and readiness, including the failures readiness exists to report.

use serde_json::Value;

use crate::helpers::{Options, spawn_app, spawn_default};

#[tokio::test]
async fn health_reports_ok_and_the_version() {
    let app = spawn_default();
    let response = app.get("/api/v1/health").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

fn failing(body: &Value) -> Vec<String> {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["ok"] == false)
        .map(|check| check["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn ready_is_200_when_every_check_passes() {
    let app = spawn_default();
    let response = app.get("/api/v1/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert!(failing(&body).is_empty());
    assert_eq!(body["checks"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn ready_is_503_naming_disk_space_when_the_reserve_is_not_met() {
    let app = spawn_app(Options { toml: "[storage]\ndisk_reserve = \"1000 TiB\"\n".into(), ..Options::default() });
    let response = app.get("/api/v1/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_ready");
    assert_eq!(failing(&body), vec!["disk_space"]);
    assert!(body["message"].as_str().unwrap().contains("disk_space"));
    // The answer is public: no paths, byte counts or error texts, which go to the log instead.
    let text = body.to_string();
    assert!(!text.contains(app.state_dir.to_str().unwrap()) && !text.contains("bytes"), "{text}");
    assert!(!body["checks"].to_string().chars().any(|c| c.is_ascii_digit()), "no numbers: {text}");
    let logged = app.logs.wait_for(|line| line["message"] == "a readiness check fails").expect("the detail is logged");
    assert!(logged["detail"].as_str().unwrap().contains("bytes free"));
    // Liveness is a different question: the process still answers.
    assert_eq!(app.get("/api/v1/health").await.status(), 200);
}

/// Takes write permission away from the state dir's work area, or gives it back.
fn set_writable(app: &crate::helpers::TestApp, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if writable { 0o700 } else { 0o500 };
    std::fs::set_permissions(app.state_dir.join("tmp"), std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn ready_is_503_naming_the_state_dir_while_it_is_not_writable_and_recovers() {
    let app = spawn_app(Options { obey_permissions: true, ..Options::default() });
    assert_eq!(app.get("/api/v1/ready").await.status(), 200);

    set_writable(&app, false);
    let response = app.get("/api/v1/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(failing(&body).contains(&"state_dir_writable".to_owned()), "{body}");
    assert!(body["message"].as_str().unwrap().contains("state_dir_writable"));

    set_writable(&app, true);
    assert_eq!(app.get("/api/v1/ready").await.status(), 200);
}
