//! What an aggregation computes: the window shape, keys, aggregate calls, output layout.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::logical_expr::GroupsAccumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};

use crate::error::{Result, StreamError};
use crate::time::WATERMARK_MIN;

/// TUMBLE, HOP or SESSION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumble,
    Hop,
    /// Per key, rows less than `size_ms` (the gap) apart; each session's window is its first
    /// row's time to its last row's time plus the gap.
    Session,
    /// Windows `[p, p + k * slide)` for `k = 1 ..= size / slide`, where `p` starts a period of
    /// `size` (epoch-aligned): they grow by `slide` (the step) up to `size`.
    Cumulate,
}

/// The most windows one row may belong to (`size / slide` of a HOP): each is a result row per
/// key and a merge of its panes when it closes, so more would let one row cost unbounded memory.
pub const MAX_WINDOWS_PER_ROW: i64 = 10_000;

/// Size and slide of windows, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowShape {
    pub kind: WindowKind,
    pub size_ms: i64,
    pub slide_ms: i64,
    /// `gcd(size, slide)`: the unit of state.
    pub pane_ms: i64,
    /// Windows over processing time (`DESCRIPTOR` of a `PROCTIME()` column): a row joins the
    /// windows of the time the window operator takes it, and windows close by the clock.
    pub processing_time: bool,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `ts` rounded down to a multiple of `unit`, saturating at the bottom of the time range.
pub(super) fn floor_to(ts: i64, unit: i64) -> i64 {
    ts.div_euclid(unit).checked_mul(unit).unwrap_or(i64::MIN)
}

impl WindowShape {
    /// `TUMBLE(..., size)`.
    pub fn tumble(size_ms: i64) -> Result<Self> {
        Self::new(WindowKind::Tumble, size_ms, size_ms)
    }

    /// `HOP(..., slide, size)`.
    pub fn hop(slide_ms: i64, size_ms: i64) -> Result<Self> {
        Self::new(WindowKind::Hop, size_ms, slide_ms)
    }

    /// `CUMULATE(..., step, size)`: `size` a multiple of `step`.
    pub fn cumulate(step_ms: i64, size_ms: i64) -> Result<Self> {
        if step_ms <= 0 || size_ms <= 0 {
            return Err(StreamError::Config("CUMULATE step and size must be positive intervals".into()));
        }
        if size_ms % step_ms != 0 {
            return Err(StreamError::Config(format!(
                "CUMULATE size ({size_ms} ms) must be a whole multiple of its step ({step_ms} ms)"
            )));
        }
        if size_ms / step_ms > MAX_WINDOWS_PER_ROW {
            return Err(StreamError::Config(format!(
                "CUMULATE with step {step_ms} ms and size {size_ms} ms puts every row into up to {} windows; at \
                 most {MAX_WINDOWS_PER_ROW} are allowed (size / step), so use a larger step",
                size_ms / step_ms
            )));
        }
        Ok(Self { kind: WindowKind::Cumulate, size_ms, slide_ms: step_ms, pane_ms: step_ms, processing_time: false })
    }

    /// `SESSION(..., gap)`: `size_ms` is the gap; windows have no fixed bounds.
    pub fn session(gap_ms: i64) -> Result<Self> {
        if gap_ms <= 0 {
            return Err(StreamError::Config("the SESSION gap must be a positive interval".into()));
        }
        Ok(Self {
            kind: WindowKind::Session,
            size_ms: gap_ms,
            slide_ms: gap_ms,
            pane_ms: gap_ms,
            processing_time: false,
        })
    }

    fn new(kind: WindowKind, size_ms: i64, slide_ms: i64) -> Result<Self> {
        if size_ms <= 0 || slide_ms <= 0 {
            return Err(StreamError::Config("window size and slide must be positive intervals".into()));
        }
        if slide_ms > size_ms {
            return Err(StreamError::Config(format!(
                "HOP slide ({slide_ms} ms) must not be larger than the window size ({size_ms} ms)"
            )));
        }
        let windows_per_row = size_ms / slide_ms + i64::from(size_ms % slide_ms != 0);
        if windows_per_row > MAX_WINDOWS_PER_ROW {
            return Err(StreamError::Config(format!(
                "HOP with slide {slide_ms} ms and size {size_ms} ms puts every row into {windows_per_row} windows; \
                 at most {MAX_WINDOWS_PER_ROW} are allowed (size / slide), so use a larger slide"
            )));
        }
        Ok(Self { kind, size_ms, slide_ms, pane_ms: gcd(size_ms, slide_ms), processing_time: false })
    }

