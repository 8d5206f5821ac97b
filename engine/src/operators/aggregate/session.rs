//! SESSION windows: per key, rows less than the gap apart form one session, whose window is
//! `[first ts, last ts + gap)`; a row that bridges two sessions merges them.
//!
//! **Contract.** A row is late iff `ts < wm(r)` (its own watermark), as for OVER: late rows are
//! counted, routed and take no part. The sessions and their aggregates are those a batch query
//! finds over the rows that are not late; each is emitted once, when the watermark reaches its
//! end (no later row, all at or after the watermark, can join it).
//!
//! **How.** Rows wait until the watermark passes them ([`Holding`]); then they are sorted by key
//! and time, kept as one batch, and each key's run of rows in it is appended to its key's open
//! session (a session is a list of such runs, [`Kept`]), or starts the next one where a row is
//! at least the gap after the session's last; sessions whose end the watermark has reached are
//! aggregated (one DataFusion group per key and session) and emitted. Rows never arrive before
//! a complete row of their key, so sessions only grow at their end and never need merging here.
//! State is the rows not yet passed by the watermark and the rows of open sessions, of the
//! columns the keys and aggregates read (the others are held as NULLs).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, TimestampMillisecondArray, new_empty_array,
};
use arrow::compute::{SortColumn, concat_batches, interleave, lexsort_to_indices};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef, TimestampMillisecondType};
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::utils::evaluate_partition_ranges;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;

use super::inputs::BatchInputs;
use super::pane::{Pane, PaneInput};
use super::spec::AggregateSpec;
use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
use crate::operators::over::{Holding, evaluate_keys, hidden_column, owned_part, take_batch};
use crate::operators::stateless::StatelessChain;
use crate::pipeline::LateOutput;
use crate::time::{TS_COLUMN, hidden_fields, timestamp_type};

/// A session that may still grow: its bounds so far and where its rows are.
struct OpenSession {
    start: i64,
    last: i64,
    /// Its rows, in time order: runs of rows of kept batches, `(batch, first row, rows)`.
    runs: Vec<(u64, usize, usize)>,
    rows: usize,
}

/// A batch of complete rows (sorted by key and time) that open sessions' runs point into, and
/// how many runs do.
struct KeptBatch {
    rows: RecordBatch,
    runs: usize,
}

/// The rows of open sessions: whole batches of released rows, shared by the sessions whose
/// runs point into them, so adding rows to a session copies nothing. A batch is dropped once no
/// run points into it; when the kept batches hold more than twice the open sessions' rows, the
/// open sessions' rows are copied into one new batch (so a long session cannot keep every batch
/// it touched alive).
#[derive(Default)]
struct Kept {
    batches: HashMap<u64, KeptBatch>,
    next: u64,
    /// Rows of the kept batches.
    rows: usize,
}

impl Kept {
    fn add(&mut self, rows: RecordBatch) -> u64 {
        let id = self.next;
        self.next += 1;
        self.rows += rows.num_rows();
        self.batches.insert(id, KeptBatch { rows, runs: 0 });
        id
    }

    /// Appends a run of batch `id` to `session`.
    fn push_run(&mut self, session: &mut OpenSession, id: u64, first: usize, rows: usize) {
        if rows == 0 {
            return;
        }
        if let Some(batch) = self.batches.get_mut(&id) {
            batch.runs += 1;
        }
        session.runs.push((id, first, rows));
        session.rows += rows;
    }

    /// Lets go of `session`'s runs, dropping the batches no run points into any more.
    fn release(&mut self, session: &OpenSession) {
        for (id, _, _) in &session.runs {
            if let Some(batch) = self.batches.get_mut(id) {
                batch.runs -= 1;
                if batch.runs == 0 {
                    self.rows -= batch.rows.num_rows();
                    self.batches.remove(id);
                }
            }
        }
    }

