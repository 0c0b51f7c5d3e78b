//! Upgrading a populated database from every earlier schema version keeps every row: each
//! version's tables are filled as that version knew them, then the database is migrated to the
//! latest version and every row is read back.

use rusqlite::{Connection, params};

use super::migrations::{LATEST_VERSION, migrate_to, schema_version};

/// Fills the tables that schema `version` introduced, as that version wrote them.
fn seed(conn: &Connection, version: u32) {
    match version {
        1 => {}
        2 => {
            conn.execute_batch(
                "INSERT INTO users (id, username, username_key, email, password_hash, role, quota_bytes, created_at, last_login_at)
                 VALUES ('u1', 'Alice', 'alice', 'alice@example.org', '$argon2id$hash', 'admin', 1000, 100, 200),
                        ('u2', 'bob', 'bob', NULL, '$argon2id$other', 'user', NULL, 101, NULL);
                 INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, client_ip)
                 VALUES ('s1', 'u1', 100, 150, 999999, '203.0.113.7');
                 INSERT INTO refresh_tokens (token_hash, session_id, issued_at, spent_at) VALUES (x'0102', 's1', 100, 150);
                 INSERT INTO api_tokens (id, user_id, name, token_hash, scope, created_at, expires_at)
                 VALUES ('t1', 'u2', 'backup script', x'0304', 'read-only', 120, NULL);
                 INSERT INTO audit_log (at, event, actor_id, subject, ip, detail)
                 VALUES (100, 'login_ok', 'u1', 's1', '203.0.113.7', '');",
            )
            .unwrap();
        }
        3 => {
            conn.execute_batch(&format!(
                "INSERT INTO files (id, owner_id, folder, name, size, sha256, content_type, description, created_at, modified_at)
                 VALUES ('f1', 'u1', 'work', 'report.pdf', 48213, '{hash}', 'application/pdf', 'Q3', 300, 301),
                        ('f2', 'u2', '', 'CON', 3, '{hash}', 'text/plain', '', 302, 302);
                 INSERT INTO file_grants (file_id, user_id, granted_at) VALUES ('f1', 'u2', 303);",
                hash = "a".repeat(64)
            ))
            .unwrap();
        }
        4 => {
            conn.execute(
                "INSERT INTO shares (id, token_hash, sealed_token, file_id, owner_id, created_at, expires_at,
                     password_hash, password_version, max_downloads, downloads, note)
                 VALUES ('sh1', x'0506', x'0708', 'f1', 'u1', 400, 999999, '$argon2id$share', 2, 5, 3, 'for bob')",
                params![],
            )
            .unwrap();
        }
        5 | 6 => {}
        7 => {
            conn.execute_batch(
                "UPDATE sessions SET cookie_hash = x'0909' WHERE id = 's1';
                 INSERT INTO folders (owner_id, path, created_at) VALUES ('u1', 'empty/inside', 500);",
            )
            .unwrap();
        }
        8 => {
            conn.execute_batch(
                "INSERT INTO mail_outbox (id, kind, user_id, recipient, subject, body_text, body_html, status,
                     next_attempt_at, created_at, expires_at)
                 VALUES ('m1', 'share_link', 'u1', 'carol@example.org', 'Alice shared', 'text', '<p>html</p>',
                     'pending', 700, 700, 9999);
                 INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (x'0909', 'u2', 700, 4300);
                 UPDATE users SET mail_notices = 0 WHERE id = 'u2';",
            )
            .unwrap();
        }
        9 => {
            conn.execute(
                "INSERT INTO uploads (id, owner_id, folder, name, on_conflict, length, received, reserved_bytes, metadata, created_at, expires_at)
                 VALUES ('up1', 'u2', '', 'big.iso', 'fail', 1000, 400, 1000, 'filename YmlnLmlzbw==', 500, 90000)",
                params![],
            )
            .unwrap();
        }
        10 => {
            conn.execute_batch(
                "INSERT INTO oidc_identities (issuer, subject, provider, user_id, email, linked_at)
                 VALUES ('https://idp.example.org', 'sub-1', 'idp', 'u2', 'bob@example.org', 800);
                 INSERT INTO oidc_pending (state_hash, provider, nonce, pkce_verifier, redirect_uri, browser_hash, created_at, expires_at)
                 VALUES (x'0a0a', 'idp', 'n', 'v', 'https://coffer.example.org/auth/oidc/callback', x'0b0b', 800, 1400);
                 UPDATE sessions SET method = 'oidc:idp' WHERE id = 's1';",
            )
            .unwrap();
        }
        11 => {
            conn.execute(
                "INSERT INTO upload_links (id, token_hash, sealed_token, owner_id, folder, created_at, expires_at,
                     max_files, max_total_bytes, max_file_bytes, files_received, bytes_received, note)
                 VALUES ('ul1', x'0a0b', x'0c0d', 'u1', 'work', 800, 999999, 5, 5000, 1000, 1, 300, 'scans please')",
                params![],
            )
            .unwrap();
        }
        12 => {
            conn.execute_batch(
                "INSERT INTO shares (id, token_hash, sealed_token, owner_id, created_at, expires_at, kind)
                 VALUES ('sh2', x'0a0b', x'0c0d', 'u1', 800, 999999, 'files');
                 INSERT INTO shares (id, token_hash, sealed_token, owner_id, created_at, expires_at, kind, folder)
                 VALUES ('sh3', x'0a0c', x'0c0e', 'u1', 801, 999999, 'folder', 'work');
                 INSERT INTO share_files (share_id, file_id) VALUES ('sh2', 'f1');
                 INSERT INTO share_file_downloads (share_id, file_id, downloads) VALUES ('sh2', 'f1', 1);",
            )
            .unwrap();
        }
        other => panic!("no seed for schema version {other}: add one with the migration"),
    }
}

