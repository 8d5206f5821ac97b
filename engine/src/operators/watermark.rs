//! Source-side event time: appends the hidden `_ts` and `_wm` columns (see [`crate::time`]).
//!
//! For each row `r`, `_wm(r) = max(ts of rows before r) - delay`, or [`WATERMARK_MIN`] before
//! the first row with an event time. Rows with a null event time do not move the watermark.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;

use crate::error::{Result, StreamError};
use crate::time::{WATERMARK_MIN, hidden_fields, timestamp_type};

/// Tracks one source partition's watermark and annotates its batches.
#[derive(Debug)]
pub struct WatermarkAssigner {
    /// Event-time column and delay; `None` for sources without `WATERMARK FOR`.
    event_time: Option<(usize, i64)>,
    max_ts: Option<i64>,
    output_schema: SchemaRef,
}

impl WatermarkAssigner {
    /// An assigner for batches of `schema`, with event time in column `column` trailing by
    /// `delay_ms`.
    pub fn new(schema: &Schema, event_time: Option<(usize, i64)>) -> Self {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(hidden_fields());
        Self { event_time, max_ts: None, output_schema: Arc::new(Schema::new(fields)) }
    }

    /// The watermark after every row seen so far.
    pub fn current(&self) -> i64 {
        match (self.max_ts, self.event_time) {
            (Some(max), Some((_, delay))) => max.saturating_sub(delay),
            _ => WATERMARK_MIN,
        }
    }

    /// Appends `_ts` and `_wm` to `batch`.
    pub fn assign(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        match self.event_time {
            None => {
                columns.push(new_null_array(&timestamp_type(), n));
                columns.push(Arc::new(Int64Array::from_value(WATERMARK_MIN, n)));
            }
            Some((column, delay)) => {
                let ts_column = batch.column(column).clone();
                let ts = ts_column.as_primitive_opt::<TimestampMillisecondType>().ok_or_else(|| {
                    StreamError::Internal(format!(
                        "event-time column has type {}, expected TIMESTAMP(3)",
                        ts_column.data_type()
                    ))
                })?;
                let mut wm = Vec::with_capacity(n);
                let mut max = self.max_ts;
                let values = ts.values();
                if ts.null_count() == 0 {
                    for &t in values.iter() {
                        wm.push(max.map_or(WATERMARK_MIN, |m| m.saturating_sub(delay)));
                        max = Some(max.map_or(t, |m| m.max(t)));
                    }
                } else {
                    for (i, &t) in values.iter().enumerate() {
                        wm.push(max.map_or(WATERMARK_MIN, |m| m.saturating_sub(delay)));
                        if ts.is_valid(i) {
                            max = Some(max.map_or(t, |m| m.max(t)));
                        }
                    }
                }
                self.max_ts = max;
                columns.push(ts_column as ArrayRef);
                columns.push(Arc::new(Int64Array::from(wm)));
            }
        }
        Ok(RecordBatch::try_new(self.output_schema.clone(), columns)?)
    }
}

/// The watermarks of a source's partitions: one [`WatermarkAssigner`] each, so each row's `_wm`
/// comes from the rows before it in its own partition, and the source's watermark is the minimum
/// over the partitions.
///
/// Every partition counts from the start: one that has sent nothing holds the minimum at
/// [`WATERMARK_MIN`], so the output does not depend on how partitions interleave. With an idle
/// timeout (`'source.idle-timeout'`) a partition without rows for that long stops counting until
/// its next row; a row that then finds its windows closed is late (progress bought with
/// determinism). The watermark reported never goes back.
#[derive(Debug)]
pub struct PartitionWatermarks {
    assigners: Vec<WatermarkAssigner>,
    /// When each partition last sent rows (or when reading began).
    last_rows: Vec<std::time::Instant>,
    idle_timeout: Option<std::time::Duration>,
    /// The highest watermark reported so far.
    reported: i64,
}

