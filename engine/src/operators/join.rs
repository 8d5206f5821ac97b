//! The regular equi-join of two append-only streams (`a JOIN b ON a.k = b.k`), as Flink runs
//! it: every row of each side is kept; a row arriving on one side is joined with every row seen
//! so far on the other side with the same keys, then kept for the rows still to come. Each pair
//! is emitted exactly once, by whichever of its two rows arrived second, so an INNER join of
//! append-only inputs is append-only, and its result over bounded inputs is the batch join.
//!
//! ```text
//!  row on side s:  keys → probe the other side's index ─▶ pairs (left columns, right columns)
//!                                                         ─▶ residual condition, SELECT … (post)
//!                  then index the row on side s
//! ```
//!
//! A **lookup join** is the same join with one side a bounded table (a file, loaded once): until
//! that side has ended, rows of the stream side are kept as above (a stream row may come before
//! the table row it matches); once the table is complete, the stream side's kept rows are dropped
//! and each new stream row is only probed, never kept, so the join's state is the table.
//!
//! Rows with a NULL key never match (SQL equality) and are not kept. Keys are compared in
//! Arrow's row format, both sides cast to the key types chosen at planning. The hidden
//! event-time columns of the inputs are dropped: a regular join's result has no event time
//! (as in Flink), so it cannot be windowed again. State grows with the inputs; bounding it
//! (by watermark for windowed inputs, by `table.exec.state.ttl`) is still to come.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int8Array, Int64Array, UInt32Array, new_null_array};
use arrow::compute::{cast, filter, filter_record_batch, interleave, take};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;

use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
use crate::operators::aggregate::updating::{ChangeOp, OP_COLUMN, with_op_column};
use crate::operators::exchange::owned_filter;
use crate::operators::stateless::{StatelessChain, StatelessOp, evaluate_predicate};
use crate::operators::window_join::{JoinKind, WindowJoin};
use crate::pipeline::LateOutput;
use crate::time::{TS_COLUMN, WM_COLUMN};

/// Joined rows per emitted batch, at most.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// One input of a join.
#[derive(Debug, Clone)]
pub struct JoinSide {
    /// The equi-join keys over this side's batches, in the order of [`JoinSpec::key_types`].
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The side's visible columns: the first `visible` of each batch (hidden columns follow).
    pub visible: usize,
}

/// What a join computes.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub left: JoinSide,
    pub right: JoinSide,
    /// The type both sides' keys are compared as.
    pub key_types: Vec<DataType>,
    /// Joined rows: the left side's visible columns, then the right side's.
    pub output_schema: SchemaRef,
    /// When kept rows can be dropped, for joins of window results on a window column.
    pub expiry: Option<JoinExpiry>,
    /// An interval join's time bounds: rows are judged late by their own watermark and kept
    /// only while they can still match.
    pub interval: Option<IntervalBounds>,
    /// A window join: both inputs are windowed by this TVF and joined per window (see
    /// [`window_join`](crate::operators::window_join)); `left.visible`/`right.visible` count
    /// the columns before each side's window columns.
    pub window: Option<WindowJoin>,
    /// A lookup join: the input (0 or 1) that is a bounded table. Once it has ended, rows of the
    /// other input are probed and not kept.
    pub lookup: Option<usize>,
    /// INNER, or which sides an outer join keeps (NULL-padded) when they match nothing.
    pub kind: JoinKind,
    /// An outer join's non-equality `ON` condition, over joined rows: it decides which pairs
    /// match (an inner join applies it in the post chain instead).
    pub condition: Option<Arc<dyn PhysicalExpr>>,
    /// Which inputs are changelogs (carry `_op`): their `-U`/`-D` rows take a kept row back
    /// out and retract the pairs it made.
    pub updating_inputs: [bool; 2],
}

impl JoinSpec {
    /// Input `input` (0: left, 1: right).
    pub fn side(&self, input: usize) -> &JoinSide {
        if input == 0 { &self.left } else { &self.right }
    }

    /// The key columns of `batch` (arriving on `input`), cast to the key types.
    pub fn key_columns(&self, input: usize, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let n = batch.num_rows();
        self.side(input)
            .keys
            .iter()
            .zip(&self.key_types)
            .map(|(expr, data_type)| {
                let array = expr.evaluate(batch)?.into_array(n)?;
                Ok(if array.data_type() == data_type { array } else { cast(&array, data_type)? })
            })
            .collect()
    }

    /// Whether a checkpoint can hold this join's state: a regular or interval join, inner or
    /// outer, of append-only or updating inputs (its state is the kept rows of each side, keyed
    /// by the join keys over the visible columns, with an outer join's match counts and, under
    /// a state TTL, when each row was kept; an updating input's index of rows by value is built
    /// again from them), a lookup join (the same, and whether its table is read: then only the
    /// table's rows are kept), and a window join. A key over hidden columns is refused, naming
    /// the join.
    pub fn checkpointable(&self) -> Result<()> {
        let what = match (self.interval, self.lookup) {
            (Some(_), _) => "interval join",
            (None, Some(_)) => "lookup join",
            (None, None) => "join",
        };
        let refuse = |why: &str| Err(StreamError::Config(format!("the {what} operator cannot be checkpointed {why}")));
        if self.window.is_some() {
            // Its state is each window's rows, which it stores itself (`WindowJoinOperator`).
            return Ok(());
        }
        for input in 0..2 {
            let side = self.side(input);
            let hidden = side.keys.iter().flat_map(collect_columns).any(|c| c.index() >= side.visible);
            if hidden {
                return refuse("with a key over hidden columns");
            }
        }
        Ok(())
    }

    /// Whether the join's results are a changelog: an outer join whose padded rows may later be
    /// retracted (a lookup join pads only once its table is complete: append-only), or a join
    /// of a changelog.
    pub fn is_changelog(&self) -> bool {
        self.window.is_none()
            && ((self.kind.keeps_unmatched(0) || self.kind.keeps_unmatched(1)) && self.lookup.is_none()
                || self.updating_inputs.contains(&true))
    }
}

/// An interval join: `lower_ms <= l.ts - r.ts <= upper_ms` over the two sides' event times (the
/// hidden `_ts` columns), implied by the join condition (which the post chain still applies
/// exactly). Rows are judged by their own watermark: a row with `ts < wm(r)` is late, dropped and
/// counted. A left row can meet no right row still to come once the operator watermark passes
/// `l.ts - lower_ms`, a right row once it passes `r.ts + upper_ms`; then they are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalBounds {
    pub lower_ms: i64,
    pub upper_ms: i64,
}

/// Rows of both sides joined on a window column: a row whose value `v` in that column satisfies
/// `v + offset_ms <= watermark` can match no row still to come, and is dropped.
#[derive(Debug, Clone, Copy)]
pub struct JoinExpiry {
    /// The window column (a millisecond timestamp) among the left side's visible columns.
    pub left_column: usize,
    /// The same among the right side's.
    pub right_column: usize,
    /// From the column's value to the latest window end it may belong to on either side
    /// (`0` for `window_end`, the window size for `window_start`).
    pub offset_ms: i64,
}

/// The rows kept of one side, indexed by key.
#[derive(Default)]
struct SideState {
    /// Kept batches; one whose rows have all expired is replaced by an empty batch.
    batches: Vec<RecordBatch>,
    /// Rows of each batch still kept.
    live: Vec<usize>,
    /// Key (row format) → (batch, row) of every kept row with that key.
    index: HashMap<Box<[u8]>, Vec<(usize, usize)>>,
    /// With [`JoinSpec::expiry`]: the keys that expire at each time. With
    /// [`JoinSpec::interval`]: the keys holding a row that expires at each time.
    expiring: BTreeMap<i64, Vec<Box<[u8]>>>,
    /// With [`JoinSpec::interval`]: per kept batch, the time at which each row expires.
    row_expiry: Vec<Vec<i64>>,
    /// Outer joins: per kept batch, how many rows of the other side each row has matched.
    matches: Vec<Vec<u32>>,
    /// With a state TTL: when each batch was kept (processing time), and the first batch not
    /// yet dropped for its age.
    kept_at: Vec<tokio::time::Instant>,
    ttl_cursor: usize,
    /// Changelog inputs: each kept row's whole value (row format) → where it is kept, to find
    /// the row a `-U`/`-D` takes back.
    by_value: HashMap<Box<[u8]>, Vec<(usize, usize)>>,
}

impl SideState {
    /// Takes the keys of [`SideState::expiring`] due at or before `watermark`.
    fn take_due(&mut self, watermark: i64) -> impl Iterator<Item = Vec<Box<[u8]>>> + use<> {
        let later = match watermark.checked_add(1) {
            Some(after) => self.expiring.split_off(&after),
            None => BTreeMap::new(),
        };
        std::mem::replace(&mut self.expiring, later).into_values()
    }

