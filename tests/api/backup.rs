//! `coffer backup`: interrupted backups, verification finding damage, restore refusals and
//! versions, markers, retention; the restore drill is in `backup_drill.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::accounts::call;
use crate::auth::{admin_password, login};
use crate::files::{admin_token, download, put, sha256_hex, user_token};
use crate::helpers::{BIN, Options, eventually, spawn_app};

/// The `[backup]` table pointing at `dir`.
pub fn backup_toml(dir: &Path) -> String {
    format!("[backup]\ndirectory = {:?}\n", dir.display().to_string())
}

fn command(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.arg("backup").args(args).arg("--config").arg(config).env_remove("CREDENTIALS_DIRECTORY");
    command.envs(env.iter().copied()).stdin(Stdio::null());
    command
}

/// Runs `coffer backup <args>` with `config`: (exit code, stdout, stderr).
pub fn coffer_backup(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = command(config, args, env).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts `coffer backup <args>` that will pause where the pause file says (debug builds).
pub fn spawn_paused(config: &Path, args: &[&str], pause: &Path) -> Child {
    std::fs::write(pause, b"").unwrap();
    command(config, args, &[("TESTING_COFFER_BACKUP_PAUSE_FILE", pause.to_str().unwrap())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The file a paused command creates once it has reached its pause.
pub fn reached(pause: &Path) -> PathBuf {
    PathBuf::from(format!("{}.reached", pause.display()))
}

/// Waits (bounded) for a child command: (exit code, stdout + stderr).
pub async fn finish(child: Child) -> (i32, String) {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// Ids of the complete snapshots in a backup directory, oldest first.
pub fn complete_snapshots(backups: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(backups.join("snapshots"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().join("COMPLETE").is_file())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

pub fn pool_blob(backups: &Path, sha256: &str) -> PathBuf {
    backups.join("pool").join(&sha256[..2]).join(&sha256[2..4]).join(sha256)
}

pub fn contents(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test]
async fn a_backup_killed_midway_leaves_nothing_complete_and_the_next_run_cleans_up_and_succeeds() {
    let temp = tempfile::tempdir().unwrap();
    let backups = temp.path().join("backups");
    let toml = format!("[storage]\ngc_interval = \"1s\"\n{}", backup_toml(&backups));
    let app = spawn_app(Options { toml, ..Options::default() });
    let token = admin_token(&app).await;
    for index in 0..5u64 {
        assert_eq!(put(&app, &token, &format!("name=file-{index}"), contents(index, 20_000)).await.0, 201);
    }
    assert_eq!(coffer_backup(&app.config, &["init"], &[]).0, 0);
    let pause = temp.path().join("pause");
    let mut backup = spawn_paused(&app.config, &["create"], &pause);
    assert!(eventually(|| reached(&pause).exists()).await);
    // Meanwhile a repair in another process is held off, and says so.
    let repair =
        Command::new(BIN).args(["check", "--repair", "--config", app.config.to_str().unwrap()]).output().unwrap();
    let report = String::from_utf8_lossy(&repair.stdout);
    assert_eq!(repair.status.code(), Some(3), "{report}");
    assert!(report.contains("not repaired: a backup is running"), "{report}");
    backup.kill().unwrap();
    backup.wait().unwrap();
    std::fs::remove_file(&pause).unwrap();

    assert!(complete_snapshots(&backups).is_empty());
    let (code, stdout, _) = coffer_backup(&app.config, &["list"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains(".partial (interrupted; removed by the next backup)"), "{stdout}");
    assert!(!stdout.contains(" complete "), "{stdout}");
    let (code, _, stderr) = coffer_backup(&app.config, &["verify"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("holds no complete snapshot"), "{stderr}");
    let restore_to = temp.path().join("restored");
    let (code, _, stderr) = coffer_backup(&app.config, &["restore", "--to", restore_to.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(!restore_to.exists());

    // The killed backup's hold on collection died with it.
    let (_, doomed) = put(&app, &token, "name=doomed", b"collect me".to_vec()).await;
    call(&app, "DELETE", &format!("/api/v1/files/{}", doomed["id"].as_str().unwrap()), &token, None).await;
    assert!(app.logs.wait_for_message("removed unused blobs").is_some(), "collection stayed off");

    let (code, stdout, stderr) = coffer_backup(&app.config, &["create"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("removed the interrupted snapshot"), "{stdout}");
    assert_eq!(complete_snapshots(&backups).len(), 1);
    assert!(
        !std::fs::read_dir(backups.join("snapshots"))
            .unwrap()
            .any(|entry| { entry.unwrap().file_name().to_string_lossy().ends_with(".partial") })
    );
    assert_eq!(coffer_backup(&app.config, &["verify", "--read-data"], &[]).0, 0);
}

/// Replaces a pool entry (a hard link to the live blob) with a separate file, so damaging
/// the backup's copy leaves the store alone.
fn replace_pool_entry(path: &Path, contents: &[u8]) {
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, contents).unwrap();
}

#[tokio::test]
async fn verify_finds_a_flipped_byte_a_missing_blob_a_truncated_database_and_a_missing_marker() {
    let temp = tempfile::tempdir().unwrap();
    let backups = temp.path().join("backups");
    let app = spawn_app(Options { toml: backup_toml(&backups), ..Options::default() });
    let admin = admin_token(&app).await;
    let (carol, _) = user_token(&app, &admin, "carol").await;
    let flipped = contents(7, 64_000);
    let (_, flipped_file) = put(&app, &carol, "name=flipped.bin", flipped.clone()).await;
    let missing = contents(8, 10_000);
    let (_, missing_file) = put(&app, &carol, "name=missing.bin", missing.clone()).await;
    assert_eq!(coffer_backup(&app.config, &["init"], &[]).0, 0);
    assert_eq!(coffer_backup(&app.config, &["create"], &[]).0, 0);
    let id = complete_snapshots(&backups).remove(0);
    let snapshot = backups.join("snapshots").join(&id);
    assert_eq!(coffer_backup(&app.config, &["verify", "--read-data"], &[]).0, 0);

    // A flipped byte: same size, so only reading the data finds it.
    let pool = pool_blob(&backups, flipped_file["sha256"].as_str().unwrap());
    let mut damaged = flipped.clone();
    damaged[12_345] ^= 0x20;
    replace_pool_entry(&pool, &damaged);
    assert_eq!(coffer_backup(&app.config, &["verify"], &[]).0, 0, "a quick verify reads no data");
    let (code, stdout, _) = coffer_backup(&app.config, &["verify", "--read-data"], &[]);
    assert_eq!(code, 1, "{stdout}");
    let named = format!("file {} \"flipped.bin\" of carol", flipped_file["id"].as_str().unwrap());
    assert!(stdout.contains(&named) && stdout.contains("damaged"), "{stdout}");
    // A restore reads every blob too: it fails, names the blob, and leaves no half-restore.
    let target = temp.path().join("half-restored");
    let (code, _, stderr) = coffer_backup(&app.config, &["restore", "--to", target.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("blob {} in the backup hashes to", flipped_file["sha256"].as_str().unwrap())),
        "{stderr}"
    );
    assert!(!target.exists(), "a failed restore left files behind");
    replace_pool_entry(&pool, &flipped);

    // A missing blob.
    let pool = pool_blob(&backups, missing_file["sha256"].as_str().unwrap());
    std::fs::remove_file(&pool).unwrap();
    let (code, stdout, _) = coffer_backup(&app.config, &["verify", &id], &[]);
    assert_eq!(code, 1, "{stdout}");
    let named = format!("file {} \"missing.bin\" of carol", missing_file["id"].as_str().unwrap());
    assert!(stdout.contains(&named) && stdout.contains("missing from the pool"), "{stdout}");
    std::fs::write(&pool, &missing).unwrap();
    assert_eq!(coffer_backup(&app.config, &["verify", "--read-data"], &[]).0, 0, "repaired");

    // A truncated database copy.
    let database = snapshot.join("coffer.db");
    let whole = std::fs::read(&database).unwrap();
    std::fs::write(&database, &whole[..whole.len() / 2]).unwrap();
    let (code, stdout, _) = coffer_backup(&app.config, &["verify"], &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("the database copy is damaged"), "{stdout}");
    std::fs::write(&database, &whole).unwrap();

    // A missing completion marker: no longer a snapshot to list as complete or restore.
    std::fs::remove_file(snapshot.join("COMPLETE")).unwrap();
    let (_, stdout, _) = coffer_backup(&app.config, &["list"], &[]);
    assert!(stdout.contains(&format!("{id} incomplete")), "{stdout}");
    let (code, stdout, _) = coffer_backup(&app.config, &["verify", &id], &[]);
    assert_eq!(code, 1);
    assert!(stdout.contains("never finished"), "{stdout}");
    let target = temp.path().join("restored");
    let (code, _, stderr) =
        coffer_backup(&app.config, &["restore", "--snapshot", &id, "--to", target.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("incomplete"), "{stderr}");
}

/// Rewrites a snapshot's manifest with `change` and seals it again (a new `COMPLETE`), as a
/// snapshot made by another Coffer would be.
fn rewrite_manifest(snapshot: &Path, change: impl FnOnce(&mut Value)) {
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(snapshot.join("manifest.json")).unwrap()).unwrap();
    change(&mut manifest);
    let text = serde_json::to_vec_pretty(&manifest).unwrap();
    std::fs::write(snapshot.join("manifest.json"), &text).unwrap();
    std::fs::write(snapshot.join("COMPLETE"), format!("{}\n", sha256_hex(&text))).unwrap();
}

/// Turns a database of the newest schema into one of the schema before it: update it with each
/// new migration.
const UNDO_NEWEST_MIGRATION: &str = "DROP TABLE share_file_downloads; DROP TABLE share_files;
    CREATE TABLE shares_old AS SELECT id, token_hash, sealed_token, file_id, owner_id, created_at, expires_at,
        password_hash, password_version, max_downloads, downloads, last_access_at, note, disabled, views,
        notify_downloads FROM shares WHERE kind = 'file';
    DROP TABLE shares; ALTER TABLE shares_old RENAME TO shares;";

#[tokio::test]
async fn restore_refuses_a_non_empty_target_and_a_newer_schema_without_writing_and_migrates_an_older_one() {
    let temp = tempfile::tempdir().unwrap();
    let backups = temp.path().join("backups");
    let toml = backup_toml(&backups);
    let app = spawn_app(Options { toml: toml.clone(), ..Options::default() });
    let token = admin_token(&app).await;
    let (_, file) = put(&app, &token, "name=kept.txt", b"restored across versions".to_vec()).await;
    assert_eq!(coffer_backup(&app.config, &["init"], &[]).0, 0);
    assert_eq!(coffer_backup(&app.config, &["create"], &[]).0, 0);

    // Not empty: refused, nothing touched.
    let occupied = temp.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("coffer.db"), b"someone's data").unwrap();
    let (code, _, stderr) = coffer_backup(&app.config, &["restore", "--to", occupied.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("is not empty (coffer.db)") && stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(std::fs::read(occupied.join("coffer.db")).unwrap(), b"someone's data");
    assert_eq!(std::fs::read_dir(&occupied).unwrap().count(), 1);

    // From a newer Coffer: refused before anything is written.
    let id = complete_snapshots(&backups).remove(0);
    let snapshot = backups.join("snapshots").join(&id);
    let latest = coffer::db::LATEST_VERSION;
    rewrite_manifest(&snapshot, |manifest| manifest["schema_version"] = json!(latest + 1));
    let fresh = temp.path().join("fresh");
    let (code, _, stderr) = coffer_backup(&app.config, &["restore", "--to", fresh.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains(&format!("database schema {}", latest + 1)) && stderr.contains("or newer"), "{stderr}");
    assert!(!fresh.exists(), "the refused restore wrote something");

    // From an older Coffer (the newest migration undone): restored, then migrated by the
    // server at start.
    let database = snapshot.join("coffer.db");
    let conn = rusqlite::Connection::open(&database).unwrap();
    conn.execute_batch(&format!("{UNDO_NEWEST_MIGRATION} PRAGMA user_version = {};", latest - 1)).unwrap();
    drop(conn);
    let bytes = std::fs::read(&database).unwrap();
    rewrite_manifest(&snapshot, |manifest| {
        manifest["schema_version"] = json!(latest - 1);
        manifest["database"]["size"] = json!(bytes.len());
        manifest["database"]["sha256"] = json!(sha256_hex(&bytes));
    });
    let (code, stdout, stderr) = coffer_backup(&app.config, &["restore", "--to", fresh.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let server = spawn_app(Options { state_dir: Some(fresh), toml, ..Options::default() });
    let migrated = server.logs.wait_for(|line| line["message"] == "applied database migration");
    assert_eq!(migrated.expect("migrated at start")["version"], latest);
    let (status, session) = login(&server, "admin", &admin_password(&app)).await;
    assert_eq!(status, 200, "{session}");
    let response = download(&server, session["access_token"].as_str().unwrap(), file["id"].as_str().unwrap()).await;
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"restored across versions");
}

#[tokio::test]
async fn backup_commands_refuse_a_directory_without_this_instances_marker() {
    let temp = tempfile::tempdir().unwrap();
    let unmounted = temp.path().join("mnt-usb");
    std::fs::create_dir(&unmounted).unwrap();
    let app = spawn_app(Options { toml: backup_toml(&unmounted), ..Options::default() });
    for command in [&["create"][..], &["prune"], &["list"], &["verify"]] {
        let (code, _, stderr) = coffer_backup(&app.config, command, &[]);
        assert_eq!(code, 3, "{command:?}: {stderr}");
        assert!(stderr.contains("no COFFER-BACKUP marker") && stderr.contains("not mounted"), "{stderr}");
    }
    assert_eq!(std::fs::read_dir(&unmounted).unwrap().count(), 0, "something was written");
    std::fs::write(unmounted.join("COFFER-BACKUP"), "format=1\ninstance_id=someone-else\n").unwrap();
    let (code, _, stderr) = coffer_backup(&app.config, &["create"], &[]);
    assert_eq!(code, 3);
    assert!(stderr.contains("another Coffer instance"), "{stderr}");
}

#[tokio::test]
async fn an_unchanged_store_costs_a_second_backup_only_its_database() {
    let temp = tempfile::tempdir().unwrap();
    let backups = temp.path().join("backups");
    let app = spawn_app(Options { toml: backup_toml(&backups), ..Options::default() });
    let token = admin_token(&app).await;
    for index in 0..20u64 {
        assert_eq!(put(&app, &token, &format!("name=f{index}"), contents(index, 50_000)).await.0, 201);
    }
    assert_eq!(coffer_backup(&app.config, &["init"], &[]).0, 0);
    let (_, first, _) = coffer_backup(&app.config, &["create"], &[]);
    assert!(first.contains("0 already in the pool, 20 hard-linked, 0 copied"), "{first}");
    let (_, second, _) = coffer_backup(&app.config, &["create"], &[]);
    assert!(second.contains("20 already in the pool, 0 hard-linked, 0 copied"), "{second}");
    let ids = complete_snapshots(&backups);
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "ids sort in the order the snapshots were made: {ids:?}");
    // Hard links all the way: the store's blob, the pool's entry, nothing else.
    let sha256 = sha256_hex(&contents(0, 50_000));
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(pool_blob(&backups, &sha256)).unwrap()), 2);
    let status: Value = serde_json::from_slice(&std::fs::read(backups.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["last_status"], "ok");
    assert_eq!(status["last_success_snapshot"], ids[1].as_str());
}

/// Snapshots made on four days (the test moves the clock the backup command reads); prune
/// keeps what the rules say, shows why in a dry run first, and sweeps the pool. `run` prunes
/// only after a successful backup.
#[tokio::test]
async fn prune_keeps_by_the_rules_explains_itself_and_runs_only_after_a_successful_backup() {
    let temp = tempfile::tempdir().unwrap();
    let backups = temp.path().join("backups");
    let toml = format!("{}keep_last = 1\nkeep_daily = 2\nkeep_weekly = 0\nkeep_monthly = 0\n", backup_toml(&backups));
    let app = spawn_app(Options { toml, ..Options::default() });
    let token = admin_token(&app).await;
    let clock = temp.path().join("clock");
    let on_day = |day: i64| {
        std::fs::write(&clock, (day * 86_400).to_string()).unwrap();
        vec![("TESTING_COFFER_CLOCK_FILE", clock.to_str().unwrap().to_owned())]
    };
    let run = |args: &[&str], env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (*key, value.as_str())).collect();
        coffer_backup(&app.config, args, &env)
    };
    let (_, early) = put(&app, &token, "name=early", b"only in the oldest snapshot".to_vec()).await;
    assert_eq!(run(&["init"], &on_day(0)).0, 0);
    assert_eq!(run(&["create"], &on_day(0)).0, 0);
    call(&app, "DELETE", &format!("/api/v1/files/{}", early["id"].as_str().unwrap()), &token, None).await;
    for day in 1..4 {
        put(&app, &token, &format!("name=day-{day}"), format!("day {day}").into_bytes()).await;
        assert_eq!(run(&["create"], &on_day(day)).0, 0);
    }
    let ids = complete_snapshots(&backups);
    assert_eq!(ids.len(), 4);
    let early_blob = pool_blob(&backups, early["sha256"].as_str().unwrap());
    assert!(early_blob.exists());

    let (code, stdout, _) = run(&["prune", "--dry-run"], &on_day(3));
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!(
            "would keep   {}  the newest complete snapshot; keep_last (1 of 1); keep_daily (1 of 2)",
            ids[3]
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("would keep   {}  keep_daily (2 of 2)", ids[2])), "{stdout}");
    assert!(stdout.contains(&format!("would remove {}  matches no keep rule", ids[0])), "{stdout}");
    assert!(stdout.contains("would remove 1 unused blobs"), "{stdout}");
    assert_eq!(complete_snapshots(&backups), ids, "a dry run removed something");

    // A failed backup (a blob gone from the store) prunes nothing.
    let (_, broken) = put(&app, &token, "name=broken", b"its blob disappears".to_vec()).await;
    let sha = broken["sha256"].as_str().unwrap();
    std::fs::remove_file(app.state_dir.join("blobs").join(&sha[..2]).join(&sha[2..4]).join(sha)).unwrap();
    let (code, stdout, stderr) = run(&["run"], &on_day(3));
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.contains(&format!("file {} \"broken\" of admin", broken["id"].as_str().unwrap())), "{stderr}");
    assert_eq!(complete_snapshots(&backups), ids, "pruned after a failed backup");
    let status: Value = serde_json::from_slice(&std::fs::read(backups.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["last_status"], "failed");
    call(&app, "DELETE", &format!("/api/v1/files/{}", broken["id"].as_str().unwrap()), &token, None).await;

    let (code, stdout, stderr) = run(&["run"], &on_day(3));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let kept = complete_snapshots(&backups);
    assert_eq!(kept.len(), 2, "{stdout}");
    assert!(kept.contains(&ids[2]) && !kept.contains(&ids[3]), "{kept:?}");
    assert!(!early_blob.exists(), "the pool kept a blob no snapshot lists");
    assert!(stdout.contains("removed 1 unused blobs"), "{stdout}");
}
