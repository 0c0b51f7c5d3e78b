//! The backup directory: every path in it, its marker, its lock, and the snapshots it holds.
//!
//! ```text
//! <backup dir>/
//!   COFFER-BACKUP            marker: format and this instance's id; nothing is written
//!                            into a directory without it
//!   lock                     flock: one backup command at a time
//!   status.json              the last run's outcome (read by the server for metrics)
//!   pool/ab/cd/<sha256>      one entry per blob, shared by every snapshot (0400)
//!   snapshots/<id>/          coffer.db, keys/, tls/, acme/, coffer.toml, blobs.txt,
//!                            manifest.json and, written last, COMPLETE
//!   snapshots/<id>.partial/  a snapshot being made: never listed, removed by the next run
//! ```
//!
//! Snapshot ids are the UTC time of the database copy and a random suffix,
//! `2026-12-02T031500Z-3f9a`; retention reads the time from the id, never from file times.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{BackupError, Context, fsutil};

pub const MARKER: &str = "COFFER-BACKUP";
pub const COMPLETE: &str = "COMPLETE";
/// The layout's version, in the marker and every manifest.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(String);

impl SnapshotId {
    /// A new id for a snapshot made at `at` (Unix seconds).
    pub fn new(at: i64) -> Self {
        let time = time::OffsetDateTime::from_unix_timestamp(at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Self(format!(
            "{:04}-{:02}-{:02}T{:02}{:02}{:02}Z-{:04x}",
            time.year(),
            u8::from(time.month()),
            time.day(),
            time.hour(),
            time.minute(),
            time.second(),
            rand::random::<u16>()
        ))
    }

    /// An id as written in a directory name; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let shape = bytes.len() == 23
            && bytes.iter().enumerate().all(|(index, byte)| match index {
                4 | 7 | 18 => *byte == b'-',
                10 => *byte == b'T',
                17 => *byte == b'Z',
                19..=22 => byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase(),
                _ => byte.is_ascii_digit(),
            });
        let id = Self(text.to_owned());
        (shape && id.parse_time().is_some()).then_some(id)
    }

    fn parse_time(&self) -> Option<i64> {
        let number = |range: std::ops::Range<usize>| self.0.get(range)?.parse::<u32>().ok();
        let month = time::Month::try_from(u8::try_from(number(5..7)?).ok()?).ok()?;
        let date = time::Date::from_calendar_date(
            i32::try_from(number(0..4)?).ok()?,
            month,
            u8::try_from(number(8..10)?).ok()?,
        )
        .ok()?;
        let clock = time::Time::from_hms(
            u8::try_from(number(11..13)?).ok()?,
            u8::try_from(number(13..15)?).ok()?,
            u8::try_from(number(15..17)?).ok()?,
        )
        .ok()?;
        Some(time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp())
    }

    /// When the snapshot's database was copied (Unix seconds, UTC).
    pub fn time(&self) -> i64 {
        self.parse_time().unwrap_or(0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The marker's contents: `format=1` and `instance_id=<id>`, one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub format: u32,
    pub instance_id: String,
}

impl Marker {
    pub fn parse(text: &str) -> Option<Self> {
        let value =
            |key: &str| text.lines().find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')));
        let format = value("format")?.trim().parse().ok()?;
        let instance_id = value("instance_id")?.trim().to_owned();
        (!instance_id.is_empty()).then_some(Self { format, instance_id })
    }

    pub fn render(&self) -> String {
        format!("format={}\ninstance_id={}\n", self.format, self.instance_id)
    }
}

/// One snapshot directory: complete once its `COMPLETE` marker exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: SnapshotId,
    pub complete: bool,
}

/// What `snapshots/` holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Oldest first.
    pub snapshots: Vec<Entry>,
    /// Interrupted snapshots (`<id>.partial`) and half-removed ones (`.trash-<id>`).
    pub leftovers: Vec<PathBuf>,
}

impl Listing {
    pub fn complete(&self) -> impl DoubleEndedIterator<Item = &SnapshotId> {
        self.snapshots.iter().filter(|entry| entry.complete).map(|entry| &entry.id)
    }

    pub fn newest_complete(&self) -> Option<&SnapshotId> {
        self.complete().next_back()
    }
}

/// The backup directory's `lock`, held exclusively while a command changes anything.
pub struct DirLock {
    _file: File,
}

#[derive(Clone, Debug)]
pub struct BackupDir {
    root: PathBuf,
}

