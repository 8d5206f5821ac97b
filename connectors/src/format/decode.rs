//! Decoding text records into Arrow columns.
//!
//! A [`RecordDecoder`] appends one record at a time, each value straight into its column's
//! builder (the common types without an intermediate cell); a record with a value it cannot
//! read is finished with NULLs and its row cut from the batch when the batch is made, so a
//! skipped record leaves no trace in the batch.
//!
//! Fields are found by the column names as declared ([`declared_name`]): a JSON object's keys
//! are matched case-sensitively, as in Flink, by [`JsonColumns`], which also counts the
//! records that lack a declared field (read as NULL) and warns once about a key that differs
//! from a column only in case.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};
use streamsql_engine::{Result, StreamError};

use super::parse;

/// The timestamps a TIMESTAMP(3) column takes: years 0 to 9999, in epoch milliseconds.
const TIMESTAMP_RANGE_MS: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;

/// One decoded value, before it is appended.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(i128),
    Date(i32),
    Millis(i64),
    /// A ROW, ARRAY or MAP value, checked against the column's type and normalized (leaves in
    /// the forms the Arrow JSON decoder reads exactly).
    Nested(Value),
}

enum Builder {
    Utf8(StringBuilder),
    Boolean(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Date32(Date32Builder),
    /// With the minute of the last timestamp read, which the next one likely shares.
    Timestamp(TimestampMillisecondBuilder, parse::MinuteCache),
    /// ROW, ARRAY and MAP columns: normalized JSON values, made into an array by Arrow's JSON
    /// decoder when the batch is finished.
    Nested(DataType, Vec<Value>),
}

impl Builder {
    fn new(data_type: &DataType) -> Result<Self> {
        Ok(match data_type {
            DataType::Utf8 => Builder::Utf8(StringBuilder::new()),
            DataType::Boolean => Builder::Boolean(BooleanBuilder::new()),
            DataType::Int8 => Builder::Int8(Int8Builder::new()),
            DataType::Int16 => Builder::Int16(Int16Builder::new()),
            DataType::Int32 => Builder::Int32(Int32Builder::new()),
            DataType::Int64 => Builder::Int64(Int64Builder::new()),
            DataType::Float32 => Builder::Float32(Float32Builder::new()),
            DataType::Float64 => Builder::Float64(Float64Builder::new()),
            DataType::Decimal128(p, s) => {
                Builder::Decimal(Decimal128Builder::new().with_precision_and_scale(*p, *s)?, *p, *s)
            }
            DataType::Date32 => Builder::Date32(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Millisecond, None) => {
                Builder::Timestamp(TimestampMillisecondBuilder::new(), parse::MinuteCache::default())
            }
            nested @ (DataType::Struct(_) | DataType::List(_) | DataType::Map(..)) => {
                // Every leaf type must be one we read.
                for leaf in leaf_types(nested) {
                    Builder::new(&leaf)?;
                }
                Builder::Nested(nested.clone(), Vec::new())
            }
            other => {
                return Err(StreamError::Config(format!("columns of type {other} cannot be read from files yet")));
            }
        })
    }

    /// The SQL name of the type, for error messages.
    fn type_name(&self) -> String {
        match self {
            Builder::Utf8(_) => "STRING".into(),
            Builder::Boolean(_) => "BOOLEAN".into(),
            Builder::Int8(_) => "TINYINT".into(),
            Builder::Int16(_) => "SMALLINT".into(),
            Builder::Int32(_) => "INT".into(),
            Builder::Int64(_) => "BIGINT".into(),
            Builder::Float32(_) => "FLOAT".into(),
            Builder::Float64(_) => "DOUBLE".into(),
            Builder::Decimal(_, p, s) => format!("DECIMAL({p}, {s})"),
            Builder::Date32(_) => "DATE (YYYY-MM-DD)".into(),
            Builder::Timestamp(..) => "TIMESTAMP(3) (YYYY-MM-DD HH:MM:SS[.fff], ISO-8601 or epoch milliseconds)".into(),
            Builder::Nested(data_type, _) => streamsql_engine::types::sql_name(data_type),
        }
    }

    /// Converts text (a CSV field or a JSON string) into a cell of this column's type.
    fn cell_from_text(&self, text: &str) -> Option<Cell> {
        let trimmed = parse::trim(text);
        if trimmed.is_empty() && !matches!(self, Builder::Utf8(_)) {
            return Some(Cell::Null);
        }
        Some(match self {
            // A nested value written as JSON text (a CSV field).
            Builder::Nested(data_type, _) => {
                Cell::Nested(normalize(&serde_json::from_str::<Value>(text).ok()?, data_type)?)
            }
            Builder::Utf8(_) => Cell::Str(text.to_string()),
            Builder::Boolean(_) => Cell::Bool(parse::boolean(trimmed)?),
            Builder::Int8(_) | Builder::Int16(_) | Builder::Int32(_) | Builder::Int64(_) => {
                Cell::Int(trimmed.parse().ok()?)
            }
            Builder::Float32(_) | Builder::Float64(_) => Cell::Float(trimmed.parse().ok()?),
            Builder::Decimal(_, p, s) => Cell::Decimal(parse::decimal(trimmed, *p, *s)?),
            Builder::Date32(_) => Cell::Date(parse::date_days(trimmed)?),
            Builder::Timestamp(..) => Cell::Millis(parse::timestamp_millis(trimmed)?),
        })
    }

