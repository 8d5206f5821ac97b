//! The event-time window contract, computed without the engine.
//!
//! For rows in input order, `wm(r) = max(ts of rows before r) - delay` (minus infinity for the
//! first row). Row `r` joins every window `W = [start, start + size)` (start a multiple of the
//! slide) with `W.start <= ts < W.end` and `wm(r) < W.end`; a row that joins no window is late.
//!
//! [`assign`] walks the rows and expands them into `(window_start, window_end, row)` in plain
//! Rust; [`Oracle::run`] then loads the expanded rows into a DataFusion `SessionContext` and runs
//! the query's GROUP BY as ordinary batch SQL.

use std::sync::Arc;

use anyhow::Context;
use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::{Row, rows_from_batches};

/// A TUMBLE, HOP or CUMULATE window, sizes in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Tumble {
        size_s: i64,
    },
    Hop {
        slide_s: i64,
        size_s: i64,
    },
    /// Windows growing by `step_s` from each period start up to `size_s`.
    Cumulate {
        step_s: i64,
        size_s: i64,
    },
}

impl Window {
    pub fn size_ms(&self) -> i64 {
        match *self {
            Window::Tumble { size_s } | Window::Hop { size_s, .. } | Window::Cumulate { size_s, .. } => size_s * 1000,
        }
    }

    pub fn slide_ms(&self) -> i64 {
        match *self {
            Window::Tumble { size_s } => size_s * 1000,
            Window::Hop { slide_s, .. } => slide_s * 1000,
            Window::Cumulate { step_s, .. } => step_s * 1000,
        }
    }

    /// `TABLE(TUMBLE(TABLE t, DESCRIPTOR(col), ...))` or the HOP equivalent; whole minutes,
    /// hours and days are written in those units.
    pub fn tvf_sql(&self, table: &str, column: &str) -> String {
        match *self {
            Window::Tumble { size_s } => {
                format!("TABLE(TUMBLE(TABLE {table}, DESCRIPTOR({column}), {}))", interval_sql(size_s))
            }
            Window::Hop { slide_s, size_s } => format!(
                "TABLE(HOP(TABLE {table}, DESCRIPTOR({column}), {}, {}))",
                interval_sql(slide_s),
                interval_sql(size_s)
            ),
            Window::Cumulate { step_s, size_s } => format!(
                "TABLE(CUMULATE(TABLE {table}, DESCRIPTOR({column}), {}, {}))",
                interval_sql(step_s),
                interval_sql(size_s)
            ),
        }
    }

    /// Every window containing `ts`, found by walking back from the latest start.
    pub fn windows_of(&self, ts: i64) -> Vec<(i64, i64)> {
        let (size, slide) = (self.size_ms(), self.slide_ms());
        if let Window::Cumulate { .. } = self {
            // The period holding `ts`, and each of its windows that ends after `ts`.
            let start = ts.div_euclid(size) * size;
            return (1..=size / slide).map(|k| (start, start + k * slide)).filter(|&(_, end)| end > ts).collect();
        }
        let mut start = ts.div_euclid(slide) * slide;
        let mut windows = Vec::new();
        while start + size > ts {
            debug_assert!(start <= ts);
            windows.push((start, start + size));
            start -= slide;
        }
        windows.reverse();
        windows
    }
}

/// `INTERVAL 'n' UNIT` in the largest unit that divides `seconds`.
pub fn interval_sql(seconds: i64) -> String {
    for (unit, length) in [("DAY", 86_400), ("HOUR", 3_600), ("MINUTE", 60)] {
        if seconds % length == 0 {
            return format!("INTERVAL '{}' {unit}", seconds / length);
        }
    }
    format!("INTERVAL '{seconds}' SECOND")
}

/// Which windows each row joins.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// Per input row, the windows it joins (empty = late).
    pub windows: Vec<Vec<(i64, i64)>>,
    /// Per input row, its watermark `wm(r)` (`None` = minus infinity).
    pub watermarks: Vec<Option<i64>>,
}

