//! OVER aggregations and offset functions over event time: `SUM(v) OVER (PARTITION BY k ORDER
//! BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW)`, `ROWS BETWEEN n
//! PRECEDING AND CURRENT ROW`, `LAG(v, n)`.
//!
//! **Contract.** A row is late iff its event time is behind its own watermark (`ts < wm(r)`,
//! or behind the operator's watermark, which no row that is not late can be); late rows are
//! counted, routed to the late-rows sink and take no part. Every other row is emitted exactly
//! once, with the values of its window functions over the rows of its partition that are not
//! late, ordered by event time: the same values a batch query over those rows gives. A row is
//! emitted once the watermark has passed it (`ts < watermark`), when every row of its frame —
//! all of which are at or before it in event time — has arrived.
//!
//! **How.** Rows wait ([`Holding`]) until the watermark passes them. Then the complete rows are
//! sorted by partition and event time, and each partition with new rows is evaluated by
//! DataFusion's own window functions over its *history* (the complete rows earlier frames may
//! still reach) followed by the new rows; only the new rows are emitted. History keeps, per
//! partition, the last [`OverSpec::history_rows`] rows (ROWS frames, LAG offsets) and every row
//! within [`OverSpec::history_ms`] of the watermark (RANGE frames): state expires by watermark.
//! An aggregate over a `ROWS`/`RANGE ... PRECEDING AND CURRENT ROW` frame (without FILTER or
//! DISTINCT) is instead *slid*: its accumulator, kept per partition, adds the rows entering each
//! new row's frame and takes back out (`retract_batch`) those leaving it, so a release costs the
//! new rows, not the history; other functions, and aggregates that cannot take rows back out,
//! are evaluated over the history and the new rows. Partitions without new rows are not touched.
//! Rows of equal event time in one partition are peers: a RANGE frame holds all of them, and a
//! ROWS frame or LAG orders them as they arrived (as in Flink).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions, UInt32Array, UInt64Array,
    new_null_array,
};
use arrow::compute::{SortColumn, concat, concat_batches, filter_record_batch, lexsort_to_indices, take};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimestampMillisecondType, UInt64Type};
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::common::utils::evaluate_partition_ranges;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::window::{PlainAggregateWindowExpr, SlidingAggregateWindowExpr, WindowExpr};

use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
use crate::operators::exchange::{owned_filter, owned_rows};
use crate::operators::stateless::StatelessChain;
use crate::pipeline::LateOutput;
use crate::time::{TS_COLUMN, WATERMARK_MAX, WATERMARK_MIN, WM_COLUMN, hidden_fields};

/// A lowered `Window` node: window functions sharing one PARTITION BY, ordered by event time.
#[derive(Debug)]
pub struct OverSpec {
    /// PARTITION BY, over the input's visible columns; rows are routed by it.
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    /// The window functions, over the input's visible columns, each ordered by event time.
    pub functions: Vec<Arc<dyn WindowExpr>>,
    /// Rows per partition a later row's frame or offset may reach back to.
    pub history_rows: usize,
    /// How far (ms) before the watermark a later row's RANGE frame may reach back.
    pub history_ms: i64,
    /// The largest LEAD offset: each partition's last rows wait for this many rows after them.
    pub lead_rows: usize,
    /// Per function, the frame of an aggregate slid over an accumulator that takes rows back
    /// out (`None`: evaluated by DataFusion over the partition's history and new rows).
    pub sliding: Vec<Option<Slide>>,
    /// The input's visible columns, then one column per function.
    pub output_schema: SchemaRef,
}

/// The frame of a slid aggregate: `ROWS BETWEEN n PRECEDING AND CURRENT ROW`, or `RANGE
/// BETWEEN ms PRECEDING AND CURRENT ROW` (rows of the current row's time included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slide {
    Rows(usize),
    Range(i64),
}

/// A slid aggregate's state for one partition: the accumulator holds the history rows
/// `[lo, hi)` (indices into the partition's history followed by its held rows).
struct Sliding {
    frame: Slide,
    accumulator: Box<dyn Accumulator>,
    lo: usize,
    hi: usize,
}

/// An OVER stage: its spec, the stateless chain fused after it, where its late rows go.
#[derive(Debug, Clone)]
pub struct OverStage {
    pub spec: Arc<OverSpec>,
    pub post: StatelessChain,
    pub late: Option<Arc<LateOutput>>,
}

