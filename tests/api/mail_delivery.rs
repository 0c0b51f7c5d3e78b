//! Delivering the outbox against a real SMTP server that misbehaves: temporary and permanent
//! refusals, a server that is down, a server that stalls, restarts, and `coffer mail test`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::accounts::call;
use crate::auth::db;
use crate::files::admin_token;
use crate::helpers::{Options, TestApp, run_cli, spawn_app, write_config};
use crate::mail_messages::{assert_no_secrets, mail_app, send_share};
use crate::metrics::{sample, scrape};
use crate::shares::{audit_of, share, upload};
use crate::smtp::{SMTP_PASSWORD, Smtp};

/// A share of a small file to mail; returns (admin token, share id).
async fn shared(app: &TestApp) -> (String, String) {
    let admin = admin_token(app).await;
    let file = upload(app, &admin, "plans.txt", b"plans".to_vec()).await;
    let id = share(app, &admin, &file, json!({})).await["id"].as_str().unwrap().to_owned();
    (admin, id)
}

/// Waits for the log line of the `count`-th attempt that failed for now.
fn wait_for_retries(app: &TestApp, count: usize) -> serde_json::Value {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    app.logs
        .wait_for(|line| {
            line["message"] == "mail not delivered; will try again"
                && seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == count
        })
        .unwrap_or_else(|| panic!("no failed attempt {count}; log:\n{}", app.logs.text()))
}

fn outbox_statuses(app: &TestApp) -> Vec<(String, String, i64, String)> {
    let conn = db(app);
    let mut statement = conn
        .prepare("SELECT recipient, status, attempts, body_text FROM mail_outbox ORDER BY created_at, recipient")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn a_451_is_retried_with_the_same_message_id_and_a_550_is_given_up_and_audited() {
    let smtp = Smtp::start();
    let app = mail_app(&smtp);
    let (admin, id) = shared(&app).await;

    smtp.set_mode("451");
    assert_eq!(send_share(&app, &admin, &id, &["carol@example.test"], "").await.0, 202);
    let failed = wait_for_retries(&app, 1);
    assert!(failed["error"].as_str().unwrap().contains("451"), "{failed}");
    assert!((60..=66).contains(&failed["retry_in"].as_i64().unwrap()), "{failed}");
    assert_eq!(smtp.attempts().len(), 1);
    smtp.set_mode("ok");
    app.advance_clock(70);
    let received = smtp.wait_for(1).await;
    let attempts = smtp.attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0], attempts[1], "one Message-ID across attempts");
    assert_eq!(received[0]["message_id"], attempts[0].as_str());

    smtp.set_mode("550");
    assert_eq!(send_share(&app, &admin, &id, &["nobody@example.test"], "").await.0, 202);
    let given_up = app.logs.wait_for_message("mail given up").expect("the 550 is final");
    assert!(given_up["error"].as_str().unwrap().contains("refused the message: 550"), "{given_up}");
    let audited = audit_of(&app, &admin, "mail_failed").await;
    assert_eq!(audited.len(), 1);
    assert!(audited[0]["detail"].as_str().unwrap().contains("550"), "{}", audited[0]);
    let statuses = outbox_statuses(&app);
    assert_eq!(
        statuses,
        [
            ("carol@example.test".into(), "sent".into(), 2, String::new()),
            ("nobody@example.test".into(), "failed".into(), 1, String::new()),
        ],
        "contents wiped once finished"
    );
    assert_no_secrets(&app, &[]);
}