impl Assignment {
    pub fn is_late(&self, row: usize) -> bool {
        self.windows[row].is_empty()
    }

    pub fn late_count(&self) -> usize {
        self.windows.iter().filter(|w| w.is_empty()).count()
    }
}

/// Applies the contract to event times in input order.
pub fn assign(ts: &[i64], delay_ms: i64, window: Window) -> Assignment {
    let mut max: Option<i64> = None;
    let mut windows = Vec::with_capacity(ts.len());
    let mut watermarks = Vec::with_capacity(ts.len());
    for &t in ts {
        let wm = max.map(|m| m - delay_ms);
        watermarks.push(wm);
        windows.push(window.windows_of(t).into_iter().filter(|&(_, end)| wm.is_none_or(|wm| wm < end)).collect());
        max = Some(max.map_or(t, |m| m.max(t)));
    }
    Assignment { windows, watermarks }
}

/// One input row of the `events` table the oracle tests use (see [`EVENT_COLUMNS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ts: i64,
    pub k: Option<String>,
    pub k2: Option<i32>,
    pub v: Option<i64>,
    pub d: Option<f64>,
    /// `DECIMAL(10, 2)`, in hundredths.
    pub p: Option<i128>,
    pub ok: Option<bool>,
    /// `DATE`, days since the epoch.
    pub day: Option<i32>,
}

/// The `CREATE TABLE` column list matching [`Event`].
pub const EVENT_COLUMNS: &str =
    "ts TIMESTAMP(3), k STRING, k2 INT, v BIGINT, d DOUBLE, p DECIMAL(10, 2), ok BOOLEAN, day DATE";

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn event_fields() -> Vec<Field> {
    vec![
        Field::new("ts", ts_type(), false),
        Field::new("k", DataType::Utf8, true),
        Field::new("k2", DataType::Int32, true),
        Field::new("v", DataType::Int64, true),
        Field::new("d", DataType::Float64, true),
        Field::new("p", DataType::Decimal128(10, 2), true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("day", DataType::Date32, true),
    ]
}

fn event_columns(events: &[&Event]) -> Vec<ArrayRef> {
    vec![
        Arc::new(TimestampMillisecondArray::from(events.iter().map(|e| e.ts).collect::<Vec<_>>())),
        Arc::new(StringArray::from(events.iter().map(|e| e.k.clone()).collect::<Vec<_>>())),
        Arc::new(Int32Array::from(events.iter().map(|e| e.k2).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(events.iter().map(|e| e.v).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(events.iter().map(|e| e.d).collect::<Vec<_>>())),
        Arc::new(
            Decimal128Array::from(events.iter().map(|e| e.p).collect::<Vec<_>>())
                .with_precision_and_scale(10, 2)
                .expect("DECIMAL(10, 2)"),
        ),
        Arc::new(BooleanArray::from(events.iter().map(|e| e.ok).collect::<Vec<_>>())),
        Arc::new(Date32Array::from(events.iter().map(|e| e.day).collect::<Vec<_>>())),
    ]
}

/// The parts of a windowed GROUP BY query, shared by the streaming query and the oracle's batch
/// query. They may refer to `window_start`, `window_end`, `window_time` and the [`Event`]
/// columns.
#[derive(Debug, Clone)]
pub struct Query {
    pub select: String,
    pub filter: Option<String>,
    pub group_by: String,
    pub having: Option<String>,
}

impl Query {
    fn tail(&self) -> String {
        let mut sql = String::new();
        if let Some(filter) = &self.filter {
            sql.push_str(&format!(" WHERE {filter}"));
        }
        sql.push_str(&format!(" GROUP BY {}", self.group_by));
        if let Some(having) = &self.having {
            sql.push_str(&format!(" HAVING {having}"));
        }
        sql
    }

    /// `SELECT ... FROM TABLE(TUMBLE/HOP(TABLE source, DESCRIPTOR(ts), ...)) ...`.
    pub fn streaming_sql(&self, source: &str, window: Window) -> String {
        format!("SELECT {} FROM {}{}", self.select, window.tvf_sql(source, "ts"), self.tail())
    }

    /// The same query over the oracle's `expanded` table.
    pub fn batch_sql(&self) -> String {
        format!("SELECT {} FROM expanded{}", self.select, self.tail())
    }
}

/// What the streaming pipeline must produce.
#[derive(Debug)]
pub struct Expected {
    pub rows: Vec<Row>,
    /// The result schema, with the query's column names and DataFusion's types.
    pub schema: SchemaRef,
    /// Late rows among those that pass the WHERE clause.
    pub late_rows: u64,
    /// Late rows before the WHERE clause.
    pub late_unfiltered: u64,
}

/// One row per (window, row) of `assignment` (late rows have no windows), as a table with
/// `window_start`, `window_end` and `window_time` in front of the rows' own `fields`, whose
/// columns `columns` builds from the rows.
pub fn expand_windows<T>(
    rows: &[T],
    assignment: &Assignment,
    fields: Vec<Field>,
    columns: impl Fn(&[&T]) -> Vec<ArrayRef>,
) -> anyhow::Result<RecordBatch> {
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut times = Vec::new();
    let mut expanded_rows = Vec::new();
    for (row, windows) in rows.iter().zip(&assignment.windows) {
        for &(start, end) in windows {
            starts.push(start);
            ends.push(end);
            times.push(end - 1);
            expanded_rows.push(row);
        }
    }
    let mut all_fields = vec![
        Field::new("window_start", ts_type(), false),
        Field::new("window_end", ts_type(), false),
        Field::new("window_time", ts_type(), false),
    ];
    all_fields.extend(fields);
    let mut all_columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(starts)),
        Arc::new(TimestampMillisecondArray::from(ends)),
        Arc::new(TimestampMillisecondArray::from(times)),
    ];
    all_columns.extend(columns(&expanded_rows));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(all_fields)), all_columns)?)
}

