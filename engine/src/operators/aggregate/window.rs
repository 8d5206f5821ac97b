//! The running window aggregation of one instance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use datafusion::logical_expr::EmitTo;

use super::inputs::BatchInputs;
use super::local::ROWS_COLUMN;
use super::pane::{Pane, PaneInput, chunk_columns, chunk_of, chunk_rows, merge_chunks};
use super::spec::{AggregateSpec, WindowKind, WindowShape, floor_to};
use crate::error::{Result, StreamError};
use crate::operator::StateSnapshot;
use crate::operators::exchange::owned_rows;
use crate::pipeline::LateOutput;
use crate::time::{TS_COLUMN, WATERMARK_MIN, WM_COLUMN, hidden_fields};

/// The hidden event time and watermark columns of a window's input batch (found by name, not
/// position: an operator with several inputs sees them wherever its input's schema has them).
pub(super) fn event_time_columns(batch: &RecordBatch) -> Result<(TimestampMillisecondArray, Int64Array)> {
    let hidden = |name: &str| {
        batch
            .schema()
            .index_of(name)
            .map(|i| batch.column(i).clone())
            .map_err(|_| StreamError::Internal(format!("window input without the hidden {name} column")))
    };
    let ts = hidden(TS_COLUMN)?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| StreamError::Internal(format!("{TS_COLUMN} is not a millisecond timestamp")))?
        .clone();
    let wm = hidden(WM_COLUMN)?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| StreamError::Internal(format!("{WM_COLUMN} is not BIGINT")))?
        .clone();
    Ok((ts, wm))
}

/// Window aggregation state of one instance. See the [module docs](super) for the contract.
pub struct WindowAggregator {
    spec: Arc<AggregateSpec>,
    shape: WindowShape,
    /// Open panes by start time and *floor*: the first window start their rows may join
    /// (`i64::MIN`: every window containing the pane). A HOP row whose own watermark has passed
    /// the end of some of its windows that are not emitted yet (rows of several partitions or
    /// inputs, whose watermarks differ) goes to a pane with a floor, which those windows skip.
    panes: BTreeMap<(i64, i64), Pane>,
    /// Every window with `end <= watermark` has been emitted.
    watermark: i64,
    late_rows: u64,
    scratch: Vec<usize>,
    /// The spec's output schema with the hidden event-time columns after it.
    output_schema: SchemaRef,
    /// Rows come from one input in its order, so their `_wm` only rises: windows close as it
    /// passes their end, mid-batch (see [`WindowAggregator::process_batch`]).
    row_watermarks: bool,
    /// Where late rows go besides being counted, and the rows of the current batch that were.
    late: Option<Arc<LateOutput>>,
    late_at: Vec<u32>,
    late_batches: Vec<RecordBatch>,
}

impl WindowAggregator {
    /// Memory the open panes hold.
    pub fn state_bytes(&self) -> usize {
        self.panes.values().map(Pane::size).sum()
    }

    /// `row_watermarks`: whether the rows come from one input, in its order (see
    /// [`WindowAggregator::process_batch`]).
    pub fn new(spec: Arc<AggregateSpec>, row_watermarks: bool) -> Result<Self> {
        let shape = spec.window.ok_or_else(|| StreamError::Internal("window aggregation without a window".into()))?;
        let mut fields: Vec<Field> = spec.output_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(hidden_fields());
        let output_schema = Arc::new(Schema::new(fields));
        Ok(Self {
            spec,
            shape,
            panes: BTreeMap::new(),
            watermark: WATERMARK_MIN,
            late_rows: 0,
            scratch: Vec::new(),
            output_schema,
            row_watermarks,
            late: None,
            late_at: Vec::new(),
            late_batches: Vec::new(),
        })
    }

    pub fn shape(&self) -> WindowShape {
        self.shape
    }

    /// Every window ending at or before this has been emitted.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Whether some window is open (holds rows).
    pub fn has_open_windows(&self) -> bool {
        !self.panes.is_empty()
    }

    /// Writes rows dropped as late to `late` too ([`WindowAggregator::take_late_batches`]).
    pub fn with_late_output(mut self, late: Option<Arc<LateOutput>>) -> Self {
        self.late = late;
        self
    }

