//! Who may see and change a file, and the operations that depend on it.
//!
//! Owners do everything; users with a grant and admins may read. Anyone else is told the file
//! does not exist.

use rusqlite::Connection;

use super::{FileError, Files, Precondition};
use crate::auth::Principal;
use crate::auth::throttle::Keys;
use crate::db::audit::{self, AuditEvent};
use crate::db::files::{self, Cursor, FileRow, SortBy};
use crate::db::{DbError, users};
use crate::domain::{Description, FileId, FileName, FolderPath, UserId, Username};

/// Grants naming accounts that do not exist a caller may make before further grants wait.
pub const GRANT_FREE_MISSES: u32 = 10;

/// Why the caller may read a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Owner,
    Grantee,
    Admin,
}

pub struct Listing {
    pub folders: Vec<String>,
    pub files: Vec<FileRow>,
}

/// The one owner-or-grant rule: how `user` may read `file` by their own rights (an admin's
/// wider reading is for callers that allow it, and audit it, to add).
pub fn user_access(conn: &Connection, file: &FileRow, user: &UserId) -> Result<Option<Access>, DbError> {
    if file.owner_id == *user {
        return Ok(Some(Access::Owner));
    }
    Ok(files::has_grant(conn, &file.id, user)?.then_some(Access::Grantee))
}

/// The files among `ids` that `user` may read by the owner-or-grant rule, as they are now, in
/// the order of `ids`; the others (gone or not readable) are left out.
pub fn readable_among(conn: &Connection, user: &UserId, ids: &[FileId]) -> Result<Vec<(FileRow, Access)>, DbError> {
    let mut readable = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(file) = files::by_id(conn, id)? else { continue };
        if let Some(access) = user_access(conn, &file, user)? {
            readable.push((file, access));
        }
    }
    Ok(readable)
}

impl Files {
    /// The file if the caller may read it; an admin reading another's file is audited.
    pub async fn readable(&self, caller: &Principal, id: &str, ip: &str) -> Result<(FileRow, Access), FileError> {
        let (caller_id, file_id) = (caller.user_id.clone(), FileId(id.to_owned()));
        let found = self
            .db
            .read(move |conn| {
                let Some(file) = files::by_id(conn, &file_id)? else { return Ok(None) };
                let access = user_access(conn, &file, &caller_id)?;
                Ok(Some((file, access)))
            })
            .await?;
        let access = match found {
            Some((file, Some(access))) => (file, access),
            Some((file, None)) if caller.is_admin() => {
                let (actor, subject, ip) = (caller.user_id.0.clone(), file.id.0.clone(), ip.to_owned());
                let now = self.clock.now();
                self.db
                    .write(move |tx| {
                        let event = AuditEvent {
                            event: "admin_file_read",
                            actor_id: Some(&actor),
                            subject: Some(&subject),
                            ip: &ip,
                            detail: "",
                        };
                        audit::record(tx, now, &event)
                    })
                    .await?;
                (file, Access::Admin)
            }
            _ => return Err(FileError::NotFound),
        };
        Ok(access)
    }

    /// The file if the caller owns it.
    pub async fn owned(&self, caller: &Principal, id: &str) -> Result<FileRow, FileError> {
        let (caller_id, id) = (caller.user_id.clone(), FileId(id.to_owned()));
        let file = self.db.read(move |conn| files::by_id(conn, &id)).await?;
        file.filter(|file| file.owner_id == caller_id).ok_or(FileError::NotFound)
    }

