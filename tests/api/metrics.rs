//! Prometheus metrics: on their own listener, behind an optional token, with the values known
//! traffic should give, valid for `promtool`, and the shipped alert rules checked and tested.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::auth::login;
use crate::files::{admin_token, download, put};
use crate::helpers::{Options, TestApp, spawn_app};

fn metrics_url(app: &TestApp) -> String {
    let line = app.logs.wait_for_message("serving metrics").expect("a metrics listener");
    line["url"].as_str().unwrap().to_owned()
}

pub async fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(metrics_url(app));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The value of the sample `name{labels}` (labels as written in the exposition), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Runs `promtool <args>` with `input` on its standard input; (success, output).
fn promtool(args: &[&str], input: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus; tests/run installs it)");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test]
async fn known_traffic_shows_in_the_metrics_by_route_template_and_promtool_accepts_them() {
    let app = spawn_app(Options { toml: "[metrics]\nlisten = \"127.0.0.1:0\"\n".into(), ..Options::default() });
    let token = admin_token(&app).await;
    assert_eq!(login(&app, "admin", "not-the-password").await.0, 401);
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/health").await.status(), 200);
    }
    assert_eq!(app.get("/api/v1/nothing-here").await.status(), 404);
    let data = vec![7u8; 100_000];
    let (_, file) = put(&app, &token, "name=counted.bin", data.clone()).await;
    let id = file["id"].as_str().unwrap();
    assert_eq!(download(&app, &token, id).await.bytes().await.unwrap().len(), data.len());

    // Not on the public listener.
    assert_eq!(app.get("/metrics").await.status(), 404);
    let response = scrape(&app, None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();

    let health = r#"coffer_http_requests_total{route="/api/v1/health",method="GET",status="2xx"}"#;
    assert_eq!(sample(&text, health), Some(3.0), "{text}");
    assert_eq!(sample(&text, r#"coffer_http_requests_total{route="unrouted",method="GET",status="4xx"}"#), Some(1.0));
    let content = r#"coffer_http_requests_total{route="/api/v1/files/{id}/content",method="GET",status="2xx"}"#;
    assert_eq!(sample(&text, content), Some(1.0), "routes are templates");
    assert!(
        !text.contains(id) && !text.contains(&token) && !text.contains("nothing-here"),
        "no raw paths, ids or tokens"
    );
    assert_eq!(sample(&text, r#"coffer_sign_ins_total{result="success"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"coffer_sign_ins_total{result="failure"}"#), Some(1.0));
    assert!(sample(&text, "coffer_upload_bytes_total").unwrap() >= data.len() as f64);
    assert!(sample(&text, "coffer_download_bytes_total").unwrap() >= data.len() as f64);
    assert!(sample(&text, r#"coffer_tls_handshakes_total{result="ok"}"#).unwrap() >= 1.0);
    assert!(sample(&text, "coffer_network_received_bytes_total").unwrap() >= data.len() as f64);
    assert_eq!(sample(&text, "coffer_users"), Some(1.0));
    assert_eq!(sample(&text, "coffer_files"), Some(1.0));
    assert_eq!(sample(&text, "coffer_storage_used_bytes"), Some(data.len() as f64));
    assert_eq!(sample(&text, "coffer_uploads_in_flight"), Some(0.0));
    assert!(sample(&text, "coffer_tls_certificate_expiry_timestamp_seconds").unwrap() > 1.7e9);
    assert!(sample(&text, "coffer_disk_free_bytes").unwrap() > 0.0);
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(sample(&text, "process_open_fds").unwrap() > 3.0);
    assert!(sample(&text, "coffer_search_pending_changes").is_some(), "the search index's backlog");
    let histogram = r#"coffer_http_request_duration_seconds_count{route="/api/v1/health",method="GET"}"#;
    assert_eq!(sample(&text, histogram), Some(3.0));

    let (valid, report) = promtool(&["check", "metrics"], Some(&text));
    assert!(valid, "promtool check metrics:\n{report}");
}

#[tokio::test]
async fn a_metrics_token_is_required_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "scrape-secret-0123456789\n").unwrap();
    let toml =
        format!("[metrics]\nlisten = \"127.0.0.1:0\"\nbearer_token_file = {:?}\n", token_file.display().to_string());
    let app = spawn_app(Options { toml, ..Options::default() });
    let refused = scrape(&app, None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.json::<serde_json::Value>().await.unwrap()["error"], "unauthorized");
    assert_eq!(scrape(&app, Some("wrong-token-0123456789")).await.status(), 401);
    assert_eq!(scrape(&app, Some("scrape-secret-0123456789")).await.status(), 200);
    assert!(!app.logs.text().contains("scrape-secret"), "the token never reaches the log");
}

#[test]
fn the_shipped_alert_rules_are_valid_and_their_unit_tests_pass() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/monitoring");
    let (valid, report) = promtool(&["check", "rules", &format!("{dir}/alerts.yml")], None);
    assert!(valid, "promtool check rules:\n{report}");
    let (passed, report) = promtool(&["test", "rules", &format!("{dir}/alerts.test.yml")], None);
    assert!(passed, "promtool test rules:\n{report}");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/grafana-dashboard.json")).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "the dashboard shows the metrics");
    let queries: String = panels.iter().map(|panel| panel["targets"].to_string()).collect();
    for metric in [
        "coffer_http_requests_total",
        "coffer_http_request_duration_seconds_bucket",
        "coffer_disk_free_bytes",
        "coffer_tls_certificate_expiry_timestamp_seconds",
        "coffer_sign_ins_total",
        "coffer_backup_last_success_timestamp_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(queries.contains(metric), "the dashboard has no panel for {metric}");
    }
}
