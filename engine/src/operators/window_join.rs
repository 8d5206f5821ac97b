//! The window join: two inputs windowed by the same TVF, joined per window on
//! `window_start`, `window_end` and their keys — INNER, LEFT, RIGHT or FULL, as Flink runs it.
//!
//! Each row is assigned to its windows by the window contract of
//! [`aggregate`](crate::operators::aggregate): `r` joins `W` iff `W.start <= ts < W.end` and
//! `wm(r) < W.end` (its own watermark); a row that joins no window is late, dropped and counted.
//! Rows wait in their window until the operator watermark (the minimum over both inputs)
//! reaches `W.end`; then the window is joined once, its rows are dropped, and it is never
//! emitted again. No row for `W` can arrive after that: each input sends the watermark closing
//! `W` only after its last row with `wm(r) < W.end`. So the result is the batch join of the
//! two sides' non-late windowed rows, whatever the batch size, parallelism and interleaving,
//! and it is append-only even for outer joins: an unmatched row is padded with NULLs once its
//! window is complete.
//!
//! ```text
//!  row ─ windows of ts with wm(r) < end ─▶ rows[side][window end]   (none: late)
//!  watermark ≥ end ─▶ hash the right rows on the keys, probe with the left rows
//!                   ─▶ pairs (+ unmatched rows of the outer side(s), NULL-padded)
//!                   ─▶ left columns, left window, right columns, right window ─▶ post chain
//! ```
//!
//! Output columns are the left input's visible columns and its `window_start`, `window_end`,
//! `window_time`, then the same for the right input; a side missing from an outer-join row has
//! NULL there, window columns included (`COALESCE(l.window_start, r.window_start)` as in Flink).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{cast, concat_batches, filter_record_batch, take};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatchOptions;
use arrow::row::{RowConverter, SortField};

use super::aggregate::WindowShape;
use super::join::JoinSpec;
use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
use crate::operators::exchange::owned_filter;
use crate::operators::stateless::StatelessChain;
use crate::pipeline::LateOutput;
use crate::time::{TS_COLUMN, WM_COLUMN};

/// Joined rows per emitted batch, at most.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// Which rows a join keeps besides the matching pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    /// Also every left row without a match, NULL-padded.
    Left,
    /// Also every right row without a match.
    Right,
    /// Both.
    Full,
    /// Only left rows, each once, when some right row matches it (`IN (SELECT ...)`, `EXISTS`).
    LeftSemi,
}

impl JoinKind {
    /// Whether rows of input `side` that match nothing are kept (NULL-padded).
    pub fn keeps_unmatched(self, side: usize) -> bool {
        matches!((self, side), (JoinKind::Left | JoinKind::Full, 0) | (JoinKind::Right | JoinKind::Full, 1))
    }

    /// `INNER`, `LEFT`, ...
    pub fn sql(self) -> &'static str {
        match self {
            JoinKind::Inner => "INNER",
            JoinKind::Left => "LEFT",
            JoinKind::Right => "RIGHT",
            JoinKind::Full => "FULL",
            JoinKind::LeftSemi => "LEFT SEMI",
        }
    }
}

/// A window join's window and kind ([`JoinSpec::window`]).
#[derive(Debug, Clone, Copy)]
pub struct WindowJoin {
    pub shape: WindowShape,
    pub kind: JoinKind,
}

/// The operator: see the [module docs](self).
pub struct WindowJoinOperator {
    spec: Arc<JoinSpec>,
    window: WindowJoin,
    post: StatelessChain,
    /// The keys in row format (`None` without keys).
    converter: Option<RowConverter>,
    /// Per input: window end → the batches of rows (visible columns) assigned to it.
    windows: [BTreeMap<i64, Vec<RecordBatch>>; 2],
    /// Where each input's late rows go besides being counted.
    late: [Option<Arc<LateOutput>>; 2],
    /// Every window ending at or before it has been joined: a row is judged by it too (an
    /// idle input's row may be behind it, see [`crate::message::Message::Idle`]).
    watermark: i64,
}