/// Rows held until the watermark passes them (OVER, sessions). A row behind its own watermark
/// or the operator's (`ts < max(wm(r), watermark)`), or without an event time, is late: counted
/// and routed to the late-rows sink when it arrives.
///
/// An operator that reads only some columns says which ([`Holding::reading_only`]); the others
/// are held as NULLs once a row is admitted (a late row goes to the late-rows sink whole), so
/// wide rows (long strings nobody reads) are not copied each time held rows are sorted, taken
/// and concatenated.
pub(crate) struct Holding {
    /// Rows not yet passed by the watermark, with their smallest event time.
    pending: Vec<(i64, RecordBatch)>,
    /// The schema of held rows: the input's (the first batch's; later ones are read by
    /// position), with the columns held as NULLs made nullable.
    schema: Option<SchemaRef>,
    pub(crate) watermark: i64,
    late: Option<Arc<LateOutput>>,
    /// The input columns the operator reads (the hidden event-time columns always are);
    /// `None`: all of them.
    reads: Option<BTreeSet<usize>>,
    /// Per column held as NULLs: an all-NULL array as long as the longest batch so far, sliced.
    nulls: HashMap<usize, ArrayRef>,
}

impl Holding {
    /// Memory the rows held back hold.
    pub(crate) fn bytes(&self) -> usize {
        crate::operator::batches_bytes(self.pending.iter().map(|(_, batch)| batch))
    }

    pub(crate) fn new(late: Option<Arc<LateOutput>>) -> Self {
        Self { pending: Vec::new(), schema: None, watermark: WATERMARK_MIN, late, reads: None, nulls: HashMap::new() }
    }

    /// Holds only `columns` (input column indices) and the hidden event-time columns; the rest
    /// become NULLs when admitted. Before the first row.
    pub(crate) fn reading_only(mut self, columns: BTreeSet<usize>) -> Self {
        self.reads = Some(columns);
        self
    }

    /// Whether column `i` of `schema` is held as it came.
    fn holds(&self, schema: &Schema, i: usize) -> bool {
        let hidden = || [TS_COLUMN, WM_COLUMN].contains(&schema.field(i).name().as_str());
        self.reads.as_ref().is_none_or(|reads| reads.contains(&i)) || hidden()
    }

