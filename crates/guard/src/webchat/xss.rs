//! Script vectors in rule patterns, found after decoding — never stripped or rewritten.
//!
//! A pattern is decoded the way a browser or a lenient server might read it: HTML
//! entities (named, decimal, hex; with or without `;`), percent-encoding (`%3C`, `%u003C`)
//! and JavaScript escapes (`\x3c`, `\u003c`), repeatedly until nothing changes (bounded);
//! then NFKC (fullwidth `＜` is `<`) and lowercase. Whitespace, NUL and control characters
//! are ignored inside the keywords (`java\tscript:`). Keywords that are also ordinary
//! words (`eval(`, `expression(`, `on…=`) count only at a word start, so `/medieval(1)`
//! and `/onboarding/*` are fine.

use unicode_normalization::UnicodeNormalization;

/// Rounds of decoding at most: each round undoes one layer of every encoding.
const MAX_ROUNDS: usize = 12;

/// What was found: the vector and the decoded text around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The vector, e.g. `<script`.
    pub vector: &'static str,
    /// The decoded pattern around the match (at most ~60 characters, escaped).
    pub decoded: String,
}

/// Vectors that match anywhere.
const ANYWHERE: &[&str] = &[
    "<script",
    "javascript:",
    "vbscript:",
    "livescript:",
    "data:text/html",
    "<iframe",
    "<frame",
    "<object",
    "<embed",
    "<svg",
    "<math",
    "<img",
    "<body",
    "<style",
    "<link",
    "<meta",
    "<base",
    "<form",
    "srcdoc=",
    "-moz-binding",
];

/// Vectors that match only at a word start (they are also parts of ordinary words).
const AT_WORD_START: &[&str] = &["eval(", "expression(", "settimeout(", "setinterval("];

/// The first script vector `pattern` carries once decoded, if any — in the decoded text
/// itself, or with CSS comments taken out (`expr/**/ession(`).
pub fn script_vector(pattern: &str) -> Option<Found> {
    let (decoded, complete) = decode_bounded(pattern);
    if !complete {
        // Still encoded after the last round: what a browser would make of the rest is
        // unknown here, so it is refused, not guessed.
        let excerpt: String = decoded.chars().take(60).collect();
        return Some(Found {
            vector: "encoding nested deeper than the decoding limit",
            decoded: excerpt.escape_debug().to_string(),
        });
    }
    let folded: String = decoded.nfkc().collect::<String>().to_lowercase();
    find(&folded).or_else(|| {
        let uncommented = without_css_comments(&folded);
        (uncommented != folded)
            .then(|| find(&uncommented))
            .flatten()
    })
}

/// `s` without `/* … */` comments (an unclosed one runs to the end).
fn without_css_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// The first vector in decoded, folded text.
fn find(folded: &str) -> Option<Found> {
    // The significant characters, and whether each starts a word.
    let mut chars: Vec<char> = Vec::with_capacity(folded.len());
    let mut word_start: Vec<bool> = Vec::with_capacity(folded.len());
    let mut gap = true;
    for c in folded.chars() {
        if c.is_whitespace() || c.is_control() || c == '\u{200b}' || c == '\u{feff}' {
            gap = true;
            continue;
        }
        let starts = gap || chars.last().is_none_or(|p: &char| !p.is_alphanumeric());
        chars.push(c);
        word_start.push(starts);
        gap = false;
    }
    let text: String = chars.iter().collect();
    let at = |i: usize| text.char_indices().nth(i).map_or(text.len(), |(b, _)| b);
    let found = |vector: &'static str, char_pos: usize| {
        let start = char_pos.saturating_sub(20);
        let excerpt: String = chars[start..].iter().take(60).collect();
        Some(Found {
            vector,
            decoded: excerpt.escape_debug().to_string(),
        })
    };
    for v in ANYWHERE {
        if let Some(b) = text.find(v) {
            return found(v, text[..b].chars().count());
        }
    }
    for (i, starts) in word_start.iter().enumerate() {
        if !starts {
            continue;
        }
        let rest = &text[at(i)..];
        for v in AT_WORD_START {
            if rest.starts_with(v) {
                return found(v, i);
            }
        }
        // on<event>= : "on", three or more letters, "=".
        if let Some(after) = rest.strip_prefix("on") {
            let letters = after
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            if letters >= 3 && after[letters..].starts_with('=') {
                return found("on<event>=", i);
            }
        }
    }
    None
}

/// `pattern` with every layer of entity, percent and escape encoding undone (at most
/// [`MAX_ROUNDS`] layers).
pub fn decode(pattern: &str) -> String {
    decode_bounded(pattern).0
}

/// `pattern` decoded, and whether decoding finished: `false` when one more round would
/// still change it after [`MAX_ROUNDS`].
fn decode_bounded(pattern: &str) -> (String, bool) {
    let mut s = pattern.to_string();
    for _ in 0..MAX_ROUNDS {
        let next = js_unescape(&percent_decode(&entity_decode(&s)));
        if next == s {
            return (s, true);
        }
        s = next;
    }
    let complete = js_unescape(&percent_decode(&entity_decode(&s))) == s;
    (s, complete)
}

