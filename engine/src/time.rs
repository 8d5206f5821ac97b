//! Event-time conventions shared by sources and operators.
//!
//! Streams leaving a source carry [`HIDDEN_COLUMNS`] trailing columns that SQL never sees:
//!
//! | column        | type                        | meaning                                              |
//! |---------------|-----------------------------|------------------------------------------------------|
//! | [`TS_COLUMN`] | `Timestamp(Millisecond)`    | the row's event time (the `WATERMARK FOR` column)    |
//! | [`WM_COLUMN`] | `Int64`                     | the source watermark before this row, in ms          |
//!
//! A watermark of [`WATERMARK_MIN`] means "nothing seen yet"; [`WATERMARK_MAX`] means "input
//! ended".

use arrow::datatypes::{DataType, Field, TimeUnit};

/// Name of the hidden event-time column.
pub const TS_COLUMN: &str = "_ts";
/// Name of the hidden per-row watermark column.
pub const WM_COLUMN: &str = "_wm";
/// Number of hidden trailing columns on a source stream.
pub const HIDDEN_COLUMNS: usize = 2;
/// The watermark before any row was seen.
pub const WATERMARK_MIN: i64 = i64::MIN;
/// The watermark after a bounded input ended.
pub const WATERMARK_MAX: i64 = i64::MAX;

/// The Arrow type of event-time columns: `TIMESTAMP(3)`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// The two hidden fields appended to source schemas.
pub fn hidden_fields() -> [Field; HIDDEN_COLUMNS] {
    [Field::new(TS_COLUMN, timestamp_type(), true), Field::new(WM_COLUMN, DataType::Int64, false)]
}

/// Formats epoch milliseconds as `YYYY-MM-DD HH:MM:SS.fff` (UTC), the way results are shown.
pub fn format_millis(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => ms.to_string(),
    }
}

/// Parses a duration as users write it in options and settings: `'500 ms'`, `'10s'`,
/// `'1 HOUR'`, `'2 minutes'`, `'1 day'`; a bare number is milliseconds. Returns milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let scale = match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500 ms"), Some(500));
        assert_eq!(parse_duration_ms("10s"), Some(10_000));
        assert_eq!(parse_duration_ms(" 1 HOUR "), Some(3_600_000));
        assert_eq!(parse_duration_ms("0"), Some(0));
        assert_eq!(parse_duration_ms("2 weeks"), None);
        assert_eq!(parse_duration_ms("-1 s"), None);
        assert_eq!(parse_duration_ms("s"), None);
    }
}
