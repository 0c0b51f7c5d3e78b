//! The schema's history: every migration Coffer has ever shipped, in order. Released entries are
//! never edited or removed (databases in the field are at every version); a change is a new entry
//! at the end. `migrations.rs` applies them.

/// Migrations in order; the version of `MIGRATIONS[i]` is `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: who this instance is; backups and restores check it.
    "CREATE TABLE instance (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        instance_id TEXT NOT NULL,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    ) STRICT;
    INSERT INTO instance (id, instance_id) VALUES (1, lower(hex(randomblob(16))));",
    // 2: accounts, login sessions with their refresh tokens, personal API tokens, and the audit log. Times are Unix
    // seconds (UTC). Refresh tokens are stored only as SHA-256 hashes.
    "CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        username      TEXT NOT NULL,
        username_key  TEXT NOT NULL UNIQUE,
        email         TEXT,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        quota_bytes   INTEGER CHECK (quota_bytes IS NULL OR quota_bytes >= 0),
        created_at    INTEGER NOT NULL,
        last_login_at INTEGER
    ) STRICT;
    CREATE TABLE sessions (
        id             TEXT PRIMARY KEY,
        user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at     INTEGER NOT NULL,
        last_used_at   INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        revoked_at     INTEGER,
        revoked_reason TEXT,
        client_ip      TEXT NOT NULL DEFAULT ''
    ) STRICT;
    CREATE INDEX sessions_by_user ON sessions (user_id);
    CREATE TABLE refresh_tokens (
        token_hash BLOB PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        issued_at  INTEGER NOT NULL,
        spent_at   INTEGER
    ) STRICT;
    CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
    CREATE TABLE audit_log (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       INTEGER NOT NULL,
        event    TEXT NOT NULL,
        actor_id TEXT,
        subject  TEXT,
        ip       TEXT NOT NULL DEFAULT '',
        detail   TEXT NOT NULL DEFAULT ''
    ) STRICT;
    CREATE TABLE api_tokens (
        id           TEXT PRIMARY KEY,
        user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        token_hash   BLOB NOT NULL UNIQUE,
        scope        TEXT NOT NULL CHECK (scope IN ('read-only', 'read-write')),
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER,
        last_used_at INTEGER,
        revoked_at   INTEGER
    ) STRICT;
    CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
    CREATE INDEX audit_by_actor ON audit_log (actor_id, id);
    CREATE INDEX audit_by_event ON audit_log (event, id);",
    // 3: file metadata (contents are blobs named by `sha256`) and read grants to other users.
    "CREATE TABLE files (
        id           TEXT PRIMARY KEY,
        owner_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        folder       TEXT NOT NULL,
        name         TEXT NOT NULL,
        size         INTEGER NOT NULL CHECK (size >= 0),
        sha256       TEXT NOT NULL,
        content_type TEXT NOT NULL,
        description  TEXT NOT NULL DEFAULT '',
        created_at   INTEGER NOT NULL,
        modified_at  INTEGER NOT NULL,
        UNIQUE (owner_id, folder, name)
    ) STRICT;
    CREATE INDEX files_by_sha256 ON files (sha256);
    CREATE INDEX files_by_owner ON files (owner_id, size);
    CREATE TABLE file_grants (
        file_id    TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        granted_at INTEGER NOT NULL,
        PRIMARY KEY (file_id, user_id)
    ) STRICT;
    CREATE INDEX file_grants_by_user ON file_grants (user_id);",
    // 4: public share links. The token is stored as a SHA-256 hash for lookup and sealed with a
    // key kept outside the database, so its owner can see the link again but a copy of the
    // database alone reveals no link. `password_version` changes with the password, which ends
    // every unlock cookie issued for the old one.
    "CREATE TABLE shares (
        id               TEXT PRIMARY KEY,
        token_hash       BLOB NOT NULL UNIQUE,
        sealed_token     BLOB NOT NULL,
        file_id          TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        owner_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at       INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        password_hash    TEXT,
        password_version INTEGER NOT NULL DEFAULT 0,
        max_downloads    INTEGER CHECK (max_downloads IS NULL OR max_downloads > 0),
        downloads        INTEGER NOT NULL DEFAULT 0 CHECK (downloads >= 0),
        last_access_at   INTEGER,
        note             TEXT NOT NULL DEFAULT '',
        disabled         INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
    ) STRICT;
    CREATE INDEX shares_by_owner ON shares (owner_id, created_at);
    CREATE INDEX shares_by_file ON shares (file_id);",
    // 5: page views of share links, counted in batches (public traffic must not write a row
    // per view); indexes for the retention task's deletes by age.
    "ALTER TABLE shares ADD COLUMN views INTEGER NOT NULL DEFAULT 0 CHECK (views >= 0);
    CREATE INDEX audit_by_time ON audit_log (at);
    CREATE INDEX sessions_by_end ON sessions (revoked_at, expires_at);",
    // 6: the search index's outbox. Triggers record every change to a file or its grants in
    // the transaction that makes it (a user's deletion reaches both through ON DELETE
    // CASCADE, which fires them too), so no code path can forget to tell the index.
    // `search_versions` holds each file's latest change: a search hit indexed before it is
    // stale. AUTOINCREMENT never reuses a pruned seq. No statement here may rely on a conflict
    // clause: an outer `UPDATE OR IGNORE` would override it inside the trigger.
    "CREATE TABLE search_outbox (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        file_id TEXT NOT NULL
    ) STRICT;
    CREATE TABLE search_versions (
        file_id TEXT PRIMARY KEY,
        seq     INTEGER NOT NULL
    ) STRICT;
    CREATE TRIGGER search_outbox_versions AFTER INSERT ON search_outbox BEGIN
        DELETE FROM search_versions WHERE file_id = NEW.file_id;
        INSERT INTO search_versions (file_id, seq) VALUES (NEW.file_id, NEW.seq);
    END;
    CREATE TRIGGER search_file_added AFTER INSERT ON files BEGIN
        INSERT INTO search_outbox (file_id) VALUES (NEW.id);
    END;
    CREATE TRIGGER search_file_changed AFTER UPDATE ON files BEGIN
        INSERT INTO search_outbox (file_id) SELECT OLD.id WHERE OLD.id != NEW.id;
        INSERT INTO search_outbox (file_id) VALUES (NEW.id);
    END;
    CREATE TRIGGER search_file_removed AFTER DELETE ON files BEGIN
        INSERT INTO search_outbox (file_id) VALUES (OLD.id);
    END;
    CREATE TRIGGER search_grant_added AFTER INSERT ON file_grants BEGIN
        INSERT INTO search_outbox (file_id) VALUES (NEW.file_id);
    END;
    CREATE TRIGGER search_grant_changed AFTER UPDATE ON file_grants BEGIN
        INSERT INTO search_outbox (file_id) SELECT OLD.file_id WHERE OLD.file_id != NEW.file_id;
        INSERT INTO search_outbox (file_id) VALUES (NEW.file_id);
    END;
    CREATE TRIGGER search_grant_removed AFTER DELETE ON file_grants BEGIN
        INSERT INTO search_outbox (file_id) VALUES (OLD.file_id);
    END;",
    // 7: the web app. A browser's session cookie is a random secret mapped to its session row
    // (stored only as SHA-256), so it is listed and revoked like any session. Folders a user
    // made that may hold no file yet; folders that hold files exist by those files' paths.
    "ALTER TABLE sessions ADD COLUMN cookie_hash BLOB;
    CREATE UNIQUE INDEX sessions_by_cookie ON sessions (cookie_hash) WHERE cookie_hash IS NOT NULL;
    CREATE TABLE folders (
        owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        path       TEXT NOT NULL CHECK (path != ''),
        created_at INTEGER NOT NULL,
        PRIMARY KEY (owner_id, path)
    ) STRICT;",
    // 8: e-mail. Messages are written to `mail_outbox` in the transaction of the action that
    // causes them and sent by one task; `id` is also the Message-ID's left part, kept across
    // retries. The subject and bodies are wiped once a message is sent or given up (they may
    // hold a link). `mail_notices` is the per-user opt-out of notices, `notify_downloads` an
    // owner's wish to hear of each download of a share; password-reset tokens are stored only
    // as SHA-256 hashes.
    "CREATE TABLE mail_outbox (
        id              TEXT PRIMARY KEY,
        kind            TEXT NOT NULL,
        user_id         TEXT REFERENCES users (id) ON DELETE SET NULL,
        recipient       TEXT NOT NULL,
        subject         TEXT NOT NULL,
        body_text       TEXT NOT NULL,
        body_html       TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT NOT NULL DEFAULT '',
        created_at      INTEGER NOT NULL,
        sent_at         INTEGER,
        expires_at      INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
    CREATE INDEX mail_outbox_by_user ON mail_outbox (user_id, kind, created_at);
    ALTER TABLE users ADD COLUMN mail_notices INTEGER NOT NULL DEFAULT 1 CHECK (mail_notices IN (0, 1));
    ALTER TABLE shares ADD COLUMN notify_downloads INTEGER NOT NULL DEFAULT 0 CHECK (notify_downloads IN (0, 1));
    CREATE TABLE password_resets (
        token_hash BLOB PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
    ) STRICT;
    CREATE INDEX password_resets_by_user ON password_resets (user_id, created_at);",
    // 9: resumable (tus) uploads. `received` is the durable offset: its bytes are fsynced in
    // `uploads/<id>` before the row says so. An unfinished upload (`file_id` NULL) reserves
    // `reserved_bytes` of its owner's quota; a finished one keeps its row until `expires_at`
    // only so that HEAD can still name the file it became.
    "CREATE TABLE uploads (
        id             TEXT PRIMARY KEY,
        owner_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        folder         TEXT NOT NULL,
        name           TEXT NOT NULL,
        on_conflict    TEXT NOT NULL CHECK (on_conflict IN ('fail', 'rename', 'replace')),
        description    TEXT NOT NULL DEFAULT '',
        length         INTEGER NOT NULL CHECK (length >= 0),
        received       INTEGER NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= length),
        reserved_bytes INTEGER NOT NULL CHECK (reserved_bytes >= 0),
        metadata       TEXT NOT NULL DEFAULT '',
        expected_sha256 TEXT,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        file_id        TEXT
    ) STRICT;
    CREATE INDEX uploads_by_owner ON uploads (owner_id, file_id);
    CREATE INDEX uploads_by_expiry ON uploads (expires_at);",
    // 10: OpenID Connect. An identity is (issuer, subject), never an address or a name; a
    // pending sign-in keeps its state (as SHA-256), nonce and PKCE verifier here, used once;
    // a session remembers how it was made.
    "CREATE TABLE oidc_identities (
        issuer        TEXT NOT NULL,
        subject       TEXT NOT NULL,
        provider      TEXT NOT NULL,
        user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        email         TEXT,
        linked_at     INTEGER NOT NULL,
        last_login_at INTEGER,
        PRIMARY KEY (issuer, subject)
    ) STRICT;
    CREATE INDEX oidc_identities_by_user ON oidc_identities (user_id);
    CREATE TABLE oidc_pending (
        state_hash    BLOB PRIMARY KEY,
        provider      TEXT NOT NULL,
        nonce         TEXT NOT NULL,
        pkce_verifier TEXT NOT NULL,
        redirect_uri  TEXT NOT NULL,
        browser_hash  BLOB NOT NULL,
        link_user_id  TEXT REFERENCES users (id) ON DELETE CASCADE,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX oidc_pending_by_expiry ON oidc_pending (expires_at);
    ALTER TABLE sessions ADD COLUMN method TEXT NOT NULL DEFAULT 'password';",
    // 11: upload links ("file requests"): people without an account upload into one of the
    // owner's folders. The token is stored like a share's (SHA-256 for lookup, sealed copy for
    // the owner); `files_received` and `bytes_received` are raised in the transaction that
    // records each file, so the limits hold across restarts and parallel uploads.
    "CREATE TABLE upload_links (
        id               TEXT PRIMARY KEY,
        token_hash       BLOB NOT NULL UNIQUE,
        sealed_token     BLOB NOT NULL,
        owner_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        folder           TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        password_hash    TEXT,
        password_version INTEGER NOT NULL DEFAULT 0,
        max_files        INTEGER NOT NULL CHECK (max_files >= 1),
        max_total_bytes  INTEGER NOT NULL CHECK (max_total_bytes >= 1),
        max_file_bytes   INTEGER NOT NULL CHECK (max_file_bytes >= 1),
        files_received   INTEGER NOT NULL DEFAULT 0 CHECK (files_received >= 0),
        bytes_received   INTEGER NOT NULL DEFAULT 0 CHECK (bytes_received >= 0),
        note             TEXT NOT NULL DEFAULT '',
        notify_uploads   INTEGER NOT NULL DEFAULT 0 CHECK (notify_uploads IN (0, 1)),
        disabled         INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        last_upload_at   INTEGER
    ) STRICT;
    CREATE INDEX upload_links_by_owner ON upload_links (owner_id, created_at);",
    // 12: links to several files or a folder. `shares` is rebuilt so that `file_id` may be
    // NULL: a list share names its files in `share_files`, a folder share its folder path in
    // `folder` (its contents are read at download time). `share_file_downloads` counts each
    // file of a multi-file share, so the limit holds per file (see `shares/members.rs`).
    "CREATE TABLE shares_rebuilt (
        id               TEXT PRIMARY KEY,
        token_hash       BLOB NOT NULL UNIQUE,
        sealed_token     BLOB NOT NULL,
        file_id          TEXT REFERENCES files (id) ON DELETE CASCADE,
        owner_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at       INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        password_hash    TEXT,
        password_version INTEGER NOT NULL DEFAULT 0,
        max_downloads    INTEGER CHECK (max_downloads IS NULL OR max_downloads > 0),
        downloads        INTEGER NOT NULL DEFAULT 0 CHECK (downloads >= 0),
        last_access_at   INTEGER,
        note             TEXT NOT NULL DEFAULT '',
        disabled         INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        views            INTEGER NOT NULL DEFAULT 0 CHECK (views >= 0),
        notify_downloads INTEGER NOT NULL DEFAULT 0 CHECK (notify_downloads IN (0, 1)),
        kind             TEXT NOT NULL DEFAULT 'file' CHECK (kind IN ('file', 'files', 'folder')),
        folder           TEXT,
        CHECK ((kind = 'file') = (file_id IS NOT NULL) AND (kind = 'folder') = (folder IS NOT NULL))
    ) STRICT;
    INSERT INTO shares_rebuilt (id, token_hash, sealed_token, file_id, owner_id, created_at, expires_at,
        password_hash, password_version, max_downloads, downloads, last_access_at, note, disabled, views,
        notify_downloads)
    SELECT id, token_hash, sealed_token, file_id, owner_id, created_at, expires_at, password_hash,
        password_version, max_downloads, downloads, last_access_at, note, disabled, views, notify_downloads
    FROM shares;
    DROP TABLE shares;
    ALTER TABLE shares_rebuilt RENAME TO shares;
    CREATE INDEX shares_by_owner ON shares (owner_id, created_at);
    CREATE INDEX shares_by_file ON shares (file_id);
    CREATE TABLE share_files (
        share_id TEXT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
        file_id  TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        PRIMARY KEY (share_id, file_id)
    ) STRICT;
    CREATE INDEX share_files_by_file ON share_files (file_id);
    CREATE TABLE share_file_downloads (
        share_id  TEXT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
        file_id   TEXT NOT NULL,
        downloads INTEGER NOT NULL CHECK (downloads >= 0),
        PRIMARY KEY (share_id, file_id)
    ) STRICT;",
];