impl PartitionWatermarks {
    /// Watermarks for `partitions` partitions of batches of `schema` (see [`WatermarkAssigner::new`]).
    pub fn new(
        schema: &Schema,
        event_time: Option<(usize, i64)>,
        partitions: usize,
        idle_timeout: Option<std::time::Duration>,
    ) -> Self {
        let now = std::time::Instant::now();
        Self {
            assigners: (0..partitions).map(|_| WatermarkAssigner::new(schema, event_time)).collect(),
            last_rows: vec![now; partitions],
            idle_timeout,
            reported: WATERMARK_MIN,
        }
    }

    /// Appends `_ts` and `_wm` to a batch of `partition`'s rows.
    pub fn assign(&mut self, partition: usize, batch: RecordBatch) -> Result<RecordBatch> {
        let partitions = self.assigners.len();
        let assigner = self.assigners.get_mut(partition).ok_or_else(|| {
            StreamError::Internal(format!("a source of {partitions} partitions sent rows of partition {partition}"))
        })?;
        if batch.num_rows() > 0 {
            self.last_rows[partition] = std::time::Instant::now();
        }
        assigner.assign(batch)
    }

    /// Each partition's largest event time so far (null before its first), by partition id
    /// (`ids`, see [`crate::connector::Source::partition_id`]), for a checkpoint.
    pub fn snapshot(&self, ids: &[String]) -> Result<RecordBatch> {
        let max: Int64Array = self.assigners.iter().map(|a| a.max_ts).collect();
        let ids = arrow::array::StringArray::from_iter_values(ids.iter().take(self.assigners.len()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("partition", arrow::datatypes::DataType::Utf8, false),
            Field::new("max_ts", arrow::datatypes::DataType::Int64, true),
        ]));
        Ok(RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(max)])?)
    }

    /// Takes the partitions' largest event times back from [`PartitionWatermarks::snapshot`]s
    /// (of every former instance after a change of parallelism), matched by partition id, so
    /// rows read again are judged as they were the first time. A partition the snapshots do not
    /// know (added since) starts without one.
    pub fn restore(&mut self, batches: &[RecordBatch], ids: &[String]) -> Result<()> {
        let mut stored: std::collections::HashMap<String, Option<i64>> = std::collections::HashMap::new();
        for batch in batches {
            if batch.num_columns() != 2 {
                return Err(StreamError::Config("the checkpoint's watermarks are not by partition".into()));
            }
            let names = batch.column(0).as_string::<i32>();
            let max = batch.column(1).as_primitive::<arrow::datatypes::Int64Type>();
            for row in 0..batch.num_rows() {
                stored.insert(names.value(row).to_string(), max.is_valid(row).then(|| max.value(row)));
            }
        }
        for (assigner, id) in self.assigners.iter_mut().zip(ids) {
            assigner.max_ts = stored.get(id).copied().flatten();
        }
        Ok(())
    }

    /// Moves every partition's last activity `by` later: time the reader spent blocked on
    /// downstream (backpressure), when it could not read, does not make a partition idle.
    pub fn pause(&mut self, by: std::time::Duration) {
        if self.idle_timeout.is_some() {
            self.last_rows.iter_mut().for_each(|last| *last += by);
        }
    }

    /// Whether every partition is idle at `now` (never without an idle timeout, or with no
    /// partitions).
    pub fn all_idle(&self, now: std::time::Instant) -> bool {
        match self.idle_timeout {
            Some(timeout) => {
                !self.last_rows.is_empty() && self.last_rows.iter().all(|last| now.duration_since(*last) >= timeout)
            }
            None => false,
        }
    }

    /// The source's watermark at `now`, if it rose since the last call: the minimum over the
    /// partitions that are not idle (`WATERMARK_MAX` for an instance given no partitions).
    pub fn advanced(&mut self, now: std::time::Instant) -> Option<i64> {
        let active = self
            .assigners
            .iter()
            .zip(&self.last_rows)
            .filter(|(_, last)| self.idle_timeout.is_none_or(|timeout| now.duration_since(**last) < timeout))
            .map(|(assigner, _)| assigner.current());
        let minimum = if self.assigners.is_empty() { crate::time::WATERMARK_MAX } else { active.min()? };
        (minimum > self.reported).then(|| {
            self.reported = minimum;
            minimum
        })
    }
}
