//! SESSION windows: per key, rows less than the gap apart form one session, whose window is
//! `[first ts, last ts + gap)`; a row that bridges two sessions merges them.
//!
//! **Contract.** A row is late iff `ts < wm(r)` (its own watermark), as for OVER: late rows are
//! counted, routed and take no part. The sessions and their aggregates are those a batch query
//! finds over the rows that are not late; each is emitted once, when the watermark reaches its
//! end (no later row, all at or after the watermark, can join it).
//!
//! **How.** Rows wait until the watermark passes them ([`Holding`]); then they are sorted by key
//! and time after the rows of the sessions still open, cut into sessions where two consecutive
//! rows are at least the gap apart, and the sessions that end at or before the watermark are
//! aggregated (one DataFusion group per key and session) and emitted. State is the rows not yet
//! passed by the watermark and the rows of open sessions.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Int64Array, RecordBatch, RecordBatchOptions, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef, TimestampMillisecondType};
use datafusion::common::utils::evaluate_partition_ranges;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

use super::inputs::BatchInputs;
use super::pane::{Pane, PaneInput};
use super::spec::{AggregateSpec, GroupOutput};
use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Operator};
use crate::operators::over::{Holding, hidden_column, take_batch};
use crate::operators::stateless::StatelessChain;
use crate::pipeline::LateOutput;
use crate::time::{TS_COLUMN, WATERMARK_MIN, hidden_fields, timestamp_type};

/// One instance of a SESSION window aggregation. See the [module docs](self).
pub struct SessionOperator {
    spec: Arc<AggregateSpec>,
    /// The spec's keys, then each row's session start and end (appended columns).
    grouping: Option<AggregateSpec>,
    gap: i64,
    post: StatelessChain,
    holding: Holding,
    /// Rows of sessions that may still grow.
    open: Option<RecordBatch>,
    output_schema: SchemaRef,
    scratch: Vec<usize>,
}

impl SessionOperator {
    pub fn new(spec: Arc<AggregateSpec>, post: StatelessChain, late: Option<Arc<LateOutput>>) -> Result<Self> {
        let gap =
            spec.window.map(|w| w.size_ms).ok_or_else(|| StreamError::Internal("session without a gap".into()))?;
        let mut fields: Vec<Field> = spec.output_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(hidden_fields());
        Ok(Self {
            spec,
            grouping: None,
            gap,
            post,
            holding: Holding::new(late),
            open: None,
            output_schema: Arc::new(Schema::new(fields)),
            scratch: Vec::new(),
        })
    }

    /// The spec grouping by keys, session start and session end, over input batches of
    /// `columns` columns with the two session columns after them.
    fn grouping(&mut self, columns: usize) -> &AggregateSpec {
        let spec = &self.spec;
        self.grouping.get_or_insert_with(|| {
            let mut key_exprs = spec.key_exprs.clone();
            key_exprs.push(Arc::new(Column::new("window_start", columns)) as Arc<dyn PhysicalExpr>);
            key_exprs.push(Arc::new(Column::new("window_end", columns + 1)) as Arc<dyn PhysicalExpr>);
            let mut key_fields: Vec<FieldRef> = spec.key_fields.clone();
            key_fields.push(Arc::new(Field::new("window_start", timestamp_type(), true)));
            key_fields.push(Arc::new(Field::new("window_end", timestamp_type(), true)));
            AggregateSpec {
                window: None,
                key_exprs,
                key_fields,
                aggregates: spec.aggregates.clone(),
                outputs: Vec::new(),
                output_schema: spec.output_schema.clone(),
            }
        })
    }

