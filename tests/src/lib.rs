//! Shared helpers for streamsql's integration tests.
//!
//! - [`TestDir`]: a fresh directory per test under the system temp dir, removed when the test
//!   passes and kept (its path printed) when it fails.
//! - [`write_jsonl`] / [`write_text`] / [`read_jsonl`]: input and output files.
//! - [`plan`], [`run_specs`], [`run_script`]: SQL script → pipelines → reports.
//! - [`Cell`], [`rows_from_batches`], [`rows_from_jsonl`], [`diff_rows`]: typed rows read from a
//!   DataFusion result or from a JSON-lines sink, compared as multisets with a float tolerance.
//! - [`oracle`]: the event-time window contract computed independently of the engine.
//! - [`flight`]: real Flight SQL clients (ADBC, JDBC) and an in-process server of live tables.
//! - [`fuzz`]: the SQL fuzzer behind `sql-fuzz` and `tests/fuzz.rs`.

pub mod cassandra;
pub mod flight;
pub mod fuzz;
pub mod kafka;
pub mod oracle;

use std::cmp::Ordering as CmpOrdering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema,
    TimeUnit, TimestampMillisecondType, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

pub use streamsql_engine::pipeline::PipelineSpec;
pub use streamsql_engine::runtime::PipelineReport;
pub use streamsql_sql::{Session, SqlError};

/// A directory of its own for one test. Removed on drop unless the test is panicking, so the
/// inputs and outputs of a failing test can be looked at.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `<temp>/streamsql-tests/<name>-<pid>-<n>-<nanos>`.
    pub fn new(name: &str) -> TestDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path =
            std::env::temp_dir().join("streamsql-tests").join(format!("{name}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A file inside the directory, as the text of a SQL string literal (quotes doubled).
    pub fn sql_path(&self, name: &str) -> String {
        sql_quote(&self.file(name).to_string_lossy())
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Doubles single quotes so `text` can sit inside a SQL string literal.
pub fn sql_quote(text: &str) -> String {
    text.replace('\'', "''")
}

/// Writes `text` to `path` as is.
pub fn write_text(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Writes one JSON value per line.
pub fn write_jsonl<'a>(path: &Path, rows: impl IntoIterator<Item = &'a Value>) {
    let mut text = String::new();
    for row in rows {
        text.push_str(&row.to_string());
        text.push('\n');
    }
    write_text(path, &text);
}

/// Reads a JSON-lines file back as objects (blank lines are skipped).
pub fn read_jsonl(path: &Path) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => object,
            Ok(other) => panic!("{}:{}: expected a JSON object, got {other}", path.display(), i + 1),
            Err(e) => panic!("{}:{}: invalid JSON ({e}): {line}", path.display(), i + 1),
        })
        .collect()
}

/// Plans a script in a fresh session over the built-in connectors.
pub fn plan(sql: &str) -> Result<Vec<PipelineSpec>, SqlError> {
    Session::new(streamsql_connectors::registry()).execute(sql)
}

/// Describes a planning error with its location, for test failure messages.
pub fn describe_sql_error(error: &SqlError) -> String {
    match error.location() {
        Some((line, column)) => format!("{} (at line {line}, column {column})", error.message()),
        None => error.message().to_string(),
    }
}

/// Starts every pipeline in order and waits for each one before starting the next.
pub async fn run_specs(specs: Vec<PipelineSpec>) -> anyhow::Result<Vec<PipelineReport>> {
    let mut reports = Vec::with_capacity(specs.len());
    for spec in specs {
        let name = spec.name.clone();
        let running = streamsql_engine::runtime::start(spec);
        let report = running.join().await.map_err(|e| anyhow!("pipeline '{name}' failed: {e}"))?;
        reports.push(report);
    }
    Ok(reports)
}

/// Plans `sql` in a fresh session, then runs every pipeline it produced, in order.
pub async fn run_script(sql: &str) -> anyhow::Result<Vec<PipelineReport>> {
    let specs = plan(sql).map_err(|e| anyhow!("planning failed: {}\n--- script ---\n{sql}", describe_sql_error(&e)))?;
    run_specs(specs).await
}

/// One value of a result row, typed loosely enough to compare engine output with an oracle.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Milliseconds since the epoch.
    Ts(i64),
}

/// A result row.
pub type Row = Vec<Cell>;

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Bool(b) => write!(f, "{b}"),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Float(x) => write!(f, "{x:?}"),
            Cell::Str(s) => write!(f, "{s:?}"),
            Cell::Ts(ms) => write!(f, "{}", streamsql_engine::time::format_millis(*ms)),
        }
    }
}

