//! The upload pipeline: receiving a stream into the blob store within the limits, then the one
//! transaction that records it (quota and name checked again), for plain uploads, resumable
//! ones and upload links alike.

use super::*;

impl Files {
    /// Receives and stores an upload in one go.
    pub async fn upload<S>(&self, caller: &Principal, request: UploadRequest, body: S) -> Result<FileRow, FileError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let received = self.receive(caller, &request, body).await?;
        self.commit(caller, request, received).await
    }

    /// Checks what can be checked before reading (announced size against
    /// `storage.max_file_size`, the quota and the free-disk reserve; a taken name; the
    /// precondition), then streams `body` into a pending blob no larger than the tighter of
    /// the size limit and the quota left. Nothing is stored yet.
    pub async fn receive<S>(&self, caller: &Principal, request: &UploadRequest, body: S) -> Result<Received, FileError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        self.receive_for(&caller.user_id, request, body, u64::MAX).await
    }

    /// [`Files::receive`] into `owner`'s files with a further bound on the size (an upload
    /// link's): over it, `TooLarge` names that bound.
    pub async fn receive_for<S>(
        &self,
        owner: &UserId,
        request: &UploadRequest,
        body: S,
        bound: u64,
    ) -> Result<Received, FileError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        let max_file_size = self.max_file_size.load(Ordering::Relaxed).min(bound);
        if request.declared_size.is_some_and(|size| size > max_file_size) {
            return Err(FileError::TooLarge { limit: max_file_size });
        }
        let (who, folder, name) = (owner.clone(), request.folder.clone(), request.name.clone());
        let (quota, used, existing) = self
            .db
            .read(move |conn| {
                let quota = users::by_id(conn, &who)?.and_then(|user| user.quota_bytes);
                let existing = files::by_name(conn, &who, &folder, &name)?;
                Ok((quota, files::used_bytes(conn, &who)?, existing))
            })
            .await?;
        if !request.precondition.holds(existing.as_ref()) {
            return Err(FileError::PreconditionFailed);
        }
        if existing.is_some() && request.on_conflict == OnConflict::Fail {
            return Err(FileError::NameTaken);
        }
        let replacing = request.on_conflict == OnConflict::Replace && existing.is_some();
        let freed = existing.filter(|_| replacing).map_or(0, |old| old.size);
        let metadata = if replacing { 0 } else { request.description.stored_bytes() };
        let quota_left = quota.map(|quota| {
            u64::try_from(quota.saturating_sub(used).saturating_add(freed).saturating_sub(metadata)).unwrap_or(0)
        });
        if let (Some(left), Some(size)) = (quota_left, request.declared_size)
            && size > left
        {
            return Err(FileError::QuotaExceeded);
        }
        let state_dir = self.state_dir.clone();
        let free =
            tokio::task::spawn_blocking(move || state_dir.free_bytes()).await.map_err(std::io::Error::other)??;
        if free < self.disk_reserve.saturating_add(request.declared_size.unwrap_or(0)) {
            return Err(FileError::NoSpace);
        }

        let quota_bound = quota_left.filter(|left| *left < max_file_size);
        let limit = quota_bound.unwrap_or(max_file_size);
        let pending = self.store.ingest(body, limit, request.digests).await.map_err(|err| match err {
            IngestError::TooLarge { .. } if quota_bound.is_some() => FileError::QuotaExceeded,
            other => ingest_error(other),
        })?;
        Ok(Received { pending })
    }

    /// Commits received contents: publishes the blob, then in one IMMEDIATE transaction checks
    /// again that the caller's credential still stands, the precondition, the quota and the
    /// name (parallel uploads serialise here), and records the file. Only then is it stored.
    pub async fn commit(
        &self,
        caller: &Principal,
        request: UploadRequest,
        received: Received,
    ) -> Result<FileRow, FileError> {
        self.commit_finishing(caller, request, received, None).await
    }

    /// [`Files::commit`] for a resumable upload: in the same transaction, the upload's own
    /// reservation is left out of the quota check and the upload is marked finished as the
    /// new file, so its reservation ends exactly when the file's size starts to count.
    pub async fn commit_finishing(
        &self,
        caller: &Principal,
        request: UploadRequest,
        received: Received,
        finishing: Option<Finishing>,
    ) -> Result<FileRow, FileError> {
        self.commit_as(Authority::Caller(caller), request, received, finishing).await
    }

    /// [`Files::commit`] into `owner`'s files for an upload link: `check` decides in the
    /// transaction, with the row about to be inserted, whether the link still takes it.
    pub async fn commit_for_link(
        &self,
        owner: &UserId,
        request: UploadRequest,
        received: Received,
        check: LinkCheck,
    ) -> Result<FileRow, FileError> {
        self.commit_as(Authority::Link(owner.clone(), check), request, received, None).await
    }

    pub(super) async fn commit_as(
        &self,
        authority: Authority<'_>,
        request: UploadRequest,
        received: Received,
        finishing: Option<Finishing>,
    ) -> Result<FileRow, FileError> {
        let content_type = media_type::media_type(&request.name, &received.pending.head);
        let published = self.store.publish(received.pending).await.map_err(ingest_error)?;
        let (size, sha256) = (i64::try_from(published.size).unwrap_or(i64::MAX), published.sha256.clone());
        let (caller, owner, mut link_check) = match authority {
            Authority::Caller(caller) => (Some(caller.clone()), caller.user_id.clone(), None),
            Authority::Link(owner, check) => (None, owner, Some(check)),
        };
        let now = self.clock.now();
        #[cfg(test)]
        let pause = self.pause_before_commit.clone();
        // `published` moves into the transaction: even when this request is cancelled, the
        // blob is checked (and put back) under the write lock that blob collection takes too.
        let row = self
            .db
            .write(move |tx| {
                #[cfg(test)]
                if let Some(pause) = pause {
                    pause();
                }
                if let Some(caller) = &caller
                    && !caller.still_authorized(tx)?
                {
                    return Ok(Err(FileError::CredentialsEnded));
                }
                if let Err(err) = published.ensure_stored() {
                    return Ok(Err(FileError::Io(err)));
                }
                let existing = files::by_name(tx, &owner, &request.folder, &request.name)?;
                if !request.precondition.holds(existing.as_ref()) {
                    return Ok(Err(FileError::PreconditionFailed));
                }
                let (freed, added) = match (&existing, request.on_conflict) {
                    (Some(old), OnConflict::Replace) => (old.size, size),
                    _ => (0, size.saturating_add(request.description.stored_bytes())),
                };
                let own_reservation = match &finishing {
                    Some(finishing) => match uploads::by_id(tx, &finishing.upload)? {
                        Some(upload) if upload.file_id.is_none() => upload.reserved_bytes,
                        _ => return Ok(Err(FileError::NotFound)),
                    },
                    None => 0,
                };
                let quota = users::by_id(tx, &owner)?.and_then(|user| user.quota_bytes);
                let used = files::used_bytes(tx, &owner)?.saturating_sub(own_reservation);
                if quota.is_some_and(|quota| used.saturating_sub(freed).saturating_add(added) > quota) {
                    return Ok(Err(FileError::QuotaExceeded));
                }
                let record = |row: FileRow| -> Result<Result<FileRow, FileError>, DbError> {
                    if let Some(finishing) = &finishing {
                        uploads::finish(tx, &finishing.upload, &row.id, finishing.keep_until)?;
                    }
                    Ok(Ok(row))
                };
                let name = match (existing, request.on_conflict) {
                    (None, _) => request.name.clone(),
                    (Some(_), OnConflict::Fail) => return Ok(Err(FileError::NameTaken)),
                    (Some(_), OnConflict::Replace) if link_check.is_some() => return Ok(Err(FileError::NameTaken)),
                    (Some(old), OnConflict::Replace) => {
                        files::replace_contents(tx, &old.id, size, &sha256, &content_type, now)?;
                        return match files::by_id(tx, &old.id)? {
                            Some(row) => record(row),
                            None => Ok(Err(FileError::NotFound)),
                        };
                    }
                    (Some(_), OnConflict::Rename) => match free_name(tx, &owner, &request.folder, &request.name)? {
                        Some(name) => name,
                        None => return Ok(Err(FileError::NameTaken)),
                    },
                };
                let row = FileRow {
                    id: FileId::generate(),
                    owner_id: owner.clone(),
                    folder: request.folder.as_str().to_owned(),
                    name: name.as_str().to_owned(),
                    size,
                    sha256: sha256.clone(),
                    content_type: content_type.clone(),
                    description: request.description.as_str().to_owned(),
                    created_at: now,
                    modified_at: now,
                };
                if let Some(check) = link_check.take()
                    && let Err(refused) = check(tx, &row)?
                {
                    return Ok(Err(refused));
                }
                files::insert(tx, &row)?;
                record(row)
            })
            .await??;
        Ok(row)
    }
}

/// `name (2).ext`, `name (3).ext`, ... up to a bound.
fn free_name(
    conn: &rusqlite::Connection,
    owner: &UserId,
    folder: &FolderPath,
    name: &FileName,
) -> Result<Option<FileName>, DbError> {
    for number in 2..1000 {
        let Some(candidate) = name.numbered(number) else { return Ok(None) };
        if files::by_name(conn, owner, folder, &candidate)?.is_none() {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

fn ingest_error(err: IngestError) -> FileError {
    match err {
        IngestError::TooLarge { limit } => FileError::TooLarge { limit },
        IngestError::DigestMismatch => FileError::DigestMismatch,
        IngestError::NoSpace => FileError::NoSpace,
        IngestError::Body(reason) => FileError::Aborted(reason),
        IngestError::Disk(err) => FileError::Io(err),
    }
}