fn hex(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// `%XX` as bytes (then UTF-8, lossily) and `%uXXXX` as a character.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 5 < b.len() && (b[i + 1] == b'u' || b[i + 1] == b'U') {
                let v = b[i + 2..i + 6]
                    .iter()
                    .try_fold(0u32, |acc, d| hex(*d).map(|h| acc * 16 + h));
                if let Some(c) = v.and_then(char::from_u32) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    continue;
                }
            }
            if i + 2 < b.len()
                && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
            {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `\xXX` and `\uXXXX` (JavaScript and CSS-style escapes of the common forms).
fn js_unescape(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            let (len, digits) = match chars[i + 1] {
                'x' | 'X' => (2, 2),
                'u' | 'U' => (4, 4),
                _ => (0, 0),
            };
            if len > 0 && i + 1 + digits < chars.len() {
                let v = chars[i + 2..i + 2 + digits]
                    .iter()
                    .try_fold(0u32, |acc, d| d.to_digit(16).map(|h| acc * 16 + h));
                if let Some(c) = v.and_then(char::from_u32) {
                    out.push(c);
                    i += 2 + digits;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Named entities worth knowing here; HTML also accepts the first five without `;`.
const NAMED: &[(&str, char)] = &[
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("colon", ':'),
    ("lpar", '('),
    ("rpar", ')'),
    ("equals", '='),
    ("sol", '/'),
    ("bsol", '\\'),
    ("num", '#'),
    ("percnt", '%'),
    ("period", '.'),
    ("semi", ';'),
    ("comma", ','),
    ("tab", '\t'),
    ("newline", '\n'),
    ("nbsp", '\u{a0}'),
    ("lsqb", '['),
    ("rsqb", ']'),
    ("lcub", '{'),
    ("rcub", '}'),
    ("excl", '!'),
    ("quest", '?'),
    ("grave", '`'),
    ("plus", '+'),
];

/// `&name;`, `&#60;`, `&#x3c;`, with or without the `;`, any number of leading zeros.
fn entity_decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        match entity(after) {
            Some((c, used)) => {
                out.push(c);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character an entity body (after `&`) stands for, and the bytes it used.
fn entity(after: &str) -> Option<(char, usize)> {
    let b = after.as_bytes();
    let semi = |n: usize| usize::from(b.get(n) == Some(&b';'));
    if b.first() == Some(&b'#') {
        // As the WHATWG HTML tokenizer reads a numeric character reference: every digit
        // (a browser reads `&#0000000000060;` as `<`), the value saturating past
        // U+10FFFF; zero, a surrogate or a value past U+10FFFF is U+FFFD.
        let (radix, start) = match b.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = b[start..]
            .iter()
            .take_while(|d| (**d as char).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let v = b[start..start + digits].iter().fold(0u32, |acc, d| {
            let d = (*d as char).to_digit(radix).unwrap_or(0);
            acc.saturating_mul(radix).saturating_add(d).min(0x11_0000)
        });
        let c = match v {
            0 => '\u{fffd}',
            v => char::from_u32(v).unwrap_or('\u{fffd}'),
        };
        let end = start + digits;
        return Some((c, end + semi(end)));
    }
    let name_len = b
        .iter()
        .take(10)
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    let name = after[..name_len].to_ascii_lowercase();
    // The longest known name the text starts with (`&ltscript` is `<script`).
    NAMED
        .iter()
        .filter(|(n, _)| name.starts_with(n))
        .max_by_key(|(n, _)| n.len())
        .map(|(n, c)| (*c, n.len() + semi(n.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_undoes_each_layer() {
        assert_eq!(decode("&lt;script&gt;"), "<script>");
        assert_eq!(decode("&#x3C;&#60&#0000060;"), "<<<");
        assert_eq!(decode("%253Cscript"), "<script");
        assert_eq!(decode("%u003Cscript"), "<script");
        assert_eq!(decode("\\x3cscript"), "<script");
        assert_eq!(decode("&amp;lt;script"), "<script");
        assert_eq!(decode("plain/path?a=b&c=d"), "plain/path?a=b&c=d");
    }

    /// Regression (trust review, item 5): at most 12 digits were read, so 13 digits of
    /// zero padding decoded to U+0000 here and to `<` in a browser.
    #[test]
    fn numeric_references_read_every_digit_as_a_browser_does() {
        assert_eq!(decode("&#0000000000060;script&#0000000000062;"), "<script>");
        assert_eq!(decode("&#x000000000000000003c;"), "<");
        assert!(script_vector("&#0000000000060;script&#0000000000062;").is_some());
        // Past U+10FFFF, however long, and zero: U+FFFD, as a browser reads them.
        assert_eq!(decode("&#99999999999999999999999;"), "\u{fffd}");
        assert_eq!(decode("&#x110000;&#0;&#xD800;"), "\u{fffd}\u{fffd}\u{fffd}");
    }

    #[test]
    fn a_pattern_still_encoded_after_the_last_round_is_refused() {
        let mut p = "<script".to_string();
        for _ in 0..MAX_ROUNDS + 1 {
            p = p.replace('%', "%25").replace('<', "%3C");
        }
        let f = script_vector(&p).expect("refused");
        assert!(f.vector.contains("decoding limit"), "{f:?}");
        // Twelve layers still decode and are named for what they hide.
        let mut p = "<script".to_string();
        for _ in 0..MAX_ROUNDS - 1 {
            p = p.replace('%', "%25").replace('<', "%3C");
        }
        assert_eq!(script_vector(&p).unwrap().vector, "<script");
    }

    #[test]
    fn the_error_shows_the_decoded_form() {
        let f = script_vector("%3CScRiPt%3Ealert(1)").unwrap();
        assert_eq!(f.vector, "<script");
        assert!(f.decoded.contains("<script>alert(1)"), "{}", f.decoded);
    }
}
