//! `/folders`: making, moving and deleting folders. Files name their folder by path; a folder
//! made here exists while it is empty too.

use crate::api::strict::Text;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::failure::ApiFailure;
use super::security::Caller;
use crate::domain::FolderPath;
use crate::files::Files;

pub struct FoldersApi {
    pub files: Files,
}

#[derive(Object)]
struct NewFolder {
    /// The folder's path, like `projects/2026`; its parents need not exist.
    path: Text,
}

#[derive(Object)]
struct FolderView {
    path: String,
}

#[derive(Object)]
struct FolderMove {
    /// The folder to rename or move.
    from: Text,
    /// Its new path; nothing may exist there yet.
    to: Text,
}

#[derive(Object)]
struct FolderMoved {
    path: String,
    /// Files that moved with it (at any depth).
    files_moved: u64,
}

#[derive(Object)]
struct FolderDeleted {
    /// Files deleted with it (at any depth).
    files_deleted: u64,
}

#[derive(ApiResponse)]
enum Created {
    /// The folder exists, empty.
    #[oai(status = 201)]
    Created(Json<FolderView>),
}

#[derive(ApiResponse)]
enum Moved {
    /// Moved, with everything in it, in one transaction.
    #[oai(status = 200)]
    Moved(Json<FolderMoved>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted, with everything in it, in one transaction.
    #[oai(status = 200)]
    Deleted(Json<FolderDeleted>),
}

#[OpenApi(tag = "ApiTags::Files")]
impl FoldersApi {
    /// Make a folder (empty until something is put in it). 409 `folder_exists` when it exists.
    #[oai(path = "/folders", method = "post")]
    async fn create(&self, caller: Caller, body: Json<NewFolder>) -> Result<Created, ApiFailure> {
        let path = self.files.create_folder(&caller.0, FolderPath::parse(&body.path)?).await?;
        Ok(Created::Created(Json(FolderView { path: path.as_str().to_owned() })))
    }

    /// Rename or move a folder with all its files and folders, in one transaction. 404 when
    /// `from` does not exist, 409 `folder_exists` when `to` does, 400 when `to` lies inside
    /// `from`. Files keep their ids, grants and share links.
    #[oai(path = "/folders/move", method = "post")]
    async fn relocate(&self, caller: Caller, body: Json<FolderMove>) -> Result<Moved, ApiFailure> {
        let from = FolderPath::parse_existing(&body.from)?;
        let to = FolderPath::parse(&body.to)?;
        let moved = self.files.move_folder(&caller.0, from, to.clone()).await?;
        Ok(Moved::Moved(Json(FolderMoved { path: to.as_str().to_owned(), files_moved: moved as u64 })))
    }

    /// Delete a folder. A folder holding files is refused (409 `folder_not_empty`) unless
    /// `recursive=true`, which deletes every file in it and below (with their grants and share
    /// links) in one transaction.
    #[oai(path = "/folders", method = "delete")]
    async fn delete(
        &self,
        caller: Caller,
        path: Query<String>,
        recursive: Query<Option<bool>>,
    ) -> Result<Deleted, ApiFailure> {
        let path = FolderPath::parse_existing(&path.0)?;
        let deleted = self.files.delete_folder(&caller.0, path, recursive.0.unwrap_or(false)).await?;
        Ok(Deleted::Deleted(Json(FolderDeleted { files_deleted: deleted as u64 })))
    }
}
