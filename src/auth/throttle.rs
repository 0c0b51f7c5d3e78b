//! Throttling of password guesses (sign-ins, password changes, share passwords).
//!
//! Failures are counted per key; past a key's free allowance every further failure doubles its
//! wait, capped at `max_delay`. The keys are chosen so that an attacker slows themself down,
//! not the owner:
//! - a client that proved itself earlier (a signed device token from a successful sign-in to
//!   this account, see [`super::device`]) is counted only under its own device key, so an attack
//!   from elsewhere never makes the owner's device wait;
//! - anyone else is counted under (account, network), the account from anywhere (ten times the
//!   allowance) and the network (four times), where a network is an IPv4 address or an IPv6
//!   /64, since one IPv6 client usually holds a whole /64.
//!
//! A success clears the account's keys. Nobody is locked out for good: a wait never exceeds the
//! cap, and counts are forgotten after four quiet `max_delay`s. Attempts refused while waiting
//! are not counted, so an attacker cannot keep extending a wait. The table is bounded
//! ([`MAX_ENTRIES`]); when full, idle entries go first. State is in memory: a restart forgets
//! it, which errs towards letting people in. Time comes from the injected [`Clock`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::client_address::network_of_text as network_of;
use crate::clock::Clock;

/// Counts are forgotten after this many `max_delay`s without a failure; shorter would let an
/// attacker who sits out one maximal wait start over with a full allowance.
const FORGET_AFTER_CAPS: u32 = 4;

/// Most keys remembered at once (each some 100 bytes), so a flood of made-up names or
/// addresses cannot grow memory without bound.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicy {
    /// Failures per (account, network) before waits begin; an account from anywhere gets ten
    /// times as many, a network four times as many, a trusted device as many.
    pub free_failures: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    /// Milliseconds on the clock.
    last_failure: i64,
    blocked_until: Option<i64>,
}

/// What one attempt is counted under, each key with its free allowance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    keys: Vec<(String, u32)>,
}

impl Keys {
    /// For an attempt on `account` from `ip` by a client that has not proved itself.
    pub fn for_account(account: &str, ip: &str, free: u32) -> Self {
        let account = account.to_ascii_lowercase();
        let network = network_of(ip);
        Self {
            keys: vec![
                (format!("pair:{account}\u{0}{network}"), free),
                (format!("account:{account}"), free.saturating_mul(10)),
                (format!("net:{network}"), free.saturating_mul(4)),
            ],
        }
    }

    /// For an attempt by a device that signed in to the account before: its own key only.
    pub fn for_device(device: &str, free: u32) -> Self {
        Self { keys: vec![(format!("device:{device}"), free)] }
    }

    /// For an attempt that names no account at all (a malformed username): the network only.
    pub fn for_network(ip: &str, free: u32) -> Self {
        Self { keys: vec![(format!("net:{}", network_of(ip)), free.saturating_mul(4))] }
    }
}

pub struct Throttle {
    policy: ThrottlePolicy,
    clock: Clock,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    pub fn new(policy: ThrottlePolicy, clock: Clock) -> Self {
        Self { policy, clock, entries: Mutex::new(HashMap::new()) }
    }

    pub fn policy(&self) -> ThrottlePolicy {
        self.policy
    }

    fn millis(duration: Duration) -> i64 {
        i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
    }

    /// `Err(wait)` while any key is waiting.
    pub fn check(&self, keys: &Keys) -> Result<(), Duration> {
        let now = self.clock.now_millis();
        let Ok(entries) = self.entries.lock() else { return Ok(()) };
        let wait = keys
            .keys
            .iter()
            .filter_map(|(key, _)| entries.get(key)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        wait.map_or(Ok(()), |millis| Err(Duration::from_millis(u64::try_from(millis).unwrap_or(0))))
    }

    /// Counts a failure under every key; returns the longest wait it started, if any.
    pub fn record_failure(&self, keys: &Keys) -> Option<Duration> {
        let now = self.clock.now_millis();
        let Ok(mut entries) = self.entries.lock() else { return None };
        let policy = self.policy;
        let forget_after = Self::millis(policy.max_delay.saturating_mul(FORGET_AFTER_CAPS));
        if entries.len() + keys.keys.len() > MAX_ENTRIES {
            entries.retain(|_, entry| now.saturating_sub(entry.last_failure) < forget_after);
        }
        if entries.len() + keys.keys.len() > MAX_ENTRIES {
            // Still full: drop a hundredth of the table at once, idle entries (no wait in
            // force) first, oldest first, so a flood costs one sort per thousand failures.
            let mut candidates: Vec<(bool, i64, String)> = entries
                .iter()
                .filter(|(key, _)| !keys.keys.iter().any(|(wanted, _)| wanted == *key))
                .map(|(key, entry)| {
                    (entry.blocked_until.is_some_and(|until| until > now), entry.last_failure, key.clone())
                })
                .collect();
            candidates.sort_unstable();
            let excess = entries.len() + keys.keys.len() - MAX_ENTRIES + MAX_ENTRIES / 100;
            for (_, _, key) in candidates.into_iter().take(excess) {
                entries.remove(&key);
            }
        }
        let mut longest = None;
        for (key, free) in &keys.keys {
            let entry =
                entries.entry(key.clone()).or_insert(Entry { failures: 0, last_failure: now, blocked_until: None });
            if now.saturating_sub(entry.last_failure) >= forget_after {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            if entry.failures > *free {
                let doublings = (entry.failures - free - 1).min(30);
                let wait = policy.base_delay.saturating_mul(1 << doublings).min(policy.max_delay);
                entry.blocked_until = Some(now.saturating_add(Self::millis(wait)));
                longest = longest.max(Some(wait));
            }
        }
        longest
    }

    /// A success clears what the attempt counted against the account and the device; the
    /// network's own count stays (an attacker there may still be guessing).
    pub fn record_success(&self, keys: &Keys) {
        if let Ok(mut entries) = self.entries.lock() {
            for (key, _) in &keys.keys {
                if !key.starts_with("net:") {
                    entries.remove(key);
                }
            }
        }
    }

    /// Clears every count of an account (its password was just proved), whichever network.
    pub fn clear_account(&self, account: &str) {
        let account = account.to_ascii_lowercase();
        let pair_prefix = format!("pair:{account}\u{0}");
        let account_key = format!("account:{account}");
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|key, _| *key != account_key && !key.starts_with(&pair_prefix));
        }
    }

