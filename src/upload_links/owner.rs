//! What owners (and admins) do with upload links: make, list, read, change and revoke them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Change, Expiry, LinkChanges, LinkError, LinkState, LinkView, NewLink, UploadLinks};
use crate::auth::Principal;
use crate::db::DbError;
use crate::db::audit::{self, AuditEvent};
use crate::db::folders;
use crate::db::upload_links::{self, UploadLinkEntry, UploadLinkRow};
use crate::domain::{FolderPath, Password, random_id};
use crate::shares::token_hash;

/// Longest note an owner can show uploaders.
const MAX_NOTE_CHARS: usize = 2000;
/// Passwords: as for share links.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;
/// Most files one link may take.
const MAX_FILES: i64 = 10_000;

fn check_note(note: &str) -> Result<(), LinkError> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(LinkError::Invalid(format!("a note has at most {MAX_NOTE_CHARS} characters")));
    }
    Ok(())
}

/// The limits must be positive and agree with each other and with `storage.max_file_size`.
fn check_limits(link: &UploadLinkRow, instance_max: u64) -> Result<(), LinkError> {
    if !(1..=MAX_FILES).contains(&link.max_files) {
        return Err(LinkError::Invalid(format!("max_files is 1 to {MAX_FILES}")));
    }
    if link.max_total_bytes < 1 || link.max_file_bytes < 1 {
        return Err(LinkError::Invalid("max_total_bytes and max_file_bytes must be at least 1".into()));
    }
    if link.max_file_bytes > link.max_total_bytes {
        return Err(LinkError::Invalid("max_file_bytes cannot be more than max_total_bytes".into()));
    }
    if u64::try_from(link.max_file_bytes).unwrap_or(u64::MAX) > instance_max {
        return Err(LinkError::Invalid(format!(
            "max_file_bytes cannot be more than this server's limit of {instance_max} bytes (storage.max_file_size)"
        )));
    }
    Ok(())
}

impl UploadLinks {
    fn expires_at(&self, expiry: Expiry, now: i64) -> Result<i64, LinkError> {
        let policy = self.inner.shares.policy();
        let at = match expiry {
            Expiry::Default => now.saturating_add(policy.default_expiry),
            Expiry::In(seconds) => now.saturating_add(seconds),
            Expiry::At(at) => at,
        };
        if at <= now {
            return Err(LinkError::Invalid("the expiry must be in the future".into()));
        }
        if at - now > policy.max_lifetime {
            return Err(LinkError::Invalid(format!(
                "a link may last at most {} seconds (shares.max_lifetime)",
                policy.max_lifetime
            )));
        }
        Ok(at)
    }

    async fn hash_password(&self, password: String) -> Result<String, LinkError> {
        if !PASSWORD_CHARS.contains(&password.chars().count()) {
            return Err(LinkError::Invalid(format!(
                "a link password has {} to {} characters",
                PASSWORD_CHARS.start(),
                PASSWORD_CHARS.end()
            )));
        }
        Ok(self.inner.hasher.hash(&Password::trusted(password)).await?)
    }

    fn view(&self, entry: UploadLinkEntry) -> LinkView {
        let token = self.inner.keys.open(&entry.link.id, &entry.link.sealed_token);
        let state = LinkState::of(&entry, self.now());
        LinkView { entry, token, state }
    }

    /// Makes a link into a folder the caller has (the top level, or one that exists).
    pub async fn create(&self, caller: &Principal, request: NewLink, ip: &str) -> Result<LinkView, LinkError> {
        let folder = FolderPath::parse(&request.folder).map_err(|err| LinkError::Invalid(err.to_string()))?;
        let now = self.now();
        let expires_at = self.expires_at(request.expiry, now)?;
        check_note(&request.note)?;
        let instance_max = self.inner.files.max_file_size();
        let id = random_id();
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let mut row = UploadLinkRow {
            token_hash: token_hash(&token),
            sealed_token: self.inner.keys.seal(&id, &token)?,
            id,
            owner_id: caller.user_id.clone(),
            folder: folder.as_str().to_owned(),
            created_at: now,
            expires_at,
            password_hash: None,
            password_version: 0,
            max_files: request.max_files,
            max_total_bytes: request.max_total_bytes,
            max_file_bytes: request
                .max_file_bytes
                .unwrap_or_else(|| request.max_total_bytes.min(i64::try_from(instance_max).unwrap_or(i64::MAX))),
            files_received: 0,
            bytes_received: 0,
            note: request.note,
            notify_uploads: request.notify_uploads,
            disabled: false,
            last_upload_at: None,
        };
        check_limits(&row, instance_max)?;
        if let Some(password) = request.password {
            row.password_hash = Some(self.hash_password(password).await?);
        }
        let detail = format!("folder={:?} expires_at={}", row.folder, row.expires_at);
        let (actor, ip) = (caller.user_id.0.clone(), ip.to_owned());
        let entry = self
            .inner
            .db
            .write(move |tx| {
                if !folders::exists(tx, &row.owner_id, &folder)? {
                    return Ok(None);
                }
                upload_links::insert(tx, &row)?;
                let event = AuditEvent {
                    event: "upload_link_created",
                    actor_id: Some(&actor),
                    subject: Some(&row.id),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)?;
                upload_links::by_id(tx, &row.id)
            })
            .await?
            .ok_or_else(|| LinkError::Invalid("no such folder; make it first".into()))?;
        Ok(LinkView { entry, token: Some(token), state: LinkState::Active })
    }

