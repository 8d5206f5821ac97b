//! SESSION windows: per key, rows less than the gap apart form one session, whose window is
//! `[first ts, last ts + gap)`; a row that bridges two sessions merges them.
//!
//! **Contract.** A row is late iff `ts < wm(r)` (its own watermark), as for OVER: late rows are
//! counted, routed and take no part. The sessions and their aggregates are those a batch query
//! finds over the rows that are not late; each is emitted once, when the watermark reaches its
//! end (no later row, all at or after the watermark, can join it).
//!
//! **How.** Rows wait until the watermark passes them ([`Holding`]); then they are sorted by key
//! and time and appended to their key's open session, or start the next one where a row is at
//! least the gap after the session's last; sessions whose end the watermark has reached are
//! aggregated (one DataFusion group per key and session) and emitted. Rows never arrive before
//! a complete row of their key, so sessions only grow at their end and never need merging here.
//! State is the rows not yet passed by the watermark and the rows of open sessions.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, RecordBatchOptions, TimestampMillisecondArray};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef, TimestampMillisecondType};
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::utils::evaluate_partition_ranges;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

use super::inputs::BatchInputs;
use super::pane::{Pane, PaneInput};
use super::spec::AggregateSpec;
use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
use crate::operators::over::{Holding, compact, evaluate_keys, hidden_column, owned_part, take_batch};
use crate::operators::stateless::StatelessChain;
use crate::pipeline::LateOutput;
use crate::time::{TS_COLUMN, hidden_fields, timestamp_type};

/// A session that may still grow: its bounds so far and its rows.
struct OpenSession {
    start: i64,
    last: i64,
    rows: Vec<RecordBatch>,
}

/// One instance of a SESSION window aggregation. See the [module docs](self).
pub struct SessionOperator {
    spec: Arc<AggregateSpec>,
    /// The spec's keys, then each row's session start and end (appended columns).
    grouping: Option<AggregateSpec>,
    gap: i64,
    post: StatelessChain,
    holding: Holding,
    /// Session keys as rows (none without keys); made from the first rows.
    keys: Option<RowConverter>,
    /// Per key, its open session.
    open: HashMap<Option<OwnedRow>, OpenSession>,
    /// Open sessions by end (`last + gap`), to find those the watermark closes.
    ends: BTreeSet<(i64, Option<OwnedRow>)>,
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
            keys: None,
            open: HashMap::new(),
            ends: BTreeSet::new(),
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

    /// Adds the newly complete rows to their keys' sessions (in time order: a row at least the
    /// gap after its key's open session closes it and opens the next), then emits every session
    /// the watermark has passed the end of.
    fn release(&mut self, complete: Vec<RecordBatch>, out: &mut Emitter) -> Result<()> {
        let Some(schema) = self.holding.schema() else { return Ok(()) };
        let watermark = self.holding.watermark;
        let mut closed: Vec<OpenSession> = Vec::new();
        let all = concat_batches(&schema, &complete)?;
        let n = all.num_rows();
        if n > 0 {
            let ts = hidden_column(&all, TS_COLUMN)?;
            let mut sort_columns = Vec::with_capacity(self.spec.key_exprs.len() + 1);
            for expr in &self.spec.key_exprs {
                sort_columns.push(SortColumn { values: expr.evaluate(&all)?.into_array(n)?, options: None });
            }
            let keys = sort_columns.len();
            sort_columns.push(SortColumn { values: ts, options: None });
            let order = lexsort_to_indices(&sort_columns, None)?;
            let sorted = take_batch(&all, &order)?;
            let sorted_keys: Vec<ArrayRef> = sort_columns[..keys]
                .iter()
                .map(|c| arrow::compute::take(c.values.as_ref(), &order, None))
                .collect::<arrow::error::Result<_>>()?;
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
            let ts = hidden_column(&sorted, TS_COLUMN)?;
            let ts = ts.as_primitive::<TimestampMillisecondType>().values().clone();
            for range in evaluate_partition_ranges(n, &partition_columns)? {
                let key = key_rows.as_ref().map(|rows| rows.row(range.start).owned());
                let mut session = self.open.remove(&key);
                if let Some(open) = &session {
                    self.ends.remove(&(open.last.saturating_add(self.gap), key.clone()));
                }
                let mut first = range.start;
                for i in range.clone() {
                    let t = ts[i];
                    // A row the gap or more after the open session's last row starts a new one.
                    if let Some(open) = session.as_mut().filter(|s| t >= s.last.saturating_add(self.gap)) {
                        if i > first {
                            open.rows.push(compact(&sorted.slice(first, i - first))?);
                        }
                        first = i;
                        closed.extend(session.take());
                    }
                    match session.as_mut() {
                        Some(open) => open.last = open.last.max(t),
                        None => session = Some(OpenSession { start: t, last: t, rows: Vec::new() }),
                    }
                }
                if let Some(mut open) = session {
                    open.rows.push(compact(&sorted.slice(first, range.end - first))?);
                    self.ends.insert((open.last.saturating_add(self.gap), key.clone()));
                    self.open.insert(key, open);
                }
            }
        }
        while let Some((end, _)) = self.ends.first() {
            if *end > watermark {
                break;
            }
            let Some((_, key)) = self.ends.pop_first() else { break };
            closed.extend(self.open.remove(&key));
        }
        self.emit(closed, &schema, out)
    }