    /// The rows of `sessions`, session after session, as one batch of `schema`.
    fn gather<'a>(&self, schema: &SchemaRef, sessions: impl Iterator<Item = &'a OpenSession>) -> Result<RecordBatch> {
        let mut order: HashMap<u64, usize> = HashMap::new();
        let mut batches: Vec<&RecordBatch> = Vec::new();
        let mut indices: Vec<(usize, usize)> = Vec::new();
        for session in sessions {
            for &(id, first, rows) in &session.runs {
                let batch = self
                    .batches
                    .get(&id)
                    .ok_or_else(|| StreamError::Internal("a session run into a batch no longer kept".into()))?;
                let at = *order.entry(id).or_insert_with(|| {
                    batches.push(&batch.rows);
                    batches.len() - 1
                });
                indices.extend((first..first + rows).map(|row| (at, row)));
            }
        }
        let columns = (0..schema.fields().len())
            .map(|i| {
                let values: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
                if values.is_empty() {
                    return Ok(new_empty_array(schema.field(i).data_type()));
                }
                interleave(&values, &indices)
            })
            .collect::<arrow::error::Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(indices.len())),
        )?)
    }

    fn bytes(&self) -> usize {
        crate::operator::batches_bytes(self.batches.values().map(|b| &b.rows))
    }
}

/// Rows the kept batches may hold beyond twice the open sessions' before they are compacted.
const COMPACT_SLACK_ROWS: usize = 65_536;

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
    /// Rows in open sessions.
    open_rows: usize,
    /// Where the open sessions' rows are.
    kept: Kept,
    /// Open sessions by end (`last + gap`), to find those the watermark closes.
    ends: BTreeSet<(i64, Option<OwnedRow>)>,
    output_schema: SchemaRef,
    scratch: Vec<usize>,
    /// [`COMPACT_SLACK_ROWS`], or less in tests.
    compact_slack: usize,
}

