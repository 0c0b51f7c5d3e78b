//! `Description`: the free text a user attaches to a file.
//!
//! One type with one limit for every way a description arrives (raw upload, multipart form,
//! PATCH): at most [`MAX_DESCRIPTION_CHARS`] characters, no control characters but line
//! breaks and tabs. Its bytes count against the owner's quota like the file's own.

use std::fmt;

pub const MAX_DESCRIPTION_CHARS: usize = 4096;
/// The most bytes a valid description can take (four per character in UTF-8).
pub const MAX_DESCRIPTION_BYTES: usize = MAX_DESCRIPTION_CHARS * 4;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    #[error("a description is at most {MAX_DESCRIPTION_CHARS} characters")]
    TooLong,
    #[error("a description must not contain control characters other than line breaks and tabs")]
    Control,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(candidate: &str) -> Result<Self, DescriptionError> {
        if candidate.len() > MAX_DESCRIPTION_BYTES || candidate.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(DescriptionError::TooLong);
        }
        if candidate.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err(DescriptionError::Control);
        }
        Ok(Self(candidate.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What it costs against a quota.
    pub fn stored_bytes(&self) -> i64 {
        i64::try_from(self.0.len()).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_bounded_in_characters_and_free_of_control_characters() {
        assert!(Description::parse(&"é".repeat(MAX_DESCRIPTION_CHARS)).is_ok());
        assert_eq!(Description::parse(&"a".repeat(MAX_DESCRIPTION_CHARS + 1)), Err(DescriptionError::TooLong));
        assert_eq!(Description::parse(&"x".repeat(200 << 20)), Err(DescriptionError::TooLong));
        assert!(Description::parse("two lines\nand\ta tab").is_ok());
        assert_eq!(Description::parse("bell\u{7}"), Err(DescriptionError::Control));
        assert_eq!(Description::parse("é").unwrap().stored_bytes(), 2);
    }
}
