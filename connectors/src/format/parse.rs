//! The text forms of values we accept in input records.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// `text.trim()`, without decoding characters when both ends are visible ASCII (the usual case).
pub fn trim(text: &str) -> &str {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// Parses an event time: `YYYY-MM-DD HH:MM:SS[.fff]`, ISO-8601 (`T`, `Z` or an offset),
/// `YYYY-MM-DD`, or epoch milliseconds. Returns epoch milliseconds (UTC).
pub fn timestamp_millis(text: &str) -> Option<i64> {
    let text = trim(text);
    if let Some(millis) = plain_timestamp_millis(text.as_bytes()) {
        return Some(millis);
    }
    formatted_timestamp_millis(text)
}

/// [`timestamp_millis`] of a trimmed text, every form read by chrono.
fn formatted_timestamp_millis(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// The most common form, `YYYY-MM-DD HH:MM:SS[.f]` (or with `T`) with up to 9 fraction digits
/// and a valid date and time, read directly; `None` for anything else, which
/// [`formatted_timestamp_millis`] then reads (it gives the same value for these texts).
#[inline]
fn plain_timestamp_millis(text: &[u8]) -> Option<i64> {
    Some(minute_millis(text.get(..17)?)? + second_millis(&text[17..])?)
}

/// The minute a text in the form of [`plain_timestamp_millis`] starts with (`YYYY-MM-DD HH:MM:`),
/// as epoch milliseconds.
fn minute_millis(text: &[u8]) -> Option<i64> {
    if text.len() != 17
        || text[4] != b'-'
        || text[7] != b'-'
        || !matches!(text[10], b' ' | b'T')
        || text[13] != b':'
        || text[16] != b':'
    {
        return None;
    }
    let mut digits = [0u8; 12];
    let mut all_digits = true;
    for (digit, at) in digits.iter_mut().zip([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15]) {
        *digit = text[at].wrapping_sub(b'0');
        all_digits &= *digit <= 9;
    }
    if !all_digits {
        return None;
    }
    let two = |i: usize| i64::from(digits[i] * 10 + digits[i + 1]);
    let year = two(0) * 100 + two(2);
    let (month, day, hour, minute) = (two(4), two(6), two(8), two(10));
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 {
        return None;
    }
    Some((days_from_civil(year, month, day) * 1_440 + hour * 60 + minute) * 60_000)
}

/// The rest of a text in the form of [`plain_timestamp_millis`] (`SS[.f]`), as milliseconds.
#[inline]
fn second_millis(text: &[u8]) -> Option<i64> {
    let [tens, ones, rest @ ..] = text else { return None };
    let (tens, ones) = (tens.wrapping_sub(b'0'), ones.wrapping_sub(b'0'));
    if tens > 5 || ones > 9 {
        return None;
    }
    let millis = match rest {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit) => {
            fraction.iter().chain(b"00").take(3).fold(0, |ms, &b| ms * 10 + i64::from(b - b'0'))
        }
        _ => return None,
    };
    Some(i64::from(tens * 10 + ones) * 1_000 + millis)
}

/// The minute of the last timestamp [`timestamp_millis_in`] read directly.
#[derive(Debug, Default)]
pub struct MinuteCache {
    /// Its text (`YYYY-MM-DD HH:MM:`) and its epoch milliseconds; `None` before the first.
    minute: Option<([u8; 17], i64)>,
}

/// [`timestamp_millis`], reading the date and time to the minute only when they differ from the
/// last timestamp's (a stream's timestamps mostly share their minute with the previous one).
pub fn timestamp_millis_in(text: &str, cache: &mut MinuteCache) -> Option<i64> {
    let text = trim(text);
    let bytes = text.as_bytes();
    if let (Some(prefix), Some((cached, millis))) = (bytes.get(..17), &cache.minute)
        && prefix == cached
        && let Some(seconds) = second_millis(&bytes[17..])
    {
        return Some(millis + seconds);
    }
    if let Some(prefix) = bytes.get(..17)
        && let Some(minute) = minute_millis(prefix)
        && let Some(seconds) = second_millis(&bytes[17..])
    {
        let mut key = [0; 17];
        key.copy_from_slice(prefix);
        cache.minute = Some((key, minute));
        return Some(minute + seconds);
    }
    formatted_timestamp_millis(text)
}

#[inline]
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's algorithm).
#[inline]
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn date_days(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// Parses a decimal number into an integer scaled by `10^scale`, rounding half away from zero;
/// `None` when it is not a number or needs more than `precision` digits.
pub fn decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], digits[i + 1..].parse::<i32>().ok()?),
        None => (digits, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits as one integer, and where the decimal point sits relative to `scale`.
    let all: String = format!("{int_part}{frac_part}");
    let all = all.trim_start_matches('0');
    let point_shift = scale as i32 - frac_part.len() as i32 + exponent;
    let mut value: i128 = if all.is_empty() { 0 } else { all.parse().ok()? };
    if point_shift >= 0 {
        value = value.checked_mul(10i128.checked_pow(point_shift as u32)?)?;
    } else {
        let divisor = 10i128.checked_pow((-point_shift) as u32).unwrap_or(i128::MAX);
        let rounded = value / divisor + i128::from(value % divisor * 2 >= divisor);
        value = rounded;
    }
    if value >= 10i128.checked_pow(precision as u32)? {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Parses a boolean: `true`/`false` (any case), `1`/`0`.
pub fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_accepted_form() {
        let expected = 1_459_501_200_123; // 2016-04-01 09:00:00.123 UTC
        assert_eq!(timestamp_millis("2016-04-01 09:00:00.123"), Some(expected));
        assert_eq!(timestamp_millis("2016-04-01T09:00:00.123Z"), Some(expected));
        assert_eq!(timestamp_millis("2016-04-01T11:00:00.123+02:00"), Some(expected));
        assert_eq!(timestamp_millis("2016-04-01T09:00:00.123"), Some(expected));
        assert_eq!(timestamp_millis("1459501200123"), Some(expected));
        assert_eq!(timestamp_millis("2016-04-01 09:00:00"), Some(expected - 123));
        assert_eq!(timestamp_millis("2016-04-01"), Some(expected - 123 - 9 * 3_600_000));
        assert_eq!(timestamp_millis("yesterday"), None);
        assert_eq!(timestamp_millis(""), None);
    }

    /// The direct reading of the common form gives chrono's value, or leaves the text to chrono.
    #[test]
    fn plain_timestamps_read_as_chrono_reads_them() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut direct = 0;
        let mut cache = MinuteCache::default();
        for _ in 0..200_000 {
            let fraction: String = (0..next(11)).map(|_| char::from(b'0' + next(10) as u8)).collect();
            let text = format!(
                "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}{}{fraction}",
                [1969, 1970, 2000, 2024, 2100, 1900, 1600, 9999, 0, 1][next(10) as usize] + next(3),
                next(14),
                next(33),
                if next(2) == 0 { ' ' } else { 'T' },
                next(26),
                next(61),
                next(62),
                if fraction.is_empty() && next(2) == 0 { "" } else { "." },
            );
            let fast = plain_timestamp_millis(text.as_bytes());
            if fast.is_some() {
                direct += 1;
            }
            assert_eq!(timestamp_millis(&text), formatted_timestamp_millis(&text), "{text}");
            assert_eq!(timestamp_millis_in(&text, &mut cache), formatted_timestamp_millis(&text), "{text}");
            assert!(fast.is_none() || fast == formatted_timestamp_millis(&text), "{text}");
            // Another second of the same minute: read from the cached minute.
            if let Some(minute) = text.get(..17) {
                let same_minute = format!("{minute}{:02}.{}", next(62), next(1000));
                let cached = timestamp_millis_in(&same_minute, &mut cache);
                assert_eq!(cached, formatted_timestamp_millis(&same_minute), "{same_minute} after {text}");
            }
        }
        assert!(direct > 50_000, "only {direct} texts were read directly");
    }

    #[test]
    fn decimals_scale_and_round() {
        assert_eq!(decimal("12.345", 10, 2), Some(1235));
        assert_eq!(decimal("-12.344", 10, 2), Some(-1234));
        assert_eq!(decimal("7", 10, 2), Some(700));
        assert_eq!(decimal("1e2", 10, 0), Some(100));
        assert_eq!(decimal("123456", 5, 0), None);
        assert_eq!(decimal("abc", 10, 2), None);
        assert_eq!(decimal(".5", 3, 1), Some(5));
    }
}
