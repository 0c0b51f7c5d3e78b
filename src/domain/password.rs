//! `Password`: a candidate new password that meets the rules, and never prints itself.
//!
//! Rules (OWASP ASVS 2.1): 10 to 1024 characters, compared in full (no truncation), any
//! characters allowed, not one character repeated, and not one of the most common passwords. The common list ships in the
//! binary: the entries of 10 or more characters from Django's common-passwords list
//! (BSD-3-Clause), compared case-insensitively.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

pub const MIN_CHARS: usize = 10;
pub const MAX_CHARS: usize = 1024;

const COMMON: &str = include_str!("common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().map(str::trim).filter(|line| !line.is_empty()).collect())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_CHARS} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_CHARS} characters long")]
    TooLong,
    #[error("this password is one of the most commonly used; choose another")]
    Common,
    #[error("the password repeats one character; choose one with more variety")]
    OneCharacter,
}

#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(candidate: String) -> Result<Self, PasswordError> {
        let chars = candidate.chars().count();
        if chars < MIN_CHARS {
            return Err(PasswordError::TooShort);
        }
        if chars > MAX_CHARS {
            return Err(PasswordError::TooLong);
        }
        if common_passwords().contains(candidate.to_lowercase().as_str()) {
            return Err(PasswordError::Common);
        }
        let mut chars = candidate.chars();
        if let Some(first) = chars.next()
            && chars.all(|other| other == first)
        {
            return Err(PasswordError::OneCharacter);
        }
        Ok(Self(candidate))
    }

    /// For values that are not new passwords (random ones, ones being re-hashed).
    pub fn trusted(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters_and_bounded_both_ways() {
        assert_eq!(Password::parse("short pw".into()).unwrap_err(), PasswordError::TooShort);
        assert!(Password::parse("ééééééééé€".into()).is_ok(), "10 characters, more bytes");
        assert!(Password::parse(format!("{}y", "x".repeat(MAX_CHARS - 1))).is_ok());
        assert_eq!(Password::parse(format!("{}y", "x".repeat(MAX_CHARS))).unwrap_err(), PasswordError::TooLong);
    }

    #[test]
    fn common_passwords_are_rejected_in_any_case() {
        assert!(common_passwords().len() > 1000);
        assert_eq!(Password::parse("1234567890".into()).unwrap_err(), PasswordError::Common);
        assert_eq!(Password::parse("QwertyUiop".into()).unwrap_err(), PasswordError::Common);
        assert!(Password::parse("plum-quartz-ladder-71".into()).is_ok());
    }

    #[test]
    fn one_repeated_character_is_rejected() {
        assert_eq!(Password::parse("x".repeat(40)).unwrap_err(), PasswordError::OneCharacter);
        assert_eq!(Password::parse("é".repeat(12)).unwrap_err(), PasswordError::OneCharacter);
        assert!(Password::parse(format!("{}y", "x".repeat(40))).is_ok());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let password = Password::parse("plum-quartz-ladder-71".into()).unwrap();
        assert!(!format!("{password:?}").contains("plum"));
    }
}