/// Formats a row as `[a, b, c]`.
pub fn show_row(row: &[Cell]) -> String {
    format!("[{}]", row.iter().map(Cell::to_string).collect::<Vec<_>>().join(", "))
}

impl Cell {
    fn rank(&self) -> u8 {
        match self {
            Cell::Null => 0,
            Cell::Bool(_) => 1,
            Cell::Int(_) | Cell::Float(_) => 2,
            Cell::Str(_) => 3,
            Cell::Ts(_) => 4,
        }
    }

    /// A total order, used to sort rows before comparing them.
    pub fn total_cmp(&self, other: &Cell) -> CmpOrdering {
        match (self, other) {
            (Cell::Bool(a), Cell::Bool(b)) => a.cmp(b),
            (Cell::Int(a), Cell::Int(b)) => a.cmp(b),
            (Cell::Int(a), Cell::Float(b)) => (*a as f64).total_cmp(b),
            (Cell::Float(a), Cell::Int(b)) => a.total_cmp(&(*b as f64)),
            (Cell::Float(a), Cell::Float(b)) => a.total_cmp(b),
            (Cell::Str(a), Cell::Str(b)) => a.cmp(b),
            (Cell::Ts(a), Cell::Ts(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    /// Equality with a relative tolerance for floats (`|a - b| <= tol * max(|a|, |b|, 1)`).
    pub fn approx_eq(&self, other: &Cell, tolerance: f64) -> bool {
        let close = |a: f64, b: f64| a == b || (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1.0);
        match (self, other) {
            (Cell::Float(a), Cell::Float(b)) => close(*a, *b),
            (Cell::Float(a), Cell::Int(b)) | (Cell::Int(b), Cell::Float(a)) => close(*a, *b as f64),
            _ => self.total_cmp(other) == CmpOrdering::Equal && self.rank() == other.rank(),
        }
    }
}

fn rows_cmp(a: &[Cell], b: &[Cell]) -> CmpOrdering {
    for (x, y) in a.iter().zip(b) {
        let o = x.total_cmp(y);
        if o != CmpOrdering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

fn rows_approx_eq(a: &[Cell], b: &[Cell], tolerance: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.approx_eq(y, tolerance))
}

/// Sorts rows into the order [`diff_rows`] compares them in.
pub fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| rows_cmp(a, b));
}

/// Compares two multisets of rows (floats within `tolerance`, relative). `None` when they are
/// equal, else a description of the first differences (missing / unexpected rows, in order).
pub fn diff_rows(expected: &[Row], actual: &[Row], tolerance: f64) -> Option<String> {
    let mut expected = expected.to_vec();
    let mut actual = actual.to_vec();
    sort_rows(&mut expected);
    sort_rows(&mut actual);
    let (mut i, mut j) = (0, 0);
    let mut differences = Vec::new();
    let mut total = 0usize;
    while i < expected.len() || j < actual.len() {
        let step = match (expected.get(i), actual.get(j)) {
            (Some(e), Some(a)) if rows_approx_eq(e, a, tolerance) => {
                i += 1;
                j += 1;
                continue;
            }
            (Some(e), Some(a)) => {
                if rows_cmp(e, a) != CmpOrdering::Greater {
                    i += 1;
                    format!("  missing    {}", show_row(e))
                } else {
                    j += 1;
                    format!("  unexpected {}", show_row(a))
                }
            }
            (Some(e), None) => {
                i += 1;
                format!("  missing    {}", show_row(e))
            }
            (None, Some(a)) => {
                j += 1;
                format!("  unexpected {}", show_row(a))
            }
            (None, None) => unreachable!(),
        };
        total += 1;
        if differences.len() < 12 {
            differences.push(step);
        }
    }
    if total == 0 {
        return None;
    }
    Some(format!(
        "{} expected rows, {} actual rows, {total} differing (first {} shown; 'missing' = expected but not produced):\n{}",
        expected.len(),
        actual.len(),
        differences.len(),
        differences.join("\n")
    ))
}

/// Converts DataFusion / Arrow results into rows.
pub fn rows_from_batches(batches: &[RecordBatch]) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for batch in batches {
        let mut columns: Vec<Vec<Cell>> = Vec::with_capacity(batch.num_columns());
        for column in batch.columns() {
            columns.push(cells_of(column.as_ref())?);
        }
        for r in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[r].clone()).collect());
        }
    }
    Ok(rows)
}