impl SessionOperator {
    pub fn new(spec: Arc<AggregateSpec>, post: StatelessChain, late: Option<Arc<LateOutput>>) -> Result<Self> {
        let gap =
            spec.window.map(|w| w.size_ms).ok_or_else(|| StreamError::Internal("session without a gap".into()))?;
        let mut fields: Vec<Field> = spec.output_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(hidden_fields());
        // Sessions hold their rows until they close: only the columns the keys and the
        // aggregates read are kept.
        let call_exprs = spec.aggregates.iter().flat_map(|call| call.args.iter().chain(call.filter.as_ref()));
        let reads: BTreeSet<usize> =
            spec.key_exprs.iter().chain(call_exprs).flat_map(collect_columns).map(|c| c.index()).collect();
        Ok(Self {
            grouping: None,
            gap,
            post,
            holding: Holding::new(late).reading_only(reads),
            spec,
            keys: None,
            open: HashMap::new(),
            open_rows: 0,
            kept: Kept::default(),
            ends: BTreeSet::new(),
            output_schema: Arc::new(Schema::new(fields)),
            scratch: Vec::new(),
            compact_slack: COMPACT_SLACK_ROWS,
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
            let id = self.kept.add(sorted);
            for range in evaluate_partition_ranges(n, &partition_columns)? {
                let key = key_rows.as_ref().map(|rows| rows.row(range.start).owned());
                let mut session = self.open.remove(&key);
                if let Some(open) = &session {
                    self.ends.remove(&(open.last.saturating_add(self.gap), key.clone()));
                    self.open_rows -= open.rows;
                }
                let mut first = range.start;
                for i in range.clone() {
                    let t = ts[i];
                    // A row the gap or more after the open session's last row starts a new one.
                    if let Some(open) = session.as_mut().filter(|s| t >= s.last.saturating_add(self.gap)) {
                        self.kept.push_run(open, id, first, i - first);
                        first = i;
                        closed.extend(session.take());
                    }
                    match session.as_mut() {
                        Some(open) => open.last = open.last.max(t),
                        None => session = Some(OpenSession { start: t, last: t, runs: Vec::new(), rows: 0 }),
                    }
                }
                if let Some(mut open) = session {
                    self.kept.push_run(&mut open, id, first, range.end - first);
                    self.open_rows += open.rows;
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
            if let Some(session) = self.open.remove(&key) {
                self.open_rows -= session.rows;
                closed.push(session);
            }
        }
        self.emit(&closed, &schema, out)?;
        for session in &closed {
            self.kept.release(session);
        }
        if self.kept.rows > 2 * self.open_rows + self.compact_slack {
            self.compact(&schema)?;
        }
        Ok(())
    }

    /// Copies the open sessions' rows into one new batch, letting go of the batches they
    /// pointed into.
    fn compact(&mut self, schema: &SchemaRef) -> Result<()> {
        let rows = self.kept.gather(schema, self.open.values())?;
        let mut kept = Kept { next: self.kept.next, ..Kept::default() };
        let id = kept.add(rows);
        let mut first = 0;
        for session in self.open.values_mut() {
            let rows = std::mem::take(&mut session.rows);
            session.runs.clear();
            kept.push_run(session, id, first, rows);
            first += rows;
        }
        self.kept = kept;
        Ok(())
    }

    /// Aggregates the rows of `sessions`, one group per key and session, and emits the results.
    fn emit(&mut self, sessions: &[OpenSession], schema: &SchemaRef, out: &mut Emitter) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let (mut starts, mut ends) = (Vec::new(), Vec::new());
        for session in sessions {
            let end = session.last.saturating_add(self.gap);
            starts.extend(std::iter::repeat_n(session.start, session.rows));
            ends.extend(std::iter::repeat_n(end, session.rows));
        }
        let closed = self.kept.gather(schema, sessions.iter())?;
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
        self.kept.bytes() + self.holding.bytes()
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
        let open = match self.holding.schema() {
            Some(schema) => self
                .open
                .values()
                .map(|session| self.kept.gather(&schema, std::iter::once(session)))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
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
        self.kept = Kept::default();
        self.open_rows = 0;
        for (key, rows) in sessions {
            let mut session = OpenSession { start: i64::MAX, last: i64::MIN, runs: Vec::new(), rows: 0 };
            for batch in rows {
                let ts = hidden_column(&batch, TS_COLUMN)?;
                let ts = ts.as_primitive::<TimestampMillisecondType>();
                session.start = session.start.min(arrow::compute::min(ts).unwrap_or(i64::MAX));
                session.last = session.last.max(arrow::compute::max(ts).unwrap_or(i64::MIN));
                let n = batch.num_rows();
                let id = self.kept.add(batch);
                self.kept.push_run(&mut session, id, 0, n);
            }
            self.open_rows += session.rows;
            self.ends.insert((session.last.saturating_add(self.gap), key.clone()));
            self.open.insert(key, session);
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

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::DataType;
    use arrow::util::display::array_value_to_string;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::col;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::operators::aggregate::spec::{AggregateCall, GroupOutput, WindowShape};
    use crate::time::{WATERMARK_MAX, WATERMARK_MIN};

    /// `k`, `v`, and `note`, which no key or aggregate reads, then the hidden columns.
    fn input_schema() -> SchemaRef {
        let mut fields = vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new("note", DataType::Utf8, false),
        ];
        fields.extend(hidden_fields());
        Arc::new(Schema::new(fields))
    }

    /// `SELECT window_start, window_end, k, SUM(v) ... SESSION(... PARTITION BY k, gap 1 s)`.
    fn operator() -> SessionOperator {
        let input = input_schema();
        let v = col("v", &input).expect("column v");
        let sum = AggregateExprBuilder::new(sum_udaf(), vec![v]).schema(input.clone()).alias("s").build();
        let spec = AggregateSpec {
            window: Some(WindowShape::session(1_000).expect("session")),
            key_exprs: vec![col("k", &input).expect("column k")],
            key_fields: vec![Arc::new(Field::new("k", DataType::Utf8, true))],
            aggregates: vec![AggregateCall::new(Arc::new(sum.expect("SUM(v)")), None)],
            outputs: vec![GroupOutput::WindowStart, GroupOutput::WindowEnd, GroupOutput::Key(0)],
            output_schema: Arc::new(Schema::new(vec![
                Field::new("window_start", timestamp_type(), false),
                Field::new("window_end", timestamp_type(), false),
                Field::new("k", DataType::Utf8, true),
                Field::new("s", DataType::Int64, true),
            ])),
        };
        SessionOperator::new(Arc::new(spec), StatelessChain::new(Vec::new(), &hidden_fields()), None)
            .expect("session operator")
    }

    /// Rows of four keys, mostly in time order with pauses that end sessions, some going back
    /// past the watermark (delay 500 ms), in batches of random sizes.
    fn batches(seed: u64) -> Vec<RecordBatch> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let (mut rows, mut max, mut t) = (Vec::new(), i64::MIN, 1_700_000_000_000_i64);
        for i in 0..4_000 {
            t += if rng.random_range(0..50) == 0 { rng.random_range(1_000..3_000) } else { rng.random_range(0..150) };
            let ts = if rng.random_range(0..20) == 0 { t - rng.random_range(0..3_000) } else { t };
            let wm = if max == i64::MIN { WATERMARK_MIN } else { max - 500 };
            max = max.max(ts);
            let key = ["a", "b", "c", "d"][rng.random_range(0..4)];
            rows.push((key, i as i64, ts, wm));
        }
        let mut out = Vec::new();
        let mut at = 0;
        while at < rows.len() {
            let n = rng.random_range(1..300).min(rows.len() - at);
            let part = &rows[at..at + n];
            let columns: Vec<ArrayRef> = vec![
                Arc::new(part.iter().map(|r| Some(r.0)).collect::<StringArray>()),
                Arc::new(part.iter().map(|r| Some(r.1)).collect::<Int64Array>()),
                Arc::new(
                    part.iter()
                        .map(|r| Some(format!("a long note nobody reads, row {}", r.1)))
                        .collect::<StringArray>(),
                ),
                Arc::new(part.iter().map(|r| Some(r.2)).collect::<TimestampMillisecondArray>()),
                Arc::new(part.iter().map(|r| r.3).collect::<Int64Array>()),
            ];
            out.push(RecordBatch::try_new(input_schema(), columns).expect("batch"));
            at += n;
        }
        out
    }

    fn lines(batches: &[RecordBatch]) -> Vec<String> {
        let mut lines: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |r| {
                    let cells: Vec<String> =
                        (0..4).map(|c| array_value_to_string(b.column(c), r).expect("value")).collect();
                    cells.join(" ")
                })
            })
            .collect();
        lines.sort();
        lines
    }