    /// Reads `text` into this column: `false` (nothing appended) when it is not a value of
    /// the column's type. The common types are read without making a [`Cell`].
    fn append_text(&mut self, text: &str) -> bool {
        match self {
            Builder::Utf8(b) => b.append_value(text),
            Builder::Int64(b) => match parse::trim(text) {
                "" => b.append_null(),
                trimmed => match trimmed.parse() {
                    Ok(v) => b.append_value(v),
                    Err(_) => return false,
                },
            },
            Builder::Int32(b) => match parse::trim(text) {
                "" => b.append_null(),
                trimmed => match trimmed.parse::<i64>().ok().and_then(|v| i32::try_from(v).ok()) {
                    Some(v) => b.append_value(v),
                    None => return false,
                },
            },
            Builder::Timestamp(b, minute) => match parse::trim(text) {
                "" => b.append_null(),
                trimmed => match parse::timestamp_millis_in(trimmed, minute) {
                    Some(ms) if TIMESTAMP_RANGE_MS.contains(&ms) => b.append_value(ms),
                    _ => return false,
                },
            },
            builder => match builder.cell_from_text(text) {
                Some(cell) if builder.fits(&cell) => builder.append_cell(cell),
                _ => return false,
            },
        }
        true
    }

    /// Reads a JSON value into this column, as [`Builder::append_text`] reads text.
    fn append_json(&mut self, value: &Value) -> bool {
        match (&mut *self, value) {
            (builder, Value::String(text)) => return builder.append_json_str(text),
            // What `cell_from_json` makes of an integer, without the cell.
            (Builder::Int64(b), Value::Number(n)) if n.is_i64() || n.is_u64() => match n.as_i64() {
                Some(v) => b.append_value(v),
                None => return false,
            },
            (builder, value) => match builder.cell_from_json(value) {
                Some(cell) if builder.fits(&cell) => builder.append_cell(cell),
                _ => return false,
            },
        }
        true
    }

    /// Reads a JSON string value into this column: as text, except into a nested column,
    /// whose value is never a string (`cell_from_json` says so).
    fn append_json_str(&mut self, text: &str) -> bool {
        match self {
            Builder::Utf8(b) => b.append_value(text),
            Builder::Nested(..) => return false,
            builder => return builder.append_text(text),
        }
        true
    }

    fn append_cell(&mut self, cell: Cell) {
        match cell {
            Cell::Null => self.append_null(),
            cell => self.append(cell),
        }
    }