    /// The schema of held rows for input `schema`: the columns not read made nullable.
    fn held_schema(&self, schema: &SchemaRef) -> SchemaRef {
        if self.reads.is_none() {
            return schema.clone();
        }
        let fields: Vec<Field> = (0..schema.fields().len())
            .map(|i| {
                let field = schema.field(i).clone();
                if self.holds(schema, i) { field } else { field.with_nullable(true) }
            })
            .collect();
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    /// `batch` with the columns not read replaced by NULLs.
    fn prune(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.reads.is_none() {
            return Ok(batch);
        }
        let schema = batch.schema();
        let n = batch.num_rows();
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (i, column) in batch.columns().iter().enumerate() {
            if self.holds(&schema, i) {
                columns.push(column.clone());
                continue;
            }
            let nulls = self.nulls.entry(i).or_insert_with(|| new_null_array(column.data_type(), 0));
            if nulls.len() < n {
                *nulls = new_null_array(column.data_type(), n);
            }
            columns.push(nulls.slice(0, n));
        }
        Ok(RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(n)))?)
    }

    /// The schema of the rows held, once one arrived.
    pub(crate) fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }

    /// The rows held, as they came (every column, hidden ones included).
    pub(crate) fn held_rows(&self) -> Vec<RecordBatch> {
        self.pending.iter().map(|(_, batch)| batch.clone()).collect()
    }

    /// Holds `rows` again (of a [`Holding::held_rows`]), behind `watermark`; `schema`: the input's.
    pub(crate) fn restore(&mut self, schema: SchemaRef, rows: Vec<RecordBatch>, watermark: i64) -> Result<()> {
        self.schema = Some(self.held_schema(&schema));
        self.watermark = self.watermark.max(watermark);
        self.pending.clear();
        for batch in rows.into_iter().filter(|b| b.num_rows() > 0) {
            let ts = hidden_column(&batch, TS_COLUMN)?;
            let min = arrow::compute::min(ts.as_primitive::<TimestampMillisecondType>()).unwrap_or(i64::MAX);
            self.pending.push((min, batch));
        }
        Ok(())
    }

    /// Holds the rows of `batch` that are not late; counts and routes the others.
    pub(crate) fn admit(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let schema = match &self.schema {
            Some(schema) => schema.clone(),
            None => {
                let schema = self.held_schema(&batch.schema());
                self.schema = Some(schema.clone());
                schema
            }
        };
        let batch = if batch.schema() == schema {
            batch
        } else {
            RecordBatch::try_new_with_options(
                schema,
                batch.columns().to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?
        };
        let ts = hidden_column(&batch, TS_COLUMN)?;
        let ts = ts
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| StreamError::Internal(format!("{TS_COLUMN} is not a millisecond timestamp")))?;
        let wm = hidden_column(&batch, WM_COLUMN)?;
        let wm = wm
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| StreamError::Internal(format!("{WM_COLUMN} is not BIGINT")))?
            .values();
        let mut late = Vec::new();
        let mut min = i64::MAX;
        let keep = BooleanArray::from_iter((0..n).map(|i| {
            let on_time = ts.is_valid(i) && ts.value(i) >= wm[i].max(self.watermark);
            if on_time {
                min = min.min(ts.value(i));
            } else {
                late.push(i as u32);
            }
            Some(on_time)
        }));
        if !late.is_empty() {
            out.late(late.len() as u64);
            if let Some(output) = &self.late {
                out.late_batch(output.rows_of(&batch, &late)?);
            }
        }
        let kept = if late.is_empty() { batch } else { filter_record_batch(&batch, &keep)? };
        if kept.num_rows() > 0 {
            let kept = self.prune(kept)?;
            self.pending.push((min, kept));
        }
        Ok(())
    }

    /// Moves the watermark to `watermark`; returns the rows it passed (`ts < watermark`), or
    /// `None` when it did not rise.
    pub(crate) fn advance(&mut self, watermark: i64) -> Result<Option<Vec<RecordBatch>>> {
        if watermark <= self.watermark {
            return Ok(None);
        }
        self.watermark = watermark;
        let mut complete = Vec::new();
        let mut waiting = Vec::new();
        for (min, batch) in std::mem::take(&mut self.pending) {
            if min >= watermark && watermark != WATERMARK_MAX {
                waiting.push((min, batch));
                continue;
            }
            let ts = hidden_column(&batch, TS_COLUMN)?;
            let ts = ts.as_primitive::<TimestampMillisecondType>();
            // At the end of input every row is complete, even one at the largest time.
            let ending = watermark == WATERMARK_MAX;
            let passed = BooleanArray::from_iter(ts.iter().map(|t| Some(t.is_some_and(|t| t < watermark || ending))));
            if passed.true_count() == batch.num_rows() {
                complete.push(batch);
                continue;
            }
            complete.push(filter_record_batch(&batch, &passed)?);
            let rest = filter_record_batch(&batch, &arrow::compute::not(&passed)?)?;
            let rest_ts = hidden_column(&rest, TS_COLUMN)?;
            let rest_min = arrow::compute::min(rest_ts.as_primitive::<TimestampMillisecondType>()).unwrap_or(i64::MAX);
            waiting.push((rest_min, rest));
        }
        self.pending = waiting;
        Ok(Some(complete))
    }
}

/// One instance of an OVER stage. See the [module docs](self).
pub struct OverOperator {
    spec: Arc<OverSpec>,
    post: StatelessChain,
    holding: Holding,
    /// Partition keys as rows (none without PARTITION BY); made from the first batch.
    keys: Option<RowConverter>,
    /// Per partition, the complete rows later rows' frames may reach, in event-time order.
    history: HashMap<Option<OwnedRow>, RecordBatch>,
    /// Per partition, rows LEAD holds back until the rows after them arrive.
    held: HashMap<Option<OwnedRow>, RecordBatch>,
    /// Per partition, the state of each slid aggregate (see [`OverSpec::sliding`]).
    slides: HashMap<Option<OwnedRow>, Vec<Option<Sliding>>>,
    /// Partitions with held rows by the first held row's time: the watermark sent on is at most
    /// the smallest.
    held_index: BTreeSet<(i64, Option<OwnedRow>)>,
    /// The watermark at the last sweep of expired history.
    swept_at: i64,
    /// The output schema with the hidden event-time columns.
    output_schema: SchemaRef,
}

