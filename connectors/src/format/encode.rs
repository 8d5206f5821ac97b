//! Encoding batches as JSON lines or CSV.

use std::io::Write;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use streamsql_engine::{Result, StreamError};

use super::{Format, RowFormatter, TIMESTAMP_FORMAT, json_quoted, non_finite};

/// Writes batches to `out` in one format. CSV gets a header row before the first batch.
pub struct RecordWriter<W: Write> {
    format: Format,
    out: W,
    schema: SchemaRef,
    delimiter: u8,
    header_written: bool,
    line: String,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(format: Format, out: W, schema: SchemaRef, delimiter: u8) -> Self {
        Self { format, out, schema, delimiter, header_written: false, line: String::new() }
    }

    /// Whether the CSV header row was written (always true for JSON, which has none).
    pub fn header_written(&self) -> bool {
        self.header_written || self.format == Format::Json
    }

    /// A writer whose CSV header row is already in its output (or not), as when appending to
    /// a file cut back to a checkpoint.
    pub fn with_header_written(mut self, written: bool) -> Self {
        self.header_written = written;
        self
    }

    /// A writer whose CSV has no header row (records sent one by one, as Kafka values).
    pub fn without_header(mut self) -> Self {
        self.header_written = true;
        self
    }

    /// Appends every row of `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self.format {
            Format::Json => self.write_json(batch),
            Format::Csv => self.write_csv(batch),
        }
        .map_err(|e| StreamError::io("writing records", e))
    }

    /// Ends the output: a CSV file with no rows still gets its header.
    pub fn finish(&mut self) -> Result<()> {
        if self.format == Format::Csv && !self.header_written {
            let mut writer = csv::WriterBuilder::new().delimiter(self.delimiter).from_writer(&mut self.out);
            let written = writer
                .write_record(self.schema.fields().iter().map(|f| f.name().as_str()))
                .and_then(|_| writer.flush().map_err(Into::into));
            written.map_err(|e| StreamError::io("writing the CSV header", e.into()))?;
            self.header_written = true;
        }
        Ok(())
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn write_json(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        let schema = batch.schema();
        let rows = RowFormatter::new(batch, "").map_err(std::io::Error::other)?;
        let keys: Vec<String> = schema.fields().iter().map(|f| json_string(f.name())).collect();
        let quoted: Vec<bool> = schema.fields().iter().map(|f| json_quoted(f.data_type())).collect();
        for row in 0..batch.num_rows() {
            self.line.clear();
            self.line.push('{');
            for (i, column) in batch.columns().iter().enumerate() {
                if i > 0 {
                    self.line.push(',');
                }
                self.line.push_str(&keys[i]);
                self.line.push(':');
                if column.is_null(row) || non_finite(column.as_ref(), row) {
                    self.line.push_str("null");
                } else if nested(column.data_type()) {
                    nested_json(column.as_ref(), row, &mut self.line).map_err(std::io::Error::other)?;
                } else if quoted[i] {
                    self.line.push_str(&json_string(&rows.value(i, row)));
                } else {
                    self.line.push_str(&rows.value(i, row));
                }
            }
            self.line.push_str("}\n");
            self.out.write_all(self.line.as_bytes())?;
        }
        Ok(())
    }

    fn write_csv(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        let mut writer = csv::WriterBuilder::new().delimiter(self.delimiter).from_writer(&mut self.out);
        if !self.header_written {
            writer.write_record(self.schema.fields().iter().map(|f| f.name().as_str()))?;
            self.header_written = true;
        }
        let rows = RowFormatter::new(batch, "").map_err(std::io::Error::other)?;
        let nested_columns: Vec<bool> = batch.columns().iter().map(|c| nested(c.data_type())).collect();
        for row in 0..batch.num_rows() {
            let mut values = rows.values(row);
            // ROW, ARRAY and MAP cells as JSON text, which the CSV reader takes back.
            for (i, value) in values.iter_mut().enumerate() {
                if nested_columns[i] && !batch.column(i).is_null(row) {
                    value.clear();
                    nested_json(batch.column(i).as_ref(), row, value).map_err(std::io::Error::other)?;
                }
            }
            writer.write_record(values)?;
        }
        writer.flush()
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// Whether values of this type are ROWs, ARRAYs or MAPs.
fn nested(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Struct(_) | DataType::List(_) | DataType::LargeList(_) | DataType::Map(..))
}

/// Appends the value at `row` of a ROW, ARRAY or MAP column (or of a leaf inside one) as JSON: a
/// ROW as an object by field name, an ARRAY as an array, a MAP as an object; leaves as at the
/// top level (timestamps as `YYYY-MM-DD HH:MM:SS.fff` text, NaN and infinities as null).
fn nested_json(array: &dyn Array, row: usize, out: &mut String) -> std::result::Result<(), ArrowError> {
    if array.is_null(row) || non_finite(array, row) {
        out.push_str("null");
        return Ok(());
    }
    match array.data_type() {
        DataType::Struct(fields) => {
            let array = array.as_struct();
            out.push('{');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(field.name()));
                out.push(':');
                nested_json(array.column(i).as_ref(), row, out)?;
            }
            out.push('}');
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let items = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(row),
                _ => array.as_list::<i64>().value(row),
            };
            out.push('[');
            for i in 0..items.len() {
                if i > 0 {
                    out.push(',');
                }
                nested_json(items.as_ref(), i, out)?;
            }
            out.push(']');
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                let key = ArrayFormatter::try_new(entries.column(0).as_ref(), &FormatOptions::default())?;
                out.push_str(&json_string(&key.value(i).try_to_string()?));
                out.push(':');
                nested_json(entries.column(1).as_ref(), i, out)?;
            }
            out.push('}');
        }
        leaf => {
            let options = FormatOptions::default()
                .with_timestamp_format(Some(TIMESTAMP_FORMAT))
                .with_timestamp_tz_format(Some(TIMESTAMP_FORMAT));
            let text = ArrayFormatter::try_new(array, &options)?.value(row).try_to_string()?;
            if json_quoted(leaf) {
                out.push_str(&json_string(&text));
            } else {
                out.push_str(&text);
            }
        }
    }
    Ok(())
}