    /// Converts a JSON value into a cell of this column's type.
    fn cell_from_json(&self, value: &Value) -> Option<Cell> {
        if let Builder::Nested(data_type, _) = self {
            return match value {
                Value::Null => Some(Cell::Null),
                value => normalize(value, data_type).map(Cell::Nested),
            };
        }
        match value {
            Value::Null => Some(Cell::Null),
            Value::String(s) => self.cell_from_text(s),
            Value::Bool(b) => match self {
                Builder::Boolean(_) => Some(Cell::Bool(*b)),
                Builder::Utf8(_) => Some(Cell::Str(b.to_string())),
                _ => None,
            },
            Value::Number(n) => match self {
                Builder::Int8(_)
                | Builder::Int16(_)
                | Builder::Int32(_)
                | Builder::Int64(_)
                | Builder::Timestamp(..) => {
                    let i = n
                        .as_i64()
                        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))?;
                    Some(if matches!(self, Builder::Timestamp(..)) { Cell::Millis(i) } else { Cell::Int(i) })
                }
                Builder::Float32(_) | Builder::Float64(_) => Some(Cell::Float(n.as_f64()?)),
                Builder::Utf8(_) | Builder::Decimal(..) => self.cell_from_text(&n.to_string()),
                _ => None,
            },
            Value::Array(_) | Value::Object(_) => match self {
                Builder::Utf8(_) => Some(Cell::Str(value.to_string())),
                _ => None,
            },
        }
    }

    /// Whether `cell` fits this column (integer ranges, timestamps within years 0..9999).
    fn fits(&self, cell: &Cell) -> bool {
        match (self, cell) {
            (Builder::Timestamp(..), Cell::Millis(ms)) => TIMESTAMP_RANGE_MS.contains(ms),
            (Builder::Int8(_), Cell::Int(v)) => i8::try_from(*v).is_ok(),
            (Builder::Int16(_), Cell::Int(v)) => i16::try_from(*v).is_ok(),
            (Builder::Int32(_), Cell::Int(v)) => i32::try_from(*v).is_ok(),
            _ => true,
        }
    }

    fn append(&mut self, cell: Cell) {
        match (self, cell) {
            (Builder::Utf8(b), Cell::Str(s)) => b.append_value(s),
            (Builder::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            (Builder::Int8(b), Cell::Int(v)) => b.append_value(v as i8),
            (Builder::Int16(b), Cell::Int(v)) => b.append_value(v as i16),
            (Builder::Int32(b), Cell::Int(v)) => b.append_value(v as i32),
            (Builder::Int64(b), Cell::Int(v)) => b.append_value(v),
            (Builder::Float32(b), Cell::Float(v)) => b.append_value(v as f32),
            (Builder::Float64(b), Cell::Float(v)) => b.append_value(v),
            (Builder::Decimal(b, ..), Cell::Decimal(v)) => b.append_value(v),
            (Builder::Date32(b), Cell::Date(v)) => b.append_value(v),
            (Builder::Timestamp(b, _), Cell::Millis(v)) => b.append_value(v),
            (Builder::Nested(_, values), Cell::Nested(v)) => values.push(v),
            (builder, _) => builder.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Utf8(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal(b, ..) => b.append_null(),
            Builder::Date32(b) => b.append_null(),
            Builder::Timestamp(b, _) => b.append_null(),
            Builder::Nested(_, values) => values.push(Value::Null),
        }
    }

    /// The values appended so far as an array; the builder starts again with room for as many
    /// (and, for strings, as many bytes), so a batch does not grow its buffers from nothing.
    fn finish(&mut self) -> Result<ArrayRef> {
        use std::mem::replace;
        Ok(match self {
            Builder::Nested(data_type, values) => nested_array(data_type, std::mem::take(values))?,
            Builder::Utf8(b) => {
                let fresh = StringBuilder::with_capacity(b.len(), b.values_slice().len());
                Arc::new(replace(b, fresh).finish())
            }
            Builder::Boolean(b) => Arc::new(replace(b, BooleanBuilder::with_capacity(b.len())).finish()),
            Builder::Int8(b) => Arc::new(replace(b, Int8Builder::with_capacity(b.len())).finish()),
            Builder::Int16(b) => Arc::new(replace(b, Int16Builder::with_capacity(b.len())).finish()),
            Builder::Int32(b) => Arc::new(replace(b, Int32Builder::with_capacity(b.len())).finish()),
            Builder::Int64(b) => Arc::new(replace(b, Int64Builder::with_capacity(b.len())).finish()),
            Builder::Float32(b) => Arc::new(replace(b, Float32Builder::with_capacity(b.len())).finish()),
            Builder::Float64(b) => Arc::new(replace(b, Float64Builder::with_capacity(b.len())).finish()),
            Builder::Decimal(b, p, s) => {
                let fresh = Decimal128Builder::with_capacity(b.len()).with_precision_and_scale(*p, *s)?;
                Arc::new(replace(b, fresh).finish())
            }
            Builder::Date32(b) => Arc::new(replace(b, Date32Builder::with_capacity(b.len())).finish()),
            Builder::Timestamp(b, _) => {
                Arc::new(replace(b, TimestampMillisecondBuilder::with_capacity(b.len())).finish())
            }
        })
    }

    fn len(&self) -> usize {
        match self {
            Builder::Utf8(b) => b.len(),
            Builder::Boolean(b) => b.len(),
            Builder::Int8(b) => b.len(),
            Builder::Int16(b) => b.len(),
            Builder::Int32(b) => b.len(),
            Builder::Int64(b) => b.len(),
            Builder::Float32(b) => b.len(),
            Builder::Float64(b) => b.len(),
            Builder::Decimal(b, ..) => b.len(),
            Builder::Date32(b) => b.len(),
            Builder::Timestamp(b, _) => b.len(),
            Builder::Nested(_, values) => values.len(),
        }
    }
}

/// The scalar types inside a nested type.
fn leaf_types(data_type: &DataType) -> Vec<DataType> {
    match data_type {
        DataType::Struct(fields) => fields.iter().flat_map(|f| leaf_types(f.data_type())).collect(),
        DataType::List(element) => leaf_types(element.data_type()),
        DataType::Map(entries, _) => leaf_types(entries.data_type()),
        leaf => vec![leaf.clone()],
    }
}

/// `value` checked against `data_type` and normalized for Arrow's JSON decoder: a ROW is an
/// object (absent fields NULL, other keys ignored), an ARRAY an array, a MAP an object of
/// values; each leaf is read as a top-level column of its type would be (the same text forms)
/// and written back in a form the decoder reads exactly (timestamps as epoch milliseconds,
/// dates as days, decimals as text). `None` when something does not fit.
fn normalize(value: &Value, data_type: &DataType) -> Option<Value> {
    if value.is_null() {
        return Some(Value::Null);
    }
    match data_type {
        DataType::Struct(fields) => {
            let object = value.as_object()?;
            let mut out = Map::with_capacity(fields.len());
            for field in fields {
                let inner = object.get(field.name()).unwrap_or(&Value::Null);
                out.insert(field.name().clone(), normalize(inner, field.data_type())?);
            }
            Some(Value::Object(out))
        }
        DataType::List(element) => {
            let items = value.as_array()?;
            items.iter().map(|item| normalize(item, element.data_type())).collect::<Option<Vec<_>>>().map(Value::Array)
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else { return None };
            let object = value.as_object()?;
            let mut out = Map::with_capacity(object.len());
            for (key, inner) in object {
                out.insert(key.clone(), normalize(inner, kv.get(1)?.data_type())?);
            }
            Some(Value::Object(out))
        }
        leaf => {
            let builder = Builder::new(leaf).ok()?;
            let cell = builder.cell_from_json(value)?;
            if !builder.fits(&cell) {
                return None;
            }
            Some(match cell {
                Cell::Null => Value::Null,
                Cell::Str(s) => Value::String(s),
                Cell::Bool(b) => Value::Bool(b),
                Cell::Int(i) | Cell::Millis(i) => Value::from(i),
                Cell::Date(d) => Value::from(d),
                Cell::Float(f) => Value::from(serde_json::Number::from_f64(f)?),
                // Exactly the value read (rounded to the scale), as text.
                Cell::Decimal(unscaled) => {
                    let DataType::Decimal128(precision, scale) = leaf else { return None };
                    Value::String(<arrow::datatypes::Decimal128Type as arrow::datatypes::DecimalType>::format_decimal(
                        unscaled, *precision, *scale,
                    ))
                }
                Cell::Nested(v) => v,
            })
        }
    }
}

/// The array of a nested column from its normalized values.
fn nested_array(data_type: &DataType, values: Vec<Value>) -> Result<ArrayRef> {
    let field = Arc::new(Field::new("v", data_type.clone(), true));
    let schema = Arc::new(Schema::new(vec![field]));
    let mut decoder = arrow::json::ReaderBuilder::new(schema).with_batch_size(values.len().max(1)).build_decoder()?;
    let rows: Vec<Value> = values.into_iter().map(|v| serde_json::json!({ "v": v })).collect();
    decoder.serialize(&rows)?;
    match decoder.flush()? {
        Some(batch) => Ok(batch.column(0).clone()),
        None => Ok(arrow::array::new_empty_array(data_type)),
    }
}

/// Builds batches of `schema` from records, one record at a time.
///
/// A record's values are appended column by column as they are read; when one cannot be read,
/// the rest of the row is filled with NULLs and the row is left out of the batch when it is
/// finished, so a rejected record never reaches a batch.
pub struct RecordDecoder {
    schema: SchemaRef,
    builders: Vec<Builder>,
    /// Rows in the builders that were rejected, in order.
    rejected: Vec<usize>,
}

/// A field of a record, as the format sees it.
pub enum FieldValue<'a> {
    Missing,
    Text(&'a str),
    Json(&'a Value),
    /// A JSON string value, read as `Json(Value::String(..))` would be, without the `Value`.
    JsonStr(&'a str),
}

impl RecordDecoder {
    pub fn new(schema: SchemaRef) -> Result<Self> {
        let builders = schema
            .fields()
            .iter()
            .map(|f| {
                Builder::new(f.data_type()).map_err(|e| match e {
                    StreamError::Config(m) => StreamError::Config(format!("column '{}': {m}", f.name())),
                    other => other,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { schema, builders, rejected: Vec::new() })
    }

    /// The schema of the batches it builds.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows decoded and not yet taken by [`RecordDecoder::finish`].
    pub fn rows(&self) -> usize {
        self.builders.first().map_or(0, Builder::len) - self.rejected.len()
    }

    /// Decodes one record given a function from column index to its field. On error the record
    /// leaves nothing in the batch and the reason names the column.
    pub fn push<'a>(&mut self, field: impl Fn(usize) -> FieldValue<'a>) -> std::result::Result<(), String> {
        for i in 0..self.builders.len() {
            let value = field(i);
            let builder = &mut self.builders[i];
            let appended = match &value {
                FieldValue::Missing => {
                    builder.append_null();
                    true
                }
                FieldValue::Text(text) => builder.append_text(text),
                FieldValue::Json(json) => builder.append_json(json),
                FieldValue::JsonStr(text) => builder.append_json_str(text),
            };
            if !appended {
                let reason = format!(
                    "column '{}': cannot read {} as {}",
                    self.schema.field(i).name(),
                    match value {
                        FieldValue::Missing => String::new(),
                        FieldValue::Text(text) => text.to_string(),
                        FieldValue::Json(json) => json.to_string(),
                        FieldValue::JsonStr(text) => Value::from(text).to_string(),
                    },
                    builder.type_name()
                );
                let row = builder.len();
                for builder in &mut self.builders[i..] {
                    builder.append_null();
                }
                self.rejected.push(row);
                return Err(reason);
            }
        }
        Ok(())
    }

    /// The rows decoded so far as a batch (and starts a new one).
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let rows = self.builders.first().map_or(0, Builder::len);
        let columns = self.builders.iter_mut().map(Builder::finish).collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        if self.rejected.is_empty() {
            return Ok(batch);
        }
        let mut keep = vec![true; rows];
        for row in self.rejected.drain(..) {
            keep[row] = false;
        }
        Ok(arrow::compute::filter_record_batch(&batch, &arrow::array::BooleanArray::from(keep))?)
    }
}

/// Field metadata under which the SQL layer keeps a column's name as declared (`emailAddress`)
/// when its SQL name is lower-cased (`emailaddress`); the same key as
/// `streamsql_sql::planner::ddl::DECLARED_NAME`.
pub const DECLARED_NAME: &str = "streamsql.declared_name";

/// The name of `field` as declared in CREATE TABLE: what a JSON key or CSV header must say.
pub fn declared_name(field: &Field) -> &str {
    field.metadata().get(DECLARED_NAME).map_or(field.name().as_str(), String::as_str)
}

/// Finds the columns of a table in JSON objects: keys match the declared names exactly.
pub struct JsonColumns {
    names: Vec<String>,
    by_name: HashMap<String, usize>,
    /// Declared names lower-cased, to notice keys that differ in case only.
    by_folded_name: HashMap<String, usize>,
    /// Whether a key differing from the column only in case was warned about; shared by the
    /// readers of one source (its decoding threads), so each warning comes once.
    warned: Arc<[AtomicBool]>,
    /// Records without each column's key.
    missing: Vec<u64>,
    /// Records without at least one column's key.
    records_missing: u64,
    /// Where such records are counted for the end-of-run report, while counting is on.
    metrics: Option<Arc<streamsql_engine::metrics::PipelineMetrics>>,
    counting: bool,
    /// The keys [`JsonColumns::read_object`] found that are no column.
    other_keys: Vec<String>,
}

impl JsonColumns {
    pub fn new(schema: &Schema) -> Self {
        let names: Vec<String> = schema.fields().iter().map(|f| declared_name(f).to_string()).collect();
        Self {
            by_name: names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect(),
            by_folded_name: names.iter().enumerate().map(|(i, n)| (n.to_lowercase(), i)).collect(),
            warned: names.iter().map(|_| AtomicBool::new(false)).collect(),
            missing: vec![0; names.len()],
            records_missing: 0,
            metrics: None,
            counting: true,
            other_keys: Vec::new(),
            names,
        }
    }

    /// Counts the records lacking a declared field in `metrics` too (`rows_missing_fields`).
    pub fn with_metrics(mut self, metrics: Arc<streamsql_engine::metrics::PipelineMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Warns about keys in other case only where `other` (another reader of the same source,
    /// with the same columns) has not warned yet, and the other way round.
    pub fn sharing_warnings_with(mut self, other: &JsonColumns) -> Self {
        if other.warned.len() == self.warned.len() {
            self.warned = other.warned.clone();
        }
        self
    }

    /// Whether records are counted (off while a restored source reads again what it had read).
    pub fn set_counting(&mut self, counting: bool) {
        self.counting = counting;
    }

    /// The value of each column in `object` (`None` when its key is absent); keys that are not
    /// columns are ignored. `table` names the table in the warning about a key in other case.
    /// Count the record with [`JsonColumns::count_missing`] once it is decoded.
    pub fn fields<'a>(&mut self, object: &'a Map<String, Value>, table: &str) -> Vec<Option<&'a Value>> {
        let mut fields: Vec<Option<&Value>> = vec![None; self.names.len()];
        for (key, value) in object {
            if let Some(&i) = self.by_name.get(key) {
                fields[i] = Some(value);
            } else {
                self.other_key(key, table);
            }
        }
        fields
    }

    /// Warns, once per column, about a key that is no column but differs from one only in case.
    fn other_key(&mut self, key: &str, table: &str) {
        if let Some(&i) = self.by_folded_name.get(&key.to_lowercase())
            && !self.warned[i].swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "table '{table}': JSON key \"{key}\" is not column \"{}\", which differs only in case; keys \
                 match columns as declared, so the column is read as NULL where the key is written \"{key}\" \
                 (declare the column as \"{key}\" to read it)",
                self.names[i]
            );
        }
    }

    /// The values of the columns in the JSON object `text`, `None` where its key is absent
    /// (keys that are not columns are skipped unread), as [`JsonColumns::fields`] finds them in
    /// the parsed object, without building the object (string values are borrowed from `text`
    /// where they have no escapes). `None` when `text` is not a JSON object (parse it as a
    /// [`Value`] to say why). Count the record with [`JsonColumns::count_missing_of`] once it
    /// is decoded.
    pub fn read_object<'a>(&mut self, text: &'a str, table: &str) -> Option<Vec<Option<JsonField<'a>>>> {
        let mut values = Vec::new();
        values.resize_with(self.names.len(), || None);
        self.other_keys.clear();
        let columns = Columns { names: &self.names, by_name: &self.by_name };
        if scan_plain_object(text, columns, &mut values, &mut self.other_keys).is_none() {
            values.iter_mut().for_each(|value| *value = None);
            self.other_keys.clear();
            read_object_with_serde(text, columns, &mut values, &mut self.other_keys)?;
        }
        for key in std::mem::take(&mut self.other_keys) {
            self.other_key(&key, table);
        }
        Some(values)
    }

    /// Counts the columns a decoded record lacked (`fields` as [`JsonColumns::fields`] gave them).
    pub fn count_missing(&mut self, fields: &[Option<&Value>]) {
        self.count_missing_of(|i| fields[i].is_some());
    }

    /// Counts the columns a decoded record lacked: those for which `present` is false.
    pub fn count_missing_of(&mut self, present: impl Fn(usize) -> bool) {
        let mut any_missing = false;
        for i in 0..self.names.len() {
            if !present(i) {
                self.missing[i] += 1;
                any_missing = true;
            }
        }
        if any_missing && self.counting {
            self.records_missing += 1;
            if let Some(metrics) = &self.metrics {
                streamsql_engine::metrics::PipelineMetrics::add(&metrics.rows_missing_fields, 1);
            }
        }
    }

    /// Takes the records lacking a column's key counted so far, and for each column how many
    /// lacked it (for [`JsonColumns::add_missing`] of another reader of the same table).
    pub fn take_missing(&mut self) -> (u64, Vec<u64>) {
        let columns = self.missing.len();
        (std::mem::take(&mut self.records_missing), std::mem::replace(&mut self.missing, vec![0; columns]))
    }

    /// Counts records lacking columns' keys that another reader of the same table found.
    pub fn add_missing(&mut self, records: u64, per_column: &[u64]) {
        for (count, more) in self.missing.iter_mut().zip(per_column) {
            *count += more;
        }
        if records > 0 && self.counting {
            self.records_missing += records;
            if let Some(metrics) = &self.metrics {
                streamsql_engine::metrics::PipelineMetrics::add(&metrics.rows_missing_fields, records as usize);
            }
        }
    }

    /// `N rows missing field(s): name (count), ...`, if any record lacked a column's key.
    pub fn missing_summary(&self) -> Option<String> {
        if self.records_missing == 0 {
            return None;
        }
        let fields: Vec<String> = self
            .names
            .iter()
            .zip(&self.missing)
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| format!("\"{name}\" ({n})"))
            .collect();
        Some(format!(
            "{} row{} missing field(s), read as NULL: {}",
            self.records_missing,
            if self.records_missing == 1 { "" } else { "s" },
            fields.join(", ")
        ))
    }
}