    /// The caller's links, or everyone's for an admin asking for all, newest first.
    pub async fn list(&self, caller: &Principal, everyone: bool, limit: u32) -> Result<Vec<LinkView>, LinkError> {
        let owner = (!everyone).then(|| caller.user_id.clone());
        let entries = self.inner.db.read(move |conn| upload_links::list(conn, owner.as_ref(), limit)).await?;
        Ok(entries.into_iter().map(|entry| self.view(entry)).collect())
    }

    /// A link the caller owns, or any link for an admin; anyone else gets `NotFound`.
    async fn manageable(&self, caller: &Principal, id: &str) -> Result<UploadLinkEntry, LinkError> {
        let id = id.to_owned();
        let entry = self.inner.db.read(move |conn| upload_links::by_id(conn, &id)).await?;
        entry.filter(|entry| entry.link.owner_id == caller.user_id || caller.is_admin()).ok_or(LinkError::NotFound)
    }

    pub async fn get(&self, caller: &Principal, id: &str) -> Result<LinkView, LinkError> {
        Ok(self.view(self.manageable(caller, id).await?))
    }

    /// Changes expiry, limits, password, note, notices or the disabled flag. Disabling the link
    /// or changing its password stops the uploads running through it.
    pub async fn update(
        &self,
        caller: &Principal,
        id: &str,
        changes: LinkChanges,
        ip: &str,
    ) -> Result<LinkView, LinkError> {
        let mut row = self.manageable(caller, id).await?.link;
        let mut changed = Vec::new();
        if let Some(expiry) = changes.expiry {
            row.expires_at = self.expires_at(expiry, self.now())?;
            changed.push("expiry");
        }
        let limits = [
            (changes.max_files, &mut row.max_files, "max_files"),
            (changes.max_total_bytes, &mut row.max_total_bytes, "max_total_bytes"),
            (changes.max_file_bytes, &mut row.max_file_bytes, "max_file_bytes"),
        ];
        for (change, field, name) in limits {
            if let Some(value) = change {
                *field = value;
                changed.push(name);
            }
        }
        check_limits(&row, self.inner.files.max_file_size())?;
        if let Some(note) = changes.note {
            check_note(&note)?;
            row.note = note;
            changed.push("note");
        }
        if let Some(notify) = changes.notify_uploads {
            row.notify_uploads = notify;
            changed.push("notify_uploads");
        }
        let mut cut = false;
        if let Some(disabled) = changes.disabled {
            cut |= disabled;
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
            cut = true;
            changed.push("password");
        }
        let detail = format!("changed={}", changed.join(","));
        let (actor, ip, now, link_id) = (caller.user_id.0.clone(), ip.to_owned(), self.now(), row.id.clone());
        let entry = self
            .inner
            .db
            .write(move |tx| {
                upload_links::update_settings(tx, &row)?;
                let event = AuditEvent {
                    event: "upload_link_updated",
                    actor_id: Some(&actor),
                    subject: Some(&row.id),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)?;
                upload_links::by_id(tx, &row.id)
            })
            .await?
            .ok_or(LinkError::NotFound)?;
        if cut {
            self.cut(&link_id);
        }
        Ok(self.view(entry))
    }

    /// Revokes a link at once: it is 404 from now on, uploads in flight are cut and store nothing.
    pub async fn revoke(&self, caller: &Principal, id: &str, ip: &str) -> Result<(), LinkError> {
        let entry = self.manageable(caller, id).await?;
        let by_admin = entry.link.owner_id != caller.user_id;
        let (actor, ip, id, now) = (caller.user_id.0.clone(), ip.to_owned(), entry.link.id, self.now());
        let detail = if by_admin { format!("by_admin owner={}", entry.link.owner_id) } else { String::new() };
        let link_id = id.clone();
        self.inner
            .db
            .write(move |tx| -> Result<(), DbError> {
                let event = AuditEvent {
                    event: "upload_link_revoked",
                    actor_id: Some(&actor),
                    subject: Some(&id),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)?;
                upload_links::delete(tx, &id)
            })
            .await?;
        self.cut(&link_id);
        Ok(())
    }
}