    /// Late rows counted since the last call.
    pub fn take_late_rows(&mut self) -> u64 {
        std::mem::take(&mut self.late_rows)
    }

    /// Late rows to route, as rows of the late-rows sink, since the last call.
    pub fn take_late_batches(&mut self) -> Vec<RecordBatch> {
        std::mem::take(&mut self.late_batches)
    }

    /// The rows of `batch` at `self.late_at` as rows of the late-rows sink.
    fn route_late(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some(late) = &self.late else { return Ok(()) };
        if self.late_at.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.late_at);
        self.late_batches.push(late.rows_of(batch, &rows)?);
        Ok(())
    }

    /// Adds a batch that carries the hidden `_ts` and `_wm` columns; each row is judged by its own
    /// `_wm` (and by the operator watermark, which no row that is not late can be behind).
    ///
    /// With `row_watermarks` (one input, so `_wm` rises row by row), windows ending before a
    /// segment's watermark are emitted into `out` before the segment is added, so a HOP row
    /// joins exactly its windows that are still open for it. Otherwise (a `UNION ALL`: rows of
    /// several sources carry watermarks of different sources, and one source's rows must not
    /// close windows another still feeds) windows close only as the operator watermark rises
    /// ([`WindowAggregator::advance`]), and a row joins all its windows or none (TUMBLE, and
    /// windows over window results, which are never late; the planner refuses HOP there).
    ///
    /// The batch may instead hold partial rows of a first phase ([`super::local`]): each is
    /// judged as its rows would have been, merged into its pane, or counted as `_rows` late rows.
    pub fn process_batch(&mut self, batch: &RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let (ts, wm) = event_time_columns(batch)?;
        let wm = wm.values();
        // Partial rows of a first phase stand for `_rows` rows each.
        let weights = match batch.schema().index_of(ROWS_COLUMN) {
            Ok(i) => Some(
                batch
                    .column(i)
                    .as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| StreamError::Internal(format!("{ROWS_COLUMN} is not BIGINT")))?
                    .clone(),
            ),
            Err(_) => None,
        };
        let inputs = match &weights {
            Some(_) if self.late.is_some() => {
                return Err(StreamError::Internal(
                    "pre-aggregated rows reached a window that writes late rows to a sink".into(),
                ));
            }
            Some(_) => BatchInputs::partial(&self.spec, batch)?,
            None => BatchInputs::evaluate(&self.spec, batch)?,
        };
        let weights = weights.as_ref().map(|w| w.values().as_ref());

        let mut start = 0;
        while start < n {
            let segment_wm = wm[start].max(self.watermark);
            let next_end = self.shape.next_window_end_after(segment_wm);
            let mut end = start + 1;
            while end < n && wm[end] < next_end {
                end += 1;
            }
            if self.row_watermarks {
                self.advance(segment_wm, out)?;
            }
            self.add_rows(&ts, &inputs, weights, start, end, segment_wm)?;
            start = end;
        }
        self.route_late(batch)
    }

    /// Rows `[start, end)` all see `watermark`: every window ending at or before it is closed to
    /// them (their own `_wm` lies between the same two window ends). A row stands for
    /// `weights[row]` rows (partial rows) or one.
    fn add_rows(
        &mut self,
        ts: &TimestampMillisecondArray,
        inputs: &BatchInputs,
        weights: Option<&[i64]>,
        start: usize,
        end: usize,
        watermark: i64,
    ) -> Result<()> {
        let shape = self.shape;
        let values = ts.values();
        // Fast path: every row on time and in one pane (ordered input), so the inputs are sliced,
        // not copied. All rows of a pane share their windows, so one lateness check covers them.
        let first = values[start];
        let pane = shape.pane_start(first);
        let pane_end = pane.saturating_add(shape.pane_ms);
        let floor = self.floor(watermark);
        let uniform = ts.null_count() == 0
            && shape.last_window_end(first) > watermark
            && values[start..end].iter().all(|&t| t >= pane && t < pane_end);
        if uniform {
            let piece = inputs.slice(start, end - start);
            return self.update_pane((pane, shape.pane_floor(pane, floor)), &piece, end - start);
        }
        let mut by_pane: BTreeMap<(i64, i64), Vec<u32>> = BTreeMap::new();
        for row in start..end {
            let t = values[row];
            if ts.is_null(row) || shape.last_window_end(t) <= watermark {
                self.late_rows += weights.map_or(1, |w| w[row].max(0) as u64);
                if self.late.is_some() {
                    self.late_at.push(row as u32);
                }
                continue;
            }
            let pane = shape.pane_start(t);
            by_pane.entry((pane, shape.pane_floor(pane, floor))).or_default().push(row as u32);
        }
        for (pane, rows) in by_pane {
            let piece = inputs.take(&rows)?;
            self.update_pane(pane, &piece, rows.len())?;
        }
        Ok(())
    }

    /// The first window start rows that see `watermark` may join, or `i64::MIN` when that is
    /// the first window not emitted yet (always so for TUMBLE, whose rows join their one
    /// window or none, and for rows of one ordered input, which close windows as they go).
    fn floor(&self, watermark: i64) -> i64 {
        if self.shape.kind == WindowKind::Tumble || watermark <= self.watermark {
            return i64::MIN;
        }
        if self.shape.kind == WindowKind::Cumulate {
            // The first window end the rows may join.
            let first = self.shape.next_window_end_after(watermark);
            let open = self.shape.next_window_end_after(self.watermark);
            return if first <= open { i64::MIN } else { first };
        }
        let size = self.shape.size_ms;
        let first = self.shape.next_window_end_after(watermark).saturating_sub(size);
        let open = self.shape.next_window_end_after(self.watermark).saturating_sub(size);
        if first <= open { i64::MIN } else { first }
    }

    fn update_pane(&mut self, pane: (i64, i64), piece: &BatchInputs, rows: usize) -> Result<()> {
        let pane = match self.panes.entry(pane) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(Pane::new(&self.spec)?),
        };
        let input = PaneInput { rows, keys: &piece.keys, args: &piece.args, filters: &piece.filters };
        match piece.partial {
            true => pane.merge(input, &mut self.scratch),
            false => pane.update(input, &mut self.scratch),
        }
    }

    /// Moves the watermark to `watermark`, emitting every window that ends at or before it.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        let size = self.shape.size_ms;
        match self.shape.kind {
            WindowKind::Tumble => {
                while let Some(entry) = self.panes.first_entry() {
                    let (start, _) = *entry.key();
                    if start.saturating_add(size) > watermark {
                        break;
                    }
                    if let Some((keys, values, groups)) = entry.remove().evaluate_all(&self.spec)? {
                        out.push(self.output_batch(start, start.saturating_add(size), keys, values, groups)?);
                    }
                }
            }
            WindowKind::Cumulate => {
                let shape = self.shape;
                let step = shape.slide_ms;
                // Per period with panes, the window ends between the old and new watermark from
                // its first pane on (every window of the period ending there holds some rows).
                let mut windows = BTreeSet::new();
                let first_end = shape.next_window_end_after(self.watermark);
                let mut last_period = None;
                for &(pane, _) in self.panes.range(..(watermark, i64::MIN)).map(|(p, _)| p) {
                    let period = floor_to(pane, size);
                    if last_period == Some(period) {
                        continue;
                    }
                    last_period = Some(period);
                    let last = period.saturating_add(size).min(watermark);
                    let mut end = pane.saturating_add(step).max(first_end);
                    while end <= last {
                        windows.insert((end, period));
                        end = match end.checked_add(step) {
                            Some(next) => next,
                            None => break,
                        };
                    }
                }
                for (end, start) in windows {
                    self.emit_window(start, end, |floor| floor <= end, out)?;
                }
                while let Some(entry) = self.panes.first_entry() {
                    if shape.last_window_end(entry.key().0) > watermark {
                        break;
                    }
                    entry.remove();
                }
            }
            WindowKind::Session => {
                return Err(StreamError::Internal("SESSION windows are aggregated by the session operator".into()));
            }
            WindowKind::Hop => {
                let shape = self.shape;
                let mut starts = BTreeSet::new();
                for &(pane, _) in self.panes.range(..(watermark, i64::MIN)).map(|(p, _)| p) {
                    for s in shape.window_starts(pane) {
                        let end = s.saturating_add(size);
                        if end > self.watermark && end <= watermark {
                            starts.insert(s);
                        }
                    }
                }
                for start in starts {
                    self.emit_window(start, start.saturating_add(size), |floor| floor <= start, out)?;
                }
                while let Some(entry) = self.panes.first_entry() {
                    if shape.last_window_end(entry.key().0) > watermark {
                        break;
                    }
                    entry.remove();
                }
            }
        }
        self.watermark = watermark;
        Ok(())
    }

    /// The open panes (as partial states, one batch per chunk, led by the pane's start and
    /// floor) and the watermark, for a checkpoint. Panes keep their contents: live state moves
    /// into a sealed chunk, which windows merge like any other.
    pub fn snapshot(&mut self) -> Result<StateSnapshot> {
        let mut panes = Vec::new();
        let spec = self.spec.clone();
        for (&(start, floor), pane) in self.panes.iter_mut() {
            if let Some(chunk) = pane.compacted(&spec)? {
                let lead = |name: &str, v: i64| {
                    (
                        Field::new(name, DataType::Int64, false),
                        Arc::new(Int64Array::from_value(v, chunk.groups)) as ArrayRef,
                    )
                };
                panes.push(chunk_columns(vec![lead("pane_start", start), lead("pane_floor", floor)], chunk)?);
            }
        }
        Ok(StateSnapshot {
            tables: vec![("panes".into(), panes), StateSnapshot::progress(self.watermark)?],
            rescaled: None,
        })
    }

    /// Takes the panes and the watermark of a [`WindowAggregator::snapshot`] (after a change of
    /// parallelism: the groups this instance owns of every former instance's panes).
    pub fn restore(&mut self, state: &StateSnapshot) -> Result<()> {
        self.panes.clear();
        for batch in state.table("panes") {
            let bound = |i: usize| batch.column(i).as_primitive::<Int64Type>().value(0);
            let key = match batch.num_rows() {
                0 => continue,
                _ => (bound(0), bound(1)),
            };
            let mut chunk = chunk_of(&self.spec, batch, 2)?;
            if let Some((instance, parallelism)) = state.rescaled {
                let owned = owned_rows(&chunk.keys, chunk.groups, instance, parallelism)?;
                let kept = chunk_rows(batch, &owned)?;
                if kept.num_rows() == 0 {
                    continue;
                }
                chunk = chunk_of(&self.spec, &kept, 2)?;
            }
            match self.panes.entry(key) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().push_sealed(chunk),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(Pane::restored(&self.spec, vec![chunk])?);
                }
            }
        }
        // Every former instance saw the same watermarks before the barrier: one value.
        if let Some(watermark) = state.watermark() {
            self.watermark = self.watermark.max(watermark);
        }
        Ok(())
    }

    /// Emits window `[start, end)`: the merge of its panes whose floor it `admits`.
    fn emit_window(
        &mut self,
        start: i64,
        end: i64,
        admits: impl Fn(i64) -> bool,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let range = (start, i64::MIN)..(end, i64::MIN);
        for (_, pane) in self.panes.range_mut(range.clone()).filter(|((_, floor), _)| admits(*floor)) {
            pane.sealed()?;
        }
        let panes = self.panes.range(range).filter(|((_, floor), _)| admits(*floor));
        let (mut groups, mut accumulators, total) = merge_chunks(&self.spec, panes.flat_map(|(_, p)| p.chunks()))?;
        if total == 0 {
            return Ok(());
        }
        let keys = groups.emit()?;
        let values = accumulators
            .iter_mut()
            .map(|acc| acc.evaluate(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        out.push(self.output_batch(start, end, keys, values, total)?);
        Ok(())
    }

    fn output_batch(
        &self,
        start: i64,
        end: i64,
        keys: Vec<ArrayRef>,
        values: Vec<ArrayRef>,
        rows: usize,
    ) -> Result<RecordBatch> {
        let bound = |t: i64| Arc::new(TimestampMillisecondArray::from_value(t, rows)) as ArrayRef;
        let bounds = [bound(start), bound(end), bound(end - 1)];
        self.spec.window_results(&self.output_schema, bounds, &keys, values, rows)
    }
}
