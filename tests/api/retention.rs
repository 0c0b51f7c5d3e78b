//! Tables do not grow for ever: old audit entries, ended sessions and dead API tokens go.

use serde_json::json;

use crate::accounts::call;
use crate::auth::{db, login_admin};
use crate::helpers::{Options, spawn_app};

#[tokio::test]
async fn a_year_later_old_audit_entries_ended_sessions_and_dead_tokens_are_gone() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let mut app = spawn_app(Options { state_dir: Some(state_dir.clone()), ..Options::default() });
    let ended = login_admin(&app).await;
    let ended_access = ended["access_token"].as_str().unwrap();
    assert_eq!(
        app.client.post(app.url("/api/v1/auth/logout")).bearer_auth(ended_access).send().await.unwrap().status(),
        204
    );
    let live = login_admin(&app).await;
    let access = live["access_token"].as_str().unwrap().to_owned();
    let (_, token) = call(
        &app,
        "POST",
        "/api/v1/me/tokens",
        &access,
        Some(json!({"name": "old", "scope": "read-only", "expires_in_days": 1})),
    )
    .await;
    assert!(token["token"].is_string(), "{token}");
    let count = |sql: &str| -> i64 { db(&app).query_row(sql, [], |row| row.get(0)).unwrap() };
    let (audit_before, sessions_before) =
        (count("SELECT count(*) FROM audit_log"), count("SELECT count(*) FROM sessions"));
    assert!(audit_before >= 4 && sessions_before == 2, "{audit_before} {sessions_before}");

    // A year and a bit later (the clock file outlives this server; the next one reads it).
    app.advance_clock(400 * 86_400);
    let clock = state.path().join("clock");
    std::fs::copy(&app.clock_file, &clock).unwrap();
    app.terminate();
    app.wait_exit().await;
    let app = spawn_app(Options {
        state_dir: Some(state_dir),
        env: vec![("TESTING_COFFER_CLOCK_FILE".into(), clock.display().to_string())],
        ..Options::default()
    });
    let pruned =
        app.logs.wait_for_message("deleted what is past its retention").expect("the retention task ran at start");
    assert_eq!(pruned["api_tokens"], 1);
    let count = |sql: &str| -> i64 { db(&app).query_row(sql, [], |row| row.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM audit_log"), 0, "every entry was older than a year");
    assert_eq!(count("SELECT count(*) FROM api_tokens"), 0);
    assert_eq!(count("SELECT count(*) FROM sessions"), 0, "the live session expired 30 days in, then aged out");
    assert_eq!(count("SELECT count(*) FROM refresh_tokens"), 0);
    assert_eq!(count("SELECT count(*) FROM users"), 1, "accounts are never pruned");
}
