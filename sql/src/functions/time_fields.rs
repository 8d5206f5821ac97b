//! One field of a date or timestamp as BIGINT: `YEAR`, `QUARTER`, `MONTH`, `WEEK`, `DAYOFYEAR`,
//! `DAYOFMONTH`, `DAYOFWEEK`, `HOUR`, `MINUTE`, `SECOND`. DataFusion has no functions of these
//! names (it spells them `date_part`).

use arrow::array::Int64Builder;
use arrow::datatypes::DataType;
use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::args::{Arrays, Param, array, coerce};
use super::time::datetimes;

/// Which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Year,
    Quarter,
    Month,
    /// ISO 8601 week of the year.
    Week,
    DayOfYear,
    DayOfMonth,
    /// 1 = Sunday ... 7 = Saturday.
    DayOfWeek,
    Hour,
    Minute,
    Second,
}

const PARTS: [(&str, Part); 10] = [
    ("year", Part::Year),
    ("quarter", Part::Quarter),
    ("month", Part::Month),
    ("week", Part::Week),
    ("dayofyear", Part::DayOfYear),
    ("dayofmonth", Part::DayOfMonth),
    ("dayofweek", Part::DayOfWeek),
    ("hour", Part::Hour),
    ("minute", Part::Minute),
    ("second", Part::Second),
];

pub(super) fn functions() -> Vec<ScalarUDF> {
    PARTS
        .iter()
        .map(|(name, part)| {
            ScalarUDF::new_from_impl(TimeField {
                name,
                part: *part,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect()
}

impl Part {
    fn of(self, t: &NaiveDateTime) -> i64 {
        i64::from(match self {
            Part::Year => return i64::from(t.year()),
            Part::Quarter => (t.month() - 1) / 3 + 1,
            Part::Month => t.month(),
            Part::Week => t.iso_week().week(),
            Part::DayOfYear => t.ordinal(),
            Part::DayOfMonth => t.day(),
            Part::DayOfWeek => t.weekday().num_days_from_sunday() + 1,
            Part::Hour => t.hour(),
            Part::Minute => t.minute(),
            Part::Second => t.second(),
        })
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TimeField {
    name: &'static str,
    part: Part,
    signature: Signature,
}

impl ScalarUDFImpl for TimeField {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(&self.name.to_uppercase(), arg_types, &[&[Param::Time]])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = Arrays::new(&args)?;
        let mut out = Int64Builder::with_capacity(arrays.rows());
        for t in datetimes(arrays.get(0))? {
            out.append_option(t.map(|t| self.part.of(&t)));
        }
        array(out.finish())
    }
}