#[tokio::test]
async fn mail_queued_while_the_server_is_down_goes_out_when_it_is_back_and_a_restart_sends_it_once() {
    let mut smtp = Smtp::start();
    let toml = format!("{}[metrics]\nlisten = \"127.0.0.1:0\"\n", smtp.toml());
    let app = spawn_app(Options { toml, ..Options::default() });
    let (admin, id) = shared(&app).await;
    smtp.stop();
    assert_eq!(
        send_share(&app, &admin, &id, &["carol@example.test"], "").await.0,
        202,
        "the action does not wait for mail"
    );
    let failed = wait_for_retries(&app, 1);
    assert!(failed["error"].as_str().unwrap().contains("cannot talk to the mail server localhost:"), "{failed}");
    let metrics = scrape(&app, None).await.text().await.unwrap();
    assert_eq!(sample(&metrics, "coffer_mail_outbox_pending"), Some(1.0));
    assert_eq!(sample(&metrics, r#"coffer_mail_attempts_total{outcome="retry"}"#), Some(1.0));
    smtp.resume();
    app.advance_clock(70);
    assert_eq!(smtp.wait_for(1).await[0]["to"], "carol@example.test");
    // The server has the message a moment before the sender marks it sent, and the outbox
    // row (read from the database) changes a moment before the sender counts the attempt.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = scrape(&app, None).await.text().await.unwrap();
        let settled = sample(&metrics, "coffer_mail_outbox_pending") == Some(0.0)
            && sample(&metrics, r#"coffer_mail_attempts_total{outcome="sent"}"#).is_some();
        if settled || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sample(&metrics, "coffer_mail_outbox_pending"), Some(0.0));
    assert_eq!(sample(&metrics, r#"coffer_mail_attempts_total{outcome="sent"}"#), Some(1.0));

    // Down again; the server restarts with the message pending; it goes out once.
    smtp.stop();
    assert_eq!(send_share(&app, &admin, &id, &["dave@example.test"], "").await.0, 202);
    wait_for_retries(&app, 2);
    let state_dir = app.state_dir.clone();
    let mut app = app;
    app.terminate();
    assert!(app.wait_exit().await.success());
    smtp.resume();
    let restarted = spawn_app(Options { toml: smtp.toml(), state_dir: Some(state_dir), ..Options::default() });
    // The retry was set on the first server's clock, which the test had moved by 70 s.
    restarted.advance_clock(200);
    let admin = admin_token(&restarted).await;
    smtp.wait_for(2).await;
    assert_eq!(send_share(&restarted, &admin, &id, &["erin@example.test"], "").await.0, 202);
    let received = smtp.wait_for(3).await;
    let to: Vec<&str> = received.iter().map(|mail| mail["to"].as_str().unwrap()).collect();
    assert_eq!(to, ["carol@example.test", "dave@example.test", "erin@example.test"], "each exactly once");
    assert_eq!(smtp.attempts().len(), 3);
}

#[tokio::test]
async fn a_mail_server_that_accepts_and_never_answers_delays_only_mail() {
    let smtp = Smtp::start();
    // A server that takes the connection and then says nothing at all.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let toml = smtp
        .toml()
        .replace(&format!("port = {}", smtp.port), &format!("port = {}", silent.local_addr().unwrap().port()));
    let held = std::thread::spawn(move || {
        let mut connections = Vec::new();
        for stream in silent.incoming().take(2) {
            connections.push(stream.unwrap());
        }
        std::thread::sleep(Duration::from_secs(30));
        drop(connections);
    });
    let mut app = spawn_app(Options { toml, ..Options::default() });
    let (admin, id) = shared(&app).await;
    assert_eq!(send_share(&app, &admin, &id, &["carol@example.test"], "").await.0, 202);
    // Requests are served while the sender waits on the silent server.
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(call(&app, "GET", "/api/v1/me", &admin, None).await.0, 200);
    }
    let _ = upload(&app, &admin, "during-the-stall.txt", b"x".to_vec()).await;
    assert!(started.elapsed() < Duration::from_secs(2), "requests waited for mail: {:?}", started.elapsed());
    let failed = wait_for_retries(&app, 1);
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("did not") && error.contains("localhost:"), "{failed}");
    // And stopping the server does not wait for it either.
    assert_eq!(send_share(&app, &admin, &id, &["dave@example.test"], "").await.0, 202);
    app.advance_clock(70);
    let stopping = Instant::now();
    app.terminate();
    assert!(app.wait_exit().await.success());
    assert!(stopping.elapsed() < Duration::from_secs(10), "{:?}", stopping.elapsed());
    drop(held);
}

#[tokio::test]
async fn mail_test_sends_a_message_or_says_exactly_what_failed() {
    let mut smtp = Smtp::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let test = |toml: &str, address: &str| {
        let config = write_config(dir.path(), &state, toml);
        run_cli(&["mail", "test", address, "--config", config.to_str().unwrap()], &[])
    };
    let (code, stdout, stderr) = test(&smtp.toml(), "carol@example.test");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("sent a test message to carol@example.test; the mail server answered: 250"), "{stdout}");
    let received = smtp.wait_for(1).await;
    assert_eq!(
        (received[0]["to"].as_str(), received[0]["subject"].as_str()),
        (Some("carol@example.test"), Some("Coffer test message"))
    );

    let wrong_password = dir.path().join("wrong");
    std::fs::write(&wrong_password, "not-the-password\n").unwrap();
    let toml = smtp
        .toml()
        .replace(&smtp.dir.path().join("password").display().to_string(), &wrong_password.display().to_string());
    let (code, _, stderr) = test(&toml, "carol@example.test");
    assert_eq!(code, 1);
    assert!(stderr.contains("refused the sign-in: 535") && stderr.contains("mail.password_file"), "{stderr}");

    let without_ca: String =
        smtp.toml().lines().filter(|line| !line.starts_with("ca_file")).map(|line| format!("{line}\n")).collect();
    let (code, _, stderr) = test(&without_ca, "carol@example.test");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("TLS with the mail server localhost:") && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );

    smtp.set_mode("550");
    let (code, _, stderr) = test(&smtp.toml(), "carol@example.test");
    assert_eq!(code, 1);
    assert!(stderr.contains("refused the message: 550"), "{stderr}");

    let (code, _, stderr) = test(&smtp.toml(), "carol");
    assert_eq!(code, 1);
    assert!(stderr.contains("`carol` is not an e-mail address"), "{stderr}");

    let port = smtp.port;
    smtp.stop();
    let (code, stdout, stderr) = test(&smtp.toml(), "carol@example.test");
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("cannot talk to the mail server localhost:{port}")), "{stderr}");
    assert!(!stdout.contains(SMTP_PASSWORD) && !stderr.contains(SMTP_PASSWORD));

    // Mail settings that cannot work are refused before anything runs.
    let config = write_config(dir.path(), &state, "[mail]\nhost = \"localhost\"\nfrom = \"nobody\"\n");
    let (code, _, stderr) = run_cli(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("key `mail.from`") && stderr.contains("key `server.public_url`: needed when `mail.host`"),
        "{stderr}"
    );
}