    /// How many keys are remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|entries| entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(clock: &Clock) -> Throttle {
        Throttle::new(
            ThrottlePolicy { free_failures: 3, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(60) },
            clock.clone(),
        )
    }

    #[test]
    fn waits_start_after_the_allowance_double_and_stop_at_the_cap() {
        let clock = Clock::manual(1_000_000);
        let throttle = throttle(&clock);
        let keys = Keys::for_account("alice", "10.0.0.1", 3);
        for _ in 0..3 {
            assert_eq!(throttle.record_failure(&keys), None);
        }
        assert!(throttle.check(&keys).is_ok());
        let mut waits = Vec::new();
        for _ in 0..9 {
            let wait = throttle.record_failure(&keys).unwrap();
            assert_eq!(throttle.check(&keys), Err(wait));
            waits.push(wait.as_secs());
            clock.advance(wait);
            assert!(throttle.check(&keys).is_ok(), "free again once the wait is over");
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn other_accounts_and_other_networks_are_unaffected() {
        let clock = Clock::manual(1_000_000);
        let throttle = throttle(&clock);
        let attacked = Keys::for_account("alice", "10.0.0.1", 3);
        for _ in 0..5 {
            throttle.record_failure(&attacked);
        }
        assert!(throttle.check(&attacked).is_err());
        assert!(throttle.check(&Keys::for_account("bob", "10.0.0.1", 3)).is_ok(), "another account, same address");
        assert!(throttle.check(&Keys::for_account("alice", "10.0.0.2", 3)).is_ok(), "the owner, elsewhere");
    }

    #[test]
    fn an_ipv6_64_counts_as_one_network() {
        let clock = Clock::manual(1_000_000);
        let throttle = throttle(&clock);
        // Each guess from a fresh address in one /64 still counts against the same pair.
        for host in 1..=4 {
            throttle.record_failure(&Keys::for_account("alice", &format!("2001:db8:1:2::{host}"), 3));
        }
        assert!(throttle.check(&Keys::for_account("alice", "2001:db8:1:2::99", 3)).is_err());
        assert!(throttle.check(&Keys::for_account("alice", "2001:db8:1:3::1", 3)).is_ok(), "another /64");
    }

    #[test]
    fn an_account_under_attack_does_not_slow_a_device_that_signed_in_before() {
        let clock = Clock::manual(1_000_000);
        let throttle = throttle(&clock);
        for attacker in 0..40 {
            throttle.record_failure(&Keys::for_account("admin", &format!("10.0.1.{attacker}"), 3));
        }
        assert!(throttle.check(&Keys::for_account("admin", "10.9.9.9", 3)).is_err(), "the account waits");
        assert!(throttle.check(&Keys::for_device("the-owners-laptop", 3)).is_ok(), "the owner's device does not");
    }

    #[test]
    fn counts_are_forgotten_after_a_quiet_period_and_success_clears_the_account() {
        let clock = Clock::manual(1_000_000);
        let throttle = throttle(&clock);
        let keys = Keys::for_account("alice", "10.0.0.1", 3);
        for _ in 0..3 {
            throttle.record_failure(&keys);
        }
        clock.advance(Duration::from_secs(4 * 60 + 1));
        assert_eq!(throttle.record_failure(&keys), None, "old failures were forgotten");
        for attacker in 0..29 {
            throttle.record_failure(&Keys::for_account("alice", &format!("10.0.2.{attacker}"), 3));
        }
        throttle.clear_account("Alice");
        let fresh = Keys::for_account("alice", "10.0.3.1", 3);
        assert!(throttle.check(&fresh).is_ok());
        for _ in 0..3 {
            assert_eq!(throttle.record_failure(&fresh), None, "the account's allowance starts over");
        }
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_waits_in_force() {
        let clock = Clock::manual(1_000_000);
        let throttle = throttle(&clock);
        let victim = Keys::for_device("victim-device", 0);
        assert!(throttle.record_failure(&victim).is_some());
        for index in 0..MAX_ENTRIES + 500 {
            throttle.record_failure(&Keys::for_network(
                &format!("10.{}.{}.{}", index >> 16, (index >> 8) & 255, index & 255),
                3,
            ));
        }
        assert!(throttle.len() <= MAX_ENTRIES);
        assert!(throttle.check(&victim).is_err(), "a wait in force survived the flood");
    }
}