impl OverOperator {
    pub fn new(stage: &OverStage) -> Self {
        let mut fields: Vec<Field> = stage.spec.output_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(hidden_fields());
        Self {
            spec: stage.spec.clone(),
            post: stage.post.clone(),
            holding: Holding::new(stage.late.clone()),
            keys: None,
            history: HashMap::new(),
            held: HashMap::new(),
            slides: HashMap::new(),
            held_index: BTreeSet::new(),
            swept_at: WATERMARK_MIN,
            output_schema: Arc::new(Schema::new(fields)),
        }
    }

    /// Sorts the complete rows by partition and event time and emits each with its function
    /// values, computed over its partition's history and the new rows; keeps what later rows
    /// may need as the partition's history. Partitions without new rows are not touched.
    fn release(&mut self, complete: Vec<RecordBatch>, out: &mut Emitter) -> Result<()> {
        let Some(schema) = self.holding.schema() else { return Ok(()) };
        let all = concat_batches(&schema, &complete)?;
        let n = all.num_rows();
        let ending = self.holding.watermark == WATERMARK_MAX;
        // With no new rows, only the end of input (held LEAD rows to flush) has work.
        if n == 0 && (!ending || self.held.is_empty()) {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(self.spec.partition_by.len());
        for expr in &self.spec.partition_by {
            keys.push(expr.evaluate(&all)?.into_array(n)?);
        }
        let ts = hidden_column(&all, TS_COLUMN)?;
        let mut sort_columns: Vec<SortColumn> =
            keys.iter().chain([&ts]).map(|values| SortColumn { values: values.clone(), options: None }).collect();
        // Within a window (whose rows share one event time) rows are ordered as the OVER says.
        if let Some(function) = self.spec.functions.first() {
            for sort in function.order_by() {
                sort_columns.push(sort.evaluate_to_sort_column(&all)?);
            }
        }
        // Then in arrival order (the sort is not stable): peers of a ROWS frame, LAG, LEAD and
        // the first rows per key follow the input.
        let arrival: ArrayRef = Arc::new(UInt32Array::from_iter_values(0..n as u32));
        sort_columns.push(SortColumn { values: arrival, options: None });
        let order = lexsort_to_indices(&sort_columns, None)?;
        let sorted = take_batch(&all, &order)?;
        let sorted_keys: Vec<ArrayRef> =
            keys.iter().map(|k| take(k.as_ref(), &order, None)).collect::<arrow::error::Result<_>>()?;
        let key_rows = if sorted_keys.is_empty() {
            None
        } else {
            if self.keys.is_none() {
                let fields = sorted_keys.iter().map(|k| SortField::new(k.data_type().clone())).collect();
                self.keys = Some(RowConverter::new(fields)?);
            }
            self.keys.as_ref().map(|c| c.convert_columns(&sorted_keys)).transpose()?
        };
        let partition_columns: Vec<SortColumn> =
            sorted_keys.into_iter().map(|values| SortColumn { values, options: None }).collect();

        let mut emitted: Vec<RecordBatch> = Vec::new();
        let mut values: Vec<Vec<ArrayRef>> = vec![Vec::new(); self.spec.functions.len()];
        for range in evaluate_partition_ranges(n, &partition_columns)?.into_iter().filter(|r| !r.is_empty()) {
            let key = key_rows.as_ref().map(|rows| rows.row(range.start).owned());
            let new_rows = sorted.slice(range.start, range.len());
            self.evaluate_partition(key, Some(new_rows), ending, &schema, &mut emitted, &mut values)?;
        }
        if ending {
            let waiting: Vec<Option<OwnedRow>> = self.held.keys().cloned().collect();
            for key in waiting {
                self.evaluate_partition(key, None, true, &schema, &mut emitted, &mut values)?;
            }
        }
        if emitted.is_empty() {
            return Ok(());
        }
        let rows = concat_batches(&schema, &emitted)?;
        let n = rows.num_rows();
        let visible = rows.num_columns() - crate::time::HIDDEN_COLUMNS;
        let mut columns: Vec<ArrayRef> = rows.columns()[..visible].to_vec();
        for parts in values {
            let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            columns.push(concat(&parts)?);
        }
        columns.push(hidden_column(&rows, TS_COLUMN)?);
        // Emitted rows are never behind the watermark downstream, which is at most this
        // operator's (and held back to rows LEAD still waits for): they carry no watermark of
        // their own, like window results.
        columns.push(Arc::new(Int64Array::from_value(WATERMARK_MIN, n)));
        let fields = self.output_schema.fields();
        for (column, field) in columns.iter_mut().zip(fields.iter()) {
            if column.data_type() != field.data_type() {
                *column = arrow::compute::cast(column, field.data_type())?;
            }
        }
        let batch = RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        if let Some(batch) = self.post.apply(batch)? {
            out.emit(batch);
        }
        Ok(())
    }

    /// Evaluates one partition: its history, the rows LEAD held back, and `new_rows`. Emits
    /// (into `emitted` and `values`) all but the last [`OverSpec::lead_rows`] of the rows not
    /// emitted yet — those wait for the rows after them, unless the input is `ending` — and
    /// keeps the history and the held rows.
    fn evaluate_partition(
        &mut self,
        key: Option<OwnedRow>,
        new_rows: Option<RecordBatch>,
        ending: bool,
        schema: &SchemaRef,
        emitted: &mut Vec<RecordBatch>,
        values: &mut [Vec<ArrayRef>],
    ) -> Result<()> {
        let history = self.history.remove(&key);
        let held = self.held.remove(&key);
        if let Some(held) = &held {
            self.held_index.remove(&(first_time(held)?, key.clone()));
        }
        let first_pending = history.as_ref().map_or(0, RecordBatch::num_rows);
        let parts: Vec<RecordBatch> = [history, held, new_rows].into_iter().flatten().collect();
        let partition = match parts.as_slice() {
            [only] => only.clone(),
            _ => concat_batches(schema, &parts)?,
        };
        let total = partition.num_rows();
        let hold = if ending { 0 } else { self.spec.lead_rows.min(total - first_pending) };
        let emit_end = total - hold;
        let mut slides = match self.slides.remove(&key) {
            Some(slides) => slides,
            None => self.new_slides()?,
        };
        if emit_end > first_pending {
            for ((function, out), slide) in self.spec.functions.iter().zip(values.iter_mut()).zip(&mut slides) {
                match slide {
                    Some(state) => out.push(slide_over(state, function.as_ref(), &partition, first_pending, emit_end)?),
                    None => {
                        let result = function.evaluate(&partition)?;
                        out.push(result.slice(first_pending, emit_end - first_pending));
                    }
                }
            }
            emitted.push(partition.slice(first_pending, emit_end - first_pending));
        }
        // A held row's RANGE frame reaches back from its own time, below the watermark; rows
        // still in a slid accumulator are kept until they are taken back out.
        let held = (hold > 0).then(|| compact(&partition.slice(emit_end, hold))).transpose()?;
        let reach = match &held {
            Some(held) => first_time(held)?.min(self.holding.watermark),
            None => self.holding.watermark,
        };
        let in_use = slides.iter().flatten().map(|s| s.lo).min();
        let (kept, cut) = self.keep(&partition.slice(0, emit_end), reach, in_use)?;
        for state in slides.iter_mut().flatten() {
            state.lo -= cut;
            state.hi -= cut;
        }
        if let Some(kept) = kept {
            self.history.insert(key.clone(), compact(&kept)?);
        }
        if slides.iter().any(Option::is_some) {
            self.slides.insert(key.clone(), slides);
        }
        if let Some(held) = held {
            self.held_index.insert((first_time(&held)?, key.clone()));
            self.held.insert(key, held);
        }
        Ok(())
    }

    /// The rows of one partition's `rows` (in event-time order) a later row may still reach:
    /// the last `history_rows`, and every row within `history_ms` before `reach` (the
    /// watermark, or the first row LEAD holds back, if earlier).
    /// Returns the rows kept and how many were cut from the front.
    fn keep(&self, rows: &RecordBatch, reach: i64, in_use: Option<usize>) -> Result<(Option<RecordBatch>, usize)> {
        let (last, ms) = (self.spec.history_rows, self.spec.history_ms);
        let n = rows.num_rows();
        if last == 0 && ms <= 0 && in_use.is_none() {
            return Ok((None, n));
        }
        let ts = hidden_column(rows, TS_COLUMN)?;
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let horizon = reach.saturating_sub(ms);
        // Rows are in time order: those kept are a suffix.
        let by_rows = n.saturating_sub(last);
        let by_time = if ms > 0 { (0..n).find(|&i| ts.value(i) >= horizon).unwrap_or(n) } else { n };
        let first = by_rows.min(by_time).min(in_use.unwrap_or(n));
        Ok(((first < n).then(|| rows.slice(first, n - first)), first))
    }

    /// Fresh slid accumulators for a partition, one per slid function.
    fn new_slides(&self) -> Result<Vec<Option<Sliding>>> {
        self.spec
            .functions
            .iter()
            .zip(&self.spec.sliding)
            .map(|(function, slide)| {
                let Some(frame) = *slide else { return Ok(None) };
                let aggregate = if let Some(w) = function.as_any().downcast_ref::<SlidingAggregateWindowExpr>() {
                    w.get_aggregate_expr()
                } else if let Some(w) = function.as_any().downcast_ref::<PlainAggregateWindowExpr>() {
                    w.get_aggregate_expr()
                } else {
                    return Ok(None);
                };
                // An aggregate that cannot take rows back out is evaluated by DataFusion.
                Ok(aggregate.create_sliding_accumulator().ok().map(|accumulator| Sliding {
                    frame,
                    accumulator,
                    lo: 0,
                    hi: 0,
                }))
            })
            .collect()
    }

    /// Drops history no later row's RANGE frame can reach (when no ROWS frame or LAG keeps
    /// rows), each time the watermark has moved on by a quarter of the range.
    fn expire(&mut self) -> Result<()> {
        let ms = self.spec.history_ms;
        if self.spec.history_rows > 0 || ms <= 0 || self.holding.watermark.saturating_sub(self.swept_at) < ms / 4 {
            return Ok(());
        }
        self.swept_at = self.holding.watermark;
        let watermark = self.holding.watermark;
        let held = &self.held;
        let mut error = None;
        let slides = &self.slides;
        self.history.retain(|key, rows| {
            // Rows in a slid accumulator are cut when they are taken back out, not here.
            if slides.contains_key(key) {
                return true;
            }
            let reach = match held.get(key).map(first_time).transpose() {
                Ok(first) => first.map_or(watermark, |t| t.min(watermark)),
                Err(e) => {
                    error = Some(e);
                    return true;
                }
            };
            let horizon = reach.saturating_sub(ms);
            let ts = match hidden_column(rows, TS_COLUMN) {
                Ok(ts) => ts,
                Err(e) => {
                    error = Some(e);
                    return true;
                }
            };
            let ts = ts.as_primitive::<TimestampMillisecondType>();
            let n = rows.num_rows();
            let first = (0..n).find(|&i| ts.value(i) >= horizon).unwrap_or(n);
            if first > 0 && first < n {
                *rows = rows.slice(first, n - first);
            }
            first < n
        });
        error.map_or(Ok(()), Err)
    }
}

/// The values of a slid aggregate for rows `[from, to)` of `partition` (its history, held rows
/// and new rows, in time order): per row, the rows entering its frame are added to the
/// accumulator and those leaving it taken back out. The accumulator holds `[lo, hi)`.
fn slide_over(
    state: &mut Sliding,
    function: &dyn WindowExpr,
    partition: &RecordBatch,
    from: usize,
    to: usize,
) -> Result<ArrayRef> {
    // RANGE frames hold the current row's peers; ROWS frames end at the row itself.
    let (range, rows_back, range_back) = match state.frame {
        Slide::Rows(n) => (false, n, 0),
        Slide::Range(ms) => (true, 0, ms),
    };
    let args = function.evaluate_args(partition)?;
    let ts = hidden_column(partition, TS_COLUMN)?;
    let ts = ts.as_primitive::<TimestampMillisecondType>().values();
    let n = partition.num_rows();
    let mut values = Vec::with_capacity(to - from);
    let mut i = from;
    while i < to {
        // The frame of row i: [start, end).
        let end = match range {
            // RANGE: every row of i's time, held or new, is a peer.
            true => {
                let mut end = i + 1;
                while end < n && ts[end] == ts[i] {
                    end += 1;
                }
                end
            }
            false => i + 1,
        };
        let start = match range {
            true => {
                let bound = ts[i].saturating_sub(range_back);
                let mut start = state.lo;
                while start < end && ts[start] < bound {
                    start += 1;
                }
                start
            }
            false => (i + 1).saturating_sub(rows_back + 1).max(state.lo),
        };
        if end > state.hi {
            let added: Vec<ArrayRef> = args.iter().map(|a| a.slice(state.hi, end - state.hi)).collect();
            state.accumulator.update_batch(&added)?;
            state.hi = end;
        }
        if start > state.lo {
            let removed: Vec<ArrayRef> = args.iter().map(|a| a.slice(state.lo, start - state.lo)).collect();
            state.accumulator.retract_batch(&removed)?;
            state.lo = start;
        }
        let value = state.accumulator.evaluate()?;
        // Peers share the value.
        let last = if range { end.min(to) } else { i + 1 };
        for _ in i..last {
            values.push(value.clone());
        }
        i = last;
    }
    Ok(ScalarValue::iter_to_array(values)?)
}

/// `rows` in buffers of its own: a slice kept as state must not hold a whole release's rows.
pub(crate) fn compact(rows: &RecordBatch) -> Result<RecordBatch> {
    let indices = UInt32Array::from_iter_values(0..rows.num_rows() as u32);
    take_batch(rows, &indices)
}

/// The event time of the first row of `rows` (which is in time order).
fn first_time(rows: &RecordBatch) -> Result<i64> {
    let ts = hidden_column(rows, TS_COLUMN)?;
    Ok(ts.as_primitive::<TimestampMillisecondType>().value(0))
}

pub(crate) fn take_batch(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    let columns =
        batch.columns().iter().map(|c| take(c.as_ref(), indices, None)).collect::<arrow::error::Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(indices.len())),
    )?)
}