    /// The same windows over processing time.
    pub fn over_processing_time(self) -> Self {
        Self { processing_time: true, ..self }
    }

    /// Start of the pane holding event time `ts`.
    pub fn pane_start(&self, ts: i64) -> i64 {
        floor_to(ts, self.pane_ms)
    }

    /// The latest end among the windows containing `ts` (every pane of `ts` shares it).
    pub fn last_window_end(&self, ts: i64) -> i64 {
        match self.kind {
            WindowKind::Cumulate => floor_to(ts, self.size_ms).saturating_add(self.size_ms),
            _ => floor_to(ts, self.slide_ms).saturating_add(self.size_ms),
        }
    }

    /// CUMULATE: the windows `(start, end)` containing the pane at `pane_start`, ascending.
    pub fn cumulate_windows(&self, pane_start: i64) -> impl Iterator<Item = (i64, i64)> + use<> {
        let start = floor_to(pane_start, self.size_ms);
        let last = start.saturating_add(self.size_ms);
        let step = self.slide_ms;
        std::iter::successors(pane_start.checked_add(step), move |e| e.checked_add(step))
            .take_while(move |e| *e <= last)
            .map(move |e| (start, e))
    }

    /// Starts of the windows containing event time `ts`, ascending.
    pub fn window_starts(&self, ts: i64) -> impl Iterator<Item = i64> + use<> {
        let slide = self.slide_ms;
        let last = floor_to(ts, slide);
        let first = floor_to(ts.saturating_sub(self.size_ms), slide).saturating_add(slide);
        std::iter::successors(Some(first), move |s| s.checked_add(slide)).take_while(move |s| *s <= last)
    }

    /// `floor` (the first window start some rows of the pane at `pane_start` may join) as the
    /// key of their pane: `i64::MIN` when it excludes none of the pane's windows.
    #[inline]
    /// For CUMULATE, whose windows of a pane share their start, `floor` is the first window
    /// *end* the rows may join.
    pub fn pane_floor(&self, pane_start: i64, floor: i64) -> i64 {
        if floor == i64::MIN {
            return floor;
        }
        if self.kind == WindowKind::Cumulate {
            let first_end = pane_start.saturating_add(self.slide_ms);
            return if floor <= first_end { i64::MIN } else { floor };
        }
        let first = floor_to(pane_start.saturating_sub(self.size_ms), self.slide_ms).saturating_add(self.slide_ms);
        if floor <= first { i64::MIN } else { floor }
    }

    /// The smallest window end strictly greater than `watermark`.
    pub fn next_window_end_after(&self, watermark: i64) -> i64 {
        if self.kind == WindowKind::Cumulate {
            // Every end is a multiple of the step.
            return floor_to(watermark, self.slide_ms).saturating_add(self.slide_ms);
        }
        let w = watermark as i128;
        let (size, slide) = (self.size_ms as i128, self.slide_ms as i128);
        let next = ((w - size).div_euclid(slide) + 1) * slide + size;
        next.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// Where each GROUP BY output column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOutput {
    WindowStart,
    WindowEnd,
    /// `window_end - 1 ms`, the time attribute of window results (as in Flink).
    WindowTime,
    /// The n-th key expression.
    Key(usize),
}

/// One aggregate call (`SUM(x) FILTER (WHERE ...)`) prepared for execution.
#[derive(Debug, Clone)]
pub struct AggregateCall {
    pub function: Arc<AggregateFunctionExpr>,
    /// Argument expressions followed by ORDER BY expressions (DataFusion's raw-input layout).
    pub args: Vec<Arc<dyn PhysicalExpr>>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

impl AggregateCall {
    pub fn new(function: Arc<AggregateFunctionExpr>, filter: Option<Arc<dyn PhysicalExpr>>) -> Self {
        let mut args = function.expressions();
        args.extend(function.order_bys().iter().map(|o| o.expr.clone()));
        Self { function, args, filter }
    }

