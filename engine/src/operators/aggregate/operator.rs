//! The aggregations behind the [`Operator`] contract: each wraps its aggregator with the
//! stateless chain fused after it (HAVING, the SELECT list, the mapping onto the sink).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, TimestampMillisecondArray};
use arrow::record_batch::RecordBatch;

use super::{AggregateSpec, RetractingAggregator, SessionOperator, UpdatingAggregator, WindowAggregator, WindowKind};
use crate::error::{Result, StreamError};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
use crate::operators::stateless::StatelessChain;
use crate::pipeline::{AggregateStage, LateOutput};
use crate::time::{TS_COLUMN, WATERMARK_MAX, WM_COLUMN};

/// The operator for an aggregation stage: windowed when the spec has a window, updating
/// otherwise.
pub fn aggregate_operator(stage: &AggregateStage) -> Result<Box<dyn Operator>> {
    Ok(match stage.spec.window {
        Some(shape) if shape.kind == WindowKind::Session => {
            Box::new(SessionOperator::new(stage.spec.clone(), stage.post.clone(), stage.late.clone())?)
        }
        Some(_) => {
            let operator = WindowOperator::new(stage.spec.clone(), stage.post.clone(), stage.row_watermarks)?;
            Box::new(operator.with_late_output(stage.late.clone()))
        }
        None if stage.changelog_input => {
            Box::new(UpdatingOperator::over_changelog(stage.spec.clone(), stage.post.clone(), stage.update_interval)?)
        }
        None => Box::new(UpdatingOperator::new(stage.spec.clone(), stage.post.clone(), stage.update_interval)?),
    })
}

/// Applies `post` to `results` and emits what it keeps.
fn emit_through(post: &StatelessChain, results: &mut Vec<RecordBatch>, out: &mut Emitter) -> Result<()> {
    for batch in results.drain(..) {
        if let Some(batch) = post.apply(batch)? {
            out.emit(batch);
        }
    }
    Ok(())
}

/// Event-time windows: rows join windows by their own `_wm`; windows close as the watermark
/// passes their end.
pub struct WindowOperator {
    aggregator: WindowAggregator,
    post: StatelessChain,
    results: Vec<RecordBatch>,
}

impl WindowOperator {
    pub fn new(spec: Arc<AggregateSpec>, post: StatelessChain, row_watermarks: bool) -> Result<Self> {
        Ok(Self { aggregator: WindowAggregator::new(spec, row_watermarks)?, post, results: Vec::new() })
    }

    /// Rows dropped as late go to `late` too (the pipeline's late-rows sink).
    pub fn with_late_output(mut self, late: Option<Arc<LateOutput>>) -> Self {
        self.aggregator = self.aggregator.with_late_output(late);
        self
    }

    fn emit(&mut self, out: &mut Emitter) -> Result<()> {
        out.late(self.aggregator.take_late_rows());
        for batch in self.aggregator.take_late_batches() {
            out.late_batch(batch);
        }
        emit_through(&self.post, &mut self.results, out)
    }
}

impl WindowOperator {
    /// Over processing time: the clock in epoch milliseconds, never behind what was emitted.
    fn clock(&self) -> Option<i64> {
        self.aggregator.shape().processing_time.then(|| wall_clock_ms().max(self.aggregator.watermark()))
    }
}

/// The wall clock in epoch milliseconds.
fn wall_clock_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// `batch` with its hidden event time and watermark replaced by `now` on every row.
fn at_processing_time(batch: RecordBatch, now: i64) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let schema = batch.schema();
    let mut columns = batch.columns().to_vec();
    for (name, value) in [
        (TS_COLUMN, Arc::new(TimestampMillisecondArray::from_value(now, rows)) as ArrayRef),
        (WM_COLUMN, Arc::new(Int64Array::from_value(now, rows)) as ArrayRef),
    ] {
        let at = schema
            .index_of(name)
            .map_err(|_| StreamError::Internal(format!("window input without the hidden {name} column")))?;
        columns[at] = value;
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

impl Operator for WindowOperator {
    fn state_bytes(&self) -> usize {
        self.aggregator.state_bytes()
    }

    fn name(&self) -> &str {
        "window aggregate"
    }

    fn on_batch(&mut self, _input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        let batch = match self.clock() {
            Some(now) => {
                // Processing time: windows that ended by now close first; then the rows join
                // the windows of now, each row's time and watermark being the clock.
                self.aggregator.advance(now, &mut self.results)?;
                at_processing_time(batch, now)?
            }
            None => batch,
        };
        self.aggregator.process_batch(&batch, &mut self.results)?;
        self.emit(out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Emitter) -> Result<()> {
        // Over processing time, event-time watermarks close nothing (the clock does), except
        // the end of input, which closes every window.
        let watermark = match self.clock() {
            Some(now) if watermark < WATERMARK_MAX => now,
            _ => watermark,
        };
        self.aggregator.advance(watermark, &mut self.results)?;
        self.emit(out)
    }

    fn next_timer(&self) -> Option<tokio::time::Instant> {
        let now = self.clock()?;
        if !self.aggregator.has_open_windows() {
            return None;
        }
        let end = self.aggregator.shape().next_window_end_after(self.aggregator.watermark());
        let wait = Duration::from_millis(u64::try_from(end.saturating_sub(now)).unwrap_or(0));
        Some(tokio::time::Instant::now() + wait)
    }

    fn on_timer(&mut self, out: &mut Emitter) -> Result<()> {
        if let Some(now) = self.clock() {
            self.aggregator.advance(now, &mut self.results)?;
        }
        self.emit(out)
    }

    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        self.aggregator.snapshot()
    }

    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        self.aggregator.restore(&state)
    }
}