impl WindowJoinOperator {
    pub fn new(spec: Arc<JoinSpec>, post: StatelessChain) -> Result<Self> {
        let window = spec.window.ok_or_else(|| StreamError::Internal("a window join without a window".into()))?;
        let converter = match spec.key_types.is_empty() {
            true => None,
            false => Some(RowConverter::new(spec.key_types.iter().map(|t| SortField::new(t.clone())).collect())?),
        };
        if spec.output_schema.fields().len() != spec.left.visible + spec.right.visible + 6 {
            return Err(StreamError::Internal("window join output is not both sides with their windows".into()));
        }
        Ok(Self {
            spec,
            window,
            post,
            converter,
            windows: [BTreeMap::new(), BTreeMap::new()],
            late: [None, None],
            watermark: i64::MIN,
        })
    }

    /// Rows of input `i` dropped as late go to `late[i]` too (the pipeline's late-rows sink).
    pub fn with_late_output(mut self, late: [Option<Arc<LateOutput>>; 2]) -> Self {
        self.late = late;
        self
    }

    /// Joins and emits the window ending at `end`, whose rows are complete.
    fn close(&mut self, end: i64, out: &mut Emitter) -> Result<()> {
        let sides: Vec<Option<RecordBatch>> = (0..2)
            .map(|side| {
                let batches = self.windows[side].remove(&end).unwrap_or_default();
                match batches.first() {
                    None => Ok(None),
                    Some(first) => Ok(Some(concat_batches(&first.schema(), &batches)?)),
                }
            })
            .collect::<Result<_>>()?;
        let (left, right) = (&sides[0], &sides[1]);
        let kind = self.window.kind;
        let mut picks: Vec<(Option<u32>, Option<u32>)> = Vec::new();
        let mut matched = [Vec::new(), Vec::new()];
        if let (Some(l), Some(r)) = (left, right) {
            let (left_keys, left_valid) = self.keys(0, l)?;
            let (right_keys, right_valid) = self.keys(1, r)?;
            let key = |rows: &Option<arrow::row::Rows>, row: usize| -> Vec<u8> {
                rows.as_ref().map(|r| r.row(row).data().to_vec()).unwrap_or_default()
            };
            let mut index: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
            for row in (0..r.num_rows()).filter(|&i| right_valid[i]) {
                index.entry(key(&right_keys, row)).or_default().push(row as u32);
            }
            matched = [vec![false; l.num_rows()], vec![false; r.num_rows()]];
            for row in (0..l.num_rows()).filter(|&i| left_valid[i]) {
                if let Some(rows) = index.get(&key(&left_keys, row)) {
                    matched[0][row] = true;
                    for &other in rows {
                        matched[1][other as usize] = true;
                        picks.push((Some(row as u32), Some(other)));
                    }
                }
            }
        }
        for (side, batch) in sides.iter().enumerate() {
            let Some(batch) = batch else { continue };
            if !kind.keeps_unmatched(side) {
                continue;
            }
            for row in 0..batch.num_rows() {
                if !matched[side].get(row).copied().unwrap_or(false) {
                    picks.push(if side == 0 { (Some(row as u32), None) } else { (None, Some(row as u32)) });
                }
            }
        }
        for chunk in picks.chunks(OUTPUT_BATCH_ROWS) {
            let joined = self.build(chunk, left.as_ref(), right.as_ref(), end)?;
            if let Some(result) = self.post.apply(joined)? {
                out.emit(result);
            }
        }
        Ok(())
    }

