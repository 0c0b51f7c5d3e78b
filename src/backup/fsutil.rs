//! File-system steps the backup commands share: private directories, synced writes and
//! copies that hash what they copy, directory fsyncs, work spread over the CPUs. Blocking.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Creates `path` and any missing parents, mode 0700 (backups hold everyone's files and keys).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Writes a new file (it must not exist) and fsyncs it.
pub fn write_new_synced(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Size and SHA-256 of a file's contents.
pub fn hash_path(path: &Path) -> io::Result<(u64, String)> {
    crate::storage::check::hash_file(&mut File::open(path)?)
}

/// Copies `from` into a new file `to` (it must not exist) with `mode`, fsyncs it, and
/// returns the size and SHA-256 of what was copied.
pub fn copy_synced(from: &Path, to: &Path, mode: u32) -> io::Result<(u64, String)> {
    copy_hashed(from, to, mode, true)
}

/// Makes everything written to the file system holding `path` durable (one `syncfs` instead
/// of an fsync per file, for many files written at once).
pub fn sync_file_system(path: &Path) -> io::Result<()> {
    Ok(rustix::fs::syncfs(File::open(path)?)?)
}

/// As [`copy_synced`], with the fsync left to the caller when `sync` is false.
pub fn copy_hashed(from: &Path, to: &Path, mode: u32, sync: bool) -> io::Result<(u64, String)> {
    let mut source = File::open(from)?;
    let mut target = OpenOptions::new().write(true).create_new(true).mode(mode).open(to)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    let copied = (|| -> io::Result<()> {
        loop {
            let read = match source.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            target.write_all(&buffer[..read])?;
            digest.update(&buffer[..read]);
            size += read as u64;
        }
        if sync { target.sync_all() } else { Ok(()) }
    })();
    if let Err(err) = copied {
        drop(target);
        let _ = fs::remove_file(to);
        return Err(err);
    }
    Ok((size, digest.finish().as_ref().iter().map(|byte| format!("{byte:02x}")).collect()))
}

/// Copies the regular files of directory `from` (recursively) into `to`: directories 0700,
/// files 0600, each fsynced. Returns (path relative to `base`, size, SHA-256) of each file.
pub fn copy_tree(from: &Path, to: &Path, base: &Path) -> io::Result<Vec<(String, u64, String)>> {
    let mut copied = Vec::new();
    create_private_dir(to)?;
    let mut entries: Vec<_> = fs::read_dir(from)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copied.extend(copy_tree(&source, &target, base)?);
        } else if !kind.is_symlink() {
            let (size, sha256) = copy_synced(&source, &target, 0o600)?;
            let relative = target.strip_prefix(base).unwrap_or(&target).to_string_lossy().into_owned();
            copied.push((relative, size, sha256));
        }
    }
    sync_dir(to)?;
    Ok(copied)
}

/// Runs `work` on every item with one thread per CPU (at most `items.len()`), keeping order.
/// `None` if a worker thread died.
pub fn parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Option<Vec<R>> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(items.len()).max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(index) else { break };
                        done.push((index, work(item)));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().unwrap_or_default()).collect()
    });
    if results.len() != items.len() {
        return None;
    }
    results.sort_by_key(|(index, _)| *index);
    Some(results.into_iter().map(|(_, result)| result).collect())
}

/// Gives `path` and everything under it to `uid`:`gid` (restores run as root). Blocking.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    use rustix::fs::{Gid, Uid};
    rustix::fs::chown(path, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