/// The columns of a table, to find a key's column.
#[derive(Clone, Copy)]
struct Columns<'s> {
    names: &'s [String],
    by_name: &'s HashMap<String, usize>,
}

/// Up to this many columns, a key is found by comparing it with each name (cheaper than hashing
/// it); beyond, by the hash map.
const SCANNED_COLUMNS: usize = 16;

impl Columns<'_> {
    fn of(&self, key: &str) -> Option<usize> {
        if self.names.len() <= SCANNED_COLUMNS {
            self.names.iter().position(|name| name == key)
        } else {
            self.by_name.get(key).copied()
        }
    }
}

/// Reads the JSON object `text` with serde_json into `values` (by column) and `other_keys`;
/// `None` when it is not a JSON object.
fn read_object_with_serde<'a>(
    text: &'a str,
    columns: Columns<'_>,
    values: &mut [Option<JsonField<'a>>],
    other_keys: &mut Vec<String>,
) -> Option<()> {
    let seed = ObjectSeed { columns, values, other_keys };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(seed, &mut deserializer).ok()?;
    deserializer.end().ok()
}

/// Reads the JSON object `text` as [`read_object_with_serde`] does, without serde, where the
/// object is plain: keys without escapes; values that are strings without escapes (or control
/// characters, which make them invalid), integers of up to 18 digits, `true`, `false` or `null`
/// (any other number is read by serde_json itself). `None` at anything else (an escape, an
/// array or object value, invalid JSON), with `values` and `other_keys` partly filled: the
/// caller reads the object again with serde_json, which also says what is wrong with it.
fn scan_plain_object<'a>(
    text: &'a str,
    columns: Columns<'_>,
    values: &mut [Option<JsonField<'a>>],
    other_keys: &mut Vec<String>,
) -> Option<()> {
    let bytes = text.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_whitespace(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return (skip_whitespace(bytes, at + 1) == bytes.len()).then_some(());
    }
    let mut next_column = 0;
    loop {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = plain_string_end(bytes, at + 1)?;
        let key = &text[at + 1..key_end];
        at = skip_whitespace(bytes, key_end + 1);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_whitespace(bytes, at + 1);
        let (value, end) = match *bytes.get(at)? {
            b'"' => {
                let value_end = plain_string_end(bytes, at + 1)?;
                (JsonField::Str(std::borrow::Cow::Borrowed(&text[at + 1..value_end])), value_end + 1)
            }
            b't' if bytes[at..].starts_with(b"true") => (JsonField::Other(Value::Bool(true)), at + 4),
            b'f' if bytes[at..].starts_with(b"false") => (JsonField::Other(Value::Bool(false)), at + 5),
            b'n' if bytes[at..].starts_with(b"null") => (JsonField::Other(Value::Null), at + 4),
            b'-' | b'0'..=b'9' => scan_number(text, at)?,
            _ => return None,
        };
        // Keys mostly come in the columns' order: the column after the last key's first.
        let column = match columns.names.get(next_column) {
            Some(name) if name == key => Some(next_column),
            _ => columns.of(key),
        };
        match column {
            Some(i) => {
                values[i] = Some(value);
                next_column = i + 1;
            }
            None => other_keys.push(key.to_string()),
        }
        at = skip_whitespace(bytes, end);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => return (skip_whitespace(bytes, at + 1) == bytes.len()).then_some(()),
            _ => return None,
        }
    }
}

