//! What owners (and admins) do with shares: make, list, read, change and revoke them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{
    Change, Expiry, MAX_LISTED_FILES, NewContents, NewShare, ShareChanges, ShareError, ShareState, ShareView, Shares,
    token_hash,
};
use crate::auth::Principal;
use crate::db::DbError;
use crate::db::audit::{self, AuditEvent};
use crate::db::shares::{self, Contents, ShareEntry, ShareRow};
use crate::domain::{FileId, FolderPath, Password, random_id};

/// Longest note an owner can attach to a share.
const MAX_NOTE_CHARS: usize = 1000;
/// Share passwords: long enough to resist guessing behind the throttle, short enough to hash.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;

fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn check_password(password: &str) -> Result<(), ShareError> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ShareError::Invalid(format!(
            "a share password has {} to {} characters",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        )))
    }
}

fn check_note(note: &str) -> Result<(), ShareError> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ShareError::Invalid(format!("a note has at most {MAX_NOTE_CHARS} characters")));
    }
    Ok(())
}

fn check_max_downloads(max: i64) -> Result<(), ShareError> {
    if max < 1 {
        return Err(ShareError::Invalid("max_downloads must be at least 1".into()));
    }
    Ok(())
}

impl Shares {
    fn expires_at(&self, expiry: Expiry, now: i64) -> Result<i64, ShareError> {
        let policy = self.policy();
        let at = match expiry {
            Expiry::Default => now.saturating_add(policy.default_expiry),
            Expiry::In(seconds) => now.saturating_add(seconds),
            Expiry::At(at) => at,
        };
        if at <= now {
            return Err(ShareError::Invalid("the expiry must be in the future".into()));
        }
        if at - now > policy.max_lifetime {
            return Err(ShareError::Invalid(format!(
                "a share may last at most {} seconds (shares.max_lifetime)",
                policy.max_lifetime
            )));
        }
        Ok(at)
    }

    async fn hash_password(&self, password: String) -> Result<String, ShareError> {
        check_password(&password)?;
        Ok(self.inner.hasher.hash(&Password::trusted(password)).await?)
    }

    fn view(&self, entry: ShareEntry) -> ShareView {
        let token = self.inner.keys.open(&entry.share.id, &entry.share.sealed_token);
        let state = ShareState::of(&entry, self.now());
        ShareView { entry, token, state }
    }

    /// What a new link holds, checked: only the caller's own files and folders.
    async fn contents(
        &self,
        caller: &Principal,
        contents: NewContents,
    ) -> Result<(Option<FileId>, Contents), ShareError> {
        match contents {
            NewContents::File(id) => Ok((Some(self.inner.files.owned(caller, &id).await?.id), Contents::File)),
            NewContents::Files(ids) => {
                if ids.is_empty() || ids.len() > MAX_LISTED_FILES {
                    return Err(ShareError::Invalid(format!("a share lists 1 to {MAX_LISTED_FILES} files")));
                }
                let mut owned: Vec<FileId> = Vec::with_capacity(ids.len());
                for id in ids {
                    let file = self.inner.files.owned(caller, &id).await?;
                    if !owned.contains(&file.id) {
                        owned.push(file.id);
                    }
                }
                Ok((None, Contents::Files(owned)))
            }
            NewContents::Folder(path) => {
                let path = FolderPath::parse_existing(&path).map_err(|err| ShareError::Invalid(err.to_string()))?;
                if path.is_root() {
                    return Err(ShareError::Invalid("share a folder, or list the files of the top level".into()));
                }
                let (owner, probe) = (caller.user_id.clone(), path.clone());
                let exists = self.inner.db.read(move |conn| crate::db::folders::exists(conn, &owner, &probe)).await?;
                if !exists {
                    return Err(ShareError::File(crate::files::FileError::NoSuchFolder));
                }
                Ok((None, Contents::Folder(path.as_str().to_owned())))
            }
        }
    }

    /// Makes a link to a file, files or a folder the caller owns; returns it with its token.
    pub async fn create(&self, caller: &Principal, request: NewShare, ip: &str) -> Result<ShareView, ShareError> {
        let (file_id, contents) = self.contents(caller, request.contents).await?;
        let now = self.now();
        let expires_at = self.expires_at(request.expiry, now)?;
        check_note(&request.note)?;
        if let Some(max) = request.max_downloads {
            check_max_downloads(max)?;
        }
        let password_hash = match request.password {
            Some(password) => Some(self.hash_password(password).await?),
            None => None,
        };
        let id = random_id();
        let token = new_token();
        let row = ShareRow {
            token_hash: token_hash(&token),
            sealed_token: self.inner.keys.seal(&id, &token)?,
            id,
            file_id,
            owner_id: caller.user_id.clone(),
            created_at: now,
            expires_at,
            password_hash,
            password_version: 0,
            max_downloads: request.max_downloads,
            downloads: 0,
            last_access_at: None,
            note: request.note,
            disabled: false,
            views: 0,
            notify_downloads: request.notify_downloads,
            contents,
        };
        let what = match (&row.file_id, &row.contents) {
            (Some(file), _) => format!("file={file}"),
            (None, Contents::Files(ids)) => format!("files={}", ids.len()),
            (None, Contents::Folder(folder)) => format!("folder={folder}"),
            (None, Contents::File) => String::new(),
        };
        let detail = format!("{what} expires_at={}", row.expires_at);
        let entry = self.store_audited(row, shares::insert, "share_created", caller, ip, detail).await?;
        let state = ShareState::of(&entry, now);
        Ok(ShareView { entry, token: Some(token), state })
    }