/// The state of an aggregation without a window: over an append-only input, or over a
/// changelog whose retractions it applies.
enum Updating {
    Append(UpdatingAggregator),
    Changelog(RetractingAggregator),
}

/// An aggregation without a window: rows update state at once; changed keys are emitted once
/// the update interval since the first unflushed change has passed, and at the end of input.
pub struct UpdatingOperator {
    aggregator: Updating,
    post: StatelessChain,
    update_interval: Duration,
    deadline: Option<tokio::time::Instant>,
    results: Vec<RecordBatch>,
}

impl UpdatingOperator {
    pub fn new(spec: Arc<AggregateSpec>, post: StatelessChain, update_interval: Duration) -> Result<Self> {
        Ok(Self::with(Updating::Append(UpdatingAggregator::new(spec)?), post, update_interval))
    }

    /// An aggregation over an updating input (its rows carry the changelog column).
    pub fn over_changelog(spec: Arc<AggregateSpec>, post: StatelessChain, update_interval: Duration) -> Result<Self> {
        Ok(Self::with(Updating::Changelog(RetractingAggregator::new(spec)?), post, update_interval))
    }

    fn with(aggregator: Updating, post: StatelessChain, update_interval: Duration) -> Self {
        Self { aggregator, post, update_interval, deadline: None, results: Vec::new() }
    }

    fn has_changes(&self) -> bool {
        match &self.aggregator {
            Updating::Append(a) => a.has_changes(),
            Updating::Changelog(a) => a.has_changes(),
        }
    }

    fn flush(&mut self, out: &mut Emitter) -> Result<()> {
        self.deadline = None;
        match &mut self.aggregator {
            Updating::Append(a) => a.flush(&mut self.results)?,
            Updating::Changelog(a) => a.flush(&mut self.results)?,
        }
        emit_through(&self.post, &mut self.results, out)
    }
}

impl Operator for UpdatingOperator {
    fn state_bytes(&self) -> usize {
        match &self.aggregator {
            Updating::Append(a) => a.state_bytes(),
            Updating::Changelog(a) => a.state_bytes(),
        }
    }

    fn name(&self) -> &str {
        "updating aggregate"
    }

    fn on_batch(&mut self, _input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        match &mut self.aggregator {
            Updating::Append(a) => a.process_batch(&batch)?,
            Updating::Changelog(a) => a.process_batch(&batch)?,
        }
        if self.update_interval.is_zero() {
            self.flush(out)?;
        } else if self.deadline.is_none() && self.has_changes() {
            self.deadline = Some(tokio::time::Instant::now() + self.update_interval);
        }
        Ok(())
    }

    /// Results are not held back by event time: nothing to do.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    fn on_end(&mut self, out: &mut Emitter) -> Result<()> {
        self.flush(out)
    }

    fn next_timer(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    fn on_timer(&mut self, out: &mut Emitter) -> Result<()> {
        self.flush(out)
    }

    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        match &mut self.aggregator {
            Updating::Append(a) => a.snapshot(),
            Updating::Changelog(a) => a.snapshot(),
        }
    }

    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        match &mut self.aggregator {
            Updating::Append(a) => a.restore(&state)?,
            Updating::Changelog(a) => a.restore(&state)?,
        }
        // Changes not emitted before the checkpoint are emitted after the update interval.
        if self.has_changes() && !self.update_interval.is_zero() {
            self.deadline = Some(tokio::time::Instant::now() + self.update_interval);
        }
        Ok(())
    }
}
