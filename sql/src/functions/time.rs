//! Timestamps to text and back, with Java patterns: `DATE_FORMAT`, `TO_TIMESTAMP`, `TO_DATE`,
//! `FROM_UNIXTIME`, `UNIX_TIMESTAMP`, `TO_TIMESTAMP_LTZ`; and the clock: `NOW`, `CURRENT_TIMESTAMP`,
//! `LOCALTIMESTAMP`, `CURRENT_ROW_TIMESTAMP`, `CURRENT_DATE`; and `CONVERT_TZ`.
//!
//! Timestamps without a zone are wall-clock time, read and written as UTC: Flink's documented
//! examples assume a UTC session, and streamsql has no session time zone yet.

use arrow::array::{Array, ArrayRef, AsArray, Date32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{
    DataType, Date32Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Arrays, Compiled, Param, array, coerce, field, literal, literal_str};
use super::java_format::{DEFAULT_DATE, DEFAULT_TIMESTAMP, JavaPattern};

pub(super) fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(DateFormat::new()),
        ScalarUDF::new_from_impl(ToTimestamp::new()),
        ScalarUDF::new_from_impl(ToDate::new()),
        ScalarUDF::new_from_impl(FromUnixtime::new()),
        ScalarUDF::new_from_impl(UnixTimestamp::new()),
        ScalarUDF::new_from_impl(ToTimestampLtz::new()),
        ScalarUDF::new_from_impl(Now::new(
            "now",
            &["current_timestamp", "localtimestamp", "current_row_timestamp", "proctime"],
        )),
        ScalarUDF::new_from_impl(Now::new("current_date", &[])),
        ScalarUDF::new_from_impl(ConvertTz { signature: Signature::user_defined(Volatility::Immutable) }),
    ]
}

/// The values of a TIMESTAMP (any precision; with a zone, as UTC), DATE or STRING argument as
/// date-times, one per row; NULL and unparsable text are `None`.
pub(super) fn datetimes(array: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>> {
    use arrow::array::temporal_conversions::as_datetime;
    fn convert<T: arrow::datatypes::ArrowPrimitiveType<Native = N>, N: Into<i64> + Copy>(
        array: &ArrayRef,
    ) -> Vec<Option<NaiveDateTime>> {
        array.as_primitive::<T>().iter().map(|v| v.and_then(|v| as_datetime::<T>(v.into()))).collect()
    }
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => convert::<TimestampSecondType, _>(array),
        DataType::Timestamp(TimeUnit::Millisecond, _) => convert::<TimestampMillisecondType, _>(array),
        DataType::Timestamp(TimeUnit::Microsecond, _) => convert::<TimestampMicrosecondType, _>(array),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => convert::<TimestampNanosecondType, _>(array),
        DataType::Date32 => convert::<Date32Type, _>(array),
        DataType::Utf8 => array.as_string::<i32>().iter().map(|s| s.and_then(parse_timestamp_text)).collect(),
        DataType::Null => vec![None; array.len()],
        other => return exec_err!("expected a TIMESTAMP, DATE or STRING, got {other}"),
    })
}

/// Text as Flink reads a timestamp without a pattern: `yyyy-MM-dd[( |T)HH:mm[:ss[.fraction]]]`.
pub(super) fn parse_timestamp_text(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|d| d.and_time(chrono::NaiveTime::MIN))
}

/// Compiles a pattern argument written as a literal, so a bad one fails the plan.
fn check_literal_pattern(name: &str, args: &ReturnFieldArgs, i: usize, parsing: bool) -> Result<()> {
    if let Some(Some(pattern)) = literal_str(args, i) {
        let compiled = match JavaPattern::compile(pattern) {
            Ok(compiled) => compiled,
            Err(e) => return plan_err!("{name}: {e}"),
        };
        if parsing && let Some(e) = compiled.parse_error() {
            return plan_err!("{name}: {e}");
        }
    }
    Ok(())
}

fn compile_at_run_time(name: &str) -> impl Fn(&str) -> Result<JavaPattern> + '_ {
    move |pattern| JavaPattern::compile(pattern).map_err(|e| exec_datafusion_err!("{name}: {e}"))
}