    /// Drops the rows whose keys expire at or before `watermark`.
    fn expire(&mut self, watermark: i64) {
        for keys in self.take_due(watermark) {
            for key in keys {
                for (batch, _) in self.index.remove(&key).unwrap_or_default() {
                    self.live[batch] -= 1;
                    if self.live[batch] == 0 {
                        self.batches[batch] = RecordBatch::new_empty(self.batches[batch].schema());
                    }
                }
            }
        }
    }

    /// Drops the rows (not whole keys) that expire at or before `watermark`.
    fn expire_rows(&mut self, watermark: i64) {
        for keys in self.take_due(watermark) {
            for key in keys {
                let Some(rows) = self.index.get_mut(&key) else { continue };
                let (batches, live, row_expiry) = (&mut self.batches, &mut self.live, &mut self.row_expiry);
                rows.retain(|&(batch, row)| {
                    // Dead once the watermark is past the last time a match can have.
                    let expired = row_expiry[batch].get(row).is_none_or(|at| *at < watermark);
                    if expired {
                        live[batch] -= 1;
                        if live[batch] == 0 {
                            batches[batch] = RecordBatch::new_empty(batches[batch].schema());
                            row_expiry[batch] = Vec::new();
                        }
                    }
                    !expired
                });
                if rows.is_empty() {
                    self.index.remove(&key);
                }
            }
        }
    }

    /// Rows kept.
    #[cfg(test)]
    fn rows(&self) -> usize {
        self.live.iter().sum()
    }
}

/// A joined row to build: (row of the arriving batch, kept row `(batch, row)` of the other
/// side); `None` pads that side with NULLs.
type Pick = (Option<u32>, Option<(usize, usize)>);

/// The operator: see the [module docs](self).
pub struct JoinOperator {
    spec: Arc<JoinSpec>,
    post: StatelessChain,
    converter: RowConverter,
    sides: [SideState; 2],
    /// A lookup join's table has ended: the other side's rows are no longer kept.
    table_complete: bool,
    /// Joined rows with the changelog column, for outer joins.
    changelog_schema: Option<SchemaRef>,
    /// `'table.exec.state.ttl'`: a kept row is dropped this long (processing time) after it
    /// arrived, matched or not (not in a lookup join: its table stays, its stream rows go once
    /// the table is read).
    state_ttl: Option<std::time::Duration>,
    /// Interval joins: where each input's late rows go besides being counted.
    late: [Option<Arc<LateOutput>>; 2],
    /// Changelog inputs: their visible columns in row format, to match retractions.
    value_converters: [Option<RowConverter>; 2],
    /// The operator watermark: interval joins expire rows by it, so a row behind it is late
    /// even if its own `_wm` is not (an idle input's row, see [`crate::message::Message::Idle`]).
    watermark: i64,
    /// Per joined column, whether the `ON` condition or the post chain reads it: the others are
    /// made NULL rather than copied from the two sides (see [`joined_columns_read`]).
    reads: Vec<bool>,
}

/// Which joined columns (left visible, then right visible) the outer join condition and the
/// post chain read: the post chain's filters and its first projection (everything after a
/// projection reads the projection's outputs). All of them when the chain never projects.
fn joined_columns_read(spec: &JoinSpec, post: &StatelessChain) -> Vec<bool> {
    let width = spec.output_schema.fields().len();
    let mut reads = vec![false; width];
    let mut mark = |expr: &Arc<dyn PhysicalExpr>| {
        for column in collect_columns(expr) {
            if let Some(read) = reads.get_mut(column.index()) {
                *read = true;
            }
        }
    };
    if let Some(condition) = &spec.condition {
        mark(condition);
    }
    for op in post.ops() {
        match op {
            StatelessOp::Filter(predicate) => mark(predicate),
            StatelessOp::Project { exprs, .. } => {
                exprs.iter().for_each(&mut mark);
                return reads;
            }
        }
    }
    vec![true; width]
}

