//! Java date-time patterns (`DateTimeFormatter` / `SimpleDateFormat`: `yyyy-MM-dd HH:mm:ss.SSS`),
//! as Flink's `DATE_FORMAT`, `TO_TIMESTAMP`, `TO_DATE`, `FROM_UNIXTIME` and `UNIX_TIMESTAMP` take
//! them, compiled to chrono format items.
//!
//! A letter we cannot translate faithfully (`Q`, `w`, `z`, ...) is an error naming it, never
//! copied through as text: copying is how DataFusion's strftime-based `date_format` turns
//! `'yyyy-MM-dd'` into the text `yyyy-MM-dd`.

use std::fmt::Write;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Flink's default pattern for timestamps as text.
pub(super) const DEFAULT_TIMESTAMP: &str = "yyyy-MM-dd HH:mm:ss";
/// Flink's default pattern for dates as text.
pub(super) const DEFAULT_DATE: &str = "yyyy-MM-dd";

/// A compiled Java pattern.
#[derive(Debug)]
pub(super) struct JavaPattern {
    pieces: Vec<Piece>,
    /// The chrono items for parsing, or why this pattern cannot parse.
    parse_items: Result<Vec<Item<'static>>, String>,
}

#[derive(Debug)]
enum Piece {
    Items(Vec<Item<'static>>),
    /// `S` repeated: the fraction of the second, truncated to this many digits.
    Fraction(usize),
}

impl JavaPattern {
    /// Compiles `pattern`, or says which part of it is not supported.
    pub(super) fn compile(pattern: &str) -> Result<JavaPattern, String> {
        let mut pieces = Vec::new();
        let mut spec = String::new();
        let mut parse_spec = Ok(String::new());
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // 'quoted text'; '' is a quote.
                let mut text = String::new();
                let mut j = i + 1;
                if chars.get(j) == Some(&'\'') {
                    text.push('\'');
                    j += 1;
                } else {
                    loop {
                        match chars.get(j) {
                            None => return Err(format!("unterminated quote in date-time pattern '{pattern}'")),
                            Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                                text.push('\'');
                                j += 2;
                            }
                            Some('\'') => {
                                j += 1;
                                break;
                            }
                            Some(&other) => {
                                text.push(other);
                                j += 1;
                            }
                        }
                    }
                }
                push_literal(&mut spec, &mut parse_spec, &text);
                i = j;
                continue;
            }
            if !c.is_ascii_alphabetic() {
                if matches!(c, '[' | ']' | '{' | '}' | '#') {
                    return Err(format!(
                        "'{c}' in date-time pattern '{pattern}' is not supported (optional sections and reserved characters); quote it as '{c}' to mean the character"
                    ));
                }
                push_literal(&mut spec, &mut parse_spec, &c.to_string());
                i += 1;
                continue;
            }
            let mut count = 1;
            while chars.get(i + count) == Some(&c) {
                count += 1;
            }
            let run: String = std::iter::repeat_n(c, count).collect();
            match translate(c, count) {
                Some(Field::Spec(s)) => {
                    spec.push_str(s);
                    if let Ok(p) = &mut parse_spec {
                        p.push_str(s);
                    }
                }
                Some(Field::Fraction) => {
                    if !spec.is_empty() {
                        pieces.push(Piece::Items(items(&std::mem::take(&mut spec))?));
                    }
                    pieces.push(Piece::Fraction(count));
                    parse_spec = match (parse_spec, count) {
                        (Ok(p), 3) => Ok(p + "%3f"),
                        (Ok(p), 6) => Ok(p + "%6f"),
                        (Ok(p), 9) => Ok(p + "%9f"),
                        (Ok(_), _) => Err(format!(
                            "parsing '{run}' (fractions of {count} digits) is not supported; use SSS, SSSSSS or SSSSSSSSS"
                        )),
                        (Err(e), _) => Err(e),
                    };
                }
                None => return Err(unsupported_letter(pattern, c, &run)),
            }
            i += count;
        }
        if !spec.is_empty() {
            pieces.push(Piece::Items(items(&spec)?));
        }
        let parse_items = match parse_spec {
            Ok(p) => Ok(items(&p)?),
            Err(e) => Err(e),
        };
        Ok(JavaPattern { pieces, parse_items })
    }

    /// Appends `t` formatted with this pattern to `out`.
    pub(super) fn format(&self, t: &NaiveDateTime, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                // Writing to a String cannot fail, and every item was validated by chrono.
                Piece::Items(items) => {
                    let _ = write!(out, "{}", t.format_with_items(items.iter()));
                }
                Piece::Fraction(digits) => {
                    let nanos = t.nanosecond() % 1_000_000_000;
                    let value = nanos / 10u32.pow(9 - *digits.min(&9) as u32);
                    let _ = write!(out, "{value:0width$}", width = *digits);
                }
            }
        }
    }

    /// Whether this pattern can parse text (some fraction widths only format).
    pub(super) fn parse_error(&self) -> Option<&str> {
        self.parse_items.as_ref().err().map(String::as_str)
    }

    /// Parses `text` as a whole; fields the pattern lacks default to 1970-01-01 00:00:00, as
    /// Java's do. `None` when the text does not match.
    pub(super) fn parse(&self, text: &str) -> Option<NaiveDateTime> {
        let items = self.parse_items.as_ref().ok()?;
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, text, items.iter()).ok()?;
        resolve(parsed)
    }
}