fn millis(t: &NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

/// `DATE_FORMAT(timestamp | string, pattern)`: the timestamp as text in a Java pattern.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("DATE_FORMAT", arg_types, &[&[Param::TimeOrStr, Param::Str]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        check_literal_pattern("DATE_FORMAT", &args, 1, false)?;
        Ok(field(self.name(), DataType::Utf8))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let times = datetimes(arrays.get(0))?;
        let patterns = arrays.str(1)?;
        let mut compiled = Compiled::new();
        let compile = compile_at_run_time("DATE_FORMAT");
        let mut out = StringBuilder::with_capacity(arrays.rows(), arrays.rows() * 20);
        let mut text = String::new();
        for (row, time) in times.iter().enumerate() {
            match time {
                Some(t) if patterns.is_valid(row) => {
                    let pattern = compiled.get(patterns.value(row), &compile)?;
                    text.clear();
                    pattern.format(t, &mut text);
                    out.append_value(&text);
                }
                _ => out.append_null(),
            }
        }
        array(out.finish())
    }
}

/// `TO_TIMESTAMP(string[, pattern])`: text parsed as a TIMESTAMP(3); NULL when it does not match.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestamp {
    signature: Signature,
}

impl ToTimestamp {
    fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        "to_timestamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("TO_TIMESTAMP", arg_types, &[&[Param::Str], &[Param::Str, Param::Str]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        check_literal_pattern("TO_TIMESTAMP", &args, 1, true)?;
        Ok(field(self.name(), DataType::Timestamp(TimeUnit::Millisecond, None)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let texts = arrays.str(0)?;
        let mut out = TimestampMillisecondBuilder::with_capacity(arrays.rows());
        let mut compiled = Compiled::new();
        let compile = compile_at_run_time("TO_TIMESTAMP");
        for row in 0..arrays.rows() {
            if arrays.any_null(row) {
                out.append_null();
                continue;
            }
            let text = texts.value(row);
            let parsed = if arrays.len() == 2 {
                compiled.get(arrays.str(1)?.value(row), &compile)?.parse(text)
            } else {
                parse_timestamp_text(text)
            };
            out.append_option(parsed.as_ref().map(millis));
        }
        array(out.finish())
    }
}

/// `TO_DATE(string[, pattern])`: text parsed as a DATE; NULL when it does not match.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToDate {
    signature: Signature,
}

impl ToDate {
    fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ToDate {
    fn name(&self) -> &str {
        "to_date"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("TO_DATE", arg_types, &[&[Param::Str], &[Param::Str, Param::Str]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        check_literal_pattern("TO_DATE", &args, 1, true)?;
        Ok(field(self.name(), DataType::Date32))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let texts = arrays.str(0)?;
        let mut out = Date32Builder::with_capacity(arrays.rows());
        let mut compiled = Compiled::new();
        let compile = compile_at_run_time("TO_DATE");
        let default = compile(DEFAULT_DATE)?;
        for row in 0..arrays.rows() {
            if arrays.any_null(row) {
                out.append_null();
                continue;
            }
            let text = texts.value(row);
            let parsed = if arrays.len() == 2 {
                compiled.get(arrays.str(1)?.value(row), &compile)?.parse(text)
            } else {
                // Flink reads the date in front of a time part, if there is one.
                default.parse(text.trim().split(' ').next().unwrap_or(""))
            };
            out.append_option(parsed.map(|t| Date32Type::from_naive_date(t.date())));
        }
        array(out.finish())
    }
}

/// `FROM_UNIXTIME(seconds[, pattern])`: epoch seconds as text (UTC), by default
/// `yyyy-MM-dd HH:mm:ss`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FromUnixtime {
    signature: Signature,
}

impl FromUnixtime {
    fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for FromUnixtime {
    fn name(&self) -> &str {
        "from_unixtime"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("FROM_UNIXTIME", arg_types, &[&[Param::Int], &[Param::Int, Param::Str]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        check_literal_pattern("FROM_UNIXTIME", &args, 1, false)?;
        Ok(field(self.name(), DataType::Utf8))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let seconds = arrays.int(0)?;
        let mut out = StringBuilder::with_capacity(arrays.rows(), arrays.rows() * 19);
        let mut compiled = Compiled::new();
        let compile = compile_at_run_time("FROM_UNIXTIME");
        let default = compile(DEFAULT_TIMESTAMP)?;
        let mut text = String::new();
        for row in 0..arrays.rows() {
            let time = DateTime::from_timestamp(seconds.value(row), 0).map(|t| t.naive_utc());
            match time {
                Some(t) if !arrays.any_null(row) => {
                    let pattern =
                        if arrays.len() == 2 { compiled.get(arrays.str(1)?.value(row), &compile)? } else { &default };
                    text.clear();
                    pattern.format(&t, &mut text);
                    out.append_value(&text);
                }
                _ => out.append_null(),
            }
        }
        array(out.finish())
    }
}

/// `UNIX_TIMESTAMP()`: now in epoch seconds; `UNIX_TIMESTAMP(string[, pattern])`: text (UTC)
/// in epoch seconds, `-9223372036854775808` (Java's `Long.MIN_VALUE`) when it does not match, as
/// in Flink.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UnixTimestamp {
    signature: Signature,
}

impl UnixTimestamp {
    fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Volatile) }
    }
}

impl ScalarUDFImpl for UnixTimestamp {
    fn name(&self) -> &str {
        "unix_timestamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("UNIX_TIMESTAMP", arg_types, &[&[], &[Param::Str], &[Param::Str, Param::Str]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        check_literal_pattern("UNIX_TIMESTAMP", &args, 1, true)?;
        Ok(field(self.name(), DataType::Int64))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.is_empty() {
            let now = chrono::Utc::now().timestamp();
            return Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(now))));
        }
        let arrays = Arrays::new(&args)?;
        let texts = arrays.str(0)?;
        let mut out = Int64Builder::with_capacity(arrays.rows());
        let mut compiled = Compiled::new();
        let compile = compile_at_run_time("UNIX_TIMESTAMP");
        let default = compile(DEFAULT_TIMESTAMP)?;
        for row in 0..arrays.rows() {
            if arrays.any_null(row) {
                out.append_null();
                continue;
            }
            let pattern = if arrays.len() == 2 { compiled.get(arrays.str(1)?.value(row), &compile)? } else { &default };
            // Java divides milliseconds by 1000, truncating towards zero.
            out.append_value(pattern.parse(texts.value(row)).map_or(i64::MIN, |t| millis(&t) / 1000));
        }
        array(out.finish())
    }
}

