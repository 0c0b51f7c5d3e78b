//! Life under systemd: the notify protocol, the watchdog, reload on SIGHUP, and socket
//! activation through `systemd-socket-activate` with a restart that refuses nobody.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::json;
use tokio::net::UnixDatagram;

use crate::helpers::{Options, PATIENCE, TestApp, spawn_app};

/// The next datagram on the notify socket that `wanted` accepts, skipping others.
async fn notification(socket: &UnixDatagram, wanted: impl Fn(&str) -> bool) -> String {
    let mut buffer = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await;
        let length = received.expect("the server notified in time").unwrap();
        let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
        if wanted(&message) {
            return message;
        }
    }
}

fn has(message: &str, line: &str) -> bool {
    message.lines().any(|candidate| candidate == line)
}

fn signal(app: &TestApp, signal: rustix::process::Signal) {
    rustix::process::kill_process(app.pid(), signal).unwrap();
}

#[tokio::test]
async fn the_service_manager_hears_ready_watchdog_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut app = spawn_app(Options {
        env: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            // 200 ms: pings every 100 ms.
            ("WATCHDOG_USEC".into(), "200000".into()),
        ],
        ..Options::default()
    });

    let ready = notification(&socket, |message| has(message, "READY=1")).await;
    // READY comes only once the port answers.
    assert_eq!(app.get("/api/v1/health").await.status(), 200);
    let status = ready.lines().find_map(|line| line.strip_prefix("STATUS=")).expect("a status line");
    assert!(status.contains(&app.base_url) && status.contains("certificate valid until"), "{status}");
    assert!(status.contains("1 users, 0 files"), "{status}");
    for _ in 0..3 {
        notification(&socket, |message| has(message, "WATCHDOG=1")).await;
    }

    signal(&app, rustix::process::Signal::HUP);
    let reloading = notification(&socket, |message| has(message, "RELOADING=1")).await;
    let monotonic = reloading.lines().find_map(|line| line.strip_prefix("MONOTONIC_USEC=")).expect("MONOTONIC_USEC");
    assert!(monotonic.parse::<u64>().unwrap() > 0);
    notification(&socket, |message| has(message, "READY=1")).await;

    app.terminate();
    notification(&socket, |message| has(message, "STOPPING=1")).await;
    assert!(app.wait_exit().await.success());
}

