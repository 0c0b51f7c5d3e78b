//! `Username`: 1 to 64 ASCII letters, digits, `.`, `_` or `-`, starting with a letter or
//! digit. Kept as typed for display; unique case-insensitively through [`Username::key`].
//! ASCII only, so no two accounts can look alike through Unicode confusables.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a username is 1 to 64 of the letters a-z and A-Z, digits, '.', '_' or '-', starting with a letter or digit")]
pub struct UsernameError;

impl Username {
    pub fn parse(candidate: &str) -> Result<Self, UsernameError> {
        let valid = (1..=64).contains(&candidate.len())
            && candidate.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
            && candidate.as_bytes()[0].is_ascii_alphanumeric();
        if valid { Ok(Self(candidate.to_owned())) } else { Err(UsernameError) }
    }

    /// The case-insensitive identity: two usernames with the same key are the same account.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules_and_compare_case_insensitively() {
        for good in ["admin", "Alice.Smith", "bob_2", "x", "0day"] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-lead", ".hidden", "has space", "ünïcode", "a/b", &"a".repeat(65), "nul\0"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Username::parse("Alice").unwrap().key(), Username::parse("ALICE").unwrap().key());
    }
}
