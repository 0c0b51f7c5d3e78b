//! `FileName` and `FolderPath`: what a user may call files and folders.
//!
//! A name is UTF-8, normalised to NFC, 1 to 255 bytes, without `/`, `\`, NUL or any control
//! or bidirectional-override character, and is not `.` or `..`. A folder is a `/`-separated
//! path of such names (the root is empty). These names only ever live in the database: disk
//! paths come from content hashes, never from names.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_FOLDER_DEPTH: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name must not be empty")]
    Empty,
    #[error("a name must be at most {MAX_NAME_BYTES} bytes")]
    TooLong,
    #[error("a name must not be `.` or `..`")]
    Dots,
    #[error("a name must not contain `/`, `\\`, control characters or direction overrides")]
    Forbidden,
    #[error("folders may be at most {MAX_FOLDER_DEPTH} levels deep")]
    TooDeep,
}

/// Characters that reorder or hide text (RTL override tricks like `gpj.exe`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(String);

impl FileName {
    pub fn parse(candidate: &str) -> Result<Self, NameError> {
        let name: String = candidate.nfc().collect();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong);
        }
        if name == "." || name == ".." {
            return Err(NameError::Dots);
        }
        if name.chars().any(|c| c == '/' || c == '\\' || c.is_control() || is_bidi_control(c)) {
            return Err(NameError::Forbidden);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `report.pdf` -> `report (2).pdf`, for `on_conflict=rename`.
    pub fn numbered(&self, number: u32) -> Option<Self> {
        let (stem, extension) = match self.0.rfind('.') {
            Some(dot) if dot > 0 => (&self.0[..dot], &self.0[dot..]),
            _ => (self.0.as_str(), ""),
        };
        Self::parse(&format!("{stem} ({number}){extension}")).ok()
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A folder path like `projects/2026`; stored without leading or trailing `/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderPath(String);

impl FolderPath {
    pub fn parse(candidate: &str) -> Result<Self, NameError> {
        let trimmed = candidate.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        let parts = trimmed.split('/').map(FileName::parse).collect::<Result<Vec<_>, _>>()?;
        if parts.len() > MAX_FOLDER_DEPTH {
            return Err(NameError::TooDeep);
        }
        Ok(Self(parts.iter().map(FileName::as_str).collect::<Vec<_>>().join("/")))
    }

    pub fn root() -> Self {
        Self(String::new())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in
            ["", ".", "..", "../../x", "a/b", "..\\x", "nul\0byte", "line\nbreak", "tab\there", "evil\u{202E}fdp.exe"]
        {
            assert!(FileName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(FileName::parse(&"a".repeat(256)).unwrap_err(), NameError::TooLong);
        assert!(FileName::parse(&"a".repeat(255)).is_ok());
        assert_eq!(FileName::parse(&"é".repeat(128)).unwrap_err(), NameError::TooLong, "255 is bytes, not characters");
    }

    #[test]
    fn odd_but_harmless_names_are_kept_as_given() {
        for good in ["%2e%2e", "CON", "...", " spaced ", "résumé.pdf", "名前.txt", ".hidden"] {
            assert_eq!(FileName::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn names_are_normalised_to_nfc() {
        let decomposed = "re\u{0301}sume\u{0301}.pdf";
        assert_eq!(FileName::parse(decomposed).unwrap().as_str(), "r\u{e9}sum\u{e9}.pdf");
    }

    #[test]
    fn folders_are_paths_of_valid_names() {
        assert_eq!(FolderPath::parse("/projects/2026/").unwrap().as_str(), "projects/2026");
        assert!(FolderPath::parse("").unwrap().is_root());
        assert!(FolderPath::parse("a/../b").is_err());
        assert!(FolderPath::parse("a//b").is_err());
        assert_eq!(FolderPath::parse(&vec!["d"; 33].join("/")).unwrap_err(), NameError::TooDeep);
    }

    #[test]
    fn conflicting_names_get_numbered_before_the_extension() {
        let name = FileName::parse("report.pdf").unwrap();
        assert_eq!(name.numbered(2).unwrap().as_str(), "report (2).pdf");
        assert_eq!(FileName::parse(".bashrc").unwrap().numbered(3).unwrap().as_str(), ".bashrc (3)");
    }
}
