//! `Range` requests (RFC 9110 14.2) for downloads, answered with at most one range.
//!
//! Several ranges that overlap or touch are merged into one; several that do not are answered
//! with the whole file (allowed: a server may ignore Range). Either way the response is never
//! larger than the file, so a request cannot amplify it. Malformed headers are ignored too.

/// What to send for a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with everything.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Most ranges looked at in one header; more is treated as malformed (the whole file).
const MAX_RANGES: usize = 16;

pub fn answer(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(specs) = header.and_then(|header| header.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    let mut ranges = Vec::new();
    for spec in specs.split(',').map(str::trim) {
        if ranges.len() == MAX_RANGES {
            return RangeAnswer::Full;
        }
        let Some((first, last)) = spec.split_once('-') else { return RangeAnswer::Full };
        let parse = |text: &str| text.parse::<u64>().ok();
        let range = match (first, last) {
            ("", suffix) => match parse(suffix) {
                Some(0) => None,
                Some(length) if size > 0 => Some((size.saturating_sub(length), size - 1)),
                Some(_) => None,
                None => return RangeAnswer::Full,
            },
            (start, "") => match parse(start) {
                Some(start) if start < size => Some((start, size - 1)),
                Some(_) => None,
                None => return RangeAnswer::Full,
            },
            (start, end) => match (parse(start), parse(end)) {
                (Some(start), Some(end)) if start > end => return RangeAnswer::Full,
                (Some(start), Some(end)) if start < size => Some((start, end.min(size - 1))),
                (Some(_), Some(_)) => None,
                _ => return RangeAnswer::Full,
            },
        };
        ranges.extend(range);
    }
    if ranges.is_empty() {
        return RangeAnswer::Unsatisfiable;
    }
    ranges.sort_unstable();
    let (start, mut end) = ranges[0];
    for &(next_start, next_end) in &ranges[1..] {
        if next_start > end.saturating_add(1) {
            return RangeAnswer::Full;
        }
        end = end.max(next_end);
    }
    // Several ranges that together cover the whole file are just the file.
    if ranges.len() > 1 && start == 0 && end == size - 1 {
        return RangeAnswer::Full;
    }
    RangeAnswer::Partial { start, end }
}

/// Whether an `If-None-Match` header matches the strong ETag `etag` (quoted).
pub fn none_match(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|header| {
        header.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
    })
}

/// Whether an `If-Range` header lets a Range apply: it must name the current strong ETag or
/// the exact Last-Modified date. Absent means yes.
pub fn if_range_holds(header: Option<&str>, etag: &str, last_modified: &str) -> bool {
    match header.map(str::trim) {
        None => true,
        Some(value) if value.starts_with('"') => value == etag,
        Some(value) => value == last_modified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 1000;

    fn partial(start: u64, end: u64) -> RangeAnswer {
        RangeAnswer::Partial { start, end }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(answer(Some("bytes=0-99"), SIZE), partial(0, 99));
        assert_eq!(answer(Some("bytes=500-"), SIZE), partial(500, 999));
        assert_eq!(answer(Some("bytes=-100"), SIZE), partial(900, 999));
        assert_eq!(answer(Some("bytes=-5000"), SIZE), partial(0, 999));
        assert_eq!(answer(Some("bytes=990-5000"), SIZE), partial(990, 999));
        assert_eq!(answer(Some("bytes=999-999"), SIZE), partial(999, 999));
        assert_eq!(answer(None, SIZE), RangeAnswer::Full);
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(answer(Some("bytes=1000-"), SIZE), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=5000-6000"), SIZE), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=-0"), SIZE), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=0-"), 0), RangeAnswer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=-10"), 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn malformed_headers_get_the_whole_file() {
        for header in ["bytes=abc", "bytes=5-1", "items=0-1", "bytes=", "bytes=1-2-3", "bytes=--1"] {
            assert_eq!(answer(Some(header), SIZE), RangeAnswer::Full, "{header}");
        }
    }

    #[test]
    fn many_ranges_never_amplify() {
        assert_eq!(answer(Some("bytes=0-10,5-20,21-30"), SIZE), partial(0, 30), "touching ranges merge");
        assert_eq!(answer(Some("bytes=0-10,100-200"), SIZE), RangeAnswer::Full, "disjoint ranges get the file once");
        let repeated = vec!["0-999"; 200].join(",");
        assert_eq!(answer(Some(&format!("bytes={repeated}")), SIZE), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=0-999,0-999"), SIZE), RangeAnswer::Full);
    }

    #[test]
    fn conditional_headers() {
        let etag = "\"abc\"";
        assert!(none_match(Some("\"abc\""), etag));
        assert!(none_match(Some("\"x\", W/\"abc\""), etag));
        assert!(none_match(Some("*"), etag));
        assert!(!none_match(Some("\"other\""), etag));
        assert!(!none_match(None, etag));
        let date = "Sun, 22 Nov 2026 21:00:00 GMT";
        assert!(if_range_holds(None, etag, date));
        assert!(if_range_holds(Some("\"abc\""), etag, date));
        assert!(!if_range_holds(Some("\"old\""), etag, date));
        assert!(if_range_holds(Some(date), etag, date));
        assert!(!if_range_holds(Some("Mon, 01 Jan 2024 00:00:00 GMT"), etag, date));
    }
}