    /// Cuts the open rows and the newly complete ones into sessions; emits those that ended.
    fn release(&mut self, complete: Vec<RecordBatch>, out: &mut Emitter) -> Result<()> {
        let Some(schema) = self.holding.schema() else { return Ok(()) };
        let watermark = self.holding.watermark;
        let mut parts: Vec<RecordBatch> = self.open.take().into_iter().collect();
        parts.extend(complete);
        let all = concat_batches(&schema, &parts)?;
        let n = all.num_rows();
        if n == 0 {
            return Ok(());
        }
        let ts = hidden_column(&all, TS_COLUMN)?;
        let mut sort_columns = Vec::with_capacity(self.spec.key_exprs.len() + 1);
        for expr in &self.spec.key_exprs {
            sort_columns.push(SortColumn { values: expr.evaluate(&all)?.into_array(n)?, options: None });
        }
        let keys = sort_columns.len();
        sort_columns.push(SortColumn { values: ts, options: None });
        let order = lexsort_to_indices(&sort_columns, None)?;
        let sorted = take_batch(&all, &order)?;
        let sorted_keys: Vec<SortColumn> = sort_columns[..keys]
            .iter()
            .map(|c| Ok(SortColumn { values: arrow::compute::take(c.values.as_ref(), &order, None)?, options: None }))
            .collect::<Result<_>>()?;
        let ts = hidden_column(&sorted, TS_COLUMN)?;
        let ts = ts.as_primitive::<TimestampMillisecondType>().values();

        let (mut closed, mut starts, mut ends, mut open) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for range in evaluate_partition_ranges(n, &sorted_keys)? {
            let mut first = range.start;
            for i in range.clone() {
                let last_of_session = i + 1 == range.end || ts[i + 1] >= ts[i].saturating_add(self.gap);
                if !last_of_session {
                    continue;
                }
                let end = ts[i].saturating_add(self.gap);
                if end <= watermark {
                    closed.extend((first as u32)..=(i as u32));
                    starts.extend(std::iter::repeat_n(ts[first], i + 1 - first));
                    ends.extend(std::iter::repeat_n(end, i + 1 - first));
                } else {
                    open.extend((first as u32)..=(i as u32));
                }
                first = i + 1;
            }
        }
        if !open.is_empty() {
            self.open = Some(take_batch(&sorted, &UInt32Array::from(open))?);
        }
        if closed.is_empty() {
            return Ok(());
        }
        let rows = closed.len();
        let closed = take_batch(&sorted, &UInt32Array::from(closed))?;
        let mut fields: Vec<Field> = closed.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("window_start", timestamp_type(), false));
        fields.push(Field::new("window_end", timestamp_type(), false));
        let mut columns = closed.columns().to_vec();
        columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
        columns.push(Arc::new(TimestampMillisecondArray::from(ends)));
        let sessions = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let grouping = self.grouping(closed.num_columns());
        let inputs = BatchInputs::evaluate(grouping, &sessions)?;
        let mut pane = Pane::new(grouping)?;
        let input = PaneInput { rows, keys: &inputs.keys, args: &inputs.args, filters: &inputs.filters };
        pane.update(input, &mut self.scratch)?;
        let Some((group_keys, values, groups)) = pane.evaluate()? else { return Ok(()) };
        let batch = self.output_batch(group_keys, values, groups)?;
        if let Some(batch) = self.post.apply(batch)? {
            out.emit(batch);
        }
        Ok(())
    }

    /// Result rows: the GROUP BY outputs from the keys (the session bounds last), the values,
    /// and `window_time` as their event time.
    fn output_batch(&self, keys: Vec<ArrayRef>, values: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
        let count = self.spec.key_exprs.len();
        let bound =
            |i: usize| keys.get(count + i).cloned().ok_or_else(|| StreamError::Internal("session bounds".into()));
        let (start, end) = (bound(0)?, bound(1)?);
        let time: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter(
            end.as_primitive::<TimestampMillisecondType>().iter().map(|e| e.map(|e| e - 1)),
        ));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output_schema.fields().len());
        for output in &self.spec.outputs {
            columns.push(match output {
                GroupOutput::WindowStart => start.clone(),
                GroupOutput::WindowEnd => end.clone(),
                GroupOutput::WindowTime => time.clone(),
                GroupOutput::Key(i) => {
                    keys.get(*i).cloned().ok_or_else(|| StreamError::Internal(format!("missing group key {i}")))?
                }
            });
        }
        columns.extend(values);
        columns.push(time);
        columns.push(Arc::new(Int64Array::from_value(WATERMARK_MIN, rows)));
        Ok(RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

impl Operator for SessionOperator {
    fn name(&self) -> &str {
        "session window aggregate"
    }

    fn on_batch(&mut self, _input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        self.holding.admit(batch, out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Emitter) -> Result<()> {
        match self.holding.advance(watermark)? {
            None => Ok(()),
            Some(complete) => self.release(complete, out),
        }
    }
}
