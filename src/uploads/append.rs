//! Appending a chunk at the durable offset, and the last byte's commit into a file.

use super::*;

impl Uploads {
    /// Appends a chunk at the durable offset; finishes the upload with its last byte.
    ///
    /// The work runs as its own task: when the client goes away mid-chunk and its request is
    /// dropped, what arrived is still made durable and recorded, and the upload unlocked.
    pub async fn append<S>(
        &self,
        caller: &Principal,
        id: &UploadId,
        chunk: Chunk<S>,
    ) -> Result<UploadStatus, UploadError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send + 'static,
    {
        let (uploads, caller, id) = (self.clone(), caller.clone(), id.clone());
        tokio::spawn(async move { uploads.append_detached(&caller, &id, chunk).await })
            .await
            .map_err(|err| UploadError::File(FileError::Io(std::io::Error::other(err.to_string()))))?
    }

    async fn append_detached<S>(
        &self,
        caller: &Principal,
        id: &UploadId,
        chunk: Chunk<S>,
    ) -> Result<UploadStatus, UploadError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    {
        self.row(caller, id).await?;
        let slot = self.slot(id);
        let Ok(mut hash) = slot.try_lock_owned() else { return Err(UploadError::Locked) };
        // Read again under the lock: the previous append may have moved the offset.
        let row = self.row(caller, id).await?;
        let (length, received) = (row.length as u64, row.received as u64);
        if chunk.offset != received {
            return Err(UploadError::OffsetMismatch { sent: chunk.offset, expected: received });
        }
        if row.file_id.is_some() {
            return Ok(UploadStatus::of(&row));
        }
        let left = length - received;
        if chunk.declared_size.is_some_and(|size| size > left) {
            return Err(UploadError::PastLength { length });
        }
        if left > 0 {
            self.check_free_space(chunk.declared_size.unwrap_or(0)).await?;
            let path = self.part_path(id);
            let start = match hash.take() {
                Some(known) => known,
                None => {
                    let path = path.clone();
                    blocking(move || part::rehash(&path, received)).await?
                }
            };
            let recorded = Arc::new(AtomicU64::new(received));
            let checkpoint = self.checkpoint(id, Arc::clone(&recorded));
            let outcome =
                part::append(path.clone(), received, chunk.body, left, &start, chunk.checksum, Some(checkpoint));
            let appended = match outcome.await {
                Ok(appended) => appended,
                Err(err) => {
                    // Progress recorded by a checkpoint stays; the hash is then computed again.
                    let kept = recorded.load(Ordering::Acquire);
                    *hash = (kept == received).then_some(start);
                    if matches!(err, AppendError::NoSpace) {
                        // Give back what the refused chunk took; the next append cuts it off too.
                        let _ =
                            blocking(move || std::fs::OpenOptions::new().write(true).open(&path)?.set_len(kept)).await;
                    }
                    return Err(append_error(err, length));
                }
            };
            let now_received = received + appended.received;
            if appended.received > 0 {
                let (update, expires_at) = (id.clone(), self.expires_from_now());
                let stored = i64::try_from(now_received).unwrap_or(i64::MAX);
                self.files.db().write(move |tx| uploads::set_received(tx, &update, stored, expires_at)).await?;
            }
            *hash = Some(appended.hash);
            if appended.cut_short || now_received < length {
                let mut status = UploadStatus::of(&row);
                status.offset = now_received;
                return Ok(status);
            }
        }
        let file = self.finish(caller, &row, &mut hash).await?;
        let mut status = UploadStatus::of(&row);
        status.offset = length;
        status.file_id = Some(file.id);
        Ok(status)
    }

    /// Records a long append's durable progress while it runs, so a crash mid-PATCH keeps it.
    fn checkpoint(&self, id: &UploadId, recorded: Arc<AtomicU64>) -> part::Checkpoint {
        let (this, id, runtime) = (self.clone(), id.clone(), tokio::runtime::Handle::current());
        Box::new(move |durable: u64| {
            let (update, expires_at) = (id.clone(), this.expires_from_now());
            let stored = i64::try_from(durable).unwrap_or(i64::MAX);
            let write = this.files.db().write(move |tx| uploads::set_received(tx, &update, stored, expires_at));
            runtime.block_on(write).map_err(std::io::Error::other)?;
            recorded.store(durable, Ordering::Release);
            Ok(())
        })
    }

    /// Stores the complete part file like a plain upload. On failure (a name taken meanwhile,
    /// a lowered quota, a session ended) the upload stays complete and may be finished by
    /// another empty PATCH at its final offset.
    async fn finish(
        &self,
        caller: &Principal,
        row: &UploadRow,
        hash: &mut Option<PartHash>,
    ) -> Result<FileRow, UploadError> {
        let path = self.part_path(&row.id);
        let full = match hash.clone() {
            Some(known) => known,
            None => {
                let (path, length) = (path.clone(), row.length as u64);
                blocking(move || part::rehash(&path, length)).await?
            }
        };
        *hash = Some(full.clone());
        let sha256 = full.finish();
        if row.expected_sha256.as_ref().is_some_and(|expected| !expected.eq_ignore_ascii_case(&sha256)) {
            self.remove(&row.id).await?;
            return Err(UploadError::DigestMismatch);
        }
        let link = self.tmp.join(format!("upload-{:032x}", rand::random::<u128>()));
        let (sealed, linked) = (path.clone(), link.clone());
        let head = blocking(move || part::seal(&sealed, &linked)).await?;
        let pending = PendingBlob::adopt(link, sha256, row.length as u64, head);
        let request = UploadRequest {
            folder: FolderPath::parse_existing(&row.folder).map_err(FileError::from)?,
            name: FileName::parse_existing(&row.name).map_err(FileError::from)?,
            on_conflict: on_conflict_parse(&row.on_conflict),
            description: Description::parse(&row.description).map_err(FileError::from)?,
            declared_size: Some(row.length as u64),
            digests: ExpectedDigests::default(),
            precondition: Precondition::None,
        };
        let finishing = Finishing { upload: row.id.clone(), keep_until: self.expires_from_now() };
        let file =
            self.files.commit_finishing(caller, request, Received::from_pending(pending), Some(finishing)).await?;
        // The blob has its own link now; the part file is no longer needed.
        let _ = blocking(move || std::fs::remove_file(path)).await;
        self.forget(&row.id);
        tracing::info!(target: "coffer::uploads", upload = %row.id, file = %file.id, "resumable upload finished");
        Ok(file)
    }
}

fn append_error(err: AppendError, length: u64) -> UploadError {
    match err {
        AppendError::TooLarge { .. } => UploadError::PastLength { length },
        AppendError::ChecksumMismatch => UploadError::ChecksumMismatch,
        AppendError::Incomplete => UploadError::Incomplete,
        AppendError::NoSpace => FileError::NoSpace.into(),
        AppendError::Disk(err) => FileError::Io(err).into(),
    }
}
