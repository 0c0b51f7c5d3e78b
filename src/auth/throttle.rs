//! Login throttling: failed sign-ins are counted per key (an account from one client IP, an
//! account from anywhere, a client IP); past a key's free allowance every further failure
//! doubles its wait, capped at `max_delay`.
//!
//! Nobody is locked out for good: a wait never exceeds the cap, counts are forgotten after four
//! quiet `max_delay`s, and the tightest limit is on the (account, IP) pair, so an attacker
//! hammering an account from one address slows themself down long before the account's
//! global allowance (ten times larger) affects its owner elsewhere. Attempts refused while
//! waiting are not counted, so an attacker cannot keep extending the wait. State is in memory:
//! a restart forgets it, which errs towards letting people in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts are forgotten after this many `max_delay`s without a failure; shorter would let an
/// attacker who sits out one maximal wait start over with a full allowance.
const FORGET_AFTER_CAPS: u32 = 4;

#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicy {
    /// Failures per (account, IP) before waits begin; an account from anywhere gets ten times
    /// as many, an IP four times as many.
    pub free_failures: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

pub struct Throttle {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

/// The keys one attempt is counted under, each with its free allowance.
pub fn keys(account: &str, ip: &str, free: u32) -> [(String, u32); 3] {
    let account = account.to_ascii_lowercase();
    [
        (format!("pair:{account}\u{0}{ip}"), free),
        (format!("account:{account}"), free.saturating_mul(10)),
        (format!("ip:{ip}"), free.saturating_mul(4)),
    ]
}

impl Throttle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self { policy, entries: Mutex::new(HashMap::new()) }
    }

    pub fn policy(&self) -> ThrottlePolicy {
        self.policy
    }

    /// `Err(wait)` while any key is waiting.
    pub fn check(&self, keys: &[(String, u32)], now: Instant) -> Result<(), Duration> {
        let Ok(entries) = self.entries.lock() else { return Ok(()) };
        let wait = keys
            .iter()
            .filter_map(|(key, _)| entries.get(key)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failure under every key; returns the longest wait it started, if any.
    pub fn record_failure(&self, keys: &[(String, u32)], now: Instant) -> Option<Duration> {
        let Ok(mut entries) = self.entries.lock() else { return None };
        let policy = self.policy;
        let forget_after = policy.max_delay.saturating_mul(FORGET_AFTER_CAPS);
        entries.retain(|_, entry| now.saturating_duration_since(entry.last_failure) < forget_after);
        let mut longest = None;
        for (key, free) in keys {
            let entry =
                entries.entry(key.clone()).or_insert(Entry { failures: 0, last_failure: now, blocked_until: None });
            entry.failures += 1;
            entry.last_failure = now;
            if entry.failures > *free {
                let doublings = (entry.failures - free - 1).min(30);
                let wait = policy.base_delay.saturating_mul(1 << doublings).min(policy.max_delay);
                entry.blocked_until = Some(now + wait);
                longest = longest.max(Some(wait));
            }
        }
        longest
    }

    /// A success clears the (account, IP) pair; the wider keys keep counting.
    pub fn record_success(&self, keys: &[(String, u32)]) {
        if let (Ok(mut entries), Some((pair, _))) = (self.entries.lock(), keys.first()) {
            entries.remove(pair);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottlePolicy {
            free_failures: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        })
    }

    #[test]
    fn waits_start_after_the_allowance_double_and_stop_at_the_cap() {
        let throttle = throttle();
        let keys = keys("alice", "10.0.0.1", 3);
        let mut now = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.record_failure(&keys, now), None);
        }
        assert!(throttle.check(&keys, now).is_ok());
        let mut waits = Vec::new();
        for _ in 0..9 {
            let wait = throttle.record_failure(&keys, now).unwrap();
            assert_eq!(throttle.check(&keys, now), Err(wait));
            waits.push(wait.as_secs());
            now += wait;
            assert!(throttle.check(&keys, now).is_ok(), "free again once the wait is over");
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn other_accounts_and_other_addresses_are_unaffected() {
        let throttle = throttle();
        let attacked = keys("alice", "10.0.0.1", 3);
        let now = Instant::now();
        for _ in 0..5 {
            throttle.record_failure(&attacked, now);
        }
        assert!(throttle.check(&attacked, now).is_err());
        assert!(throttle.check(&keys("bob", "10.0.0.1", 3), now).is_ok(), "another account, same address");
        assert!(throttle.check(&keys("alice", "10.0.0.2", 3), now).is_ok(), "the owner, elsewhere");
    }

    #[test]
    fn counts_are_forgotten_after_a_quiet_period_and_success_clears_the_pair() {
        let throttle = throttle();
        let keys = keys("alice", "10.0.0.1", 3);
        let start = Instant::now();
        for _ in 0..3 {
            throttle.record_failure(&keys, start);
        }
        let later = start + Duration::from_secs(4 * 60 + 1);
        assert_eq!(throttle.record_failure(&keys, later), None, "old failures were forgotten");
        throttle.record_success(&keys);
        for _ in 0..2 {
            assert_eq!(throttle.record_failure(&keys, later), None);
        }
    }
}