    /// Runs `op` over `input` from batch `from` on (restoring `restore_at` batches in from a
    /// snapshot, when given); returns the results, the late rows and whether a compaction left
    /// the open sessions' rows in one batch with others kept before.
    fn run(slack: usize, input: &[RecordBatch], restart_at: Option<usize>) -> (Vec<String>, u64, bool) {
        let mut op = operator();
        op.compact_slack = slack;
        let mut out = Emitter::default();
        let mut compacted = false;
        for (i, batch) in input.iter().enumerate() {
            if restart_at == Some(i) {
                let state = op.snapshot(1).expect("snapshot");
                op = operator();
                op.compact_slack = slack;
                op.restore(state).expect("restore");
            }
            op.on_batch(0, batch.clone(), &mut out).expect("batch");
            let wm = batch.column(4).as_primitive::<arrow::datatypes::Int64Type>();
            let before = op.kept.batches.len();
            op.on_watermark(wm.value(wm.len() - 1), &mut out).expect("watermark");
            assert!(op.kept.rows <= 2 * op.open_rows + slack, "kept rows beyond the slack");
            compacted |= before > 1 && op.kept.batches.len() == 1 && op.open_rows > 0;
            assert_eq!(op.open_rows, op.open.values().map(|s| s.rows).sum::<usize>());
        }
        op.on_watermark(WATERMARK_MAX, &mut out).expect("end");
        assert!(op.kept.batches.is_empty() && op.open.is_empty(), "every session closed at the end");
        let (batches, late, routed) = out.take();
        assert!(routed.is_empty());
        (lines(&batches), late, compacted)
    }

    #[test]
    fn compacting_and_restoring_the_open_sessions_rows_changes_no_result() {
        for seed in 0..4 {
            let input = batches(seed);
            let (expected, late, _) = run(COMPACT_SLACK_ROWS, &input, None);
            assert!(late > 0 && expected.len() > 20, "seed {seed}: {} sessions, {late} late rows", expected.len());
            let (compacting, compacting_late, compacted) = run(0, &input, None);
            assert!(compacted, "seed {seed}: the open sessions were never compacted");
            assert_eq!((compacting, compacting_late), (expected.clone(), late), "seed {seed}, compacting");
            for restart_at in [1, input.len() / 3, input.len() / 2] {
                for slack in [0, COMPACT_SLACK_ROWS] {
                    let (restarted, restarted_late, _) = run(slack, &input, Some(restart_at));
                    let case = format!("seed {seed}, restarted at batch {restart_at}, slack {slack}");
                    assert_eq!((restarted, restarted_late), (expected.clone(), late), "{case}");
                }
            }
        }
    }

    #[test]
    fn rows_are_held_without_the_columns_no_key_or_aggregate_reads() {
        let mut op = operator();
        let mut out = Emitter::default();
        for batch in batches(7).iter().take(5) {
            op.on_batch(0, batch.clone(), &mut out).expect("batch");
        }
        let held = op.holding.held_rows();
        assert!(!held.is_empty());
        for batch in &held {
            assert_eq!(batch.column(2).null_count(), batch.num_rows(), "note is held as NULLs");
            assert_eq!(batch.column(1).null_count(), 0, "v is held");
        }
    }
}