    /// The key rows of a side's batch (`None` without keys: every row matches every row) and
    /// which rows have no NULL key.
    fn keys(&self, side: usize, batch: &RecordBatch) -> Result<(Option<arrow::row::Rows>, Vec<bool>)> {
        let exprs = if side == 0 { &self.spec.left.keys } else { &self.spec.right.keys };
        let n = batch.num_rows();
        if exprs.is_empty() {
            return Ok((None, vec![true; n]));
        }
        let arrays = exprs
            .iter()
            .zip(&self.spec.key_types)
            .map(|(expr, data_type)| {
                let array = expr.evaluate(batch)?.into_array(n)?;
                Ok(if array.data_type() == data_type { array } else { cast(&array, data_type)? })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let valid = (0..n).map(|i| arrays.iter().all(|a| a.is_valid(i))).collect();
        let converter = self
            .converter
            .as_ref()
            .ok_or_else(|| StreamError::Internal("window join keys without a converter".into()))?;
        Ok((Some(converter.convert_columns(&arrays)?), valid))
    }

    /// One output batch from `(left row, right row)` picks of the window ending at `end`.
    fn build(
        &self,
        picks: &[(Option<u32>, Option<u32>)],
        left: Option<&RecordBatch>,
        right: Option<&RecordBatch>,
        end: i64,
    ) -> Result<RecordBatch> {
        let fields = self.spec.output_schema.fields();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        let start = end.saturating_sub(self.window.shape.size_ms);
        let mut offset = 0;
        for (side, batch, visible) in [(0, left, self.spec.left.visible), (1, right, self.spec.right.visible)] {
            let rows = UInt32Array::from(picks.iter().map(|p| if side == 0 { p.0 } else { p.1 }).collect::<Vec<_>>());
            for column in 0..visible {
                let field = &fields[offset + column];
                columns.push(match batch {
                    Some(batch) => take(batch.column(column).as_ref(), &rows, None)?,
                    None => arrow::array::new_null_array(field.data_type(), picks.len()),
                });
            }
            offset += visible;
            for value in [start, end, end.saturating_sub(1)] {
                let field = &fields[offset];
                let array: ArrayRef = Arc::new(TimestampMillisecondArray::from(
                    (0..picks.len()).map(|i| rows.is_valid(i).then_some(value)).collect::<Vec<_>>(),
                ));
                columns.push(if array.data_type() == field.data_type() {
                    array
                } else {
                    cast(&array, field.data_type())?
                });
                offset += 1;
            }
        }
        Ok(RecordBatch::try_new_with_options(
            self.spec.output_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(picks.len())),
        )?)
    }
}

impl Operator for WindowJoinOperator {
    fn state_bytes(&self) -> usize {
        self.windows.iter().flat_map(|w| w.values()).map(crate::operator::batches_bytes).sum()
    }

    fn name(&self) -> &str {
        "window join"
    }