    /// Writes `row` with `store` and records `event` about it, in one transaction; returns the
    /// share as stored.
    async fn store_audited(
        &self,
        row: ShareRow,
        store: fn(&rusqlite::Connection, &ShareRow) -> Result<(), DbError>,
        event: &'static str,
        caller: &Principal,
        ip: &str,
        detail: String,
    ) -> Result<ShareEntry, ShareError> {
        let (actor, ip, now) = (caller.user_id.0.clone(), ip.to_owned(), self.now());
        self.inner
            .db
            .write(move |tx| {
                store(tx, &row)?;
                let entry =
                    AuditEvent { event, actor_id: Some(&actor), subject: Some(&row.id), ip: &ip, detail: &detail };
                audit::record(tx, now, &entry)?;
                shares::by_id(tx, &row.id)
            })
            .await?
            .ok_or(ShareError::NotFound)
    }

    /// The caller's shares, or everyone's for an admin asking for all, newest first.
    pub async fn list(
        &self,
        caller: &Principal,
        everyone: bool,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<ShareView>, ShareError> {
        let owner = (!everyone).then(|| caller.user_id.clone());
        let entries = self.inner.db.read(move |conn| shares::list(conn, owner.as_ref(), after, limit)).await?;
        Ok(entries.into_iter().map(|entry| self.view(entry)).collect())
    }

    /// A share the caller owns, or any share for an admin; anyone else gets `NotFound`.
    async fn manageable(&self, caller: &Principal, id: &str) -> Result<ShareEntry, ShareError> {
        let id = id.to_owned();
        let entry = self.inner.db.read(move |conn| shares::by_id(conn, &id)).await?;
        entry.filter(|entry| entry.share.owner_id == caller.user_id || caller.is_admin()).ok_or(ShareError::NotFound)
    }

    pub async fn get(&self, caller: &Principal, id: &str) -> Result<ShareView, ShareError> {
        Ok(self.view(self.manageable(caller, id).await?))
    }

    /// Changes expiry, limit, password, note or the disabled flag. A new or removed password
    /// ends every unlock granted under the old one.
    pub async fn update(
        &self,
        caller: &Principal,
        id: &str,
        changes: ShareChanges,
        ip: &str,
    ) -> Result<ShareView, ShareError> {
        let entry = self.manageable(caller, id).await?;
        let mut row = entry.share;
        let now = self.now();
        let mut changed = Vec::new();
        if let Some(expiry) = changes.expiry {
            row.expires_at = self.expires_at(expiry, now)?;
            changed.push("expiry");
        }
        match changes.max_downloads {
            Change::Keep => {}
            Change::Clear => row.max_downloads = None,
            Change::Set(max) => {
                check_max_downloads(max)?;
                row.max_downloads = Some(max);
            }
        }
        if !matches!(changes.max_downloads, Change::Keep) {
            changed.push("max_downloads");
        }
        if let Some(note) = changes.note {
            check_note(&note)?;
            row.note = note;
            changed.push("note");
        }
        if let Some(notify) = changes.notify_downloads {
            row.notify_downloads = notify;
            changed.push("notify_downloads");
        }
        if let Some(disabled) = changes.disabled {
            row.disabled = disabled;
            changed.push(if disabled { "disabled" } else { "enabled" });
        }
        let new_password = match changes.password {
            Change::Keep => None,
            Change::Clear => Some(None),
            Change::Set(password) => Some(Some(self.hash_password(password).await?)),
        };
        if let Some(hash) = new_password {
            row.password_hash = hash;
            row.password_version += 1;
            changed.push("password");
        }
        let detail = format!("changed={}", changed.join(","));
        let entry = self.store_audited(row, shares::update_settings, "share_updated", caller, ip, detail).await?;
        Ok(self.view(entry))
    }

    /// Revokes a share at once: the link is 404 from now on, downloads in flight are cut.
    pub async fn revoke(&self, caller: &Principal, id: &str, ip: &str) -> Result<(), ShareError> {
        let entry = self.manageable(caller, id).await?;
        let by_admin = entry.share.owner_id != caller.user_id;
        let (actor, ip, id, now) = (caller.user_id.0.clone(), ip.to_owned(), entry.share.id, self.now());
        let detail = if by_admin { format!("by_admin owner={}", entry.share.owner_id) } else { String::new() };
        self.inner
            .db
            .write(move |tx| {
                let event = AuditEvent {
                    event: "share_revoked",
                    actor_id: Some(&actor),
                    subject: Some(&id),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)?;
                shares::delete(tx, &id)
            })
            .await?;
        Ok(())
    }
}