/// The SQL column list (`name TYPE, ...`) of a table with `schema`, for a sink of the oracle's
/// results.
pub fn sql_columns(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| {
            let sql_type = match f.data_type() {
                DataType::Timestamp(..) => "TIMESTAMP(3)",
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING",
                DataType::Int64 | DataType::UInt64 => "BIGINT",
                DataType::Int32 => "INT",
                DataType::Float64 => "DOUBLE",
                DataType::Boolean => "BOOLEAN",
                DataType::Date32 => "DATE",
                DataType::Decimal128(p, s) => return format!("{} DECIMAL({p}, {s})", f.name()),
                other => panic!("no SQL type for oracle column {} of type {other}", f.name()),
            };
            format!("{} {sql_type}", f.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a [`Query`] over events the way the contract says a stream must.
pub struct Oracle;

impl Oracle {
    pub async fn run(events: &[Event], delay_ms: i64, window: Window, query: &Query) -> anyhow::Result<Expected> {
        let ts: Vec<i64> = events.iter().map(|e| e.ts).collect();
        let assignment = assign(&ts, delay_ms, window);

        // expanded: one row per (window, event) pair.
        let expanded = expand_windows(events, &assignment, event_fields(), event_columns)?;

        // raw: every event with its late flag, to count late rows after the WHERE clause.
        let mut fields = event_fields();
        fields.push(Field::new("late", DataType::Boolean, false));
        let all: Vec<&Event> = events.iter().collect();
        let mut columns = event_columns(&all);
        columns
            .push(Arc::new(BooleanArray::from((0..events.len()).map(|i| assignment.is_late(i)).collect::<Vec<_>>())));
        let raw = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;

        let ctx = SessionContext::new();
        ctx.register_batch("expanded", expanded)?;
        ctx.register_batch("raw", raw)?;

        let sql = query.batch_sql();
        let frame = ctx.sql(&sql).await.with_context(|| format!("oracle query: {sql}"))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.with_context(|| format!("oracle query: {sql}"))?;
        let rows = rows_from_batches(&batches)?;

        let late_sql = match &query.filter {
            Some(filter) => format!("SELECT COUNT(*) FROM raw WHERE late AND ({filter})"),
            None => "SELECT COUNT(*) FROM raw WHERE late".to_string(),
        };
        let late = rows_from_batches(&ctx.sql(&late_sql).await?.collect().await?)?;
        let late_rows = match late.first().and_then(|r| r.first()) {
            Some(crate::Cell::Int(n)) => u64::try_from(*n)?,
            other => anyhow::bail!("oracle late count: unexpected {other:?}"),
        };
        Ok(Expected { rows, schema, late_rows, late_unfiltered: assignment.late_count() as u64 })
    }
}

impl Oracle {
    /// Runs `sql` as a batch query over every event, as the table `events` (updating
    /// aggregates have no windows, so no row is late).
    pub async fn run_batch(events: &[Event], sql: &str) -> anyhow::Result<(Vec<Row>, SchemaRef)> {
        let all: Vec<&Event> = events.iter().collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(event_fields())), event_columns(&all))?;
        let ctx = SessionContext::new();
        ctx.register_batch("events", batch)?;
        let frame = ctx.sql(sql).await.with_context(|| format!("oracle query: {sql}"))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.with_context(|| format!("oracle query: {sql}"))?;
        Ok((rows_from_batches(&batches)?, schema))
    }
}

/// Replays a changelog (`+I`/`+U` add a row, `-U`/`-D` take an equal row out) into the table it
/// describes; errors when a row is taken out that is not there.
pub fn apply_changelog(changes: &[(String, Row)]) -> anyhow::Result<Vec<Row>> {
    let mut table: Vec<Row> = Vec::new();
    for (i, (op, row)) in changes.iter().enumerate() {
        match op.as_str() {
            "+I" | "+U" => table.push(row.clone()),
            "-U" | "-D" => {
                let at = table
                    .iter()
                    .position(|r| r.len() == row.len() && r.iter().zip(row).all(|(a, b)| a.approx_eq(b, 0.0)))
                    .ok_or_else(|| {
                        anyhow::anyhow!("change {i}: {op} {} retracts a row not in the result", crate::show_row(row))
                    })?;
                table.swap_remove(at);
            }
            other => anyhow::bail!("change {i}: unknown op '{other}'"),
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_of_hop_with_uneven_size() {
        let hop = Window::Hop { slide_s: 2, size_s: 5 };
        assert_eq!(hop.windows_of(4_500), vec![(0, 5_000), (2_000, 7_000), (4_000, 9_000)]);
        assert_eq!(hop.windows_of(5_000), vec![(2_000, 7_000), (4_000, 9_000)]);
        assert_eq!(hop.windows_of(-1), vec![(-4_000, 1_000), (-2_000, 3_000)]);
        let tumble = Window::Tumble { size_s: 5 };
        assert_eq!(tumble.windows_of(4_999), vec![(0, 5_000)]);
        assert_eq!(tumble.windows_of(-5_000), vec![(-5_000, 0)]);
    }

    #[test]
    fn assign_applies_the_watermark_strictly() {
        let tumble = Window::Tumble { size_s: 5 };
        // max 7000, delay 2000: wm = 5000, so [0, 5000) is closed (5000 < 5000 is false).
        let a = assign(&[7_000, 4_999, 5_000], 2_000, tumble);
        assert_eq!(a.watermarks, vec![None, Some(5_000), Some(5_000)]);
        assert!(a.is_late(1));
        assert_eq!(a.windows[2], vec![(5_000, 10_000)]);
        // A HOP row late for some windows but not all is not late.
        let hop = Window::Hop { slide_s: 1, size_s: 4 };
        let a = assign(&[10_000, 7_500], 2_000, hop);
        // ts 7500 is in [4000, 8000) too, but wm = 8000 closed it.
        assert_eq!(a.windows[1], vec![(5_000, 9_000), (6_000, 10_000), (7_000, 11_000)]);
        assert_eq!(a.late_count(), 0);
    }
}