/// The first byte at or after `at` that is not JSON whitespace.
fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// Where the string whose contents start at `at` ends (its closing quote), if it has no escape
/// and no control character before it.
fn plain_string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let end = at + memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
    // Both passes run many bytes at a time; `fold` does not stop early, so it vectorizes.
    let control = bytes[at..end].iter().fold(false, |control, &b| control | (b < 0x20));
    (bytes[end] == b'"' && !control).then_some(end)
}

/// The number starting at `at` and where it ends: an integer of up to 18 digits read here,
/// any other by serde_json as it reads numbers in an object.
fn scan_number(text: &str, at: usize) -> Option<(JsonField<'static>, usize)> {
    let bytes = text.as_bytes();
    let negative = bytes[at] == b'-';
    let digits_start = at + usize::from(negative);
    let mut end = digits_start;
    let mut magnitude = 0_u64;
    while let Some(&b) = bytes.get(end)
        && b.is_ascii_digit()
    {
        magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        end += 1;
    }
    let digits = end - digits_start;
    let plain = (1..=18).contains(&digits)
        && !matches!(bytes.get(end), Some(b'.' | b'e' | b'E' | b'-' | b'+'))
        && (digits == 1 || bytes[digits_start] != b'0')
        // serde_json reads -0 as a float.
        && !(negative && magnitude == 0);
    if plain {
        let value = if negative { Value::from(-(magnitude as i64)) } else { Value::from(magnitude) };
        return Some((JsonField::Other(value), end));
    }
    while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = bytes.get(end) {
        end += 1;
    }
    let mut deserializer = serde_json::Deserializer::from_str(&text[at..end]);
    let field = serde::de::DeserializeSeed::deserialize(FieldSeed, &mut deserializer).ok()?;
    deserializer.end().ok()?;
    match field {
        JsonField::Other(value) => Some((JsonField::Other(value), end)),
        JsonField::Str(_) => None,
    }
}

