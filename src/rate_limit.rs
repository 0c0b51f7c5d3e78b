//! Request-rate limits per key (a client network, an account): the generic cell rate
//! algorithm, which allows a steady `per_minute` with bursts of up to `burst` requests, and says
//! how long to wait when a request comes too early.
//!
//! One entry per key holds only the time its next request is due; entries whose time has
//! passed carry no information and are dropped by [`RateLimiter::prune`] (run periodically)
//! and when the table is full, so memory stays bounded whatever keys clients invent. Time
//! comes from the injected [`Clock`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Clock;

/// Most keys held at once.
const MAX_KEYS: usize = 200_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

pub struct RateLimiter {
    /// Microseconds between requests at the steady rate.
    interval: i64,
    /// How far ahead of now a key's due time may run (the burst).
    tolerance: i64,
    clock: Clock,
    /// Key -> the time (clock microseconds) the steady rate reaches its next request.
    due: Mutex<HashMap<String, i64>>,
}

impl RateLimiter {
    pub fn new(quota: Quota, clock: Clock) -> Self {
        // Microseconds: at more than 60,000 a minute a millisecond interval would round to 0
        // and take the burst with it.
        let interval = 60_000_000 / i64::from(quota.per_minute.max(1));
        let tolerance = interval.saturating_mul(i64::from(quota.burst.max(1)) - 1);
        Self { interval, tolerance, clock, due: Mutex::new(HashMap::new()) }
    }

    /// `Ok` if a request for `key` may go now (and counts it), else how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let mut due = self.due.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Read under the lock, so a request never sees a due time set from a later "now".
        let now = self.clock.now_millis().saturating_mul(1000);
        if due.len() >= MAX_KEYS && !due.contains_key(key) {
            due.retain(|_, at| *at > now);
            if due.len() >= MAX_KEYS {
                // Every key is busy: refuse newcomers rather than forget limits in force.
                return Err(Duration::from_micros(u64::try_from(self.interval).unwrap_or(1_000_000)));
            }
        }
        let at = due.get(key).copied().unwrap_or(now).max(now);
        if at - now > self.tolerance {
            let wait = at - now - self.tolerance;
            return Err(Duration::from_micros(u64::try_from(wait).unwrap_or(0)));
        }
        due.insert(key.to_owned(), at + self.interval);
        Ok(())
    }

    /// Drops keys that are back to a full burst; returns how many remain.
    pub fn prune(&self) -> usize {
        let now = self.clock.now_millis().saturating_mul(1000);
        let mut due = self.due.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        due.retain(|_, at| *at > now);
        due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_above_one_a_millisecond_keeps_its_burst() {
        let clock = Clock::manual(1_000);
        let limiter = RateLimiter::new(Quota { per_minute: 120_000, burst: 10 }, clock);
        for _ in 0..10 {
            assert!(limiter.check("a").is_ok());
        }
        assert!(limiter.check("a").is_err(), "the burst is spent");
    }

    #[test]
    fn a_burst_then_the_steady_rate_with_the_wait_said() {
        let clock = Clock::manual(1_000);
        let limiter = RateLimiter::new(Quota { per_minute: 60, burst: 5 }, clock.clone());
        for _ in 0..5 {
            assert!(limiter.check("a").is_ok());
        }
        assert_eq!(limiter.check("a"), Err(Duration::from_secs(1)), "the burst is spent");
        assert!(limiter.check("b").is_ok(), "another key is not affected");
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check("a").is_ok(), "one more a second later");
        assert!(limiter.check("a").is_err());
        clock.advance(Duration::from_secs(10));
        for _ in 0..5 {
            assert!(limiter.check("a").is_ok(), "the burst refills");
        }
    }

    #[test]
    fn refused_requests_do_not_extend_the_wait_and_idle_keys_are_pruned() {
        let clock = Clock::manual(1_000);
        let limiter = RateLimiter::new(Quota { per_minute: 60, burst: 1 }, clock.clone());
        assert!(limiter.check("a").is_ok());
        for _ in 0..100 {
            assert!(limiter.check("a").is_err());
        }
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check("a").is_ok(), "hammering while refused did not push the time back");
        assert_eq!(limiter.prune(), 1);
        clock.advance(Duration::from_secs(2));
        assert_eq!(limiter.prune(), 0, "back to a full burst: forgotten");
    }
}