fn cells_of(array: &dyn Array) -> anyhow::Result<Vec<Cell>> {
    let n = array.len();
    let cell = |i: usize, value: Cell| if array.is_null(i) { Cell::Null } else { value };
    Ok(match array.data_type() {
        DataType::Null => vec![Cell::Null; n],
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..n).map(|i| cell(i, Cell::Bool(a.value(i)))).collect()
        }
        DataType::Int8 => {
            let a = array.as_primitive::<Int8Type>();
            (0..n).map(|i| cell(i, Cell::Int(a.value(i).into()))).collect()
        }
        DataType::Int16 => {
            let a = array.as_primitive::<Int16Type>();
            (0..n).map(|i| cell(i, Cell::Int(a.value(i).into()))).collect()
        }
        DataType::Int32 => {
            let a = array.as_primitive::<Int32Type>();
            (0..n).map(|i| cell(i, Cell::Int(a.value(i).into()))).collect()
        }
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            (0..n).map(|i| cell(i, Cell::Int(a.value(i)))).collect()
        }
        DataType::UInt32 => {
            let a = array.as_primitive::<UInt32Type>();
            (0..n).map(|i| cell(i, Cell::Int(a.value(i).into()))).collect()
        }
        DataType::UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            (0..n)
                .map(|i| Ok(cell(i, Cell::Int(i64::try_from(a.value(i)).context("UInt64 out of range")?))))
                .collect::<anyhow::Result<_>>()?
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            (0..n).map(|i| cell(i, Cell::Float(a.value(i).into()))).collect()
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            (0..n).map(|i| cell(i, Cell::Float(a.value(i)))).collect()
        }
        DataType::Timestamp(TimeUnit::Millisecond, None) => {
            let a = array.as_primitive::<TimestampMillisecondType>();
            (0..n).map(|i| cell(i, Cell::Ts(a.value(i)))).collect()
        }
        DataType::Decimal128(_, scale) => {
            let a = array.as_primitive::<Decimal128Type>();
            let divisor = 10f64.powi(i32::from(*scale));
            (0..n).map(|i| cell(i, Cell::Float(a.value(i) as f64 / divisor))).collect()
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            (0..n).map(|i| cell(i, Cell::Str(a.value_as_date(i).map(|d| d.to_string()).unwrap_or_default()))).collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let a = arrow::compute::cast(array, &DataType::Utf8)?;
            let a = a.as_string::<i32>();
            (0..n).map(|i| cell(i, Cell::Str(a.value(i).to_string()))).collect()
        }
        other => bail!("rows_from_batches: unsupported type {other}"),
    })
}

/// Parses a sink timestamp, which must be written as `YYYY-MM-DD HH:MM:SS.fff`.
pub fn parse_sink_timestamp(text: &str) -> Option<i64> {
    if text.len() != 23 {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.3f").ok().map(|t| t.and_utc().timestamp_millis())
}

/// Reads a JSON-lines sink file into rows of `schema` (the expected sink schema), checking the
/// sink's format contract on the way: exactly the schema's keys, timestamps as
/// `"YYYY-MM-DD HH:MM:SS.fff"` strings, numbers as JSON numbers, NULL as `null`.
pub fn rows_from_jsonl(path: &Path, schema: &Schema) -> anyhow::Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => object,
            Ok(_) => bail!("{}: not a JSON object: {line}", at()),
            Err(e) => bail!("{}: invalid JSON ({e}): {line}", at()),
        };
        if object.len() != schema.fields().len() {
            bail!(
                "{}: expected keys {:?}, got {:?}",
                at(),
                schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
                object.keys().collect::<Vec<_>>()
            );
        }
        let mut row = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let value = object
                .get(field.name())
                .ok_or_else(|| anyhow!("{}: key '{}' missing in {line}", at(), field.name()))?;
            let bad =
                || anyhow!("{}: key '{}' of type {}: unexpected value {value}", at(), field.name(), field.data_type());
            let cell = match (value, field.data_type()) {
                (Value::Null, _) => Cell::Null,
                (Value::Bool(b), DataType::Boolean) => Cell::Bool(*b),
                (Value::Number(n), t) if t.is_integer() => Cell::Int(n.as_i64().ok_or_else(bad)?),
                (Value::Number(n), t) if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
                    Cell::Float(n.as_f64().ok_or_else(bad)?)
                }
                (Value::String(s), DataType::Date32) => {
                    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
                    Cell::Str(s.clone())
                }
                (Value::String(s), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => Cell::Str(s.clone()),
                (Value::String(s), DataType::Timestamp(..)) => Cell::Ts(parse_sink_timestamp(s).ok_or_else(bad)?),
                _ => return Err(bad()),
            };
            row.push(cell);
        }
        rows.push(row);
    }
    Ok(rows)
}