/// Reads a JSON object's values of the columns ([`read_object_with_serde`]): a key is looked
/// up without being allocated, the values of other keys are skipped.
struct ObjectSeed<'s, 'de> {
    columns: Columns<'s>,
    values: &'s mut [Option<JsonField<'de>>],
    other_keys: &'s mut Vec<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for ObjectSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ObjectSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed { columns: self.columns })? {
            match key {
                Key::Column(i) => self.values[i] = Some(map.next_value_seed(FieldSeed)?),
                Key::Other(name) => {
                    self.other_keys.push(name);
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

enum Key {
    Column(usize),
    Other(String),
}

/// A column's value in a JSON object: a string (borrowed when it has no escapes) or any other
/// value.
#[derive(Debug, PartialEq)]
pub enum JsonField<'a> {
    Str(std::borrow::Cow<'a, str>),
    Other(Value),
}

impl<'a> JsonField<'a> {
    /// As a field of a record.
    pub fn field(&self) -> FieldValue<'_> {
        match self {
            JsonField::Str(text) => FieldValue::JsonStr(text),
            JsonField::Other(value) => FieldValue::Json(value),
        }
    }
}

/// Reads a [`JsonField`]: every value as serde_json's `Value` reads it, but a string without a
/// `String` made for it when it can be borrowed.
struct FieldSeed;

impl<'de> serde::de::DeserializeSeed<'de> for FieldSeed {
    type Value = JsonField<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldSeed {
    type Value = JsonField<'de>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Str(std::borrow::Cow::Borrowed(text)))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Str(std::borrow::Cow::Owned(text.to_string())))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Str(std::borrow::Cow::Owned(text)))
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other(Value::Bool(value)))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other(Value::from(value)))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other(Value::from(value)))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)))
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other(Value::Null))
    }

    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other(Value::Null))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> std::result::Result<Self::Value, A::Error> {
        use serde::Deserialize;
        Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(JsonField::Other)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
        use serde::Deserialize;
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(JsonField::Other)
    }
}

