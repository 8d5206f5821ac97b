//! Record formats, separate from transports: JSON lines and CSV.
//!
//! - [`csv_fields`]: CSV syntax, one physical line at a time, so a reader can bound a quoted
//!   field and resynchronise after a damaged one.
//! - [`decode`]: text records → typed Arrow columns, one record at a time, so a bad record is
//!   rejected whole (its row is cut from the batch before anyone sees it) and reported with its
//!   position.
//! - [`encode`]: Arrow batches → JSON lines / CSV text.
//! - [`parse`]: the value syntaxes we accept (timestamps, decimals, dates, booleans).

pub mod csv_fields;
pub mod decode;
pub mod encode;
pub mod parse;

use arrow::array::Array;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// `'format'`: how records are written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    pub const CHOICES: &'static [&'static str] = &["json", "csv"];

    pub fn from_choice(choice: &str) -> Self {
        if choice == "csv" { Format::Csv } else { Format::Json }
    }
}

/// `'format.on-error'`: what to do with a record that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop the pipeline with the record's position and the reason.
    Fail,
    /// Skip the record and count it.
    Skip,
}

impl OnError {
    pub const CHOICES: &'static [&'static str] = &["fail", "skip"];

    pub fn from_choice(choice: &str) -> Self {
        if choice == "skip" { OnError::Skip } else { OnError::Fail }
    }
}

/// Timestamps are shown as `YYYY-MM-DD HH:MM:SS.fff`.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// Formats the cells of a batch as text, the way results are shown to people.
pub struct RowFormatter<'a> {
    columns: Vec<ArrayFormatter<'a>>,
}

impl<'a> RowFormatter<'a> {
    pub fn new(batch: &'a RecordBatch, null: &'a str) -> Result<Self, ArrowError> {
        let options = FormatOptions::default()
            .with_null(null)
            .with_timestamp_format(Some(TIMESTAMP_FORMAT))
            .with_timestamp_tz_format(Some(TIMESTAMP_FORMAT));
        let columns =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<_, _>>()?;
        Ok(Self { columns })
    }

    /// The cells of one row.
    pub fn values(&self, row: usize) -> Vec<String> {
        (0..self.columns.len()).map(|c| self.value(c, row)).collect()
    }

    /// One cell; a value Arrow cannot render (a timestamp out of chrono's range) shows as
    /// `<invalid>` rather than failing the sink.
    pub fn value(&self, column: usize, row: usize) -> String {
        self.columns[column].value(row).try_to_string().unwrap_or_else(|_| "<invalid>".to_string())
    }
}

/// Whether values of this type are written as JSON strings (rather than numbers or booleans).
pub(crate) fn json_quoted(data_type: &DataType) -> bool {
    !(data_type.is_numeric() || matches!(data_type, DataType::Boolean | DataType::Null))
}

/// Whether the value at `row` is a float that JSON cannot represent (NaN, ±∞).
pub(crate) fn non_finite(column: &dyn Array, row: usize) -> bool {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float32Type, Float64Type};
    match column.data_type() {
        DataType::Float64 => !column.as_primitive::<Float64Type>().value(row).is_finite(),
        DataType::Float32 => !column.as_primitive::<Float32Type>().value(row).is_finite(),
        _ => false,
    }
}