impl JoinOperator {
    /// How many batches of a lookup join's table each former instance wrote, from a snapshot
    /// restored at another parallelism: the same for all, as each held the whole table.
    fn lookup_table_batches(&self, state: &StateSnapshot) -> Result<usize> {
        let refuse = |why: &str| {
            StreamError::Config(format!(
                "the lookup join's checkpoint cannot be spread over another number of instances: {why}; start at the \
                 parallelism of the checkpoint, or with --from-scratch"
            ))
        };
        let mut counts = Vec::new();
        for batch in state.table(LOOKUP_TABLE) {
            let column = batch
                .column_by_name(LOOKUP_TABLE_BATCHES)
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt64Type>())
                .ok_or_else(|| refuse("it was taken by an older version, which did not count its table's batches"))?;
            counts.extend(column.values().iter().map(|&n| n as usize));
        }
        let table = state.table(if self.spec.lookup == Some(0) { "left" } else { "right" });
        match counts.first() {
            Some(&first) if counts.iter().all(|&n| n == first) && first * counts.len() == table.len() => Ok(first),
            Some(_) => Err(refuse("its instances held different tables")),
            None => Err(refuse("it holds no table")),
        }
    }

    pub fn new(spec: Arc<JoinSpec>, post: StatelessChain) -> Result<Self> {
        if spec.key_types.is_empty() {
            return Err(StreamError::Internal("a join without equality keys".into()));
        }
        let converter = RowConverter::new(spec.key_types.iter().map(|t| SortField::new(t.clone())).collect())?;
        let fields = spec.output_schema.fields();
        let side_fields = [&fields[..spec.left.visible], &fields[spec.left.visible..]];
        let value_converters = [0, 1].map(|side| {
            spec.updating_inputs[side].then(|| {
                RowConverter::new(side_fields[side].iter().map(|f| SortField::new(f.data_type().clone())).collect())
            })
        });
        let [left_values, right_values] = value_converters;
        let value_converters = [left_values.transpose()?, right_values.transpose()?];
        let changelog_schema = spec.is_changelog().then(|| with_op_column(&spec.output_schema));
        let reads = joined_columns_read(&spec, &post);
        Ok(Self {
            reads,
            spec,
            post,
            converter,
            sides: [SideState::default(), SideState::default()],
            table_complete: false,
            changelog_schema,
            state_ttl: None,
            late: [None, None],
            value_converters,
            watermark: i64::MIN,
        })
    }

    /// Rows of input `i` dropped as late go to `late[i]` too (the pipeline's late-rows sink).
    pub fn with_late_output(mut self, late: [Option<Arc<LateOutput>>; 2]) -> Self {
        self.late = late;
        self
    }

    /// Drops kept rows `ttl` after they arrived (`None` or zero: kept as long as they can match).
    pub fn with_state_ttl(mut self, ttl: Option<std::time::Duration>) -> Self {
        self.state_ttl = ttl.filter(|t| !t.is_zero());
        self
    }

    /// Whether kept rows may be dropped for their age.
    fn ages_out(&self) -> bool {
        // A lookup join keeps its table, and its stream rows only until the table is read.
        self.state_ttl.is_some() && self.spec.lookup.is_none()
    }

    /// Drops the rows of `side` kept `ttl` or longer before `now`.
    fn drop_aged(&mut self, side: usize, now: tokio::time::Instant) -> Result<()> {
        let Some(ttl) = self.state_ttl else { return Ok(()) };
        while let Some(&kept_at) = self.sides[side].kept_at.get(self.sides[side].ttl_cursor) {
            if kept_at + ttl > now {
                break;
            }
            let batch = self.sides[side].ttl_cursor;
            self.sides[side].ttl_cursor += 1;
            if self.sides[side].live[batch] == 0 {
                continue;
            }
            let rows = self.sides[side].batches[batch].clone();
            let keys = self.keys(side, &rows)?;
            let keys = self.converter.convert_columns(&keys)?;
            let values = match &self.value_converters[side] {
                Some(converter) => Some(converter.convert_columns(rows.columns())?),
                None => None,
            };
            let state = &mut self.sides[side];
            if let Some(values) = &values {
                for row in 0..rows.num_rows() {
                    let value = values.row(row);
                    if let Some(kept) = state.by_value.get_mut(value.as_ref()) {
                        kept.retain(|(b, _)| *b != batch);
                        if kept.is_empty() {
                            state.by_value.remove(value.as_ref());
                        }
                    }
                }
            }
            for row in 0..rows.num_rows() {
                let key = keys.row(row);
                if let Some(kept) = state.index.get_mut(key.as_ref()) {
                    kept.retain(|(b, _)| *b != batch);
                    if kept.is_empty() {
                        state.index.remove(key.as_ref());
                    }
                }
            }
            state.live[batch] = 0;
            state.batches[batch] = RecordBatch::new_empty(rows.schema());
            if let Some(expiry) = state.row_expiry.get_mut(batch) {
                *expiry = Vec::new();
            }
            if let Some(matches) = state.matches.get_mut(batch) {
                *matches = Vec::new();
            }
        }
        Ok(())
    }

    fn side(&self, input: usize) -> &JoinSide {
        self.spec.side(input)
    }

    /// The key columns of `batch` (arriving on `input`), cast to the key types.
    fn keys(&self, input: usize, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.spec.key_columns(input, batch)
    }

    /// The pairs `(probe row, kept row)` as joined rows (left columns, then right); a `None`
    /// on either side is NULL-padded.
    fn joined(&self, input: usize, probe: &RecordBatch, pairs: &[Pick]) -> Result<RecordBatch> {
        let fields = self.spec.output_schema.fields();
        let kept = &self.sides[1 - input].batches;
        let n = pairs.len();
        // Where each side's columns are among the joined ones.
        let (probe_offset, kept_offset) =
            if input == 0 { (0, self.spec.left.visible) } else { (self.spec.left.visible, 0) };
        // A column nothing reads is NULL (the joined schema is all nullable).
        let unread = |at: usize| (!self.reads[at]).then(|| new_null_array(fields[at].data_type(), n));
        let probe_columns = if pairs.iter().all(|(row, _)| row.is_none()) {
            (0..self.side(input).visible).map(|c| new_null_array(fields[probe_offset + c].data_type(), n)).collect()
        } else {
            let probe_rows = UInt32Array::from(pairs.iter().map(|(row, _)| *row).collect::<Vec<_>>());
            probe
                .columns()
                .iter()
                .enumerate()
                .map(|(c, column)| match unread(probe_offset + c) {
                    Some(nulls) => Ok(nulls),
                    None => take(column.as_ref(), &probe_rows, None),
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let kept_columns = if pairs.iter().all(|(_, at)| at.is_none()) {
            (0..self.side(1 - input).visible).map(|c| new_null_array(fields[kept_offset + c].data_type(), n)).collect()
        } else {
            let kept_rows: Vec<(usize, usize)> = pairs
                .iter()
                .map(|(_, at)| {
                    at.ok_or_else(|| StreamError::Internal("a join batch mixing padded and kept rows".into()))
                })
                .collect::<Result<_>>()?;
            // Only the kept batches these rows are in: interleave looks at every array it gets.
            let mut used: Vec<usize> = kept_rows.iter().map(|(b, _)| *b).collect();
            used.sort_unstable();
            used.dedup();
            let kept_rows: Vec<(usize, usize)> =
                kept_rows.iter().map(|(b, r)| (used.binary_search(b).unwrap_or_default(), *r)).collect();
            (0..self.side(1 - input).visible)
                .map(|c| match unread(kept_offset + c) {
                    Some(nulls) => Ok(nulls),
                    None => {
                        let arrays: Vec<&dyn Array> = used.iter().map(|b| kept[*b].column(c).as_ref()).collect();
                        interleave(&arrays, &kept_rows)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let columns =
            if input == 0 { [probe_columns, kept_columns].concat() } else { [kept_columns, probe_columns].concat() };
        Ok(RecordBatch::try_new_with_options(
            self.spec.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }

    /// Sends joined rows through the post chain, with the changelog op for an outer join.
    fn emit(&self, joined: RecordBatch, op: ChangeOp, out: &mut Emitter) -> Result<()> {
        let joined = match &self.changelog_schema {
            Some(schema) => {
                let n = joined.num_rows();
                let mut columns = joined.columns().to_vec();
                columns.push(Arc::new(Int8Array::from(vec![op as i8; n])));
                RecordBatch::try_new_with_options(
                    schema.clone(),
                    columns,
                    &RecordBatchOptions::new().with_row_count(Some(n)),
                )?
            }
            None => joined,
        };
        if let Some(result) = self.post.apply(joined)? {
            out.emit(result);
        }
        Ok(())
    }

    /// Emits the pairs `(probe row, kept row)` as joined rows through the post chain.
    fn emit_pairs(
        &self,
        input: usize,
        probe: &RecordBatch,
        pairs: &[(u32, (usize, usize))],
        out: &mut Emitter,
    ) -> Result<()> {
        for chunk in pairs.chunks(OUTPUT_BATCH_ROWS) {
            let picks: Vec<_> = chunk.iter().map(|(row, at)| (Some(*row), Some(*at))).collect();
            let joined = self.joined(input, probe, &picks)?;
            self.emit(joined, ChangeOp::Insert, out)?;
        }
        Ok(())
    }

    /// An outer join's pairs: those passing the `ON` condition are emitted; kept rows of a
    /// preserved side matching for the first time first retract their NULL-padded row. Returns
    /// how many pairs each probe row matched.
    fn emit_outer_pairs(
        &mut self,
        input: usize,
        probe: &RecordBatch,
        candidates: Vec<(u32, (usize, usize))>,
        out: &mut Emitter,
    ) -> Result<Vec<u32>> {
        let mut probe_matches = vec![0u32; probe.num_rows()];
        let passing = self.passing_pairs(input, probe, candidates)?;
        let other = 1 - input;
        // A lookup join's stream rows are padded only once the table is complete: none to retract.
        let other_padded = self.spec.kind.keeps_unmatched(other) && self.spec.lookup.is_none();
        let mut retract = Vec::new();
        for &(row, (batch, kept)) in &passing {
            probe_matches[row as usize] += 1;
            if let Some(count) = self.sides[other].matches.get_mut(batch).and_then(|m| m.get_mut(kept)) {
                if *count == 0 && other_padded {
                    retract.push((None, Some((batch, kept))));
                }
                *count += 1;
            }
        }
        for chunk in retract.chunks(OUTPUT_BATCH_ROWS) {
            let joined = self.joined(input, probe, chunk)?;
            self.emit(joined, ChangeOp::Delete, out)?;
        }
        for chunk in passing.chunks(OUTPUT_BATCH_ROWS) {
            let picks: Vec<_> = chunk.iter().map(|(row, at)| (Some(*row), Some(*at))).collect();
            let joined = self.joined(input, probe, &picks)?;
            self.emit(joined, ChangeOp::Insert, out)?;
        }
        Ok(probe_matches)
    }

    /// The candidate pairs that match: those passing an outer join's `ON` condition (an inner
    /// join's condition is applied by the post chain, on what it emits).
    fn passing_pairs(
        &self,
        input: usize,
        probe: &RecordBatch,
        candidates: Vec<(u32, (usize, usize))>,
    ) -> Result<Vec<(u32, (usize, usize))>> {
        let Some(condition) = self.spec.condition.as_ref().filter(|_| self.spec.kind != JoinKind::Inner) else {
            return Ok(candidates);
        };
        let mut passing = Vec::with_capacity(candidates.len());
        for chunk in candidates.chunks(OUTPUT_BATCH_ROWS) {
            let picks: Vec<_> = chunk.iter().map(|(row, at)| (Some(*row), Some(*at))).collect();
            let joined = self.joined(input, probe, &picks)?;
            let mask = evaluate_predicate(condition, &joined)?;
            passing.extend(chunk.iter().zip(mask.iter()).filter(|(_, m)| *m == Some(true)).map(|(p, _)| *p));
        }
        Ok(passing)
    }

    /// Emits `rows` of `probe` (arriving on `input`) NULL-padded on the other side.
    fn emit_padded(&self, input: usize, probe: &RecordBatch, rows: &[u32], out: &mut Emitter) -> Result<()> {
        for chunk in rows.chunks(OUTPUT_BATCH_ROWS) {
            let picks: Vec<_> = chunk.iter().map(|row| (Some(*row), None)).collect();
            let joined = self.joined(input, probe, &picks)?;
            self.emit(joined, ChangeOp::Insert, out)?;
        }
        Ok(())
    }
}

impl Operator for JoinOperator {
    fn state_bytes(&self) -> usize {
        self.sides
            .iter()
            .map(|side| {
                // The indexes by their size and one key's length: walking every key would cost
                // as much as the state is large.
                let index = |map: &HashMap<Box<[u8]>, Vec<(usize, usize)>>| {
                    let key = map.keys().next().map_or(0, |k| k.len());
                    map.capacity() * (size_of::<(Box<[u8]>, Vec<(usize, usize)>)>() + 1) + map.len() * (key + 16)
                };
                crate::operator::batches_bytes(&side.batches) + index(&side.index) + index(&side.by_value)
            })
            .sum()
    }

    fn name(&self) -> &str {
        match (&self.spec.interval, &self.spec.lookup) {
            (Some(_), _) => "interval join",
            (None, Some(_)) => "lookup join",
            (None, None) => "join",
        }
    }

    fn on_batch(&mut self, input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        let input = input.min(1);
        if !self.spec.updating_inputs[input] {
            return self.add_rows(input, batch, out);
        }
        // A changelog: runs of additions and of retractions, in order.
        let ops = batch
            .column_by_name(OP_COLUMN)
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int8Type>())
            .ok_or_else(|| StreamError::Internal("an updating join input without its changelog column".into()))?
            .clone();
        let adds = |i: usize| ChangeOp::from_i8(ops.value(i)).map(ChangeOp::is_addition);
        let mut start = 0;
        while start < batch.num_rows() {
            let addition = adds(start)?;
            let mut end = start + 1;
            while end < batch.num_rows() && adds(end)? == addition {
                end += 1;
            }
            let run = batch.slice(start, end - start);
            if addition {
                self.add_rows(input, run, out)?
            } else {
                self.retract_rows(input, &run, out)?
            }
            start = end;
        }
        Ok(())
    }

    /// Results do not wait for event time; rows that can match no more are dropped.
    fn on_watermark(&mut self, watermark: i64, _out: &mut Emitter) -> Result<()> {
        self.watermark = watermark;
        if self.spec.expiry.is_some() {
            self.sides.iter_mut().for_each(|side| side.expire(watermark));
        } else if self.spec.interval.is_some() {
            self.sides.iter_mut().for_each(|side| side.expire_rows(watermark));
        }
        Ok(())
    }

    fn next_timer(&self) -> Option<tokio::time::Instant> {
        let ttl = self.state_ttl.filter(|_| self.ages_out())?;
        (0..2).filter_map(|side| self.sides[side].kept_at.get(self.sides[side].ttl_cursor).map(|at| *at + ttl)).min()
    }

    fn on_timer(&mut self, _out: &mut Emitter) -> Result<()> {
        let now = tokio::time::Instant::now();
        if self.ages_out() {
            for side in 0..2 {
                self.drop_aged(side, now)?;
            }
        }
        Ok(())
    }

    fn on_input_end(&mut self, input: usize, out: &mut Emitter) -> Result<()> {
        if self.spec.lookup == Some(input) {
            self.table_complete = true;
            let stream = 1 - input;
            if self.spec.kind.keeps_unmatched(stream) {
                // Stream rows that met no table row: padded now that none can come.
                let state = &self.sides[stream];
                let mut unmatched: Vec<(usize, usize)> = state
                    .index
                    .values()
                    .flatten()
                    .filter(|(batch, row)| state.matches.get(*batch).and_then(|m| m.get(*row)) == Some(&0))
                    .copied()
                    .collect();
                unmatched.sort_unstable();
                let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
                for chunk in unmatched.chunks(OUTPUT_BATCH_ROWS) {
                    let picks: Vec<_> = chunk.iter().map(|at| (None, Some(*at))).collect();
                    let joined = self.joined(input, &empty, &picks)?;
                    self.emit(joined, ChangeOp::Insert, out)?;
                }
            }
            self.sides[1 - input] = SideState::default();
        }
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    /// Each side's kept rows (visible columns, then an interval join's expiry time per row as
    /// `_expiry`, an outer join's match counts as `_matches`, and under a state TTL when the
    /// row was kept as `_kept_at`, wall-clock epoch milliseconds) and the operator watermark.
    /// See [`JoinSpec::checkpointable`].
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        self.spec.checkpointable()?;
        let outer = self.spec.kind != JoinKind::Inner;
        let clock = WallClock::now();
        let mut tables = Vec::new();
        for (input, name) in [(0, "left"), (1, "right")] {
            let side = &self.sides[input];
            let mut live: Vec<Vec<u32>> = vec![Vec::new(); side.batches.len()];
            for &(batch, row) in side.index.values().flatten() {
                live[batch].push(row as u32);
            }
            let mut batches = Vec::new();
            for (batch, mut rows) in live.into_iter().enumerate() {
                if rows.is_empty() {
                    continue;
                }
                rows.sort_unstable();
                let expiry: Int64Array = rows
                    .iter()
                    .map(|&row| Some(side.row_expiry[batch].get(row as usize).copied().unwrap_or(i64::MAX)))
                    .collect();
                // An outer join's match counts: whether a row is padded, and when a padded row
                // is taken back.
                let matches: Option<UInt32Array> = outer.then(|| {
                    rows.iter().map(|&row| side.matches.get(batch).and_then(|m| m.get(row as usize)).copied()).collect()
                });
                let rows_kept = rows.len();
                let kept = arrow::compute::take_record_batch(&side.batches[batch], &UInt32Array::from(rows))?;
                let mut fields: Vec<Field> = kept.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(Field::new(EXPIRY_COLUMN, DataType::Int64, false));
                let mut columns = kept.columns().to_vec();
                columns.push(Arc::new(expiry));
                if let Some(matches) = matches {
                    fields.push(Field::new(MATCHES_COLUMN, DataType::UInt32, true));
                    columns.push(Arc::new(matches));
                }
                if let Some(&kept_at) = side.kept_at.get(batch).filter(|_| self.ages_out()) {
                    fields.push(Field::new(KEPT_AT_COLUMN, DataType::Int64, false));
                    columns.push(Arc::new(Int64Array::from_value(clock.epoch_ms(kept_at), rows_kept)));
                }
                batches.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?);
            }
            tables.push((name.to_string(), batches));
        }
        tables.push(StateSnapshot::progress(self.watermark)?);
        if let Some(table) = self.spec.lookup {
            // How many batches of the table this instance wrote: every instance holds the same
            // table, so a restore at another parallelism takes one instance's.
            let table_batches = tables[table].1.len() as u64;
            let schema = Arc::new(Schema::new(vec![
                Field::new("table_read", DataType::Boolean, false),
                Field::new(LOOKUP_TABLE_BATCHES, DataType::UInt64, false),
            ]));
            let columns: Vec<ArrayRef> = vec![
                Arc::new(BooleanArray::from(vec![self.table_complete])),
                Arc::new(arrow::array::UInt64Array::from(vec![table_batches])),
            ];
            tables.push((LOOKUP_TABLE.to_string(), vec![RecordBatch::try_new(schema, columns)?]));
        }
        Ok(StateSnapshot { tables, rescaled: None })
    }

    /// Keeps the rows of a [`JoinOperator::snapshot`] again (after a change of parallelism: the
    /// rows whose keys this instance owns, routed as the hash exchange routes them; a lookup
    /// join's whole table, as one former instance held it, and its share of the stream rows
    /// kept for the table, dealt by batch as the stream's rebalance edge deals them). Under a
    /// state TTL, rows keep their age (the time the job was down counts, as the TTL is wall
    /// time), and rows that have outlived it are not kept.
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        self.spec.checkpointable()?;
        self.sides = [SideState::default(), SideState::default()];
        let outer = self.spec.kind != JoinKind::Inner;
        let clock = WallClock::now();
        let table_batches = match (self.spec.lookup, state.rescaled) {
            (Some(_), Some(_)) => Some(self.lookup_table_batches(&state)?),
            _ => None,
        };
        for (input, name) in [(0, "left"), (1, "right")] {
            let visible_columns = self.side(input).visible;
            // Kept in the order they were kept (the TTL drops the oldest first), also when the
            // batches come from several former instances.
            let mut pieces = Vec::new();
            for (index, batch) in state.table(name).iter().enumerate() {
                if let (Some(table_batches), Some((instance, parallelism))) = (table_batches, state.rescaled) {
                    let kept = match self.spec.lookup == Some(input) {
                        true => index < table_batches,
                        false => index % parallelism == instance,
                    };
                    if !kept {
                        continue;
                    }
                }
                // The last column, when there is one more than the rows and their expiry and
                // match counts (a visible column may have the same name).
                let last = batch.num_columns().saturating_sub(1);
                let kept_at = (batch.num_columns() == visible_columns + 2 + usize::from(outer)
                    && batch.schema().field(last).name() == KEPT_AT_COLUMN)
                    .then_some(last);
                let columns = batch.num_columns() - usize::from(kept_at.is_some());
                if columns != visible_columns + 1 + usize::from(outer) {
                    return Err(StreamError::Config(format!(
                        "the {} operator's checkpoint has {} columns on its {name} side, the query {}",
                        self.name(),
                        columns.saturating_sub(1),
                        visible_columns
                    )));
                }
                if batch.num_rows() == 0 {
                    continue;
                }
                let kept_at = match kept_at {
                    Some(column) => Some(
                        batch
                            .column(column)
                            .as_primitive_opt::<Int64Type>()
                            .ok_or_else(|| {
                                StreamError::Config(format!(
                                    "the {} operator's checkpoint has a '{KEPT_AT_COLUMN}' column of another type on \
                                     its {name} side",
                                    self.name()
                                ))
                            })?
                            .value(0),
                    ),
                    None => None,
                };
                pieces.push((kept_at, batch));
            }
            pieces.sort_by_key(|(kept_at, _)| kept_at.unwrap_or(i64::MAX));
            for (kept_at, batch) in pieces {
                let kept_at = match (kept_at, self.state_ttl.filter(|_| self.ages_out())) {
                    (Some(ms), Some(ttl)) => match clock.instant(ms, ttl) {
                        Some(at) => Some(at),
                        // Past its TTL already: gone.
                        None => continue,
                    },
                    _ => None,
                };
                let (mut visible, mut expiry) = (
                    batch.project(&(0..visible_columns).collect::<Vec<_>>())?,
                    batch.column(visible_columns).as_primitive::<Int64Type>().clone(),
                );
                let mut matches = outer.then(|| batch.column(visible_columns + 1).clone());
                if let (Some((instance, parallelism)), None) = (state.rescaled, self.spec.lookup) {
                    let owned = owned_filter(&visible, &self.side(input).keys, instance, parallelism)?;
                    visible = filter_record_batch(&visible, &owned)?;
                    expiry = filter(&expiry, &owned)?.as_primitive::<Int64Type>().clone();
                    matches = matches.map(|m| filter(&m, &owned)).transpose()?;
                }
                if visible.num_rows() == 0 {
                    continue;
                }
                let keys = self.keys(input, &visible)?;
                let rows = self.converter.convert_columns(&keys)?;
                let row_expiry = self.spec.interval.map(|_| expiry.values().to_vec());
                let matches = match matches {
                    Some(m) => m
                        .as_primitive_opt::<arrow::datatypes::UInt32Type>()
                        .ok_or_else(|| {
                            StreamError::Config(format!(
                                "the {} operator's checkpoint has no match counts on its {name} side",
                                self.name()
                            ))
                        })?
                        .iter()
                        .map(|m| m.unwrap_or(0))
                        .collect(),
                    None => Vec::new(),
                };
                let before = self.sides[input].batches.len();
                self.keep(input, visible, &keys, &rows, row_expiry, matches)?;
                if let (Some(at), true) = (kept_at, self.sides[input].batches.len() > before) {
                    *self.sides[input].kept_at.last_mut().expect("a batch was kept") = at;
                }
            }
        }
        if let Some(watermark) = state.watermark() {
            self.watermark = self.watermark.max(watermark);
        }
        if self.spec.lookup.is_some() {
            // Its table's source, restored at its end, reads nothing more and ends again.
            self.table_complete = state
                .table(LOOKUP_TABLE)
                .iter()
                .filter_map(|b| b.column(0).as_boolean_opt())
                .any(|read| read.iter().any(|r| r == Some(true)));
        }
        Ok(())
    }
}

/// The table of a lookup join's snapshot saying whether its table was read to the end, and
/// how many batches of it the snapshot holds.
const LOOKUP_TABLE: &str = "lookup";
const LOOKUP_TABLE_BATCHES: &str = "table_batches";

/// The wall clock and the operator's clock (tokio's, which tests pause) read at one moment:
/// to store a kept row's processing time in a checkpoint, and to take it back in another
/// process.
struct WallClock {
    now: tokio::time::Instant,
    epoch_ms: i64,
}

impl WallClock {
    fn now() -> Self {
        let epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self { now: tokio::time::Instant::now(), epoch_ms }
    }

    /// `at` in wall-clock epoch milliseconds.
    fn epoch_ms(&self, at: tokio::time::Instant) -> i64 {
        let age = self.now.saturating_duration_since(at).as_millis();
        self.epoch_ms.saturating_sub(i64::try_from(age).unwrap_or(i64::MAX))
    }

    /// The instant of epoch milliseconds `ms`, unless it is `ttl` or more ago.
    fn instant(&self, ms: i64, ttl: std::time::Duration) -> Option<tokio::time::Instant> {
        let age = std::time::Duration::from_millis(u64::try_from(self.epoch_ms.saturating_sub(ms)).unwrap_or(0));
        if age >= ttl {
            return None;
        }
        Some(self.now.checked_sub(age).unwrap_or(self.now))
    }
}

/// The column of a join snapshot holding each kept row's expiry time.
const EXPIRY_COLUMN: &str = "_expiry";

/// The column of an outer join's snapshot holding how many rows of the other side each kept
/// row has matched.
const MATCHES_COLUMN: &str = "_matches";

/// The column of a join snapshot, under a state TTL, holding when each row was kept (wall
/// clock, epoch milliseconds).
const KEPT_AT_COLUMN: &str = "_kept_at";

impl JoinOperator {
    /// Rows arriving on `input`: joined with the other side's kept rows, then kept.
    fn add_rows(&mut self, input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        let (batch, times) = match self.spec.interval {
            Some(_) => {
                let (on_time, times, late) = drop_late_rows(&batch, self.watermark)?;
                out.late_on(input, late.len() as u64);
                if let (Some(output), false) = (&self.late[input], late.is_empty()) {
                    out.late_batch(output.rows_of(&batch, &late)?);
                }
                (on_time, Some(times))
            }
            None => (batch, None),
        };
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let keys = self.keys(input, &batch)?;
        let rows = self.converter.convert_columns(&keys)?;
        let visible = batch.project(&(0..self.side(input).visible).collect::<Vec<_>>())?;
        let valid = |row: usize| keys.iter().all(|k| k.is_valid(row));

        let other = &self.sides[1 - input];
        let mut pairs = Vec::new();
        if !other.index.is_empty() {
            for row in (0..n).filter(|&r| valid(r)) {
                if let Some(matches) = other.index.get(rows.row(row).as_ref()) {
                    pairs.extend(matches.iter().map(|&at| (row as u32, at)));
                }
            }
        }
        let mut probe_matches = Vec::new();
        if self.spec.kind != JoinKind::Inner {
            probe_matches = self.emit_outer_pairs(input, &visible, pairs, out)?;
            if self.spec.kind.keeps_unmatched(input) {
                // A lookup join pads a stream row once no table row can still come for it.
                let final_now = self.spec.lookup.is_none() || self.table_complete;
                let unmatched: Vec<u32> =
                    (0..n).filter(|&r| probe_matches[r] == 0 && (final_now || !valid(r))).map(|r| r as u32).collect();
                self.emit_padded(input, &visible, &unmatched, out)?;
            }
        } else if !pairs.is_empty() {
            self.emit_pairs(input, &visible, &pairs, out)?;
        }
        if self.table_complete {
            // A lookup join's stream row: no table row is still to come for it to meet.
            return Ok(());
        }
        // An interval join's row expires once the watermark passes the last time a row of the
        // other side can have and still match it; a row without event time matches nothing.
        let row_expiry = match (self.spec.interval, &times) {
            (Some(bounds), Some(times)) => Some(
                (0..n)
                    .map(|row| match times.is_valid(row) {
                        true if input == 0 => times.value(row).saturating_sub(bounds.lower_ms),
                        true => times.value(row).saturating_add(bounds.upper_ms),
                        false => i64::MIN,
                    })
                    .collect::<Vec<i64>>(),
            ),
            _ => None,
        };
        self.keep(input, visible, &keys, &rows, row_expiry, probe_matches)
    }

    /// Keeps the rows of `visible` (arrived on `input`, keys `keys` and `rows` in row format)
    /// whose keys are not NULL, indexed by key, with an interval join's expiry time per row and
    /// an outer join's match counts.
    fn keep(
        &mut self,
        input: usize,
        visible: RecordBatch,
        keys: &[ArrayRef],
        rows: &arrow::row::Rows,
        row_expiry: Option<Vec<i64>>,
        probe_matches: Vec<u32>,
    ) -> Result<()> {
        let n = visible.num_rows();
        let valid = |row: usize| keys.iter().all(|k| k.is_valid(row));
        let expiry = match &self.spec.expiry {
            Some(e) => {
                let column = if input == 0 { e.left_column } else { e.right_column };
                let values = cast(visible.column(column), &DataType::Int64)?;
                Some((values.as_primitive::<Int64Type>().clone(), e.offset_ms))
            }
            None => None,
        };
        let values = match &self.value_converters[input] {
            Some(converter) => Some(converter.convert_columns(visible.columns())?),
            None => None,
        };
        let own = &mut self.sides[input];
        let batch_index = own.batches.len();
        let mut kept = 0;
        for row in (0..n).filter(|&r| valid(r)) {
            let key: Box<[u8]> = Box::from(rows.row(row).as_ref());
            if let Some(row_expiry) = &row_expiry {
                if row_expiry[row] == i64::MIN {
                    continue;
                }
                // Dropped once the watermark is past it: at `expiry + 1`.
                own.expiring.entry(row_expiry[row].saturating_add(1)).or_default().push(key.clone());
            }
            if let Some((values, offset)) = &expiry
                && values.is_valid(row)
                && !own.index.contains_key(&key)
            {
                own.expiring.entry(values.value(row).saturating_add(*offset)).or_default().push(key.clone());
            }
            own.index.entry(key).or_default().push((batch_index, row));
            if let Some(values) = &values {
                own.by_value.entry(Box::from(values.row(row).as_ref())).or_default().push((batch_index, row));
            }
            kept += 1;
        }
        if kept > 0 {
            own.batches.push(visible);
            own.live.push(kept);
            own.row_expiry.push(row_expiry.unwrap_or_default());
            own.matches.push(probe_matches);
            own.kept_at.push(tokio::time::Instant::now());
        }
        Ok(())
    }

    /// Changelog rows taking kept rows of `input` back out (`-U`/`-D`): each retracts the pairs
    /// its row made, re-pads rows of a kept side left without a match, and retracts its own
    /// padded row if it had no match.
    fn retract_rows(&mut self, input: usize, batch: &RecordBatch, out: &mut Emitter) -> Result<()> {
        let n = batch.num_rows();
        let keys = self.keys(input, batch)?;
        let key_rows = self.converter.convert_columns(&keys)?;
        let visible = batch.project(&(0..self.side(input).visible).collect::<Vec<_>>())?;
        let converter = self.value_converters[input]
            .as_ref()
            .ok_or_else(|| StreamError::Internal("a retraction on an append-only join input".into()))?;
        let values = converter.convert_columns(visible.columns())?;
        let padded_side = self.spec.kind.keeps_unmatched(input);
        let mut own_padded = Vec::new();
        let mut candidates = Vec::new();
        for row in 0..n {
            if !keys.iter().all(|k| k.is_valid(row)) {
                // Never kept, never matched: only its padded row is in the result.
                if padded_side {
                    own_padded.push(row as u32);
                }
                continue;
            }
            let state = &mut self.sides[input];
            let value: &[u8] = values.row(row).data();
            let found = state.by_value.get_mut(value).and_then(Vec::pop).filter(|at| state.live[at.0] > 0);
            let Some(at) = found else {
                if self.state_ttl.is_some() {
                    continue; // Dropped for its age already, with what it made.
                }
                return Err(StreamError::Internal("a join input retracted a row it never sent".into()));
            };
            if state.by_value.get(value).is_some_and(Vec::is_empty) {
                state.by_value.remove(value);
            }
            let key: &[u8] = key_rows.row(row).data();
            if let Some(kept) = state.index.get_mut(key) {
                kept.retain(|other| *other != at);
                if kept.is_empty() {
                    state.index.remove(key);
                }
            }
            state.live[at.0] -= 1;
            let matched = state.matches.get(at.0).and_then(|m| m.get(at.1)).copied().unwrap_or(0);
            if state.live[at.0] == 0 {
                state.batches[at.0] = RecordBatch::new_empty(state.batches[at.0].schema());
            }
            if padded_side && matched == 0 {
                own_padded.push(row as u32);
            }
            if let Some(others) = self.sides[1 - input].index.get(key) {
                candidates.extend(others.iter().map(|&o| (row as u32, o)));
            }
        }
        let passing = self.passing_pairs(input, &visible, candidates)?;
        for chunk in passing.chunks(OUTPUT_BATCH_ROWS) {
            let picks: Vec<_> = chunk.iter().map(|(row, at)| (Some(*row), Some(*at))).collect();
            let joined = self.joined(input, &visible, &picks)?;
            self.emit(joined, ChangeOp::Delete, out)?;
        }
        // Kept rows of the other side that lose their last match are padded again.
        let other = 1 - input;
        if self.spec.kind.keeps_unmatched(other) && self.spec.lookup.is_none() {
            let mut repad = Vec::new();
            for &(_, (b, r)) in &passing {
                if let Some(count) = self.sides[other].matches.get_mut(b).and_then(|m| m.get_mut(r)) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        repad.push((None, Some((b, r))));
                    }
                }
            }
            for chunk in repad.chunks(OUTPUT_BATCH_ROWS) {
                let joined = self.joined(input, &visible, chunk)?;
                self.emit(joined, ChangeOp::Insert, out)?;
            }
        }
        for chunk in own_padded.chunks(OUTPUT_BATCH_ROWS) {
            let picks: Vec<_> = chunk.iter().map(|row| (Some(*row), None)).collect();
            let joined = self.joined(input, &visible, &picks)?;
            self.emit(joined, ChangeOp::Delete, out)?;
        }
        Ok(())
    }
}

/// `_wm` of row `i`, `i64::MIN` where it is NULL.
fn wm_or_min(wm: &Int64Array, i: usize) -> i64 {
    if wm.is_valid(i) { wm.value(i) } else { i64::MIN }
}

/// The rows of `batch` that are not late (`ts < wm(r)`, or behind the operator `watermark`),
/// their event times, and the positions of the late ones.
fn drop_late_rows(batch: &RecordBatch, watermark: i64) -> Result<(RecordBatch, Int64Array, Vec<u32>)> {
    let n = batch.num_rows();
    let (Some(ts), Some(wm)) = (batch.column_by_name(TS_COLUMN), batch.column_by_name(WM_COLUMN)) else {
        return Err(StreamError::Internal("an interval join input without its event-time columns".into()));
    };
    let ts = cast(ts, &DataType::Int64)?;
    let ts = ts.as_primitive::<Int64Type>();
    let wm = wm.as_primitive_opt::<Int64Type>().ok_or_else(|| StreamError::Internal("_wm is not Int64".into()))?;
    let late: Vec<u32> =
        (0..n).filter(|&i| ts.is_valid(i) && ts.value(i) < wm_or_min(wm, i).max(watermark)).map(|i| i as u32).collect();
    if late.is_empty() {
        return Ok((batch.clone(), ts.clone(), late));
    }
    let mut on_time = vec![true; n];
    late.iter().for_each(|&i| on_time[i as usize] = false);
    let on_time = BooleanArray::from(on_time);
    let times = filter(ts, &on_time)?.as_primitive::<Int64Type>().clone();
    Ok((filter_record_batch(batch, &on_time)?, times, late))
}

#[cfg(test)]
mod tests {
    use arrow::array::StringArray;
    use arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::Column;

    use super::*;

    fn side_batch(keys: &[Option<i64>], tag: &str) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new("v", DataType::Utf8, true)]);
        let values: Vec<String> = (0..keys.len()).map(|i| format!("{tag}{i}")).collect();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from(keys.to_vec())), Arc::new(StringArray::from(values))],
        )
        .expect("batch")
    }

    fn operator() -> JoinOperator {
        operator_with(None)
    }

    fn operator_with(expiry: Option<JoinExpiry>) -> JoinOperator {
        operator_of(expiry, None)
    }

    fn operator_of(expiry: Option<JoinExpiry>, lookup: Option<usize>) -> JoinOperator {
        let side = JoinSide { keys: vec![Arc::new(Column::new("k", 0))], visible: 2 };
        let output = Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
            Field::new("k2", DataType::Int64, true),
            Field::new("v2", DataType::Utf8, true),
        ]);
        let spec = JoinSpec {
            left: side.clone(),
            right: side,
            key_types: vec![DataType::Int64],
            output_schema: Arc::new(output),
            expiry,
            interval: None,
            window: None,
            lookup,
            kind: JoinKind::Inner,
            condition: None,
            updating_inputs: [false, false],
        };
        JoinOperator::new(Arc::new(spec), StatelessChain::default()).expect("operator")
    }

    fn pairs(out: &Emitter) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = out
            .batches()
            .iter()
            .flat_map(|b| {
                let (l, r) = (b.column(1).as_string::<i32>(), b.column(3).as_string::<i32>());
                (0..b.num_rows()).map(|i| (l.value(i).to_string(), r.value(i).to_string())).collect::<Vec<_>>()
            })
            .collect();
        pairs.sort();
        pairs
    }

    #[test]
    fn each_pair_is_emitted_once_by_the_later_row_in_left_right_order() {
        let mut join = operator();
        let mut out = Emitter::default();
        join.on_batch(0, side_batch(&[Some(1), Some(2), None], "l"), &mut out).expect("left");
        assert!(out.batches().is_empty());
        join.on_batch(1, side_batch(&[Some(2), Some(1), Some(2), None], "r"), &mut out).expect("right");
        join.on_batch(0, side_batch(&[Some(2)], "m"), &mut out).expect("left again");
        let expected = [("l0", "r1"), ("l1", "r0"), ("l1", "r2"), ("m0", "r0"), ("m0", "r2")]
            .map(|(l, r)| (l.to_string(), r.to_string()));
        assert_eq!(pairs(&out), expected);
        let keys: i64 =
            out.batches().iter().map(|b| b.column(0).as_primitive::<Int64Type>().iter().flatten().sum::<i64>()).sum();
        assert_eq!(keys, 1 + 2 + 2 + 2 + 2, "left keys come first");
    }

    #[test]
    fn rows_whose_window_has_passed_are_dropped_on_both_sides() {
        // Keyed on the column itself, as window results are on window_end (offset 0).
        let mut join = operator_with(Some(JoinExpiry { left_column: 0, right_column: 0, offset_ms: 0 }));
        let mut out = Emitter::default();
        join.on_batch(0, side_batch(&[Some(10), Some(20)], "l"), &mut out).expect("left");
        join.on_batch(1, side_batch(&[Some(10), Some(30)], "r"), &mut out).expect("right");
        assert_eq!((join.sides[0].rows(), join.sides[1].rows()), (2, 2));
        join.on_watermark(10, &mut out).expect("watermark");
        assert_eq!((join.sides[0].rows(), join.sides[1].rows()), (1, 1), "the rows of 10 are gone");
        assert_eq!(join.sides[0].batches[0].num_rows(), 2, "a batch with a live row stays");
        join.on_batch(1, side_batch(&[Some(20)], "s"), &mut out).expect("right again");
        join.on_watermark(30, &mut out).expect("watermark");
        assert_eq!((join.sides[0].rows(), join.sides[1].rows()), (0, 0));
        assert!(join.sides.iter().all(|s| s.batches.iter().all(|b| b.num_rows() == 0)), "memory is returned");
        let expected = [("l0", "r0"), ("l1", "s0")].map(|(l, r)| (l.to_string(), r.to_string()));
        assert_eq!(pairs(&out), expected);
    }

    #[test]
    fn a_lookup_join_keeps_stream_rows_only_until_its_table_is_complete() {
        // Input 1 is the table.
        let mut join = operator_of(None, Some(1));
        let mut out = Emitter::default();
        join.on_batch(0, side_batch(&[Some(1), Some(2)], "early"), &mut out).expect("stream before the table");
        join.on_batch(1, side_batch(&[Some(1), Some(3)], "t"), &mut out).expect("table");
        join.on_input_end(0, &mut out).expect("the stream side ending changes nothing");
        assert_eq!(join.sides[0].rows(), 2);
        join.on_input_end(1, &mut out).expect("table complete");
        assert_eq!(join.sides[0].rows(), 0, "stream rows kept for the table are dropped");
        join.on_batch(0, side_batch(&[Some(3), Some(4)], "late"), &mut out).expect("stream after the table");
        assert_eq!(join.sides[0].rows(), 0, "stream rows are no longer kept");
        assert_eq!(join.sides[1].rows(), 2, "the table stays");
        let expected = [("early0", "t0"), ("late0", "t1")].map(|(l, r)| (l.to_string(), r.to_string()));
        assert_eq!(pairs(&out), expected);
    }

    /// A lookup join restored at another parallelism: each new instance holds the whole table
    /// once, and the stream rows kept for the table (before it was complete) are each kept by
    /// one instance, so together they emit what one instance that saw every row emits.
    #[test]
    fn a_lookup_join_restores_at_another_parallelism() -> Result<()> {
        let table = [side_batch(&[Some(1), Some(2)], "t"), side_batch(&[Some(3), None], "u")];
        let streams = [side_batch(&[Some(1), Some(3), Some(5)], "a"), side_batch(&[Some(2), Some(4)], "b")];
        let mut formers = [operator_of(None, Some(1)), operator_of(None, Some(1))];
        let mut before = Emitter::default();
        for (instance, join) in formers.iter_mut().enumerate() {
            join.on_batch(1, table[0].clone(), &mut before)?;
            join.on_batch(0, streams[instance].clone(), &mut before)?;
            join.on_batch(1, table[1].clone(), &mut before)?;
        }
        // As the checkpoint gives a new instance every former instance's tables, in order.
        let mut tables: Vec<(String, Vec<RecordBatch>)> = Vec::new();
        for join in &mut formers {
            for (table, batches) in join.snapshot(1)?.tables {
                match tables.iter_mut().find(|(t, _)| *t == table) {
                    Some((_, all)) => all.extend(batches),
                    None => tables.push((table, batches)),
                }
            }
        }
        for parallelism in [1, 3] {
            let mut after = Emitter::default();
            let mut held = 0;
            for instance in 0..parallelism {
                let mut join = operator_of(None, Some(1));
                join.restore(StateSnapshot { tables: tables.clone(), rescaled: Some((instance, parallelism)) })?;
                assert_eq!(join.sides[1].rows(), 3, "instance {instance} of {parallelism} holds the whole table");
                held += join.sides[0].rows();
                join.on_batch(1, side_batch(&[Some(4)], "v"), &mut after)?;
                join.on_input_end(1, &mut after)?;
                join.on_batch(0, side_batch(&[Some(instance as i64 + 1)], "c"), &mut after)?;
            }
            assert_eq!(held, 5, "every stream row kept for the table, once, at parallelism {parallelism}");
            let mut actual = pairs(&before);
            actual.extend(pairs(&after).into_iter().filter(|(l, _)| !l.starts_with('c')));
            actual.sort();
            let mut once = operator_of(None, Some(1));
            let mut whole_after = Emitter::default();
            for batch in [&table[0], &table[1]] {
                once.on_batch(1, (*batch).clone(), &mut whole_after)?;
            }
            for stream in &streams {
                once.on_batch(0, stream.clone(), &mut whole_after)?;
            }
            once.on_batch(1, side_batch(&[Some(4)], "v"), &mut whole_after)?;
            assert_eq!(actual, pairs(&whole_after), "at parallelism {parallelism}");
            let probes: Vec<(String, String)> = pairs(&after).into_iter().filter(|(l, _)| l.starts_with('c')).collect();
            let expected_probes: Vec<(String, String)> = match parallelism {
                1 => vec![("c0".into(), "t0".into())],
                _ => vec![("c0".into(), "t0".into()), ("c0".into(), "t1".into()), ("c0".into(), "u0".into())],
            };
            assert_eq!(probes, expected_probes, "the table after the restore, at parallelism {parallelism}");
        }
        Ok(())
    }

    /// A batch of `(key, ts, wm)` rows with the hidden event-time columns.
    fn timed_batch(rows: &[(i64, i64, i64)]) -> RecordBatch {
        let mut fields = vec![Field::new("k", DataType::Int64, true), Field::new("v", DataType::Utf8, true)];
        fields.extend(crate::time::hidden_fields());
        let keys = Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
        let values = StringArray::from(rows.iter().map(|r| format!("t{}", r.1)).collect::<Vec<_>>());
        let ts = arrow::array::TimestampMillisecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
        let wm = Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![Arc::new(keys), Arc::new(values), Arc::new(ts), Arc::new(wm)],
        )
        .expect("timed batch")
    }

    #[test]
    fn an_interval_join_drops_late_rows_and_rows_that_can_match_no_more() {
        let mut join = operator_of(None, None);
        let mut spec = (*join.spec).clone();
        // -1 s <= left.ts - right.ts <= 2 s
        spec.interval = Some(IntervalBounds { lower_ms: -1_000, upper_ms: 2_000 });
        join.spec = Arc::new(spec);
        let mut out = Emitter::default();
        // Left: ts 10 s (on time), 3 s behind its watermark of 5 s (late).
        join.on_batch(0, timed_batch(&[(1, 10_000, 0), (1, 3_000, 5_000)]), &mut out).expect("left");
        // Right: 9 s (pairs with 10 s), 20 s.
        join.on_batch(1, timed_batch(&[(1, 9_000, 0), (1, 20_000, 8_000)]), &mut out).expect("right");
        let (joined, late, _) = out.take();
        assert_eq!(late, 1);
        let joined: usize = joined.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(joined, 2, "10 s with 9 s and 10 s with 20 s: the post chain applies the exact bounds");
        assert_eq!((join.sides[0].rows(), join.sides[1].rows()), (1, 2));
        // Left 10 s can meet right rows up to 11 s: gone once the watermark passes 11 s.
        join.on_watermark(11_000, &mut out).expect("watermark");
        assert_eq!(join.sides[0].rows(), 1, "a right row of 11 s could still come");
        join.on_watermark(11_001, &mut out).expect("watermark");
        assert_eq!(join.sides[0].rows(), 0);
        // Two rows of one key expiring at 20 s and 21 s: at watermark 21 s only the first goes
        // (a right row of 21 s could still meet the second).
        join.on_batch(0, timed_batch(&[(7, 19_000, 11_001), (7, 20_000, 11_001)]), &mut out).expect("left, one key");
        join.on_watermark(21_000, &mut out).expect("watermark");
        assert_eq!(join.sides[0].rows(), 1, "the row of 20 s stays at watermark 21 s");
        join.on_batch(1, timed_batch(&[(7, 21_000, 21_000)]), &mut out).expect("right at the watermark");
        let (joined, _, _) = out.take();
        assert_eq!(joined.iter().map(RecordBatch::num_rows).sum::<usize>(), 1, "20 s meets 21 s");
        // A row behind the operator watermark is late even if its own is not (an idle input's).
        join.on_batch(0, timed_batch(&[(7, 20_500, 0)]), &mut out).expect("left, behind the operator");
        let (_, late, _) = out.take();
        assert_eq!(late, 1);
        join.on_watermark(21_001, &mut out).expect("watermark");
        assert_eq!(join.sides[0].rows(), 0);
        // Right 20 s can meet left rows up to 22 s, right 21 s up to 23 s (9 s went at 11 s).
        assert_eq!(join.sides[1].rows(), 2);
        join.on_watermark(23_001, &mut out).expect("watermark");
        assert_eq!(join.sides[1].rows(), 0);
        assert!(join.sides.iter().all(|s| s.index.is_empty() && s.expiring.is_empty()));
        assert!(out.batches().is_empty());
    }

    fn interval_operator() -> JoinOperator {
        let mut join = operator_of(None, None);
        let mut spec = (*join.spec).clone();
        spec.interval = Some(IntervalBounds { lower_ms: -1_000, upper_ms: 2_000 });
        join.spec = Arc::new(spec);
        join
    }

    /// Restored from a snapshot, a join joins what comes next exactly as the join that took it,
    /// and keeps expiring rows by the restored watermark and expiry times.
    #[test]
    fn a_restored_interval_join_continues_as_the_original() -> Result<()> {
        let mut original = interval_operator();
        let mut out = Emitter::default();
        original.on_batch(0, timed_batch(&[(1, 10_000, 0), (2, 10_000, 0), (3, 4_000, 0)]), &mut out)?;
        original.on_batch(1, timed_batch(&[(1, 9_000, 0), (4, 12_000, 0)]), &mut out)?;
        original.on_watermark(5_500, &mut out)?;
        let state = original.snapshot(1)?;
        let mut restored = interval_operator();
        restored.restore(state.clone())?;
        assert_eq!(restored.watermark, 5_500);
        assert_eq!(
            (restored.sides[0].rows(), restored.sides[1].rows()),
            (original.sides[0].rows(), original.sides[1].rows())
        );
        type Next = (Vec<(String, String)>, u64, [usize; 2]);
        let next = |join: &mut JoinOperator| -> Result<Next> {
            let mut out = Emitter::default();
            join.on_batch(1, timed_batch(&[(2, 11_000, 5_500), (1, 5_000, 5_500), (4, 12_500, 5_500)]), &mut out)?;
            join.on_batch(0, timed_batch(&[(4, 12_200, 5_500)]), &mut out)?;
            join.on_watermark(11_500, &mut out)?;
            let late = out.take().1;
            let rows = [join.sides[0].rows(), join.sides[1].rows()];
            Ok((pairs(&out), late, rows))
        };
        let expected = next(&mut original)?;
        assert_eq!(next(&mut restored)?, expected);
        assert_eq!(expected.1, 1, "the right row of 5 s is behind the restored watermark");

        // At two instances, each keeps the rows whose keys it owns; together, all of them.
        let mut rescaled = [interval_operator(), interval_operator()];
        for (instance, join) in rescaled.iter_mut().enumerate() {
            join.restore(StateSnapshot { rescaled: Some((instance, 2)), ..state.clone() })?;
        }
        let kept = |side: usize| rescaled.iter().map(|j| j.sides[side].rows()).collect::<Vec<_>>();
        assert_eq!(kept(0).iter().sum::<usize>(), 2, "the left row of 4 s had expired");
        assert_eq!(kept(1).iter().sum::<usize>(), 2);
        Ok(())
    }

    /// An outer join's match counts come back with its rows: a restored LEFT JOIN takes back
    /// the padded row a first match replaces, and pads nothing twice, as the original does.
    #[test]
    fn a_restored_outer_join_continues_as_the_original() -> Result<()> {
        let left_join = || {
            let mut join = operator();
            let mut spec = (*join.spec).clone();
            spec.kind = JoinKind::Left;
            join.spec = Arc::new(spec);
            join
        };
        let shown = |out: &Emitter| -> Result<String> {
            Ok(arrow::util::pretty::pretty_format_batches(out.batches())?.to_string())
        };
        let mut original = left_join();
        let mut out = Emitter::default();
        original.on_batch(0, side_batch(&[Some(1), Some(2)], "l"), &mut out)?;
        original.on_batch(1, side_batch(&[Some(2)], "r"), &mut out)?;
        let state = original.snapshot(1)?;
        let mut restored = left_join();
        restored.restore(state)?;
        for (input, keys, tag) in [(1, &[Some(1), Some(2)][..], "s"), (0, &[Some(1)][..], "m")] {
            let (mut expected, mut actual) = (Emitter::default(), Emitter::default());
            original.on_batch(input, side_batch(keys, tag), &mut expected)?;
            restored.on_batch(input, side_batch(keys, tag), &mut actual)?;
            assert_eq!(shown(&actual)?, shown(&expected)?, "input {input}");
            assert!(!expected.batches().is_empty());
        }
        Ok(())
    }

    /// Under a state TTL, kept rows keep their age through a snapshot and restore: a row kept
    /// 8 s before the snapshot, with a TTL of 10 s, is dropped 2 s after the restore, the newer
    /// one stays and matches; a row past its TTL when the snapshot is restored is not kept.
    #[tokio::test(start_paused = true)]
    async fn a_join_under_a_ttl_restores_its_rows_with_their_age() -> Result<()> {
        let ttl = Some(std::time::Duration::from_secs(10));
        let mut join = operator().with_state_ttl(ttl);
        let mut out = Emitter::default();
        join.on_batch(0, side_batch(&[Some(1)], "old"), &mut out)?;
        tokio::time::advance(std::time::Duration::from_secs(8)).await;
        join.on_batch(0, side_batch(&[Some(2)], "new"), &mut out)?;
        let state = join.snapshot(1)?;
        let mut restored = operator().with_state_ttl(ttl);
        restored.restore(state)?;
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        restored.on_timer(&mut out)?;
        assert_eq!(restored.sides[0].rows(), 2, "9 s old: both kept");
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert!(restored.next_timer().is_some_and(|at| at <= tokio::time::Instant::now()));
        restored.on_timer(&mut out)?;
        assert_eq!(restored.sides[0].rows(), 1, "10 s old: dropped");
        let mut joined = Emitter::default();
        restored.on_batch(1, side_batch(&[Some(1), Some(2)], "r"), &mut joined)?;
        assert_eq!(pairs(&joined), [("new0".to_string(), "r1".to_string())]);

        // The original, 11 s after its first row, without a timer since: a snapshot holds both
        // rows, and a restore keeps only the one within the TTL.
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let state = join.snapshot(2)?;
        assert_eq!(state.table("left").iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
        let mut late = operator().with_state_ttl(ttl);
        late.restore(state)?;
        assert_eq!(late.sides[0].rows(), 1);
        Ok(())
    }

    /// A visible column may be named as the snapshot's own `_kept_at` column: the restore takes
    /// the snapshot's, the last, with a TTL or without.
    #[tokio::test(start_paused = true)]
    async fn a_column_named_kept_at_does_not_confuse_a_restore() -> Result<()> {
        let batch = side_batch(&[Some(1), Some(2)], "x");
        let schema =
            Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new(KEPT_AT_COLUMN, DataType::Utf8, true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), batch.columns().to_vec())?;
        for ttl in [None, Some(std::time::Duration::from_secs(10))] {
            let mut join = operator().with_state_ttl(ttl);
            join.on_batch(0, batch.clone(), &mut Emitter::default())?;
            let mut restored = operator().with_state_ttl(ttl);
            restored.restore(join.snapshot(1)?)?;
            assert_eq!(restored.sides[0].rows(), 2, "TTL {ttl:?}");
        }
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn rows_older_than_the_state_ttl_are_dropped() {
        let mut join = operator().with_state_ttl(Some(std::time::Duration::from_secs(10)));
        let mut out = Emitter::default();
        join.on_batch(0, side_batch(&[Some(1), Some(2)], "old"), &mut out).expect("left");
        tokio::time::advance(std::time::Duration::from_secs(6)).await;
        join.on_batch(0, side_batch(&[Some(1)], "new"), &mut out).expect("left again");
        let first = join.next_timer().expect("a timer for the oldest rows");
        tokio::time::advance(std::time::Duration::from_secs(4)).await;
        assert!(first <= tokio::time::Instant::now());
        join.on_timer(&mut out).expect("timer");
        assert_eq!(join.sides[0].rows(), 1, "the rows of 10 s ago are gone, the newer one stays");
        join.on_batch(1, side_batch(&[Some(1), Some(2)], "r"), &mut out).expect("right");
        let expected = [("new0", "r0")].map(|(l, r)| (l.to_string(), r.to_string()));
        assert_eq!(pairs(&out), expected);
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        join.on_timer(&mut out).expect("timer");
        assert_eq!((join.sides[0].rows(), join.sides[1].rows()), (0, 0));
        assert!(join.next_timer().is_none());
        assert!(join.sides.iter().all(|s| s.index.is_empty()));
    }
}