/// A key of a JSON object: a column's index, or another key.
struct KeySeed<'s> {
    columns: Columns<'s>,
}

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> std::result::Result<Key, E> {
        Ok(self.columns.of(key).map_or_else(|| Key::Other(key.to_string()), Key::Column))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{Int32Type, Int64Type, TimestampMillisecondType};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("port", DataType::Int32, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("bytes", DataType::Int64, true),
        ]))
    }

    /// A record rejected at its third or last column leaves nothing in the batch: the columns
    /// before it, appended already, are cut with it.
    #[test]
    fn a_rejected_record_leaves_no_trace_in_the_batch() {
        let mut decoder = RecordDecoder::new(schema()).expect("decoder");
        let records: [[&str; 4]; 5] = [
            ["a", "1", "2024-01-01 00:00:00.001", "10"],
            ["b", "2", "not a time", "20"],
            ["c", " 3 ", "2024-01-01 00:00:00.003", ""],
            ["d", "4", "2024-01-01 00:00:00.004", "x"],
            ["e", "99999999999", "2024-01-01 00:00:00.005", "50"],
        ];
        let mut errors = Vec::new();
        for record in &records {
            if let Err(reason) = decoder.push(|i| FieldValue::Text(record[i])) {
                errors.push(reason);
            }
        }
        assert_eq!(decoder.rows(), 2);
        assert_eq!(
            errors,
            [
                "column 'ts': cannot read not a time as TIMESTAMP(3) (YYYY-MM-DD HH:MM:SS[.fff], ISO-8601 or epoch \
                 milliseconds)",
                "column 'bytes': cannot read x as BIGINT",
                "column 'port': cannot read 99999999999 as INT",
            ]
        );
        let batch = decoder.finish().expect("batch");
        assert_eq!(batch.column(0).as_string::<i32>(), &StringArray::from(vec!["a", "c"]));
        assert_eq!(batch.column(1).as_primitive::<Int32Type>(), &Int32Array::from(vec![1, 3]));
        let ts = batch.column(2).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.values().to_vec(), vec![1_704_067_200_001, 1_704_067_200_003]);
        assert_eq!(batch.column(3).as_primitive::<Int64Type>(), &Int64Array::from(vec![Some(10), None]));
        // The next batch starts clean.
        decoder.push(|i| FieldValue::Text(records[0][i])).expect("a good record");
        assert_eq!(decoder.finish().expect("batch").num_rows(), 1);
    }

    /// Columns are read from a JSON object without building it: keys as declared, the last of
    /// a repeated key, other keys skipped; what is not an object is left to the caller.
    #[test]
    fn json_objects_are_read_column_by_column() {
        let mut columns = JsonColumns::new(&schema());
        let values = columns
            .read_object(r#"{"port": 1, "name": "a\"b", "extra": {"deep": [1e999]}, "Bytes": 3, "port": 2.5}"#, "t")
            .expect("an object");
        assert_eq!(values, [Some(JsonField::Str("a\"b".into())), Some(JsonField::Other(Value::from(2.5))), None, None]);
        columns.count_missing_of(|i| values[i].is_some());
        let nested = columns.read_object(r#"{"ts": [1, {"a": null}], "name": "plain"}"#, "t").expect("an object");
        assert_eq!(nested[2], Some(JsonField::Other(serde_json::json!([1, {"a": null}]))));
        assert!(matches!(&nested[0], Some(JsonField::Str(std::borrow::Cow::Borrowed("plain")))));
        assert_eq!(
            columns.missing_summary().as_deref(),
            Some(r#"1 row missing field(s), read as NULL: "ts" (1), "bytes" (1)"#)
        );
        assert!(columns.read_object("[1, 2]", "t").is_none());
        assert!(columns.read_object(r#"{"port": 1"#, "t").is_none());
        assert!(columns.read_object(r#"{"port": 1} {}"#, "t").is_none());
    }

    /// A random JSON-ish line: an object of keys that are columns or not (some escaped, some in
    /// other case) with values of every kind (integers with leading zeros, -0 and 20 digits,
    /// floats and exponents, strings with escapes and control characters, nested values,
    /// misspelt literals), in varied whitespace, then sometimes damaged (cut short, a byte put
    /// in, garbage after).
    fn random_line(rng: &mut rand::rngs::SmallRng) -> String {
        use rand::Rng;
        const KEYS: &[&str] =
            &["name", "port", "ts", "bytes", "other", "Name", "", "na\\u006de", "\\\"q", "ünï", "tab\\there"];
        const VALUES: &[&str] = &[
            "0",
            "-0",
            "7",
            "-7",
            "007",
            "-007",
            "123456789012345678",
            "-123456789012345678",
            "1234567890123456789",
            "12345678901234567890",
            "-9223372036854775808",
            "1.5",
            "-0.0",
            "1e5",
            "1E+2",
            "2.",
            "1.e3",
            ".5",
            "1e400",
            "-",
            "+1",
            "1-2",
            "\"plain\"",
            "\"\"",
            "\"with \\\"quote\\\"\"",
            "\"line\\nbreak\"",
            "\"\\u00e9t\u{e9}\"",
            "\"raw\u{1}control\"",
            "\"raw\ttab\"",
            "\"2024-01-01 00:00:00.001\"",
            "\"a long string that takes more than eight bytes\"",
            "true",
            "false",
            "null",
            "nul",
            "truex",
            "[1,2]",
            "{\"a\":1}",
            "[",
            "\"unterminated",
        ];
        const SPACES: &[&str] = &["", "", " ", "\t", "\r\n ", "\u{a0}"];
        let space = |rng: &mut rand::rngs::SmallRng| SPACES[rng.random_range(0..SPACES.len())];
        let mut line = format!("{}{{", space(rng));
        for i in 0..rng.random_range(0..6) {
            if i > 0 {
                line.push_str(if rng.random_bool(0.97) { "," } else { "" });
            }
            let key = KEYS[rng.random_range(0..KEYS.len())];
            let value = VALUES[rng.random_range(0..VALUES.len())];
            let colon = if rng.random_bool(0.98) { ":" } else { "" };
            line.push_str(&format!("{}\"{key}\"{}{colon}{}{value}{}", space(rng), space(rng), space(rng), space(rng)));
        }
        line.push_str(if rng.random_bool(0.97) { "}" } else { ",}" });
        line.push_str(space(rng));
        match rng.random_range(0..10) {
            0 => {
                let cut = rng.random_range(0..=line.len());
                line.truncate((0..=cut).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0));
            }
            1 => {
                let at = (0..=rng.random_range(0..=line.len())).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
                line.insert(at, ['"', ',', ':', '}', '\\', 'x', '\u{0}'][rng.random_range(0..7)]);
            }
            2 => line.push_str(" x"),
            _ => {}
        }
        line
    }

    /// Readers of one source warn once, together, about a key in other case.
    #[test]
    fn readers_sharing_warnings_warn_once() {
        let mut first = JsonColumns::new(&schema());
        let mut second = JsonColumns::new(&schema()).sharing_warnings_with(&first);
        let object: Map<String, Value> = serde_json::from_str(r#"{"Port": 1}"#).expect("an object");
        assert!(!second.warned[1].load(Ordering::Relaxed));
        first.fields(&object, "t");
        assert!(second.warned[1].load(Ordering::Relaxed), "the first reader's warning counts for the second");
        second.fields(&object, "t");
        assert!(!first.warned[0].load(Ordering::Relaxed));
    }

    /// The plain scan reads every object it accepts exactly as serde_json does, and accepts no
    /// line serde_json rejects, over seeded random lines, valid and not.
    #[test]
    fn the_plain_scan_reads_objects_as_serde_json_does() {
        use rand::SeedableRng;
        let json = JsonColumns::new(&schema());
        let columns = Columns { names: &json.names, by_name: &json.by_name };
        let (mut scanned, mut valid) = (0, 0);
        for seed in [1_u64, 2, 3] {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            for _ in 0..100_000 {
                let line = random_line(&mut rng);
                let (mut by_serde, mut serde_keys) = (Vec::new(), Vec::new());
                by_serde.resize_with(4, || None);
                let serde_read = read_object_with_serde(&line, columns, &mut by_serde, &mut serde_keys);
                let (mut by_scan, mut scan_keys) = (Vec::new(), Vec::new());
                by_scan.resize_with(4, || None);
                let scan_read = scan_plain_object(&line, columns, &mut by_scan, &mut scan_keys);
                valid += usize::from(serde_read.is_some());
                if scan_read.is_some() {
                    scanned += 1;
                    assert!(serde_read.is_some(), "seed {seed}: the scan accepted {line:?}, which serde_json rejects");
                    assert_eq!(by_scan, by_serde, "seed {seed}: {line:?}");
                    assert_eq!(scan_keys, serde_keys, "seed {seed}: {line:?}");
                }
            }
        }
        // Most valid lines are plain; the rest fall back to serde_json.
        assert!(scanned > valid / 2 && valid > 20_000, "{scanned} of {valid} valid lines scanned");
    }
}
