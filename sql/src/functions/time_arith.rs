//! `TIMESTAMPADD(unit, interval, timepoint)` and `TIMESTAMPDIFF(unit, timepoint1, timepoint2)`.
//!
//! Flink writes the unit as a bare keyword (`TIMESTAMPADD(DAY, 1, ts)`), which sqlparser would
//! read as a column reference: the parser turns such units into string literals with
//! [`unit_keyword_to_literal`], so both `DAY` and `'DAY'` work. Months, quarters and years keep the day of the month, or take
//! the month's last day when it has fewer days (Jan 31 + 1 month = Feb 29 in 2024), as Flink does.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Date32Array, Int32Builder, Int64Array};
use arrow::datatypes::{DataType, Date32Type, FieldRef, TimeUnit};
use chrono::{Months, NaiveDateTime, TimeDelta};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Arrays, Param, array, coerce, field, literal_str};
use super::time::datetimes;

pub(super) fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(TimestampAdd { signature: Signature::user_defined(Volatility::Immutable) }),
        ScalarUDF::new_from_impl(TimestampDiff { signature: Signature::user_defined(Volatility::Immutable) }),
    ]
}

/// The units `TIMESTAMPADD` and `TIMESTAMPDIFF` take.
pub const UNITS: [&str; 8] = ["SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A fixed length, in seconds.
    Fixed(i64),
    /// A number of months.
    Months(i64),
}

impl Unit {
    fn parse(name: &str, text: &str) -> Result<Unit> {
        let upper = text.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SQL_TSI_").unwrap_or(&upper);
        Ok(match bare {
            "SECOND" => Unit::Fixed(1),
            "MINUTE" => Unit::Fixed(60),
            "HOUR" => Unit::Fixed(3600),
            "DAY" => Unit::Fixed(86_400),
            "WEEK" => Unit::Fixed(7 * 86_400),
            "MONTH" => Unit::Months(1),
            "QUARTER" => Unit::Months(3),
            "YEAR" => Unit::Months(12),
            _ => return plan_err!("{name}: unknown time unit '{text}'; use one of {}", UNITS.join(", ")),
        })
    }

    /// Whether adding it to a DATE gives a DATE (whole days).
    fn is_whole_days(self) -> bool {
        match self {
            Unit::Fixed(seconds) => seconds % 86_400 == 0,
            Unit::Months(_) => true,
        }
    }

    fn add(self, t: &NaiveDateTime, count: i64) -> Option<NaiveDateTime> {
        match self {
            Unit::Fixed(seconds) => t.checked_add_signed(TimeDelta::try_seconds(seconds.checked_mul(count)?)?),
            Unit::Months(months) => add_months(t, months.checked_mul(count)?),
        }
    }

    /// Whole units from `from` to `to`, truncated towards zero.
    fn between(self, from: &NaiveDateTime, to: &NaiveDateTime) -> Option<i64> {
        match self {
            Unit::Fixed(seconds) => {
                let micros = to.signed_duration_since(*from).num_microseconds()?;
                Some(micros / (seconds * 1_000_000))
            }
            Unit::Months(months) => Some(months_between(from, to)? / months),
        }
    }
}

fn add_months(t: &NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let magnitude = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 { t.checked_add_months(magnitude) } else { t.checked_sub_months(magnitude) }
}

/// The most months that can be added to `from` without passing `to` (negative when `to` is
/// earlier).
fn months_between(from: &NaiveDateTime, to: &NaiveDateTime) -> Option<i64> {
    use chrono::Datelike;
    if to < from {
        return months_between(to, from).map(|m| -m);
    }
    let mut months = i64::from(to.year() - from.year()) * 12 + i64::from(to.month()) - i64::from(from.month());
    while months > 0 && add_months(from, months)? > *to {
        months -= 1;
    }
    Some(months)
}

