//! Highlights as plain segments (`{text, hit}`), never markup: clients render them however
//! they like, with no HTML to escape and no byte or UTF-16 offsets to get wrong.
//!
//! A word of the text is a hit when it analyzes to one of the query's words; in names also
//! when it starts with the last query word or is within the typos the query forgave. Only
//! ever applied to a verified result's own name, description and text.

use tantivy::tokenizer::{TextAnalyzer, TokenStream};

use super::query::{prefix_allowed, typo_distance};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Segment {
    pub text: String,
    pub hit: bool,
}

/// Characters of context shown from a file's text.
const FRAGMENT_CHARS: usize = 200;
/// Hits looked for before choosing a fragment (the text may be long).
const HITS_CONSIDERED: usize = 32;

pub struct Matcher {
    words: Vec<String>,
    last: Option<String>,
}

impl Matcher {
    pub fn new(words: &[String]) -> Self {
        Self { words: words.to_vec(), last: words.last().filter(|word| prefix_allowed(word)).cloned() }
    }

    fn matches(&self, term: &str, in_name: bool) -> bool {
        if self.words.iter().any(|word| word == term) {
            return true;
        }
        if !in_name {
            return false;
        }
        if self.last.as_deref().is_some_and(|last| term.starts_with(last)) {
            return true;
        }
        self.words.iter().any(|word| {
            let distance = typo_distance(word);
            distance > 0 && within_edits(word, term, distance)
        })
    }
}

/// Whether `a` and `b` are within `max` insertions, deletions, substitutions or adjacent
/// swaps of each other (optimal string alignment distance).
fn within_edits(a: &str, b: &str, max: u8) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let max = usize::from(max);
    if a.len().abs_diff(b.len()) > max {
        return false;
    }
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            current[j] = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()] <= max
}

/// Byte ranges of hits in `text`, at most `limit` of them.
fn hits(
    analyzer: &mut TextAnalyzer,
    text: &str,
    matcher: &Matcher,
    in_name: bool,
    limit: usize,
) -> Vec<(usize, usize)> {
    let mut stream = analyzer.token_stream(text);
    let mut found: Vec<(usize, usize)> = Vec::new();
    while let Some(token) = stream.next() {
        if matcher.matches(&token.text, in_name) {
            // CJK pairs overlap: merge a hit that overlaps the previous one.
            match found.last_mut() {
                Some(last) if token.offset_from < last.1 => last.1 = last.1.max(token.offset_to),
                _ => found.push((token.offset_from, token.offset_to)),
            }
            if found.len() >= limit {
                break;
            }
        }
    }
    found
}

fn segments(text: &str, ranges: &[(usize, usize)]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut at = 0;
    for &(from, to) in ranges {
        if from > at {
            out.push(Segment { text: text[at..from].to_owned(), hit: false });
        }
        out.push(Segment { text: text[from..to].to_owned(), hit: true });
        at = to;
    }
    if at < text.len() {
        out.push(Segment { text: text[at..].to_owned(), hit: false });
    }
    out
}

/// A whole short text (a name) as segments; empty when nothing in it matches.
pub fn whole(analyzer: &mut TextAnalyzer, text: &str, matcher: &Matcher, in_name: bool) -> Vec<Segment> {
    let ranges = hits(analyzer, text, matcher, in_name, usize::MAX);
    if ranges.is_empty() { Vec::new() } else { segments(text, &ranges) }
}

/// The part of a longer text with the most hits, about [`FRAGMENT_CHARS`] long, as segments
/// (`…` marks where it was cut); empty when nothing in it matches.
pub fn fragment(analyzer: &mut TextAnalyzer, text: &str, matcher: &Matcher) -> Vec<Segment> {
    let ranges = hits(analyzer, text, matcher, false, HITS_CONSIDERED);
    if ranges.is_empty() {
        return Vec::new();
    }
    // Start a little before the hit whose window holds the most hits.
    let window = FRAGMENT_CHARS * 3;
    let best = (0..ranges.len())
        .max_by_key(|&first| {
            let count = ranges[first..].iter().take_while(|range| range.1 <= ranges[first].0 + window).count();
            (count, usize::MAX - first)
        })
        .unwrap_or(0);
    let lead = text[..ranges[best].0].chars().rev().take(30).map(char::len_utf8).sum::<usize>();
    let mut start = ranges[best].0 - lead;
    // Begin at a word boundary when one is near.
    if let Some(space) = text[start..ranges[best].0].find(char::is_whitespace)
        && start > 0
    {
        start += space + 1;
    }
    let end = start + text[start..].chars().take(FRAGMENT_CHARS).map(char::len_utf8).sum::<usize>();
    let inside: Vec<(usize, usize)> = ranges
        .iter()
        .filter(|range| range.0 >= start && range.1 <= end)
        .map(|range| (range.0 - start, range.1 - start))
        .collect();
    let mut out = segments(&text[start..end], &inside);
    if start > 0 {
        out.insert(0, Segment { text: "…".into(), hit: false });
    }
    if end < text.len() {
        out.push(Segment { text: "…".into(), hit: false });
    }
    merge_plain(out)
}

/// Joins neighbouring non-hit segments.
fn merge_plain(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for segment in segments {
        match out.last_mut() {
            Some(last) if !last.hit && !segment.hit => last.text.push_str(&segment.text),
            _ => out.push(segment),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::analyzer::analyzer;

    fn matcher(words: &[&str]) -> Matcher {
        Matcher::new(&words.iter().map(|word| word.to_string()).collect::<Vec<_>>())
    }

    fn shown(segments: &[Segment]) -> String {
        segments.iter().map(|s| if s.hit { format!("[{}]", s.text) } else { s.text.clone() }).collect()
    }

    #[test]
    fn names_mark_exact_prefix_and_near_words_in_their_original_form() {
        let mut analyzer = analyzer();
        let text = "Quarterly-Report Café.pdf";
        assert_eq!(
            shown(&whole(&mut analyzer, text, &matcher(&["quartely", "cafe", "rep"]), true)),
            "[Quarterly]-[Report] [Café].pdf"
        );
        assert!(whole(&mut analyzer, text, &matcher(&["nothing"]), true).is_empty());
    }

    #[test]
    fn fragments_are_cut_around_hits_and_cjk_pairs_merge() {
        let mut analyzer = analyzer();
        let text = format!("{} the needle sits here {}", "filler ".repeat(100), "tail ".repeat(100));
        let shown = shown(&fragment(&mut analyzer, &text, &matcher(&["needle"])));
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.contains("the [needle] sits"), "{shown}");
        assert!(shown.chars().count() < 230, "{shown}");
        let cjk = shown_fragment("祝你们新年快乐", &["新年", "年快", "快乐"]);
        assert_eq!(cjk, "祝你们[新年快乐]");
    }

    fn shown_fragment(text: &str, words: &[&str]) -> String {
        shown(&fragment(&mut analyzer(), text, &matcher(words)))
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert!(within_edits("quartely", "quarterly", 1));
        assert!(within_edits("form", "from", 1));
        assert!(!within_edits("report", "resort", 0));
        assert!(!within_edits("abc", "xyz", 2));
    }
}
