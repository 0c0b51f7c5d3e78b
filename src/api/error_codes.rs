//! Every stable error code the server answers with, by status: the one list that the error
//! table in `docs/api.md` is checked against, and that the code is checked against (a test
//! reads the sources for codes this list lacks).

pub const ERROR_CODES: &[(u16, &[&str])] = &[
    (
        400,
        &[
            "bad_request",
            "invalid",
            "invalid_username",
            "weak_password",
            "wrong_password",
            "password_unchanged",
            "not_a_session",
            "invalid_name",
            "invalid_description",
            "digest_mismatch",
            "unsupported_digest",
            "form_too_large",
            "upload_incomplete",
            "invalid_query",
            "invalid_token",
            "invalid_metadata",
            "deferred_length_unsupported",
            "unsupported_checksum",
        ],
    ),
    (
        401,
        &[
            "unauthorized",
            "invalid_credentials",
            "invalid_token",
            "session_ended",
            "password_required",
            "wrong_password",
        ],
    ),
    (403, &["forbidden", "cors_origin_not_allowed", "cross_site_request", "password_login_disabled"]),
    (404, &["not_found"]),
    (405, &["method_not_allowed"]),
    (406, &["not_acceptable"]),
    (408, &["request_timeout"]),
    (
        409,
        &[
            "conflict",
            "username_taken",
            "last_admin",
            "name_taken",
            "folder_exists",
            "folder_not_empty",
            "mail_off",
            "offset_mismatch",
            "upload_link_full",
        ],
    ),
    (410, &["gone", "share_expired", "share_exhausted", "upload_link_expired"]),
    (411, &["length_required"]),
    (412, &["precondition_failed", "unsupported_version"]),
    (413, &["payload_too_large"]),
    (414, &["uri_too_long"]),
    (415, &["unsupported_media_type"]),
    (416, &["range_not_satisfiable"]),
    (422, &["unprocessable"]),
    (423, &["upload_locked"]),
    (429, &["too_many_requests", "rate_limited", "too_many_recipients"]),
    (431, &["headers_too_large"]),
    (460, &["checksum_mismatch", "digest_mismatch"]),
    (500, &["internal_error"]),
    (503, &["unavailable", "not_ready", "server_busy", "search_unavailable", "provider_unavailable"]),
    (507, &["insufficient_storage", "quota_exceeded"]),
];

/// Whether `code` is in the list: error bodies assert it in debug builds (the test suite's),
/// so a code added without listing it fails the tests that reach it.
pub fn is_listed(code: &str) -> bool {
    ERROR_CODES.iter().any(|(_, codes)| codes.contains(&code))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::ERROR_CODES;

    fn listed() -> BTreeSet<(u16, String)> {
        ERROR_CODES
            .iter()
            .flat_map(|(status, codes)| codes.iter().map(move |code| (*status, (*code).to_owned())))
            .collect()
    }

    /// The table's rows: `| 400 | `a`, `b` |`.
    fn documented() -> BTreeSet<(u16, String)> {
        let api = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md")).unwrap();
        let mut found = BTreeSet::new();
        for line in api.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(status) = cells.get(1).and_then(|cell| cell.parse::<u16>().ok()) else { continue };
            // The codes are the `quoted` parts; the rest of the cell is prose.
            for code in cells[2].split('`').skip(1).step_by(2) {
                found.insert((status, code.to_owned()));
            }
        }
        found
    }

    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Calls span lines: one line of code, indentation gone, comments dropped.
                let code: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.starts_with("//")).collect();
                out.push((path.display().to_string(), code.join(" ")));
            }
        }
    }

    /// The string literal at the start of `text`, if it looks like an error code.
    fn code_at(text: &str) -> Option<&str> {
        let literal = text.trim_start().strip_prefix('"')?;
        let code = &literal[..literal.find('"')?];
        let looks_like_code = code.len() > 2
            && code.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_')
            && !code.starts_with('_');
        looks_like_code.then_some(code)
    }

    /// Codes in the sources: the first argument of the helpers that build error bodies, the
    /// code next to a status, and `error: "..."` fields.
    fn produced() -> BTreeSet<String> {
        let mut files = Vec::new();
        sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let mut found = BTreeSet::new();
        for (path, code) in &files {
            for marker in ["bad_request(", " body(", "(body(", "error(", "error_body(", "error: "] {
                for (at, _) in code.match_indices(marker) {
                    if marker == "error(" && code[..at].ends_with("error_body") {
                        continue;
                    }
                    found.extend(code_at(&code[at + marker.len()..]).map(str::to_owned));
                }
            }
            for (at, _) in code.match_indices("StatusCode::") {
                let rest =
                    code[at + "StatusCode::".len()..].trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
                if let Some(rest) = rest.strip_prefix(',') {
                    found.extend(code_at(rest).map(str::to_owned));
                }
            }
            // `(431, "Request Header Fields Too Large", "headers_too_large", ...)`
            for (at, _) in code.match_indices('(') {
                let rest = &code[at + 1..];
                if rest.len() > 5
                    && rest.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                    && rest[3..].starts_with(", \"")
                {
                    let after_reason = rest[5..].find('"').map(|end| &rest[5 + end + 1..]);
                    if let Some(after) = after_reason.and_then(|after| after.strip_prefix(',')) {
                        found.extend(code_at(after).map(str::to_owned));
                    }
                }
            }
            if path.ends_with("api/error.rs") {
                for (at, _) in code.match_indices("=> ") {
                    found.extend(code_at(&code[at + 3..]).map(str::to_owned));
                }
            }
        }
        found
    }

    #[test]
    fn the_api_guide_table_is_this_list() {
        let (listed, documented) = (listed(), documented());
        assert_eq!(
            documented.difference(&listed).collect::<Vec<_>>(),
            Vec::<&(u16, String)>::new(),
            "in docs/api.md but not in ERROR_CODES"
        );
        assert_eq!(
            listed.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(u16, String)>::new(),
            "in ERROR_CODES but not in the table of docs/api.md"
        );
    }

    #[test]
    fn every_code_in_the_sources_is_listed() {
        let names: BTreeSet<String> = listed().into_iter().map(|(_, code)| code).collect();
        let produced = produced();
        assert!(produced.len() > 30, "the scan finds the codes: {produced:?}");
        let unlisted: Vec<&String> = produced.difference(&names).collect();
        assert!(unlisted.is_empty(), "codes answered but not in ERROR_CODES: {unlisted:?}");
    }
}