    pub async fn list(
        &self,
        owner: &UserId,
        folder: FolderPath,
        sort: SortBy,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Listing, FileError> {
        let owner = owner.clone();
        Ok(self
            .db
            .read(move |conn| {
                let folders = if after.is_none() { files::subfolders(conn, &owner, &folder)? } else { Vec::new() };
                let files = files::list_folder(conn, &owner, &folder, sort, after.as_ref(), limit)?;
                Ok(Listing { folders, files })
            })
            .await?)
    }

    pub async fn shared_with_me(&self, caller: &Principal, limit: u32) -> Result<Vec<FileRow>, FileError> {
        let caller = caller.user_id.clone();
        Ok(self.db.read(move |conn| files::shared_with(conn, &caller, limit)).await?)
    }

    /// Renames, moves or re-describes a file the caller owns, when `precondition` holds.
    pub async fn update(
        &self,
        caller: &Principal,
        id: &str,
        target: Option<(FolderPath, FileName)>,
        description: Option<Description>,
        precondition: Precondition,
    ) -> Result<FileRow, FileError> {
        let file = self.owned(caller, id).await?;
        let now = self.clock.now();
        self.db
            .write(move |tx| {
                let Some(current) = files::by_id(tx, &file.id)? else { return Ok(Err(FileError::NotFound)) };
                if !precondition.holds(Some(&current)) {
                    return Ok(Err(FileError::PreconditionFailed));
                }
                if let Some((folder, name)) = &target
                    && !files::rename(tx, &file.id, folder, name, now)?
                {
                    return Ok(Err(FileError::NameTaken));
                }
                if let Some(description) = &description {
                    let grows = description.stored_bytes() - i64::try_from(current.description.len()).unwrap_or(0);
                    let quota = users::by_id(tx, &current.owner_id)?.and_then(|user| user.quota_bytes);
                    if let (true, Some(quota)) = (grows > 0, quota)
                        && files::used_bytes(tx, &current.owner_id)?.saturating_add(grows) > quota
                    {
                        return Ok(Err(FileError::QuotaExceeded));
                    }
                    files::set_description(tx, &file.id, description.as_str(), now)?;
                }
                Ok(files::by_id(tx, &file.id)?.ok_or(FileError::NotFound))
            })
            .await?
    }

    /// Deletes a file the caller owns, when `precondition` holds. Its blob goes at the next GC
    /// if no other file uses it.
    pub async fn delete(&self, caller: &Principal, id: &str, precondition: Precondition) -> Result<(), FileError> {
        let file = self.owned(caller, id).await?;
        self.db
            .write(move |tx| {
                let Some(current) = files::by_id(tx, &file.id)? else { return Ok(Err(FileError::NotFound)) };
                if !precondition.holds(Some(&current)) {
                    return Ok(Err(FileError::PreconditionFailed));
                }
                files::delete(tx, &file.id)?;
                Ok(Ok(()))
            })
            .await?
    }

    /// Lets `username` read a file the caller owns. So that grants cannot be used to find out
    /// which accounts exist, a name that is not an account gets the same answer as one that is
    /// (`Ok(None)`), except for admins, who may list accounts anyway (`NotFound`); and each
    /// caller may name only a few accounts that do not exist before further grants wait.
    pub async fn grant(
        &self,
        caller: &Principal,
        id: &str,
        username: &str,
        ip: &str,
    ) -> Result<Option<UserId>, FileError> {
        let file = self.owned(caller, id).await?;
        let misses = Keys::for_device(&format!("grants:{}", caller.user_id), GRANT_FREE_MISSES);
        self.grant_misses.check(&misses).map_err(FileError::Throttled)?;
        let Ok(username) = Username::parse(username) else {
            self.grant_misses.record_failure(&misses);
            return if caller.is_admin() { Err(FileError::NoSuchUser) } else { Ok(None) };
        };
        let (actor, ip, now) = (caller.user_id.clone(), ip.to_owned(), self.clock.now());
        let granted = self
            .db
            .write(move |tx| {
                let Some(user) = users::by_username(tx, &username)? else { return Ok(Ok::<_, FileError>(None)) };
                // The owner can already read it: what was asked for holds, nothing to record.
                if user.id == file.owner_id {
                    return Ok(Ok(Some(user.id)));
                }
                files::grant(tx, &file.id, &user.id, now)?;
                let detail = format!("user={}", user.id);
                let event = AuditEvent {
                    event: "file_shared",
                    actor_id: Some(&actor.0),
                    subject: Some(&file.id.0),
                    ip: &ip,
                    detail: &detail,
                };
                audit::record(tx, now, &event)?;
                Ok(Ok(Some(user.id)))
            })
            .await??;
        if granted.is_none() {
            self.grant_misses.record_failure(&misses);
            if caller.is_admin() {
                return Err(FileError::NoSuchUser);
            }
        }
        Ok(granted)
    }

    pub async fn grants(&self, caller: &Principal, id: &str) -> Result<Vec<(String, String, i64)>, FileError> {
        let file = self.owned(caller, id).await?;
        Ok(self.db.read(move |conn| files::grants(conn, &file.id)).await?)
    }

    /// Ends a grant; `NotFound` if the caller does not own the file or there is no such grant.
    pub async fn revoke_grant(&self, caller: &Principal, id: &str, user: &str) -> Result<(), FileError> {
        let file = self.owned(caller, id).await?;
        let user = UserId(user.to_owned());
        let removed = self.db.write(move |tx| files::revoke_grant(tx, &file.id, &user)).await?;
        if removed { Ok(()) } else { Err(FileError::NotFound) }
    }
}