/// `TO_TIMESTAMP_LTZ(epoch, precision)`: epoch seconds (precision 0) or milliseconds (3) as a
/// timestamp, shown in UTC.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestampLtz {
    signature: Signature,
}

impl ToTimestampLtz {
    fn new() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

fn ltz_precision(args: &ReturnFieldArgs) -> Result<()> {
    match literal(args, 1) {
        Some(v) if matches!(v.clone().cast_to(&DataType::Int64), Ok(ScalarValue::Int64(Some(0 | 3)))) => Ok(()),
        Some(v) => {
            plan_err!("TO_TIMESTAMP_LTZ: precision must be 0 (epoch seconds) or 3 (epoch milliseconds), got {v}")
        }
        None => plan_err!("TO_TIMESTAMP_LTZ: precision must be a literal 0 or 3"),
    }
}

impl ScalarUDFImpl for ToTimestampLtz {
    fn name(&self) -> &str {
        "to_timestamp_ltz"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("TO_TIMESTAMP_LTZ", arg_types, &[&[Param::Int, Param::Int], &[Param::Num, Param::Int]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        ltz_precision(&args)?;
        Ok(field(self.name(), DataType::Timestamp(TimeUnit::Millisecond, None)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let precisions = arrays.int(1)?;
        let mut out = TimestampMillisecondBuilder::with_capacity(arrays.rows());
        let integers = arrays.get(0).data_type().is_integer();
        for row in 0..arrays.rows() {
            if arrays.any_null(row) {
                out.append_null();
                continue;
            }
            let scale = match precisions.value(row) {
                0 => 1000.0,
                3 => 1.0,
                other => return exec_err!("TO_TIMESTAMP_LTZ: precision must be 0 or 3, got {other}"),
            };
            let ms = if integers {
                arrays.int(0)?.value(row).checked_mul(scale as i64)
            } else {
                let ms = (arrays.float(0)?.value(row) * scale).floor();
                (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64)
            };
            // Beyond chrono's range of dates: NULL, as Flink gives for out-of-range epochs.
            out.append_option(ms.filter(|ms| DateTime::from_timestamp_millis(*ms).is_some()));
        }
        array(out.finish())
    }
}

/// `NOW()`, `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP`, `CURRENT_ROW_TIMESTAMP()`, `PROCTIME()`: the
/// time a row is processed, as Flink evaluates them per record in a streaming query (DataFusion's `now()` is
/// fixed when a batch query starts); `CURRENT_DATE`: its date.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Now {
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
}

impl Now {
    fn new(name: &'static str, aliases: &[&str]) -> Self {
        Self {
            name,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            signature: Signature::user_defined(Volatility::Volatile),
        }
    }

    fn is_date(&self) -> bool {
        self.name == "current_date"
    }
}

impl ScalarUDFImpl for Now {
    fn name(&self) -> &str {
        self.name
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(&self.name.to_uppercase(), arg_types, &[&[]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.is_date() { DataType::Date32 } else { DataType::Timestamp(TimeUnit::Millisecond, None) })
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now = chrono::Utc::now();
        Ok(ColumnarValue::Scalar(if self.is_date() {
            ScalarValue::Date32(Some(Date32Type::from_naive_date(now.date_naive())))
        } else {
            ScalarValue::TimestampMillisecond(Some(now.timestamp_millis()), None)
        }))
    }
}

/// A time zone as Java's `TimeZone.getTimeZone` reads one: a region (`America/Los_Angeles`),
/// `UTC`, or an offset (`GMT-08:00`, `UTC+8`, `+05:30`). `None` for anything else (Java would
/// silently take GMT).
fn time_zone(name: &str) -> Option<arrow::array::timezone::Tz> {
    let name = name.trim();
    let offset = ["GMT", "UTC", ""]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix).filter(|rest| rest.starts_with(['+', '-'])));
    let Some(offset) = offset else {
        return name.parse().ok();
    };
    let (sign, rest) = offset.split_at(1);
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() > 2 => rest.split_at(rest.len() - 2),
        None => (rest, "00"),
    };
    let digits = |s: &str, max: u32| s.parse::<u32>().ok().filter(|v| *v <= max && !s.is_empty() && s.len() <= 2);
    let (hours, minutes) = (digits(hours, 18)?, digits(minutes, 59)?);
    format!("{sign}{hours:02}:{minutes:02}").parse().ok()
}

/// The wall-clock time `t` of zone `from`, in zone `to`. A time that falls in a gap (clocks
/// going forward) moves forward by the gap, one that occurs twice takes the earlier, as in Java.
fn convert_zone(
    t: &NaiveDateTime,
    from: &arrow::array::timezone::Tz,
    to: &arrow::array::timezone::Tz,
) -> Option<NaiveDateTime> {
    use chrono::TimeZone;
    let instant = match from.from_local_datetime(t).earliest() {
        Some(instant) => instant,
        None => from.from_local_datetime(&(*t + chrono::TimeDelta::hours(1))).earliest()?,
    };
    Some(instant.with_timezone(to).naive_local())
}

/// `CONVERT_TZ(string, from_zone, to_zone)`: a `yyyy-MM-dd HH:mm:ss` time of one zone as the
/// same instant in another.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConvertTz {
    signature: Signature,
}

impl ScalarUDFImpl for ConvertTz {
    fn name(&self) -> &str {
        "convert_tz"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("CONVERT_TZ", arg_types, &[&[Param::Str, Param::Str, Param::Str]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        for i in [1, 2] {
            if let Some(Some(zone)) = literal_str(&args, i)
                && time_zone(zone).is_none()
            {
                return plan_err!(
                    "CONVERT_TZ: unknown time zone '{zone}'; use a region such as 'America/Los_Angeles', 'UTC' or an offset such as 'GMT-08:00'"
                );
            }
        }
        Ok(field(self.name(), DataType::Utf8))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let (texts, froms, tos) = (arrays.str(0)?, arrays.str(1)?, arrays.str(2)?);
        let mut out = StringBuilder::with_capacity(arrays.rows(), arrays.rows() * 19);
        for row in 0..arrays.rows() {
            let converted = if arrays.any_null(row) {
                None
            } else {
                let zones = time_zone(froms.value(row)).zip(time_zone(tos.value(row)));
                parse_timestamp_text(texts.value(row))
                    .zip(zones)
                    .and_then(|(t, (from, to))| convert_zone(&t, &from, &to))
            };
            out.append_option(converted.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()));
        }
        array(out.finish())
    }
}