pub(crate) fn hidden_column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch
        .schema()
        .index_of(name)
        .map(|i| batch.column(i).clone())
        .map_err(|_| StreamError::Internal(format!("input without the hidden {name} column")))
}

impl Operator for OverOperator {
    fn state_bytes(&self) -> usize {
        crate::operator::batches_bytes(self.history.values().chain(self.held.values())) + self.holding.bytes()
    }

    fn name(&self) -> &str {
        "over aggregate"
    }

    fn on_batch(&mut self, _input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        self.holding.admit(batch, out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Emitter) -> Result<()> {
        match self.holding.advance(watermark)? {
            None => Ok(()),
            Some(complete) => {
                self.release(complete, out)?;
                self.expire()
            }
        }
    }

    fn output_watermark(&self, watermark: i64) -> i64 {
        self.held_index.first().map_or(watermark, |(ts, _)| watermark.min(*ts))
    }

    /// The rows the watermark has not passed; per partition its history, with where each slid
    /// aggregate's accumulator stands in it (`slides`, one batch per `history` batch, one row
    /// per function), and the rows LEAD holds back; the watermark. An accumulator is stored as
    /// the rows it holds: a restore adds them to a fresh one.
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        let slides_schema = Arc::new(Schema::new(vec![
            Field::new("lo", DataType::UInt64, true),
            Field::new("hi", DataType::UInt64, true),
        ]));
        let mut history = Vec::with_capacity(self.history.len());
        let mut slides = Vec::with_capacity(self.history.len());
        for (key, rows) in &self.history {
            let states = self.slides.get(key);
            let at = |i: usize| states.and_then(|s| s.get(i)).and_then(Option::as_ref);
            let n = self.spec.functions.len();
            let lo = UInt64Array::from_iter((0..n).map(|i| at(i).map(|s| s.lo as u64)));
            let hi = UInt64Array::from_iter((0..n).map(|i| at(i).map(|s| s.hi as u64)));
            history.push(rows.clone());
            slides.push(RecordBatch::try_new(slides_schema.clone(), vec![Arc::new(lo), Arc::new(hi)])?);
        }
        Ok(StateSnapshot {
            tables: vec![
                ("pending".into(), self.holding.held_rows()),
                ("history".into(), history),
                ("slides".into(), slides),
                ("held".into(), self.held.values().cloned().collect()),
                StateSnapshot::progress(self.holding.watermark)?,
            ],
            rescaled: None,
        })
    }