    /// A fresh accumulator: DataFusion's vectorised one where it has it, else per-group
    /// accumulators behind an adapter (how DataFusion's own hash aggregate does it).
    pub fn new_accumulator(&self) -> Result<Box<dyn GroupsAccumulator>> {
        if self.function.groups_accumulator_supported() {
            Ok(self.function.create_groups_accumulator()?)
        } else {
            let function = self.function.clone();
            Ok(Box::new(GroupsAccumulatorAdapter::new(move || function.create_accumulator())))
        }
    }
}

/// A lowered GROUP BY: `window_start, window_end, keys...` over a window TVF, or plain keys over
/// a stream (an updating aggregate).
#[derive(Debug)]
pub struct AggregateSpec {
    /// The window of a windowed aggregation; `None` for an updating aggregate.
    pub window: Option<WindowShape>,
    /// Non-window GROUP BY expressions, over the aggregation input.
    pub key_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Types of the keys.
    pub key_fields: Vec<FieldRef>,
    pub aggregates: Vec<AggregateCall>,
    /// GROUP BY columns in output order; the aggregate values follow them.
    pub outputs: Vec<GroupOutput>,
    pub output_schema: SchemaRef,
}

impl AggregateSpec {
    /// A windowed aggregation's result rows in `schema` (the output schema with the hidden
    /// event-time columns): the GROUP BY outputs from the window bounds and `keys`, the
    /// aggregate `values`, then `window_time` as their event time and no watermark of their own.
    ///
    /// Their own watermark is "none yet": a window over them judges them by its operator
    /// watermark alone (the minimum over the instances that send them), which cannot pass
    /// window_time before they arrive, as every instance sends a window's results before the
    /// watermark that closed it. A per-row watermark would not do: results of different
    /// instances interleave, so theirs would not rise row by row.
    pub(super) fn window_results(
        &self,
        schema: &SchemaRef,
        [start, end, time]: [ArrayRef; 3],
        keys: &[ArrayRef],
        values: Vec<ArrayRef>,
        rows: usize,
    ) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for output in &self.outputs {
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
            schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_panes_windows_and_ends() -> Result<()> {
        let hop = WindowShape::hop(2_000, 5_000)?;
        assert_eq!(hop.pane_ms, 1_000);
        // 7.5 s lies in windows starting at 4 s and 6 s ([2, 7) has ended before it).
        assert_eq!(hop.window_starts(7_500).collect::<Vec<_>>(), vec![4_000, 6_000]);
        assert_eq!(hop.last_window_end(7_500), 11_000);
        assert_eq!(hop.pane_start(7_500), 7_000);
        // Window ends are 5, 7, 9, ... seconds: the next one after 7.0 s is 9 s, after 6.9 s is 7 s.
        assert_eq!(hop.next_window_end_after(7_000), 9_000);
        assert_eq!(hop.next_window_end_after(6_999), 7_000);
        Ok(())
    }

    #[test]
    fn tumble_handles_negative_and_extreme_times() -> Result<()> {
        let tumble = WindowShape::tumble(5_000)?;
        assert_eq!(tumble.window_starts(-1).collect::<Vec<_>>(), vec![-5_000]);
        assert_eq!(tumble.last_window_end(-1), 0);
        assert_eq!(tumble.next_window_end_after(WATERMARK_MIN), i64::MIN / 5_000 * 5_000);
        assert_eq!(tumble.next_window_end_after(i64::MAX), i64::MAX);
        assert!(tumble.window_starts(i64::MIN).count() <= 1);
        Ok(())
    }

    #[test]
    fn cumulate_windows_grow_by_the_step() -> Result<()> {
        let cumulate = WindowShape::cumulate(2_000, 6_000)?;
        // 7.5 s is in the period [6, 12): windows ending at 8, 10 and 12 s.
        let windows: Vec<_> = cumulate.cumulate_windows(cumulate.pane_start(7_500)).collect();
        assert_eq!(windows, vec![(6_000, 8_000), (6_000, 10_000), (6_000, 12_000)]);
        assert_eq!(cumulate.last_window_end(7_500), 12_000);
        assert_eq!(cumulate.next_window_end_after(8_000), 10_000);
        assert_eq!(cumulate.next_window_end_after(-1), 0);
        assert!(WindowShape::cumulate(4_000, 6_000).is_err(), "size not a multiple of the step");
        Ok(())
    }

    #[test]
    fn shapes_reject_bad_sizes() {
        assert!(WindowShape::tumble(0).is_err());
        assert!(WindowShape::hop(10_000, 5_000).is_err(), "slide larger than size");
        assert!(WindowShape::hop(1, MAX_WINDOWS_PER_ROW).is_ok());
        let error = WindowShape::hop(1, 86_400_000).expect_err("1 ms slide over a day");
        assert!(error.to_string().contains("at most 10000"), "{error}");
        assert!(WindowShape::hop(-1, 5_000).is_err());
    }
}
