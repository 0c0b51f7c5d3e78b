//! Password hashing with argon2id, behind a concurrency limit.
//!
//! Each hash costs `memory_kib` of RAM and real CPU time, so at most `max_concurrent` run at
//! once and up to `max_queued` more wait their turn; beyond that a hash is refused at once
//! ([`HashError::Busy`]), so a login flood neither exhausts the machine nor builds an endless
//! queue of waiting requests.
//! Hashing runs on the blocking pool. Verification of an unknown user still computes a hash,
//! so "no such user" and "wrong password" take the same time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("too many password checks are waiting; try again shortly")]
    Busy,
}

/// What checking a password against a stored hash found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match,
    /// Right password, but the stored hash uses old parameters: store this new hash.
    MatchRehashed(String),
}

#[derive(Clone)]
pub struct PasswordHasherPool {
    argon2: Arc<Argon2<'static>>,
    params: HashParams,
    permits: Arc<Semaphore>,
    /// Hashes waiting for a permit, and how many may.
    waiting: Arc<AtomicUsize>,
    max_queued: usize,
    /// A hash of a random password, verified against when the user does not exist.
    decoy: Arc<OnceLock<String>>,
}

impl PasswordHasherPool {
    pub fn new(params: HashParams, max_concurrent: usize, max_queued: usize) -> Result<Self, HashError> {
        let argon_params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
            .map_err(|err| HashError::Params(err.to_string()))?;
        Ok(Self {
            argon2: Arc::new(Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)),
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_queued,
            decoy: Arc::new(OnceLock::new()),
        })
    }

    async fn limited<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(HashError::Busy);
                }
                let permit = self.permits.acquire().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                permit.map_err(|err| HashError::Hash(err.to_string()))?
            }
        };
        let argon2 = Arc::clone(&self.argon2);
        tokio::task::spawn_blocking(move || work(&argon2)).await.map_err(|err| HashError::Hash(err.to_string()))
    }

    /// A PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let secret = password.expose().to_owned();
        self.limited(move |argon2| {
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            argon2
                .hash_password(secret.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|err| HashError::Hash(err.to_string()))
        })
        .await?
    }

    /// Checks `password` against `stored`; `stored = None` (no such user) always mismatches
    /// after the same amount of work.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> Result<Verdict, HashError> {
        let (phc, is_decoy) = match stored {
            Some(stored) => (stored, false),
            None => (self.decoy_hash().await?, true),
        };
        let secret = password.to_owned();
        let wanted = self.params;
        let (matches, outdated) = self
            .limited(move |argon2| match PasswordHash::new(&phc) {
                Ok(parsed) => {
                    let matches = argon2.verify_password(secret.as_bytes(), &parsed).is_ok() && !is_decoy;
                    (matches, !uses_params(&parsed, wanted))
                }
                Err(_) => (false, false),
            })
            .await?;
        match (matches, outdated) {
            (false, _) => Ok(Verdict::Mismatch),
            (true, false) => Ok(Verdict::Match),
            (true, true) => Ok(Verdict::MatchRehashed(self.hash(&Password::trusted(password.to_owned())).await?)),
        }
    }

    async fn decoy_hash(&self) -> Result<String, HashError> {
        if let Some(decoy) = self.decoy.get() {
            return Ok(decoy.clone());
        }
        let random = format!("{:032x}", rand::random::<u128>());
        let decoy = self.hash(&Password::trusted(random)).await?;
        Ok(self.decoy.get_or_init(|| decoy).clone())
    }
}

fn uses_params(hash: &PasswordHash<'_>, wanted: HashParams) -> bool {
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    hash.algorithm.as_str() == "argon2id"
        && params.m_cost() == wanted.memory_kib
        && params.t_cost() == wanted.iterations
        && params.p_cost() == wanted.parallelism
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashParams = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[tokio::test]
    async fn hash_verifies_and_wrong_password_does_not() {
        let pool = PasswordHasherPool::new(CHEAP, 2, 8).unwrap();
        let hash = pool.hash(&Password::trusted("correct horse battery".into())).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(pool.verify("correct horse battery", Some(hash.clone())).await.unwrap(), Verdict::Match);
        assert_eq!(pool.verify("wrong horse battery", Some(hash)).await.unwrap(), Verdict::Mismatch);
        assert_eq!(pool.verify("anything", None).await.unwrap(), Verdict::Mismatch);
        assert_eq!(pool.verify("anything", Some("not a phc string".into())).await.unwrap(), Verdict::Mismatch);
    }

    #[tokio::test]
    async fn hash_with_old_parameters_is_upgraded_on_a_match() {
        let old = PasswordHasherPool::new(CHEAP, 1, 8).unwrap();
        let hash = old.hash(&Password::trusted("correct horse battery".into())).await.unwrap();
        let stronger = HashParams { memory_kib: 128, iterations: 2, parallelism: 1 };
        let new = PasswordHasherPool::new(stronger, 1, 8).unwrap();
        let Verdict::MatchRehashed(rehashed) = new.verify("correct horse battery", Some(hash)).await.unwrap() else {
            panic!("expected a rehash");
        };
        assert!(rehashed.starts_with("$argon2id$v=19$m=128,t=2,p=1$"));
        assert_eq!(new.verify("correct horse battery", Some(rehashed)).await.unwrap(), Verdict::Match);
    }

    #[tokio::test]
    async fn hashes_wait_for_a_free_slot_beyond_the_limit() {
        let pool = PasswordHasherPool::new(CHEAP, 1, 8).unwrap();
        // Occupy the only slot, as a long-running hash would.
        let held = pool.permits.clone().acquire_owned().await.unwrap();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.hash(&Password::trusted("correct horse battery".into())).await }
        });
        let early = tokio::time::timeout(std::time::Duration::from_millis(300), async {
            while !waiting.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(early.is_err(), "a hash ran while the limit was reached");
        drop(held);
        assert!(waiting.await.unwrap().unwrap().starts_with("$argon2id$"));
    }

    #[tokio::test]
    async fn hashes_beyond_the_queue_are_refused_at_once() {
        let pool = PasswordHasherPool::new(CHEAP, 1, 2).unwrap();
        let held = pool.permits.clone().acquire_owned().await.unwrap();
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.hash(&Password::trusted("correct horse battery".into())).await })
            })
            .collect();
        while pool.waiting.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        let refused = pool.hash(&Password::trusted("correct horse battery".into())).await;
        assert!(matches!(refused, Err(HashError::Busy)), "{refused:?}");
        drop(held);
        for waiting in queued {
            assert!(waiting.await.unwrap().is_ok(), "the queued hashes still ran");
        }
        assert_eq!(pool.waiting.load(Ordering::Acquire), 0);
    }
}
