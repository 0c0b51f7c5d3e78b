//! How text becomes index terms, the same way for indexing, queries and highlights: words are
//! runs of letters and digits (combining marks stay with their letter), normalized to NFKC,
//! lowercased and folded to ASCII where a folding exists (`café` → `cafe`, `Straße` →
//! `strasse`); runs of Chinese, Japanese or Korean characters become overlapping pairs
//! (`東京都` → `東京`, `京都`), as Lucene's `cjk_bigram` does, so a word is found inside a longer
//! run without a dictionary. Terms over 40 bytes are dropped.
//!
//! Never depends on anything but the text: the same input always gives the same terms.

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// The name the analyzer is registered under in the index.
pub const ANALYZER: &str = "coffer";

/// Longest term kept, in bytes (longer ones are noise: hashes, base64, minified code).
const MAX_TERM_BYTES: usize = 40;

/// The analyzer for every text field and for queries.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer)
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(RemoveLongFilter::limit(MAX_TERM_BYTES))
        .build()
}

/// One analyzed term and where it came from in the original text (byte offsets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub from: usize,
    pub to: usize,
}

/// All terms of `text`, in order.
pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Term> {
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(token) = stream.next() {
        out.push(Term { text: token.text.clone(), from: token.offset_from, to: token.offset_to });
    }
    out
}

/// Whether a character belongs to a script written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0x1100..=0x11FF    // Hangul Jamo
        | 0x3130..=0x318F    // Hangul compatibility Jamo
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9D    // half-width Katakana
        | 0x20000..=0x2FA1F) // CJK Extensions B-F, compatibility supplement
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Separator,
    Word,
    Cjk,
}

fn class(c: char) -> Class {
    if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphanumeric() || is_combining_mark(c) {
        Class::Word
    } else {
        Class::Separator
    }
}

/// Splits text into words and CJK pairs; the filters after it lowercase, fold and drop long
/// terms.
#[derive(Clone, Default)]
pub struct WordTokenizer;

pub struct WordStream {
    tokens: Vec<Token>,
    next: usize,
    current: Token,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream {
        WordStream { tokens: split(text), next: 0, current: Token::default() }
    }
}

impl TokenStream for WordStream {
    fn advance(&mut self) -> bool {
        match self.tokens.get_mut(self.next) {
            Some(token) => {
                self.current = std::mem::take(token);
                self.next += 1;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.current
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
    }
}

fn token(text: &str, from: usize, to: usize, position: usize) -> Token {
    let slice = &text[from..to];
    // Most words are already in NFKC (all ASCII ones are): skip the normalizer for them.
    let normalized = if slice.is_ascii() || is_nfkc_quick(slice.chars()) == IsNormalized::Yes {
        slice.to_owned()
    } else {
        slice.nfkc().collect()
    };
    Token { offset_from: from, offset_to: to, position, text: normalized, position_length: 1 }
}

/// Words and CJK pairs with their byte offsets, before lowercasing and folding.
fn split(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, first)) = chars.peek() {
        match class(first) {
            Class::Separator => {
                chars.next();
            }
            Class::Word => {
                let mut end = start;
                while let Some(&(at, c)) = chars.peek() {
                    if class(c) != Class::Word {
                        break;
                    }
                    end = at + c.len_utf8();
                    chars.next();
                }
                tokens.push(token(text, start, end, tokens.len()));
            }
            Class::Cjk => {
                let mut run: Vec<(usize, usize)> = Vec::new();
                while let Some(&(at, c)) = chars.peek() {
                    if class(c) != Class::Cjk {
                        break;
                    }
                    run.push((at, at + c.len_utf8()));
                    chars.next();
                }
                if run.len() == 1 {
                    tokens.push(token(text, run[0].0, run[0].1, tokens.len()));
                }
                for pair in run.windows(2) {
                    tokens.push(token(text, pair[0].0, pair[1].1, tokens.len()));
                }
            }
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        terms(&mut analyzer(), text).into_iter().map(|term| term.text).collect()
    }

    #[test]
    fn words_are_lowercased_and_folded_and_split_on_punctuation() {
        assert_eq!(texts("Q3-Report_final.PDF"), ["q3", "report", "final", "pdf"]);
        assert_eq!(texts("Café crème, Straße!"), ["cafe", "creme", "strasse"]);
    }

    #[test]
    fn composed_and_decomposed_accents_give_the_same_terms() {
        let composed = "r\u{e9}sum\u{e9}";
        let decomposed = "re\u{301}sume\u{301}";
        assert_eq!(texts(composed), ["resume"]);
        assert_eq!(texts(decomposed), ["resume"]);
        assert_eq!(texts("ＡＢＣ１２３"), ["abc123"], "full-width forms are normalized");
    }

    #[test]
    fn cjk_runs_become_overlapping_pairs_with_offsets_into_the_original() {
        assert_eq!(texts("祝你们新年快乐"), ["祝你", "你们", "们新", "新年", "年快", "快乐"]);
        assert_eq!(texts("東京都に住む"), ["東京", "京都", "都に", "に住", "住む"]);
        assert_eq!(texts("report東京2024"), ["report", "東京", "2024"]);
        assert_eq!(texts("猫"), ["猫"]);
        let text = "a 東京";
        let found = terms(&mut analyzer(), text);
        assert_eq!(&text[found[1].from..found[1].to], "東京");
    }

    #[test]
    fn long_terms_are_dropped() {
        assert_eq!(texts(&format!("short {} end", "x".repeat(41))), ["short", "end"]);
    }
}
