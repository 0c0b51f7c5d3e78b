//! What a multi-file share holds right now, under which names, and what is left of its limit.
//!
//! A list share holds the files named at creation that its owner still owns; a folder share
//! whatever the owner has at or below the folder when a visitor asks (recursively). Deleted
//! files simply drop out. Each file gets one safe relative path, the same on the page, in the
//! JSON listing and inside the ZIP: segments cleaned of what could escape or break an
//! extraction (`..`, absolute paths, backslashes, control characters, characters Windows
//! refuses), and names that would collide (also ignoring case, and a file where another entry
//! needs a folder) numbered like `report (2).pdf`.
//!
//! The download limit of a multi-file share holds per file: each file may be fetched at most
//! `max_downloads` times, alone or inside a ZIP, and a ZIP takes one download of every file in
//! it or is refused. So a limit of N lets at most N copies of any file leave, whichever way.

use std::collections::{HashMap, HashSet};

use super::public::Opened;
use super::{ShareError, Shares};
use crate::db::files::FileRow;
use crate::db::shares::{self as table, Contents};
use crate::domain::FileId;

/// Files a list share may name.
pub const MAX_LISTED_FILES: usize = 1000;

/// A file of a multi-file share as visitors see it.
#[derive(Clone, Debug)]
pub struct Member {
    pub file: FileRow,
    /// Relative path (with `/`), safe to extract anywhere.
    pub path: String,
    /// Downloads this file has left under the share's limit; `None` without a limit.
    pub downloads_left: Option<i64>,
}

impl Shares {
    /// The files `opened` holds now, by path. A single-file share holds its file.
    pub async fn members(&self, opened: &Opened) -> Result<Vec<Member>, ShareError> {
        let share = opened.entry.share.clone();
        let (rows, taken) = match &opened.file {
            Some(file) => (vec![file.clone()], [(file.id.0.clone(), share.downloads)].into_iter().collect()),
            None => {
                let id = share.id.clone();
                self.inner
                    .db
                    .read(move |conn| Ok((table::members(conn, &id)?, table::file_downloads(conn, &id)?)))
                    .await?
            }
        };
        let relative = |file: &FileRow| match &share.contents {
            Contents::Folder(folder) if file.folder.len() > folder.len() => file.folder[folder.len() + 1..].to_owned(),
            _ => String::new(),
        };
        let raw: Vec<(String, String)> = rows.iter().map(|file| (relative(file), file.name.clone())).collect();
        let paths = safe_paths(&raw);
        Ok(rows
            .into_iter()
            .zip(paths)
            .map(|(file, path)| {
                let downloads_left =
                    share.max_downloads.map(|max| (max - taken.get(&file.id.0).copied().unwrap_or(0)).max(0));
                Member { file, path, downloads_left }
            })
            .collect())
    }

    /// The file `id` if multi-file share `opened` holds it now; anything else is `NotFound`.
    pub(super) async fn member(&self, opened: &Opened, id: &str) -> Result<FileRow, ShareError> {
        let (share, file) = (opened.id().to_owned(), FileId(id.to_owned()));
        let found = self
            .inner
            .db
            .read(move |conn| {
                if !table::holds(conn, &share, &file)? {
                    return Ok(None);
                }
                crate::db::files::by_id(conn, &file)
            })
            .await?;
        found.ok_or(ShareError::NotFound)
    }
}

