//! `FileName` and `FolderPath`: what a user may call files and folders.
//!
//! A name is UTF-8, normalised to NFC, 1 to 255 bytes, without `/`, `\`, NUL or any control
//! or bidirectional-override character, and is not `.` or `..`. So that two names can never
//! look alike, and every name works on every client's file system, a new name also has no
//! invisible characters (zero-width space, word joiner, byte order mark, line and paragraph
//! separators), no leading or trailing white space, no trailing dot, is not a Windows device
//! name (`CON`, `NUL`, `COM1`, `LPT1`... with or without an extension), and has no U+FFFD (the
//! mark of bytes that were not valid UTF-8). A folder is a `/`-separated path of such names
//! (the root is empty). Names stored before these rules stay readable: lookups use
//! [`FolderPath::parse_existing`], which applies only the structural rules. These names only
//! ever live in the database: disk paths come from content hashes, never from names.

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
    #[error(
        "a name must not contain invisible characters (zero-width space, word joiner, byte order mark, line or paragraph separators)"
    )]
    Invisible,
    #[error("a name must not start or end with white space, nor end with a dot")]
    Edges,
    #[error("`{0}` is a reserved device name on Windows; choose another name")]
    Reserved(String),
    #[error("the name is not valid UTF-8 (or contains U+FFFD, the mark of bytes that were not)")]
    NotUtf8,
}

/// Characters that reorder or hide text (RTL override tricks like `gpj.exe`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters that show as nothing, so two different names could look the same.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}' | '\u{2028}' | '\u{2029}')
}

/// Device names Windows reserves in every folder, whatever the extension.
fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default().trim_end().to_ascii_uppercase();
    let numbered = |prefix: &str| {
        stem.strip_prefix(prefix).is_some_and(|rest| {
            matches!(rest, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³")
        })
    };
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$") || numbered("COM") || numbered("LPT")
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(String);

impl FileName {
    /// A name for something being created or renamed: all the rules.
    pub fn parse(candidate: &str) -> Result<Self, NameError> {
        let name = Self::parse_existing(candidate)?;
        let text = name.as_str();
        if text.contains('\u{FFFD}') {
            return Err(NameError::NotUtf8);
        }
        if text.chars().any(is_invisible) {
            return Err(NameError::Invisible);
        }
        if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) || text.ends_with('.') {
            return Err(NameError::Edges);
        }
        if is_windows_device(text) {
            return Err(NameError::Reserved(text.to_owned()));
        }
        Ok(name)
    }

    /// A name to look up: only the structural rules, so names stored before the others
    /// existed stay reachable.
    pub fn parse_existing(candidate: &str) -> Result<Self, NameError> {
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
    /// A folder something is being created or moved into: every segment follows all the rules.
    pub fn parse(candidate: &str) -> Result<Self, NameError> {
        Self::parse_with(candidate, FileName::parse)
    }

    /// A folder to look in: the structural rules only (see [`FileName::parse_existing`]).
    pub fn parse_existing(candidate: &str) -> Result<Self, NameError> {
        Self::parse_with(candidate, FileName::parse_existing)
    }

    fn parse_with(candidate: &str, segment: fn(&str) -> Result<FileName, NameError>) -> Result<Self, NameError> {
        let trimmed = candidate.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        let parts = trimmed.split('/').map(segment).collect::<Result<Vec<_>, _>>()?;
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
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}.jpg";
        let persian = "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}.txt";
        for good in
            ["%2e%2e", "CONFIG.txt", "console.log", "in spaced", "résumé.pdf", "名前.txt", ".hidden", family, persian]
        {
            assert_eq!(FileName::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn names_that_look_alike_or_break_other_systems_are_refused() {
        for (bad, error) in [
            ("a\u{200B}b.txt", NameError::Invisible),
            ("\u{FEFF}report.txt", NameError::Invisible),
            ("one\u{2028}two", NameError::Invisible),
            ("   ", NameError::Edges),
            (" leading.txt", NameError::Edges),
            ("trailing.txt ", NameError::Edges),
            ("report.", NameError::Edges),
            ("...", NameError::Edges),
            ("bad\u{FFFD}utf8", NameError::NotUtf8),
        ] {
            assert_eq!(FileName::parse(bad), Err(error), "{bad:?}");
        }
        for device in ["CON", "con.txt", "Nul.tar.gz", "COM1", "lpt9.log", "AUX", "PRN.pdf", "COM\u{b9}"] {
            assert!(matches!(FileName::parse(device), Err(NameError::Reserved(_))), "{device:?}");
        }
        assert_eq!(FolderPath::parse("docs/CON/x").unwrap_err(), NameError::Reserved("CON".into()));
        // Stored before these rules: still reachable.
        assert_eq!(FolderPath::parse_existing("docs/CON").unwrap().as_str(), "docs/CON");
        assert_eq!(FileName::parse_existing(" spaced ").unwrap().as_str(), " spaced ");
        assert!(FolderPath::parse_existing("a/../b").is_err(), "structure still applies");
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
