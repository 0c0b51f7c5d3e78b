use super::*;

fn store(dir: &std::path::Path) -> BlobStore {
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    BlobStore::new(dir.join("blobs"), dir.join("tmp"), crate::clock::Clock::system())
}

fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin {
    futures_util::stream::iter(parts.iter().map(|part| Ok(Bytes::from_static(part))).collect::<Vec<_>>())
}

#[tokio::test]
async fn uploads_are_hashed_published_once_and_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let first = store.ingest(chunks(&[b"hello ", b"world"]), 100, ExpectedDigests::default()).await.unwrap();
    assert_eq!(first.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    let published = store.publish(first).await.unwrap();
    let second = store.ingest(chunks(&[b"hello world"]), 100, ExpectedDigests::default()).await.unwrap();
    let again = store.publish(second).await.unwrap();
    assert_eq!(published.sha256, again.sha256);
    assert_eq!(store.list_blobs().unwrap(), vec![published.sha256.clone()]);
    // Once the rows are committed, both temp files (a second link and a redundant copy)
    // are removed in the background.
    drop((published, again));
    let mut polls = 0;
    while std::fs::read_dir(store.tmp_dir()).unwrap().count() > 0 {
        assert!(polls < 500, "the redundant temp file was left");
        polls += 1;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_large_upload_in_small_chunks_is_stored_whole_across_write_behind_windows() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // 20 MiB and a bit in 16 KiB pieces: several batches, write-back windows and flushes.
    let data: Vec<u8> = (0..(20 << 20) + 12_345).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let pieces: Vec<Result<Bytes, io::Error>> =
        data.chunks(16 << 10).map(|piece| Ok(Bytes::copy_from_slice(piece))).collect();
    let pending = store.ingest(futures_util::stream::iter(pieces), u64::MAX, ExpectedDigests::default()).await.unwrap();
    let expected = hex(ring::digest::digest(&ring::digest::SHA256, &data).as_ref());
    assert_eq!((pending.sha256.clone(), pending.size), (expected.clone(), data.len() as u64));
    let published = store.publish(pending).await.unwrap();
    assert!(std::fs::read(store.blob_path(&published.sha256).unwrap()).unwrap() == data, "stored bytes differ");
    assert_eq!(published.sha256, expected);
}

#[tokio::test]
async fn batches_gather_what_has_arrived_up_to_the_batch_size_and_see_the_end_once() {
    let pieces: Vec<Result<Bytes, io::Error>> = (0..100).map(|_| Ok(Bytes::from(vec![7u8; 64 << 10]))).collect();
    let mut body = futures_util::stream::iter(pieces).fuse();
    let mut size = 0;
    let mut batches = Vec::new();
    let mut head = Vec::new();
    while let Some(batch) = next_batch(&mut body, &mut size, u64::MAX, &mut head).await.unwrap() {
        batches.push(batch.iter().map(Bytes::len).sum::<usize>());
    }
    assert_eq!(size, 100 * (64 << 10));
    // 6.25 MiB already waiting: six full batches, then the remaining quarter.
    assert_eq!(batches, vec![BATCH_BYTES, BATCH_BYTES, BATCH_BYTES, BATCH_BYTES, BATCH_BYTES, BATCH_BYTES, 256 << 10]);
    assert!(next_batch(&mut body, &mut size, u64::MAX, &mut head).await.unwrap().is_none(), "the end is seen again");
    assert_eq!(head, vec![7u8; HEAD_BYTES], "the head is kept");
}

#[tokio::test]
async fn empty_chunks_anywhere_in_the_body_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // HTTP/2 may deliver empty DATA frames, e.g. one that only ends the stream.
    let pending =
        store.ingest(chunks(&[b"", b"hello ", b"", b"world", b""]), 100, ExpectedDigests::default()).await.unwrap();
    assert_eq!(
        (pending.sha256.as_str(), pending.size),
        ("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9", 11)
    );
    let empty = store.ingest(chunks(&[b"", b""]), 100, ExpectedDigests::default()).await.unwrap();
    assert_eq!(empty.size, 0);
}

#[test]
fn vectored_writes_finish_when_only_empty_slices_are_left() {
    let mut out = Vec::new();
    let pieces = [Bytes::from_static(b"ab"), Bytes::new(), Bytes::from_static(b"c"), Bytes::new()];
    write_all_vectored(&mut out, &pieces).unwrap();
    write_all_vectored(&mut out, &[Bytes::new()]).unwrap();
    assert_eq!(out, b"abc");
}

#[tokio::test]
async fn failures_leave_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let too_large = store.ingest(chunks(&[b"0123456789", b"x"]), 10, ExpectedDigests::default()).await;
    assert!(matches!(too_large, Err(IngestError::TooLarge { limit: 10 })));
    let cut: Vec<Result<Bytes, io::Error>> = vec![Ok(Bytes::from_static(b"part")), Err(io::Error::other("reset"))];
    let cut_short = store.ingest(futures_util::stream::iter(cut), 100, ExpectedDigests::default()).await;
    assert!(matches!(cut_short, Err(IngestError::Body(_))));
    let mismatch = store.ingest(chunks(&[b"data"]), 100, ExpectedDigests { sha256: Some([0; 32]), sha512: None }).await;
    assert!(matches!(mismatch, Err(IngestError::DigestMismatch)));
    let sha512 = ExpectedDigests { sha256: None, sha512: Some([0; 64]) };
    let mismatch512 = store.ingest(chunks(&[b"data"]), 100, sha512).await;
    assert!(matches!(mismatch512, Err(IngestError::DigestMismatch)), "a SHA-512 alone is checked too");
    let unwanted = store.ingest(chunks(&[b"never published"]), 100, ExpectedDigests::default()).await.unwrap();
    unwanted.discard().await;
    assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    assert!(store.list_blobs().unwrap().is_empty());
}

#[tokio::test]
async fn stored_blobs_are_read_only_and_a_discarded_blob_is_linked_again_at_commit() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let published =
        store.publish(store.ingest(chunks(&[b"kept"]), 100, ExpectedDigests::default()).await.unwrap()).await.unwrap();
    let path = store.blob_path(&published.sha256).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o400);
    assert!(store.discard(&published.sha256, std::time::Duration::from_secs(3600)).unwrap().is_none(), "too young");
    let trash = store.discard(&published.sha256, std::time::Duration::ZERO).unwrap().unwrap();
    assert!(!path.exists() && trash.starts_with(store.tmp_dir()));
    assert!(published.ensure_stored().unwrap(), "the commit puts the blob back");
    assert_eq!(std::fs::read(&path).unwrap(), b"kept");
    assert!(!published.ensure_stored().unwrap());
    drop(published);
    std::fs::remove_file(trash).unwrap();
    let mut polls = 0;
    while std::fs::read_dir(store.tmp_dir()).unwrap().count() > 0 {
        assert!(polls < 500, "the upload's temp file was left");
        polls += 1;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"kept", "the blob outlives the temp file");
}

#[test]
fn blobs_stored_by_older_versions_are_made_read_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, b"old").as_ref());
    let path = store.blob_path(&sha256).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(store.make_read_only().unwrap(), 1);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o400);
    assert_eq!(store.make_read_only().unwrap(), 0);
}