/// One path segment made harmless on every file system an archive may be extracted on.
fn safe_segment(segment: &str) -> String {
    let cleaned: String = segment
        .chars()
        .map(|c| match c {
            '\\' | '/' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c.is_whitespace() || c == '.');
    if trimmed.is_empty() { "_".to_owned() } else { trimmed.to_owned() }
}

/// `name` numbered: `report.pdf` -> `report (2).pdf`.
fn numbered(name: &str, number: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({number}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({number})"),
    }
}

/// Safe, distinct relative paths for (relative folder, name) pairs, in the same order.
pub fn safe_paths(raw: &[(String, String)]) -> Vec<String> {
    let cleaned: Vec<(String, String)> = raw
        .iter()
        .map(|(folder, name)| {
            let folder: Vec<String> =
                folder.split(['/', '\\']).filter(|segment| !segment.is_empty()).map(safe_segment).collect();
            (folder.join("/"), safe_segment(name))
        })
        .collect();
    // Every folder some entry needs, so that no file takes a folder's name.
    let mut taken: HashSet<String> = HashSet::new();
    for (folder, _) in &cleaned {
        let mut prefix = String::new();
        for segment in folder.split('/').filter(|segment| !segment.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            taken.insert(prefix.to_lowercase());
        }
    }
    // The next number to try for each path that collided: counting from 2 every time would
    // make thousands of names that clean to the same path (`a?`, `a*`, `A?`...) cost
    // quadratic time on every page view and ZIP.
    let mut next_number: HashMap<String, u32> = HashMap::new();
    cleaned
        .into_iter()
        .map(|(folder, name)| {
            let join = |name: &str| if folder.is_empty() { name.to_owned() } else { format!("{folder}/{name}") };
            let mut path = join(&name);
            let wanted = path.to_lowercase();
            if taken.contains(&wanted) {
                let mut number = next_number.get(&wanted).copied().unwrap_or(2);
                loop {
                    path = join(&numbered(&name, number));
                    number += 1;
                    if !taken.contains(&path.to_lowercase()) {
                        break;
                    }
                }
                next_number.insert(wanted, number);
            }
            taken.insert(path.to_lowercase());
            path
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(raw: &[(&str, &str)]) -> Vec<String> {
        safe_paths(&raw.iter().map(|(folder, name)| ((*folder).to_owned(), (*name).to_owned())).collect::<Vec<_>>())
    }

    #[test]
    fn hostile_names_cannot_escape_or_break_an_extraction() {
        assert_eq!(
            paths(&[("", ".."), ("../..", "passwd"), ("", "/etc/shadow"), ("a\\b", "c\\d"), ("", "tab\there\u{7}")]),
            ["_ (2)", "_/_/passwd", "_etc_shadow", "a/b/c_d", "tab_here_"]
        );
        assert_eq!(paths(&[("", "what?.txt"), ("", " spaced. ")]), ["what_.txt", "spaced"]);
    }

    #[test]
    fn colliding_names_are_numbered_ignoring_case() {
        assert_eq!(
            paths(&[("", "Report.pdf"), ("", "report.pdf"), ("", "report.pdf"), ("", "notes")]),
            ["Report.pdf", "report (2).pdf", "report (3).pdf", "notes"]
        );
    }

    /// Names an uploader can choose so that they all clean to one path: numbering them must not
    /// cost quadratic time (20,000 of them took minutes when each counted up from 2).
    #[test]
    fn many_names_cleaned_to_one_path_are_numbered_in_linear_time() {
        let specials = ['?', '*', ':', '<', '>', '|', '"'];
        let raw: Vec<(String, String)> = (0..20_000usize)
            .map(|i| {
                let name: String = (0..6).map(|digit| specials[(i / 7usize.pow(digit)) % 7]).collect();
                (String::new(), format!("x{name}"))
            })
            .collect();
        let started = std::time::Instant::now();
        let paths = safe_paths(&raw);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
        let distinct: HashSet<String> = paths.iter().map(|path| path.to_lowercase()).collect();
        assert_eq!(distinct.len(), raw.len());
        assert_eq!(paths[..3], ["x______", "x______ (2)", "x______ (3)"]);
    }

    #[test]
    fn a_file_never_takes_the_name_of_a_folder() {
        assert_eq!(paths(&[("", "photos"), ("photos", "a.jpg")]), ["photos (2)", "photos/a.jpg"]);
    }
}