    /// Aggregates the rows of `sessions`, one group per key and session, and emits the results.
    fn emit(&mut self, sessions: Vec<OpenSession>, schema: &SchemaRef, out: &mut Emitter) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let (mut starts, mut ends, mut parts) = (Vec::new(), Vec::new(), Vec::new());
        for session in &sessions {
            let end = session.last.saturating_add(self.gap);
            for part in &session.rows {
                starts.extend(std::iter::repeat_n(session.start, part.num_rows()));
                ends.extend(std::iter::repeat_n(end, part.num_rows()));
                parts.push(part);
            }
        }
        let closed = concat_batches(schema, parts)?;
        let rows = closed.num_rows();
        let mut fields: Vec<Field> = closed.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("window_start", timestamp_type(), false));
        fields.push(Field::new("window_end", timestamp_type(), false));
        let mut columns = closed.columns().to_vec();
        columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
        columns.push(Arc::new(TimestampMillisecondArray::from(ends)));
        let with_bounds = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let grouping = self.grouping(closed.num_columns());
        let inputs = BatchInputs::evaluate(grouping, &with_bounds)?;
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
        self.spec.window_results(&self.output_schema, [start, end, time], &keys, values, rows)
    }
}

impl Operator for SessionOperator {
    fn state_bytes(&self) -> usize {
        self.open.values().map(|s| crate::operator::batches_bytes(&s.rows)).sum::<usize>() + self.holding.bytes()
    }

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

    /// The rows the watermark has not passed, the rows of each open session (each batch of
    /// one session: a key has one open session at most) and the watermark.
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        let open: Vec<RecordBatch> = self.open.values().flat_map(|session| session.rows.iter().cloned()).collect();
        Ok(StateSnapshot {
            tables: vec![
                ("pending".into(), self.holding.held_rows()),
                ("open".into(), open),
                StateSnapshot::progress(self.holding.watermark)?,
            ],
            rescaled: None,
        })
    }

    /// Takes back a [`SessionOperator::snapshot`] (after a change of parallelism: the rows and
    /// sessions of the keys this instance owns).
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        let watermark = state.watermark().unwrap_or(crate::time::WATERMARK_MIN);
        let mut pending = Vec::new();
        for batch in state.table("pending") {
            pending.push(owned_part(batch, &self.spec.key_exprs, state.rescaled)?);
        }
        // The open sessions' rows by key, in their order.
        let mut sessions: HashMap<Option<OwnedRow>, Vec<RecordBatch>> = HashMap::new();
        for batch in state.table("open") {
            let rows = owned_part(batch, &self.spec.key_exprs, state.rescaled)?;
            if rows.num_rows() == 0 {
                continue;
            }
            let key = self.key_of_first(&rows)?;
            sessions.entry(key).or_default().push(rows);
        }
        let schema = pending.iter().chain(sessions.values().flatten()).map(RecordBatch::schema).next();
        let Some(schema) = schema else {
            self.holding.watermark = self.holding.watermark.max(watermark);
            return Ok(());
        };
        self.holding.restore(schema, pending, watermark)?;
        self.open.clear();
        self.ends.clear();
        for (key, rows) in sessions {
            let (mut start, mut last) = (i64::MAX, i64::MIN);
            for batch in &rows {
                let ts = hidden_column(batch, TS_COLUMN)?;
                let ts = ts.as_primitive::<TimestampMillisecondType>();
                start = start.min(arrow::compute::min(ts).unwrap_or(i64::MAX));
                last = last.max(arrow::compute::max(ts).unwrap_or(i64::MIN));
            }
            self.ends.insert((last.saturating_add(self.gap), key.clone()));
            self.open.insert(key, OpenSession { start, last, rows });
        }
        Ok(())
    }
}

impl SessionOperator {
    /// The session key of the first row of `rows` (`None` without keys).
    fn key_of_first(&mut self, rows: &RecordBatch) -> Result<Option<OwnedRow>> {
        let keys = evaluate_keys(&self.spec.key_exprs, &rows.slice(0, 1))?;
        if keys.is_empty() {
            return Ok(None);
        }
        if self.keys.is_none() {
            let fields = keys.iter().map(|k| SortField::new(k.data_type().clone())).collect();
            self.keys = Some(RowConverter::new(fields)?);
        }
        Ok(self.keys.as_ref().map(|c| c.convert_columns(&keys)).transpose()?.map(|r| r.row(0).owned()))
    }
}