    /// Takes back an [`OverOperator::snapshot`] (after a change of parallelism: the rows and
    /// partitions of the keys this instance owns).
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        let watermark = state.watermark().unwrap_or(WATERMARK_MIN);
        let (history, slides) = (state.table("history"), state.table("slides"));
        if history.len() != slides.len() {
            return Err(StreamError::Config(format!(
                "the over aggregate's checkpoint has {} partitions and {} slide positions",
                history.len(),
                slides.len()
            )));
        }
        self.history.clear();
        self.held.clear();
        self.slides.clear();
        self.held_index.clear();
        let mut pending = Vec::new();
        for batch in state.table("pending") {
            pending.push(owned_part(batch, &self.spec.partition_by, state.rescaled)?);
        }
        let mut positions = HashMap::new();
        for (rows, slide) in history.iter().zip(slides) {
            let Some(key) = self.key_if_owned(rows, state.rescaled)? else { continue };
            positions.insert(key.clone(), slide.clone());
            self.history.insert(key, rows.clone());
        }
        for rows in state.table("held") {
            let Some(key) = self.key_if_owned(rows, state.rescaled)? else { continue };
            self.held_index.insert((first_time(rows)?, key.clone()));
            self.held.insert(key, rows.clone());
        }
        let schema =
            pending.iter().chain(self.history.values()).chain(self.held.values()).map(RecordBatch::schema).next();
        let Some(schema) = schema else {
            self.holding.watermark = self.holding.watermark.max(watermark);
            return Ok(());
        };
        self.holding.restore(schema.clone(), pending, watermark)?;
        self.swept_at = self.holding.watermark;
        // Each slid accumulator takes the rows it held again: [lo, hi) of the partition's
        // history followed by its held rows, as the next release sees them.
        for (key, position) in positions {
            let (lo, hi) =
                (position.column(0).as_primitive::<UInt64Type>(), position.column(1).as_primitive::<UInt64Type>());
            let mut states = self.new_slides()?;
            if !states.iter().any(Option::is_some) {
                continue;
            }
            let parts: Vec<RecordBatch> =
                [self.history.get(&key), self.held.get(&key)].into_iter().flatten().cloned().collect();
            let partition = concat_batches(&schema, &parts)?;
            for (i, (state, function)) in states.iter_mut().zip(&self.spec.functions).enumerate() {
                let Some(state) = state else { continue };
                if i >= lo.len() || lo.is_null(i) || hi.is_null(i) {
                    continue;
                }
                let (from, to) = (lo.value(i) as usize, hi.value(i) as usize);
                if from > to || to > partition.num_rows() {
                    return Err(StreamError::Config(format!(
                        "the over aggregate's checkpoint holds rows {from}..{to} of a partition of {}",
                        partition.num_rows()
                    )));
                }
                if to > from {
                    let args = function.evaluate_args(&partition)?;
                    let rows: Vec<ArrayRef> = args.iter().map(|a| a.slice(from, to - from)).collect();
                    state.accumulator.update_batch(&rows)?;
                }
                (state.lo, state.hi) = (from, to);
            }
            self.slides.insert(key, states);
        }
        Ok(())
    }
}