#[tokio::test]
async fn reload_applies_what_it_can_names_what_needs_a_restart_and_rejects_a_broken_file() {
    // Request lines are off at first; the startup lines the test harness waits for are not.
    let level = "[log]\nlevel = \"warn,coffer::startup=info\"\n";
    let app = spawn_app(Options { toml: level.into(), ..Options::default() });
    let original = std::fs::read_to_string(&app.config).unwrap();
    assert_eq!(app.get("/api/v1/health?before").await.status(), 200);

    let changed = original
        .replace("level = \"warn,coffer::startup=info\"", "level = \"info\"")
        .replace("[server]\n", "[server]\nmax_body_size = \"8 KiB\"\n")
        .replace("[storage]\n", "[storage]\ngc_interval = \"2h\"\nmax_file_size = \"1 KiB\"\n")
        + "[shares]\ndefault_expiry = \"30m\"\nmax_lifetime = \"1h\"\n";
    assert_ne!(changed, original);
    std::fs::write(&app.config, &changed).unwrap();
    signal(&app, rustix::process::Signal::HUP);
    let reloaded = app.logs.wait_for_message("configuration reloaded").expect("reloaded");
    let applied = reloaded["applied"].as_str().unwrap();
    for key in
        ["log.level", "server.max_body_size", "storage.max_file_size", "shares.default_expiry", "shares.max_lifetime"]
    {
        assert!(applied.contains(key), "{key} not in {applied}");
    }
    let restart = app
        .logs
        .wait_for_message("these changed settings keep their running values until a restart")
        .expect("restart-only keys are named");
    assert_eq!(restart["keys"], "storage.gc_interval");

    // The new level: request lines (info) are written now, and were not before.
    assert_eq!(app.get("/api/v1/health?after").await.status(), 200);
    app.logs.wait_for(|line| line["message"] == "request" && line["path"] == "/api/v1/health").expect("info lines");
    assert_eq!(app.logs.text().matches("\"path\":\"/api/v1/health\"").count(), 1);
    // The new body limit.
    let big = json!({"username": "x".repeat(10_000), "password": "y"});
    let response = app.client.post(app.url("/api/v1/auth/login")).json(&big).send().await.unwrap();
    assert_eq!(response.status(), 413);

    // The new upload and share limits.
    let admin = crate::files::admin_token(&app).await;
    let (status, _) = crate::files::put(&app, &admin, "name=big.bin", vec![7; 2048]).await;
    assert_eq!(status, 413);
    let file = crate::shares::upload(&app, &admin, "small.bin", vec![7; 512]).await;
    let made = crate::shares::share(&app, &admin, &file, json!({})).await;
    let at = |key: &str| {
        time::OffsetDateTime::parse(made[key].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    assert_eq!((at("expires_at") - at("created_at")).whole_minutes(), 30);
    let (status, _) = crate::accounts::call(
        &app,
        "POST",
        "/api/v1/shares",
        &admin,
        Some(json!({"file_id": file, "expires_in": 7200})),
    )
    .await;
    assert_eq!(status, 400, "beyond the new max_lifetime");

    // A broken file changes nothing.
    std::fs::write(&app.config, "[server\nthis is not toml").unwrap();
    signal(&app, rustix::process::Signal::HUP);
    let rejected =
        app.logs.wait_for_message("configuration rejected; the running configuration stays").expect("rejected");
    assert!(rejected["error"].as_str().unwrap().contains(&app.config.display().to_string()), "{rejected}");
    assert_eq!(app.get("/api/v1/health").await.status(), 200, "still serving");
    let response = app.client.post(app.url("/api/v1/auth/login")).json(&big).send().await.unwrap();
    assert_eq!(response.status(), 413, "the running limit stays");
}

#[tokio::test]
async fn socket_activation_restart_refuses_no_connection() {
    // The test holds the listening socket, as systemd's coffer.socket does across restarts.
    let socket = Arc::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let state = tempfile::tempdir().unwrap();
    let options = Options {
        passed_socket: Some(Arc::clone(&socket)),
        state_dir: Some(state.path().join("state")),
        // server.listen is ignored when sockets are passed; a taken port proves it.
        toml: format!("[server]\nlisten = [\"{}\"]\n", socket.local_addr().unwrap()),
        ..Options::default()
    };
    let mut first = spawn_app(options.clone());
    assert_eq!(first.addr, socket.local_addr().unwrap());
    first.logs.wait_for_message("using sockets passed by the service manager; server.listen is not used").unwrap();

    // A stream of requests, each on a new connection, across a restart.
    let pem = std::fs::read(first.self_signed_cert()).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .http1_only()
        .pool_max_idle_per_host(0)
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let url = first.url("/api/v1/health");
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let (served_tx, mut served) = tokio::sync::watch::channel(0usize);
    let load = tokio::spawn({
        let (stop, failed) = (Arc::clone(&stop), Arc::clone(&failed));
        async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => served_tx.send_modify(|count| *count += 1),
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    served.wait_for(|count| *count >= 20).await.unwrap();
    first.terminate();
    assert!(first.wait_exit().await.success());
    let before = *served.borrow();
    let second = spawn_app(options);
    served.wait_for(|count| *count >= before + 20).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed across the restart");
    assert!(second.logs.text().contains("\"path\":\"/api/v1/health\""), "the new process served some");
}

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/coffer.service");
const UNIT_FILTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/unit-syscall-filter.py");

#[tokio::test]
async fn the_binary_works_under_the_units_syscall_filter_and_memory_deny_write_execute() {
    // The filter is real: writable and executable memory is refused under it.
    let control = std::process::Command::new(UNIT_FILTER)
        .args([
            UNIT,
            "/usr/bin/python3",
            "-c",
            "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)",
        ])
        .output()
        .unwrap();
    assert!(!control.status.success());
    assert!(String::from_utf8_lossy(&control.stderr).contains("Operation not permitted"));

    let mut app = spawn_app(Options { wrapper: vec![UNIT_FILTER.into(), UNIT.into()], ..Options::default() });
    let admin = crate::files::admin_token(&app).await;
    let data: Vec<u8> = (0..3u32 << 20).map(|index| (index % 249) as u8).collect();
    let file = crate::shares::upload(&app, &admin, "filtered.bin", data.clone()).await;
    let downloaded = crate::files::download(&app, &admin, &file).await.bytes().await.unwrap();
    assert_eq!(downloaded.as_ref(), data.as_slice());
    let made = crate::shares::share(&app, &admin, &file, json!({"password": "filtered-secret-1"})).await;
    let link = format!("/s/{}/download", made["token"].as_str().unwrap());
    let shared = app.client.get(app.url(&link)).header("x-share-password", "filtered-secret-1").send().await.unwrap();
    assert_eq!(shared.bytes().await.unwrap().len(), data.len());
    // The text extraction child and its limits (prlimit64) work under the filter too.
    let page = crate::search::upload(&app, &admin, &[("name", "filtered.html")], "<p>seccompword</p>").await;
    let found = crate::search::found_within(&app, &admin, "seccompword", &crate::search::id(&page), PATIENCE).await;
    assert!(found, "{}", app.logs.text());
    signal(&app, rustix::process::Signal::HUP);
    app.logs.wait_for_message("configuration reloaded").expect("reload works under the filter");
    app.terminate();
    assert!(app.wait_exit().await.success(), "{}", app.logs.text());
    assert!(!app.logs.text().contains("\"level\":\"ERROR\""), "{}", app.logs.text());
}

#[test]
fn the_units_verify_cleanly_and_expose_at_most_1_5() {
    let dir = tempfile::tempdir().unwrap();
    let units = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd");
    for name in ["coffer.service", "coffer.socket", "coffer-http.socket"] {
        // Point at the binary under test; man pages exist only once the package is installed.
        let text = std::fs::read_to_string(format!("{units}/{name}")).unwrap();
        let text = text.replace("/usr/bin/coffer", crate::helpers::BIN).replace("man:coffer(1) ", "");
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(["coffer.service", "coffer.socket", "coffer-http.socket"].map(|name| dir.path().join(name)))
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(verify.status.success() && complaints.trim().is_empty(), "{complaints}");

    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=15"])
        .arg(dir.path().join("coffer.service"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout).into_owned();
    let level: f64 = report
        .lines()
        .find_map(|line| line.split("Overall exposure level for coffer.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .expect("an exposure level");
    assert!(security.status.success() && level <= 1.5, "exposure {level}:\n{report}");
}
