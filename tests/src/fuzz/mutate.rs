//! Mutations of valid scripts: tokens deleted, duplicated, swapped or replaced, spans repeated
//! or spliced from another script, truncation, random characters (control, unicode), extreme
//! numbers and odd intervals in place of literals.

use rand::Rng;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;

/// A piece of SQL text: a word, a number, a quoted string or identifier, a comment, whitespace or
/// one punctuation character. Concatenating the tokens of a text gives the text back.
pub fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let len = match first {
            c if c.is_whitespace() => rest.find(|c: char| !c.is_whitespace()).unwrap_or(rest.len()),
            c if c.is_alphanumeric() || c == '_' => {
                rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len())
            }
            '\'' | '"' | '`' => closing_quote(rest, first),
            '-' if rest.starts_with("--") => rest.find('\n').unwrap_or(rest.len()),
            c => c.len_utf8(),
        };
        let (token, tail) = rest.split_at(len.max(first.len_utf8()));
        out.push(token);
        rest = tail;
    }
    out
}

/// Length of a quoted string starting at `text[0]`, doubled quotes included (to the end when
/// it is never closed).
fn closing_quote(text: &str, quote: char) -> usize {
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if chars.peek().is_some_and(|(_, next)| *next == quote) {
                chars.next();
                continue;
            }
            return i + c.len_utf8();
        }
    }
    text.len()
}

/// Replacement tokens: keywords in the wrong place, extreme numbers, odd strings and intervals.
const DICTIONARY: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "HAVING",
    "TABLE",
    "TUMBLE",
    "HOP",
    "CUMULATE",
    "SESSION",
    "OVER (PARTITION BY k ORDER BY ts)",
    "ROWS BETWEEN 3 PRECEDING AND CURRENT ROW",
    "RANGE BETWEEN INTERVAL '1' SECOND PRECEDING AND CURRENT ROW",
    "ROW_NUMBER()",
    "LAG(v)",
    "PARTITION BY",
    "DESCRIPTOR",
    "INTERVAL",
    "WATERMARK FOR",
    "CREATE TABLE",
    "CREATE VIEW",
    "INSERT INTO",
    "EXPLAIN",
    "WITH",
    "AS",
    "CASE",
    "END",
    "CAST",
    "NULL",
    "NOT",
    "OR",
    "AND",
    "(",
    ")",
    ",",
    ";",
    "*",
    ".",
    "::",
    "?",
    "$1",
    "@",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "`",
    "/*",
    "*/",
    "--",
    "\\",
    "window_start",
    "window_end",
    "window_time",
    "ts",
    "src_ip",
    "COUNT(*)",
    "SUM(",
    "\"__window_0\"",
    "__window_1",
];

/// Extreme numbers, odd strings and intervals, in place of literals.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1e308",
    "1e-400",
    "99999999999999999999999999999999999999999999999999",
    "0.000000000000000000000000000001",
    "'0'",
    "'-1'",
    "''",
    "'1e309'",
    "'NaN'",
    "'9999999999999999999'",
    "'日本'",
    "'🦀'",
    "INTERVAL '0' SECOND",
    "INTERVAL '-1' SECOND",
    "INTERVAL '1' MILLISECOND",
    "INTERVAL '1' DAY",
    "INTERVAL '999999999999' DAY",
    "INTERVAL '1' YEAR",
];

const ODD_CHARS: &[char] = &[
    '\0',
    '\u{1}',
    '\u{7}',
    '\u{8}',
    '\t',
    '\r',
    '\n',
    '\u{b}',
    '\u{c}',
    '\u{1b}',
    '\u{7f}',
    '\u{80}',
    '\u{a0}',
    '\u{ad}',
    '\u{200b}',
    '\u{200d}',
    '\u{202e}',
    '\u{2028}',
    '\u{feff}',
    '\u{fffd}',
    '\u{ffff}',
    '\u{10ffff}',
    'é',
    'ß',
    'İ',
    'ﬁ',
    'Ω',
    '日',
    '🦀',
    '\u{301}',
    '＇',
    '；',
    '（',
];