/// The unit argument, which must be a literal as the result type depends on it.
fn literal_unit(name: &str, args: &ReturnFieldArgs) -> Result<Unit> {
    match literal_str(args, 0) {
        Some(Some(text)) => Unit::parse(name, text),
        _ => plan_err!("{name}: the first argument must be a time unit such as 'DAY' ({})", UNITS.join(", ")),
    }
}

fn unit_at_run_time(name: &str, args: &ScalarFunctionArgs) -> Result<Unit> {
    match &args.args[0] {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(text))) => Unit::parse(name, text),
        _ => exec_err!("{name}: the first argument must be a literal time unit"),
    }
}

/// `TIMESTAMPADD(unit, interval, timepoint)`: a DATE stays a DATE for whole-day units.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimestampAdd {
    signature: Signature,
}

impl TimestampAdd {
    fn result_type(unit: Unit, timepoint: &DataType) -> DataType {
        match timepoint {
            DataType::Date32 if unit.is_whole_days() => DataType::Date32,
            DataType::Timestamp(..) => timepoint.clone(),
            _ => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }
}

impl ScalarUDFImpl for TimestampAdd {
    fn name(&self) -> &str {
        "timestampadd"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("TIMESTAMPADD", arg_types, &[&[Param::Str, Param::Int, Param::Time]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!("TIMESTAMPADD: the result type depends on the unit, which must be a literal")
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let unit = literal_unit("TIMESTAMPADD", &args)?;
        Ok(field(self.name(), Self::result_type(unit, args.arg_fields[2].data_type())))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let unit = unit_at_run_time("TIMESTAMPADD", &args)?;
        let output = args.return_type().clone();
        let arrays = Arrays::new(&args)?;
        let counts = arrays.int(1)?;
        let times = datetimes(arrays.get(2))?;
        let sums: Vec<Option<NaiveDateTime>> = times
            .iter()
            .enumerate()
            .map(|(row, t)| t.as_ref().filter(|_| counts.is_valid(row)).and_then(|t| unit.add(t, counts.value(row))))
            .collect();
        let result: ArrayRef = match &output {
            DataType::Date32 => {
                Arc::new(Date32Array::from_iter(sums.iter().map(|t| t.map(|t| Date32Type::from_naive_date(t.date())))))
            }
            DataType::Timestamp(unit, _) => {
                let values = Int64Array::from_iter(sums.iter().map(|t| {
                    let t = t.as_ref()?.and_utc();
                    match unit {
                        TimeUnit::Second => Some(t.timestamp()),
                        TimeUnit::Millisecond => Some(t.timestamp_millis()),
                        TimeUnit::Microsecond => Some(t.timestamp_micros()),
                        TimeUnit::Nanosecond => t.timestamp_nanos_opt(),
                    }
                }));
                arrow::compute::cast(&values, &output)?
            }
            other => return exec_err!("TIMESTAMPADD: unexpected result type {other}"),
        };
        Ok(ColumnarValue::Array(result))
    }
}

/// `TIMESTAMPDIFF(unit, timepoint1, timepoint2)`: whole units from timepoint1 to timepoint2, as INT.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimestampDiff {
    signature: Signature,
}

impl ScalarUDFImpl for TimestampDiff {
    fn name(&self) -> &str {
        "timestampdiff"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("TIMESTAMPDIFF", arg_types, &[&[Param::Str, Param::Time, Param::Time]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        literal_unit("TIMESTAMPDIFF", &args)?;
        Ok(field(self.name(), DataType::Int32))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let unit = unit_at_run_time("TIMESTAMPDIFF", &args)?;
        let arrays = Arrays::new(&args)?;
        let from = datetimes(arrays.get(1))?;
        let to = datetimes(arrays.get(2))?;
        let mut out = Int32Builder::with_capacity(arrays.rows());
        for (from, to) in from.iter().zip(&to) {
            let (Some(from), Some(to)) = (from, to) else {
                out.append_null();
                continue;
            };
            let units = unit.between(from, to).and_then(|n| i32::try_from(n).ok());
            out.append_value(
                units.ok_or_else(|| exec_datafusion_err!("TIMESTAMPDIFF: the result does not fit an INT"))?,
            );
        }
        array(out.finish())
    }
}

/// The token rewrite the parser needs for Flink's spelling: in `TIMESTAMPADD(DAY, ...)` and
/// `TIMESTAMPDIFF(DAY, ...)`, the bare unit word becomes the string literal `'DAY'` at the same
/// position. Returns whether it changed anything.
pub fn unit_keyword_to_literal(tokens: &mut [datafusion::sql::sqlparser::tokenizer::TokenWithSpan]) -> bool {
    use datafusion::sql::sqlparser::tokenizer::Token;
    let mut changed = false;
    let significant: Vec<usize> =
        (0..tokens.len()).filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_))).collect();
    for window in significant.windows(3) {
        let [name, open, unit] = [window[0], window[1], window[2]];
        let is_function = matches!(&tokens[name].token, Token::Word(w)
            if w.quote_style.is_none()
                && (w.value.eq_ignore_ascii_case("TIMESTAMPADD") || w.value.eq_ignore_ascii_case("TIMESTAMPDIFF")));
        if !is_function || tokens[open].token != Token::LParen {
            continue;
        }
        if let Token::Word(w) = &tokens[unit].token
            && w.quote_style.is_none()
            && Unit::parse("", &w.value).is_ok()
        {
            tokens[unit].token = Token::SingleQuotedString(w.value.to_ascii_uppercase());
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn months_clamp_to_the_end_of_the_month() {
        let month = Unit::Months(1);
        assert_eq!(month.add(&at("2024-01-31 10:00:00"), 1), Some(at("2024-02-29 10:00:00")));
        assert_eq!(month.add(&at("2024-03-31 10:00:00"), -1), Some(at("2024-02-29 10:00:00")));
        assert_eq!(month.between(&at("2024-01-31 10:00:00"), &at("2024-02-29 10:00:00")), Some(1));
        assert_eq!(month.between(&at("2024-01-15 10:00:00"), &at("2024-02-15 09:59:59")), Some(0));
        assert_eq!(month.between(&at("2024-02-15 10:00:00"), &at("2024-01-15 10:00:01")), Some(0));
        assert_eq!(month.between(&at("2024-02-15 10:00:00"), &at("2024-01-15 10:00:00")), Some(-1));
        assert_eq!(Unit::Months(12).between(&at("2020-02-29 00:00:00"), &at("2024-02-28 00:00:00")), Some(3));
    }

    #[test]
    fn fixed_units_truncate_towards_zero() {
        let day = Unit::Fixed(86_400);
        assert_eq!(day.between(&at("2003-01-02 10:00:00"), &at("2003-01-03 10:00:00")), Some(1));
        assert_eq!(day.between(&at("2003-01-03 10:00:00"), &at("2003-01-02 10:00:01")), Some(0));
        assert_eq!(day.between(&at("2003-01-03 10:00:00"), &at("2003-01-02 10:00:00")), Some(-1));
    }

    #[test]
    fn bare_units_become_literals() {
        use datafusion::sql::sqlparser::dialect::GenericDialect;
        use datafusion::sql::sqlparser::tokenizer::Tokenizer;
        let sql = "SELECT TIMESTAMPADD(DAY, 1, ts), timestampdiff ( month , a, b ), f(DAY) FROM t";
        let mut tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().unwrap_or_default();
        assert!(unit_keyword_to_literal(&mut tokens));
        let text: String = tokens.iter().map(|t| t.token.to_string()).collect();
        assert_eq!(text, "SELECT TIMESTAMPADD('DAY', 1, ts), timestampdiff ( 'MONTH' , a, b ), f(DAY) FROM t");
    }
}
