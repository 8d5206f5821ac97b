//! The text forms of values we accept in input records.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Parses an event time: `YYYY-MM-DD HH:MM:SS[.fff]`, ISO-8601 (`T`, `Z` or an offset),
/// `YYYY-MM-DD`, or epoch milliseconds. Returns epoch milliseconds (UTC).
pub fn timestamp_millis(text: &str) -> Option<i64> {
    let text = text.trim();
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