/// Applies 1 to 5 random mutations to `text`; `donor` is another script spans may come from.
pub fn mutate(rng: &mut SmallRng, text: &str, donor: &str) -> String {
    let mut text = text.to_string();
    for _ in 0..rng.random_range(1..6) {
        text = mutate_once(rng, &text, donor);
    }
    text
}

fn mutate_once(rng: &mut SmallRng, text: &str, donor: &str) -> String {
    let toks = tokens(text);
    if toks.is_empty() {
        return random_chars(rng, 8);
    }
    let mut out: Vec<String> = toks.iter().map(|t| t.to_string()).collect();
    let i = rng.random_range(0..out.len());
    let j = rng.random_range(0..out.len());
    match rng.random_range(0..14) {
        0 => {
            out.remove(i);
        }
        1 => {
            let t = out[i].clone();
            out.insert(i, t);
        }
        2 => out.swap(i, j),
        3 => {
            let words = if rng.random_bool(0.5) { DICTIONARY } else { EXTREMES };
            out[i] = words.choose(rng).copied().unwrap_or("").to_string();
        }
        4 => out.insert(i, format!(" {} ", DICTIONARY.choose(rng).copied().unwrap_or(""))),
        5 => {
            // Truncation, anywhere (also inside a string or a comment).
            let cut = rng.random_range(0..=text.len());
            let cut = (0..=cut).rev().find(|c| text.is_char_boundary(*c)).unwrap_or(0);
            return text[..cut].to_string();
        }
        6 => {
            let n = rng.random_range(1..8);
            out.insert(i, random_chars(rng, n));
        }
        7 => {
            // A span of tokens repeated, up to a few hundred times.
            let (a, b) = (i.min(j), i.max(j).min(i.min(j) + 8));
            let span: String = out[a..=b].concat();
            let times = *[2usize, 3, 10, 100, 500].choose(rng).unwrap_or(&2);
            out.insert(b + 1, span.repeat(times));
        }
        8 => {
            // A span of another script spliced in.
            let donor_tokens = tokens(donor);
            if !donor_tokens.is_empty() {
                let a = rng.random_range(0..donor_tokens.len());
                let b = (a + rng.random_range(1..40)).min(donor_tokens.len());
                out.insert(i, donor_tokens[a..b].concat());
            }
        }
        9 => {
            let (a, b) = (i.min(j), i.max(j));
            out.drain(a..=b.min(a + 20));
        }
        10 => {
            // Numbers and strings replaced by extreme ones.
            let literals: Vec<usize> = (0..out.len())
                .filter(|&k| out[k].starts_with('\'') || out[k].starts_with(|c: char| c.is_ascii_digit()))
                .collect();
            if let Some(&k) = literals.choose(rng) {
                out[k] = EXTREMES.choose(rng).copied().unwrap_or("0").to_string();
            }
        }
        11 => {
            // Case and quoting of a word.
            if out[i].chars().all(|c| c.is_alphanumeric() || c == '_') {
                out[i] = match rng.random_range(0..3) {
                    0 => out[i].to_uppercase(),
                    1 => format!("\"{}\"", out[i]),
                    _ => format!("`{}`", out[i]),
                };
            }
        }
        12 => {
            // A statement boundary added or removed.
            if let Some(k) = out.iter().position(|t| t == ";") {
                out.remove(k);
            } else {
                out.insert(i, ";".into());
            }
        }
        _ => {
            let c = ODD_CHARS.choose(rng).copied().unwrap_or('\0');
            out.insert(i, c.to_string());
        }
    }
    out.concat()
}

fn random_chars(rng: &mut SmallRng, n: usize) -> String {
    (0..n)
        .map(|_| match rng.random_range(0..4) {
            0 => char::from(rng.random_range(0u8..128)),
            1 => ODD_CHARS.choose(rng).copied().unwrap_or('?'),
            2 => char::from_u32(rng.random_range(0..0x11_0000)).unwrap_or('\u{fffd}'),
            _ => char::from(rng.random_range(b' '..b'~')),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn tokens_concatenate_to_the_text() {
        for text in ["SELECT a, 'it''s' FROM t -- c\nWHERE x = 1.5;", "'open", "日本 語", ""] {
            assert_eq!(tokens(text).concat(), text);
        }
    }
}