/// The values of `keys` over `batch`.
pub(crate) fn evaluate_keys(keys: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
    Ok(keys
        .iter()
        .map(|e| e.evaluate(batch).and_then(|v| v.into_array(batch.num_rows())))
        .collect::<datafusion::error::Result<Vec<_>>>()?)
}

/// The rows of `batch` whose `keys` this instance owns after a change of parallelism
/// (`rescaled`: instance, parallelism); all of them otherwise.
pub(crate) fn owned_part(
    batch: &RecordBatch,
    keys: &[Arc<dyn PhysicalExpr>],
    rescaled: Option<(usize, usize)>,
) -> Result<RecordBatch> {
    let Some((instance, parallelism)) = rescaled else { return Ok(batch.clone()) };
    Ok(filter_record_batch(batch, &owned_filter(batch, keys, instance, parallelism)?)?)
}

impl OverOperator {
    /// The partition of `rows` (one partition's rows, not empty), unless another instance owns
    /// it after a change of parallelism (`rescaled`).
    fn key_if_owned(
        &mut self,
        rows: &RecordBatch,
        rescaled: Option<(usize, usize)>,
    ) -> Result<Option<Option<OwnedRow>>> {
        if rows.num_rows() == 0 {
            return Ok(None);
        }
        let keys = evaluate_keys(&self.spec.partition_by, &rows.slice(0, 1))?;
        if let Some((instance, parallelism)) = rescaled
            && !owned_rows(&keys, 1, instance, parallelism)?[0]
        {
            return Ok(None);
        }
        if keys.is_empty() {
            return Ok(Some(None));
        }
        if self.keys.is_none() {
            let fields = keys.iter().map(|k| SortField::new(k.data_type().clone())).collect();
            self.keys = Some(RowConverter::new(fields)?);
        }
        let converted = self.keys.as_ref().map(|c| c.convert_columns(&keys)).transpose()?;
        Ok(Some(converted.map(|r| r.row(0).owned())))
    }
}