impl BackupDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn marker(&self) -> PathBuf {
        self.root.join(MARKER)
    }

    pub fn status_file(&self) -> PathBuf {
        self.root.join("status.json")
    }

    pub fn pool(&self) -> PathBuf {
        self.root.join("pool")
    }

    /// `pool/ab/cd/<sha256>`, or `None` for anything but a SHA-256.
    pub fn pool_path(&self, sha256: &str) -> Option<PathBuf> {
        crate::storage::is_sha256_hex(sha256).then(|| self.pool().join(&sha256[..2]).join(&sha256[2..4]).join(sha256))
    }

    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub fn snapshot(&self, id: &SnapshotId) -> PathBuf {
        self.snapshots().join(id.as_str())
    }

    pub fn partial(&self, id: &SnapshotId) -> PathBuf {
        self.snapshots().join(format!("{id}.partial"))
    }

    pub fn read_marker(&self) -> Result<Option<Marker>, BackupError> {
        match fs::read_to_string(self.marker()) {
            Ok(text) => Marker::parse(&text).map(Some).ok_or_else(|| {
                BackupError::Refused(format!("{} is not a Coffer backup marker", self.marker().display()))
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).context(|| format!("cannot read {}", self.marker().display())),
        }
    }

    /// Marks the directory as this instance's backup directory (creating it). Refuses a
    /// directory that holds anything without a marker, or another instance's marker.
    /// Returns whether it was new.
    pub fn init(&self, instance_id: &str) -> Result<bool, BackupError> {
        match self.read_marker()? {
            Some(marker) if marker.instance_id == instance_id => return Ok(false),
            Some(marker) => {
                return Err(BackupError::Refused(format!(
                    "{} holds the backups of another Coffer instance ({}); this one is {instance_id}. Choose another directory",
                    self.root.display(),
                    marker.instance_id
                )));
            }
            None => {}
        }
        if let Ok(mut entries) = fs::read_dir(&self.root)
            && let Some(entry) = entries.next()
        {
            let name = entry.map(|entry| entry.file_name().to_string_lossy().into_owned()).unwrap_or_default();
            return Err(BackupError::Refused(format!(
                "{} is not empty (it holds {name}) and has no {MARKER} marker; choose an empty or new directory",
                self.root.display()
            )));
        }
        fsutil::create_private_dir(&self.root).context(|| format!("cannot create {}", self.root.display()))?;
        for dir in [self.pool(), self.snapshots()] {
            fsutil::create_private_dir(&dir).context(|| format!("cannot create {}", dir.display()))?;
        }
        let marker = Marker { format: FORMAT, instance_id: instance_id.to_owned() };
        crate::state_dir::write_file_atomically(&self.marker(), marker.render().as_bytes(), 0o600)
            .context(|| format!("cannot write {}", self.marker().display()))?;
        Ok(true)
    }

    /// Checks that this is `instance_id`'s backup directory (any instance's when `None`):
    /// a directory without the marker may be an unmounted disk, and is never used.
    pub fn check_marker(&self, instance_id: Option<&str>) -> Result<Marker, BackupError> {
        let Some(marker) = self.read_marker()? else {
            return Err(BackupError::Refused(format!(
                "{} has no {MARKER} marker: it is not a backup directory, or its disk is not mounted. \
                 For a new backup directory run `coffer backup init`",
                self.root.display()
            )));
        };
        if marker.format != FORMAT {
            return Err(BackupError::Refused(format!(
                "{} has backup format {}; this Coffer reads format {FORMAT}",
                self.root.display(),
                marker.format
            )));
        }
        match instance_id {
            Some(ours) if ours != marker.instance_id => Err(BackupError::Refused(format!(
                "{} holds the backups of another Coffer instance ({}); this one is {ours}",
                self.root.display(),
                marker.instance_id
            ))),
            _ => Ok(marker),
        }
    }

    /// The directory's lock, without waiting: refused while another backup command runs.
    pub fn lock(&self) -> Result<DirLock, BackupError> {
        use rustix::fs::{FlockOperation, flock};
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .context(|| format!("cannot open {}", path.display()))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(BackupError::Refused(format!(
                "another backup command is running on {} (it holds {})",
                self.root.display(),
                path.display()
            ))),
            Err(err) => Err(io::Error::from(err)).context(|| format!("cannot lock {}", path.display())),
        }
    }

    pub fn list(&self) -> Result<Listing, BackupError> {
        let dir = self.snapshots();
        let mut listing = Listing::default();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(listing),
            Err(err) => return Err(err).context(|| format!("cannot list {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.context(|| format!("cannot list {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = SnapshotId::parse(&name) {
                let complete = entry.path().join(COMPLETE).is_file();
                listing.snapshots.push(Entry { id, complete });
            } else if name.ends_with(".partial") || name.starts_with(".trash-") {
                listing.leftovers.push(entry.path());
            }
        }
        listing.snapshots.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_carry_their_utc_time_and_nothing_else_parses() {
        let id = SnapshotId::new(1_796_181_300);
        assert!(id.as_str().starts_with("2026-12-02T031500Z-"), "{id}");
        assert_eq!(SnapshotId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.time(), 1_796_181_300);
        for bad in ["2026-12-02T031500Z-3F9A", "2026-13-02T031500Z-3f9a", "2026-12-02T031500Z-3f9a.partial", "x", ""] {
            assert!(SnapshotId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_directory_is_used_only_with_this_instances_marker() {
        let dir = tempfile::tempdir().unwrap();
        let backups = BackupDir::new(dir.path().join("backups"));
        assert!(matches!(backups.check_marker(Some("ours")), Err(BackupError::Refused(_))));
        assert!(backups.init("ours").unwrap());
        assert!(!backups.init("ours").unwrap());
        assert_eq!(backups.check_marker(Some("ours")).unwrap().instance_id, "ours");
        assert!(matches!(backups.check_marker(Some("theirs")), Err(BackupError::Refused(_))));
        assert!(matches!(backups.init("theirs"), Err(BackupError::Refused(_))));
        let occupied = BackupDir::new(dir.path());
        assert!(matches!(occupied.init("ours"), Err(BackupError::Refused(message)) if message.contains("not empty")));
        let _held = backups.lock().unwrap();
        assert!(matches!(backups.lock(), Err(BackupError::Refused(_))));
    }
}