/// Reads back what [`seed`] wrote for every version up to `seeded`.
fn check(conn: &Connection, seeded: u32) {
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0)).unwrap()
    };
    if seeded >= 2 {
        let alice: (String, String, Option<String>, i64, Option<i64>) = conn
            .query_row(
                "SELECT username, role, email, quota_bytes, last_login_at FROM users WHERE id = 'u1'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .unwrap();
        assert_eq!(alice, ("Alice".into(), "admin".into(), Some("alice@example.org".into()), 1000, Some(200)));
        assert_eq!((count("users"), count("sessions"), count("refresh_tokens")), (2, 1, 1));
        assert_eq!((count("api_tokens"), count("audit_log")), (1, 1));
        let spent: Option<i64> = conn.query_row("SELECT spent_at FROM refresh_tokens", [], |row| row.get(0)).unwrap();
        assert_eq!(spent, Some(150));
    }
    if seeded >= 3 {
        let report: (String, i64, String) = conn
            .query_row("SELECT folder, size, description FROM files WHERE id = 'f1'", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!(report, ("work".into(), 48213, "Q3".into()));
        assert_eq!((count("files"), count("file_grants")), (2, 1));
    }
    if seeded >= 4 {
        let share: (i64, i64, Option<i64>, String, i64) = conn
            .query_row(
                "SELECT downloads, password_version, max_downloads, note, views FROM shares WHERE id = 'sh1'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .unwrap();
        assert_eq!(share, (3, 2, Some(5), "for bob".into(), 0), "counts kept, views start at 0");
    }
    if seeded >= 7 {
        let folder: i64 =
            conn.query_row("SELECT created_at FROM folders WHERE path = 'empty/inside'", [], |row| row.get(0)).unwrap();
        assert_eq!(folder, 500);
    }
    if (2..8).contains(&seeded) {
        let notices: i64 =
            conn.query_row("SELECT mail_notices FROM users WHERE id = 'u1'", [], |row| row.get(0)).unwrap();
        assert_eq!(notices, 1, "existing users get notices");
    }
    if seeded >= 8 {
        let mail: (String, String, i64) = conn
            .query_row("SELECT status, recipient, attempts FROM mail_outbox WHERE id = 'm1'", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!(mail, ("pending".into(), "carol@example.org".into(), 0));
        assert_eq!(count("password_resets"), 1);
    }
    if seeded >= 9 {
        let upload: (i64, i64, Option<String>) = conn
            .query_row("SELECT length, received, file_id FROM uploads WHERE id = 'up1'", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!(upload, (1000, 400, None));
    }
    if (2..10).contains(&seeded) {
        let method: String =
            conn.query_row("SELECT method FROM sessions WHERE id = 's1'", [], |row| row.get(0)).unwrap();
        assert_eq!(method, "password", "sessions from before were password sign-ins");
    }
    if seeded >= 10 {
        let identity: (String, String) = conn
            .query_row("SELECT user_id, provider FROM oidc_identities WHERE subject = 'sub-1'", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!(identity, ("u2".into(), "idp".into()));
        assert_eq!(count("oidc_pending"), 1);
    }
    if seeded >= 11 {
        let link: (i64, i64, String) = conn
            .query_row("SELECT files_received, bytes_received, note FROM upload_links WHERE id = 'ul1'", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!(link, (1, 300, "scans please".into()));
    }
    if seeded >= 12 {
        let kinds: Vec<String> = conn
            .prepare("SELECT kind || ':' || coalesce(folder, '') FROM shares WHERE id IN ('sh2', 'sh3') ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kinds, ["files:", "folder:work"]);
        assert_eq!((count("share_files"), count("share_file_downloads")), (1, 1));
    }
    if (4..12).contains(&seeded) {
        let kind: String = conn.query_row("SELECT kind FROM shares WHERE id = 'sh1'", [], |row| row.get(0)).unwrap();
        assert_eq!(kind, "file", "existing shares are single-file shares");
    }
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let foreign: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| row.get(0)).unwrap();
    assert_eq!(foreign, 0);
}

#[test]
fn a_populated_database_upgrades_from_every_earlier_version_without_losing_a_row() {
    for start in 1..LATEST_VERSION {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.db");
        let mut conn = super::connect(&path, std::time::Duration::from_secs(1)).unwrap();
        migrate_to(&mut conn, &path, start).unwrap();
        for version in 1..=start {
            seed(&conn, version);
        }
        drop(conn);
        let mut conn = super::connect(&path, std::time::Duration::from_secs(1)).unwrap();
        super::migrations::apply(&mut conn, &path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), LATEST_VERSION, "from version {start}");
        check(&conn, start);
        let copy = dir.path().join(format!("coffer.db.before-v{}", start + 1));
        assert!(copy.exists(), "a copy was kept before migrating from version {start}");
        // Every version can seed on top of the latest schema too: nothing a migration added
        // broke what older code wrote.
        for version in start + 1..=LATEST_VERSION {
            seed(&conn, version);
        }
        check(&conn, LATEST_VERSION);
    }
}