/// Fills the fields Java would default and builds the date-time.
fn resolve(mut parsed: Parsed) -> Option<NaiveDateTime> {
    let has_date = parsed.year().is_some()
        || parsed.year_mod_100().is_some()
        || parsed.month().is_some()
        || parsed.day().is_some()
        || parsed.ordinal().is_some();
    if !has_date {
        parsed.set_year(1970).ok()?;
    }
    if parsed.year().is_none() && parsed.year_mod_100().is_none() {
        parsed.set_year(1970).ok()?;
    }
    if parsed.ordinal().is_none() {
        if parsed.month().is_none() {
            parsed.set_month(1).ok()?;
        }
        if parsed.day().is_none() {
            parsed.set_day(1).ok()?;
        }
    }
    if parsed.hour_mod_12().is_none() {
        parsed.set_hour(0).ok()?;
    } else if parsed.hour_div_12().is_none() {
        // `hh` without `a`: morning, as Java assumes.
        parsed.set_ampm(false).ok()?;
    }
    if parsed.minute().is_none() {
        parsed.set_minute(0).ok()?;
    }
    let date: NaiveDate = parsed.to_naive_date().ok()?;
    let time: NaiveTime = parsed.to_naive_time().ok()?;
    Some(date.and_time(time))
}

enum Field {
    Spec(&'static str),
    Fraction,
}

/// The chrono specifier for `count` repetitions of the Java letter `c`.
fn translate(c: char, count: usize) -> Option<Field> {
    use Field::Spec;
    Some(match (c, count) {
        ('y', 2) => Spec("%y"),
        ('y', 1 | 3 | 4) => Spec("%Y"),
        ('M' | 'L', 1) => Spec("%-m"),
        ('M' | 'L', 2) => Spec("%m"),
        ('M' | 'L', 3) => Spec("%b"),
        ('M' | 'L', 4) => Spec("%B"),
        ('d', 1) => Spec("%-d"),
        ('d', 2) => Spec("%d"),
        ('D', 1) => Spec("%-j"),
        ('D', 3) => Spec("%j"),
        ('H', 1) => Spec("%-H"),
        ('H', 2) => Spec("%H"),
        ('h', 1) => Spec("%-I"),
        ('h', 2) => Spec("%I"),
        ('m', 1) => Spec("%-M"),
        ('m', 2) => Spec("%M"),
        ('s', 1) => Spec("%-S"),
        ('s', 2) => Spec("%S"),
        ('S', 1..=9) => Field::Fraction,
        ('E', 1..=3) => Spec("%a"),
        ('E', 4) => Spec("%A"),
        ('a', 1) => Spec("%p"),
        _ => return None,
    })
}

fn unsupported_letter(pattern: &str, c: char, run: &str) -> String {
    let what = match c {
        'G' => "era",
        'u' => "year or day-of-week (Java's two pattern classes disagree)",
        'Y' => "week-based year",
        'Q' | 'q' => "quarter",
        'w' | 'W' => "week of year or month",
        'F' | 'e' | 'c' => "day of week in month / localized day of week",
        'k' | 'K' => "hour in 1-24 / 0-11 form",
        'z' | 'Z' | 'X' | 'x' | 'O' | 'V' | 'v' => "time zone, which timestamps without a zone do not have",
        'n' | 'N' | 'A' => "nano or milli of day",
        _ => "",
    };
    let what = if what.is_empty() { String::new() } else { format!(" ({what})") };
    format!(
        "'{run}'{what} in date-time pattern '{pattern}' is not supported; supported letters: y yy yyyy, M MM MMM MMMM, d dd, D DDD, H HH, h hh, m mm, s ss, S to SSSSSSSSS, E EEEE, a; quote other text as 'text'"
    )
}

fn push_literal(spec: &mut String, parse_spec: &mut Result<String, String>, text: &str) {
    let escaped = text.replace('%', "%%");
    spec.push_str(&escaped);
    if let Ok(p) = parse_spec {
        p.push_str(&escaped);
    }
}

fn items(spec: &str) -> Result<Vec<Item<'static>>, String> {
    StrftimeItems::new(spec).parse_to_owned().map_err(|e| format!("cannot compile date-time pattern ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn format(pattern: &str, t: &str) -> String {
        let mut out = String::new();
        JavaPattern::compile(pattern).unwrap_or_else(|e| panic!("{e}")).format(&at(t), &mut out);
        out
    }

    #[test]
    fn formats_java_patterns() {
        let t = "2024-03-05 06:07:08.009";
        assert_eq!(format("yyyy-MM-dd HH:mm:ss", t), "2024-03-05 06:07:08");
        assert_eq!(format("yyyy-MM-dd HH:mm:ss.SSS", t), "2024-03-05 06:07:08.009");
        assert_eq!(format("yy/M/d H:m:s", t), "24/3/5 6:7:8");
        assert_eq!(format("EEE, d MMM yyyy", t), "Tue, 5 Mar 2024");
        assert_eq!(format("EEEE MMMM", t), "Tuesday March");
        assert_eq!(format("hh 'o''clock' a", t), "06 o'clock AM");
        assert_eq!(format("''yyyy''", t), "'2024'");
        assert_eq!(format("S SS SSSSSS", t), "0 00 009000");
        assert_eq!(format("D DDD", t), "65 065");
        assert_eq!(format("100%", t), "100%");
    }

    #[test]
    fn refuses_letters_it_cannot_format() {
        for pattern in ["yyyy-Q", "w", "z", "yyyy-MM-dd'T'HH:mm:ssXXX", "[yyyy]", "ddd", "'open"] {
            assert!(JavaPattern::compile(pattern).is_err(), "{pattern} compiled");
        }
        let error = JavaPattern::compile("yyyy Q").err().unwrap_or_default();
        assert!(error.contains("'Q'") && error.contains("quarter"), "{error}");
    }

    #[test]
    fn parses_with_java_defaults() {
        let parse = |pattern: &str, text: &str| JavaPattern::compile(pattern).ok().and_then(|p| p.parse(text));
        assert_eq!(parse("yyyy-MM-dd HH:mm:ss", "2024-03-05 06:07:08"), Some(at("2024-03-05 06:07:08")));
        assert_eq!(parse("yyyy-MM-dd", "2024-03-05"), Some(at("2024-03-05 00:00:00")));
        assert_eq!(parse("dd/MM/yyyy HH:mm:ss.SSS", "05/03/2024 06:07:08.009"), Some(at("2024-03-05 06:07:08.009")));
        assert_eq!(parse("HH:mm", "06:07"), Some(at("1970-01-01 06:07:00")));
        assert_eq!(parse("yyyy-MM-dd", "2024-13-05"), None);
        assert_eq!(parse("yyyy-MM-dd", "2024-03-05 trailing"), None);
    }
}
