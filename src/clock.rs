//! The one clock: every time decision (expiry, throttling, renewals, ages of files on disk)
//! asks a [`Clock`] handed down from startup, so there is a single notion of "now" and tests
//! can move it instead of waiting or rewriting stored times.
//!
//! [`Clock::system`] is the wall clock. Debug builds (the ones the black-box tests run) add
//! the number of seconds in the file named by `TESTING_COFFER_CLOCK_FILE`, read at every call,
//! so a test moves a running server's time forward by rewriting that file; release builds never
//! look at the variable. [`Clock::manual`] is a clock that only moves when told, for unit tests.
//! Waiting itself (timers, timeouts) stays on tokio's monotonic time: only decisions read this.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

#[derive(Clone, Debug)]
pub struct Clock {
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    System {
        /// Debug builds: a file holding seconds to add to the wall clock.
        offset_file: Option<Arc<std::path::PathBuf>>,
    },
    /// Milliseconds since the Unix epoch, moved by [`Clock::advance`].
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The wall clock (plus the test offset in debug builds).
    pub fn system() -> Self {
        let offset_file = if cfg!(debug_assertions) {
            std::env::var_os("TESTING_COFFER_CLOCK_FILE").map(|path| Arc::new(std::path::PathBuf::from(path)))
        } else {
            None
        };
        Self { source: Source::System { offset_file } }
    }

    /// A clock standing at `unix_seconds` until [`Clock::advance`] moves it.
    pub fn manual(unix_seconds: i64) -> Self {
        Self { source: Source::Manual(Arc::new(AtomicI64::new(unix_seconds.saturating_mul(1000)))) }
    }

    /// Moves a manual clock forward (the system clock ignores this).
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(millis) = &self.source {
            millis.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> i64 {
        match &self.source {
            Source::Manual(millis) => millis.load(Ordering::Relaxed),
            Source::System { offset_file } => {
                let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                let wall = i64::try_from(wall.as_millis()).unwrap_or(i64::MAX);
                let offset = offset_file.as_deref().map_or(0, |path| read_offset_seconds(path));
                wall.saturating_add(offset.saturating_mul(1000))
            }
        }
    }

    /// Seconds since the Unix epoch: the unit of every time stored in the database.
    pub fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// Now, as a calendar time (certificates).
    pub fn now_utc(&self) -> OffsetDateTime {
        let nanos = i128::from(self.now_millis()) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// How long ago `then` (a file's modification time, say) was; zero for the future.
    pub fn since(&self, then: SystemTime) -> Duration {
        let then = then.duration_since(UNIX_EPOCH).unwrap_or_default();
        let now = Duration::from_millis(u64::try_from(self.now_millis()).unwrap_or(0));
        now.saturating_sub(then)
    }
}

fn read_offset_seconds(path: &std::path::Path) -> i64 {
    std::fs::read_to_string(path).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.clone().advance(Duration::from_millis(2_500));
        assert_eq!((clock.now(), clock.now_millis()), (1_002, 1_002_500));
        assert_eq!(clock.now_utc().unix_timestamp(), 1_002);
        let file_time = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(clock.since(file_time), Duration::from_millis(2_500));
        assert_eq!(clock.since(file_time + Duration::from_secs(60)), Duration::ZERO, "the future is no age");
    }

    #[test]
    fn the_system_clock_follows_the_wall_clock() {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let now = Clock { source: Source::System { offset_file: None } }.now();
        assert!((now - wall).abs() <= 1, "{now} vs {wall}");
    }

    #[test]
    fn the_test_offset_file_moves_the_system_clock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let clock = Clock { source: Source::System { offset_file: Some(Arc::new(path.clone())) } };
        let before = clock.now();
        std::fs::write(&path, "3600\n").unwrap();
        assert!((clock.now() - before - 3600).abs() <= 1);
    }
}
