//! Folders a user makes, renames, moves and deletes. Each operation runs in one IMMEDIATE
//! transaction: a folder's files all move (or are all deleted) or none do.

use super::{FileError, Files};
use crate::auth::Principal;
use crate::db::folders;
use crate::domain::FolderPath;

impl Files {
    /// Makes a folder that exists while empty. `FolderExists` when it exists already.
    pub async fn create_folder(&self, caller: &Principal, path: FolderPath) -> Result<FolderPath, FileError> {
        if path.is_root() {
            return Err(FileError::Invalid("a folder needs a name".into()));
        }
        let (owner, now) = (caller.user_id.clone(), self.clock.now());
        self.db
            .write(move |tx| {
                if folders::exists(tx, &owner, &path)? {
                    return Ok(Err(FileError::FolderExists));
                }
                folders::create(tx, &owner, &path, now)?;
                Ok(Ok(path))
            })
            .await?
    }

    /// Renames or moves a folder with everything in it to `to`, which must not exist and must
    /// not lie inside `from`. Returns how many files moved.
    pub async fn move_folder(&self, caller: &Principal, from: FolderPath, to: FolderPath) -> Result<usize, FileError> {
        if from.is_root() || to.is_root() {
            return Err(FileError::Invalid("the top level cannot be moved, nor replaced".into()));
        }
        let inside = format!("{}/", from.as_str());
        if to == from || to.as_str().starts_with(&inside) {
            return Err(FileError::Invalid("a folder cannot be moved into itself".into()));
        }
        let (owner, now) = (caller.user_id.clone(), self.clock.now());
        self.db
            .write(move |tx| {
                if !folders::exists(tx, &owner, &from)? {
                    return Ok(Err(FileError::NoSuchFolder));
                }
                if folders::exists(tx, &owner, &to)? {
                    return Ok(Err(FileError::FolderExists));
                }
                // Every path below the moved folder must still be a valid path where it lands.
                for path in folders::paths_within(tx, &owner, &from)? {
                    let below = &path[from.as_str().len()..];
                    if let Err(err) = FolderPath::parse_existing(&format!("{}{below}", to.as_str())) {
                        return Ok(Err(FileError::InvalidName(err)));
                    }
                }
                Ok(Ok(folders::relocate(tx, &owner, &from, &to, now)?))
            })
            .await?
    }

    /// Deletes a folder. With `recursive`, the files in it and below go too (their grants and
    /// share links with them); without, a folder holding files is refused (`FolderNotEmpty`).
    /// Returns how many files were deleted; their blobs go at the next collection.
    pub async fn delete_folder(
        &self,
        caller: &Principal,
        path: FolderPath,
        recursive: bool,
    ) -> Result<usize, FileError> {
        if path.is_root() {
            return Err(FileError::Invalid("the top level cannot be deleted".into()));
        }
        let owner = caller.user_id.clone();
        self.db
            .write(move |tx| {
                if !folders::exists(tx, &owner, &path)? {
                    return Ok(Err(FileError::NoSuchFolder));
                }
                if !recursive && folders::file_count(tx, &owner, &path)? > 0 {
                    return Ok(Err(FileError::FolderNotEmpty));
                }
                Ok(Ok(folders::remove(tx, &owner, &path)?))
            })
            .await?
    }
}