    fn on_batch(&mut self, input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        let side = input.min(1);
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let (Some(ts), Some(wm)) = (batch.column_by_name(TS_COLUMN), batch.column_by_name(WM_COLUMN)) else {
            return Err(StreamError::Internal("a window join input without its event-time columns".into()));
        };
        let ts = cast(ts, &DataType::Int64)?;
        let ts = ts.as_primitive::<Int64Type>();
        let wm: &Int64Array =
            wm.as_primitive_opt::<Int64Type>().ok_or_else(|| StreamError::Internal("_wm is not Int64".into()))?;
        let visible = if side == 0 { self.spec.left.visible } else { self.spec.right.visible };
        let visible = batch.project(&(0..visible).collect::<Vec<_>>())?;

        let mut rows_by_window: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut late = Vec::new();
        for row in 0..n {
            let mut assigned = false;
            if ts.is_valid(row) {
                let row_wm = if wm.is_valid(row) { wm.value(row) } else { i64::MIN }.max(self.watermark);
                for start in self.window.shape.window_starts(ts.value(row)) {
                    let end = start.saturating_add(self.window.shape.size_ms);
                    if row_wm < end {
                        rows_by_window.entry(end).or_default().push(row as u32);
                        assigned = true;
                    }
                }
            }
            if !assigned {
                late.push(row as u32);
            }
        }
        out.late_on(side, late.len() as u64);
        if let (Some(output), false) = (&self.late[side], late.is_empty()) {
            out.late_batch(output.rows_of(&batch, &late)?);
        }
        for (end, rows) in rows_by_window {
            let rows = if rows.len() == n {
                visible.clone()
            } else {
                let idx = UInt32Array::from(rows);
                let columns =
                    visible.columns().iter().map(|c| take(c.as_ref(), &idx, None)).collect::<Result<Vec<_>, _>>()?;
                RecordBatch::try_new_with_options(
                    visible.schema(),
                    columns,
                    &RecordBatchOptions::new().with_row_count(Some(idx.len())),
                )?
            };
            self.windows[side].entry(end).or_default().push(rows);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Emitter) -> Result<()> {
        self.watermark = watermark;
        loop {
            let next =
                [0, 1].iter().filter_map(|&side| self.windows[side].first_key_value().map(|(end, _)| *end)).min();
            match next {
                Some(end) if end <= watermark => self.close(end, out)?,
                _ => return Ok(()),
            }
        }
    }

    /// Each side's rows of the windows not joined yet (visible columns, then the window's end
    /// as `_window_end`) and the operator watermark.
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        let mut tables = Vec::new();
        for (side, name) in [(0, "left"), (1, "right")] {
            let mut batches = Vec::new();
            for (end, rows) in &self.windows[side] {
                for batch in rows.iter().filter(|b| b.num_rows() > 0) {
                    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
                    fields.push(Field::new(WINDOW_END_COLUMN, DataType::Int64, false));
                    let mut columns = batch.columns().to_vec();
                    columns.push(Arc::new(Int64Array::from_value(*end, batch.num_rows())));
                    batches.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?);
                }
            }
            tables.push((name.to_string(), batches));
        }
        tables.push(StateSnapshot::progress(self.watermark)?);
        Ok(StateSnapshot { tables, rescaled: None })
    }

    /// Keeps the rows of a [`WindowJoinOperator::snapshot`] again (after a change of
    /// parallelism: the rows whose keys this instance owns, as the hash exchange routes them).
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        self.windows = [BTreeMap::new(), BTreeMap::new()];
        for (side, name) in [(0, "left"), (1, "right")] {
            let visible = if side == 0 { self.spec.left.visible } else { self.spec.right.visible };
            for batch in state.table(name) {
                if batch.num_columns() != visible + 1 {
                    return Err(StreamError::Config(format!(
                        "the window join operator's checkpoint has {} columns on its {name} side, the query {visible}",
                        batch.num_columns().saturating_sub(1)
                    )));
                }
                let ends = batch
                    .column(visible)
                    .as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| {
                        StreamError::Config(format!(
                            "the window join's checkpoint has no window ends on its {name} side"
                        ))
                    })?
                    .clone();
                let mut rows = batch.project(&(0..visible).collect::<Vec<_>>())?;
                let mut ends = ends;
                if let Some((instance, parallelism)) = state.rescaled {
                    let keys = if side == 0 { &self.spec.left.keys } else { &self.spec.right.keys };
                    let owned = owned_filter(&rows, keys, instance, parallelism)?;
                    rows = filter_record_batch(&rows, &owned)?;
                    ends = arrow::compute::filter(&ends, &owned)?.as_primitive::<Int64Type>().clone();
                }
                // A snapshot's batch holds one window's rows.
                let mut by_end: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
                for (row, end) in ends.values().iter().enumerate() {
                    by_end.entry(*end).or_default().push(row as u32);
                }
                for (end, at) in by_end {
                    let part = if at.len() == rows.num_rows() {
                        rows.clone()
                    } else {
                        arrow::compute::take_record_batch(&rows, &UInt32Array::from(at))?
                    };
                    self.windows[side].entry(end).or_default().push(part);
                }
            }
        }
        if let Some(watermark) = state.watermark() {
            self.watermark = self.watermark.max(watermark);
        }
        Ok(())
    }
}

/// The column of a window join's snapshot holding the end of each row's window.
const WINDOW_END_COLUMN: &str = "_window_end";
