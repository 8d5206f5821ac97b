//! The operator contract: what every stateful or multi-input operator implements, and what the
//! one generic task loop ([`crate::task`]) guarantees when it calls it.
//!
//! An operator never touches channels. The loop receives [`Message`](crate::message::Message)s
//! on the operator's inputs and calls it; whatever the operator emits into its [`Emitter`] is
//! sent downstream by the loop, *before* the loop forwards the watermark, barrier or end that
//! caused it. The protocol, per operator instance:
//!
//! ```text
//!                    on_batch(i, rows) / on_timer()
//!                         ┌──────┐
//!                         ▼      │
//!   ┌─────────┐  first  ┌─────────┐  all inputs sent Barrier(e)   ┌──────────────┐
//!   │ created │ ──────▶ │ running │ ────────────────────────────▶ │ snapshot(e)  │──┐
//!   └─────────┘ message └─────────┘ ◀──────────────────────────── └──────────────┘  │
//!        │                │   │    barrier forwarded, inputs released               │
//!   restore(state)        │   │                                                     │
//!   (before any message)  │   └── min over inputs of Watermark(w) rose ──▶ on_watermark(min)
//!                         │
//!                         ├── every channel of input i sent End ──▶ on_input_end(i)
//!                         ├── every input sent End ──▶ on_end() ──▶ End forwarded ──▶ done
//!                         └── an input closed without End (cancelled / failed upstream),
//!                             or a callback returned Err ──▶ stopped: nothing more is called
//! ```
//!
//! - **Watermarks.** The loop keeps each input's watermark and calls
//!   [`Operator::on_watermark`] with the minimum over inputs whenever that minimum rises. An
//!   input that has ended counts as `+∞`. Rows are judged by their own `_wm` column (see
//!   [`crate::time`]); the operator's watermark says which state is complete.
//! - **End.** When every channel of input *i* has sent `End`, [`Operator::on_input_end`] is
//!   called once for *i* (a lookup join learns its table is complete). When every input has ended, [`Operator::on_end`] (by default
//!   `on_watermark(+∞)`) emits what is still open; then the loop sends `End` and stops.
//! - **Barriers** (aligned). After `Barrier(e)` on input *i*, the loop reads no more from *i*
//!   until every input has sent `Barrier(e)`; then it calls [`Operator::snapshot`], hands the
//!   state to the task's [`Checkpointer`], and forwards the barrier. State is Arrow: a snapshot
//!   is named record batches, and must not change the operator.
//! - **Errors** returned by any callback stop the task and fail the pipeline; a panic does the
//!   same (the task is a tokio task, whose panic the pipeline reports as a failure).
//! - **Cancellation.** Dropping the task drops the operator mid-call; operators hold no
//!   resources that need more than `Drop`.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;

use crate::error::{Result, StreamError};
use crate::time::WATERMARK_MAX;

/// A checkpoint's number; increases by one per checkpoint of a pipeline.
pub type Epoch = u64;

/// Where an operator puts its results during a callback; the loop sends them on afterwards.
#[derive(Debug, Default)]
pub struct Emitter {
    batches: Vec<RecordBatch>,
    late_rows: u64,
    /// Of `late_rows`, those counted per input ([`Emitter::late_on`]; joins).
    late_by_input: [u64; 2],
    late_batches: Vec<RecordBatch>,
}

impl Emitter {
    /// Sends `batch` downstream (empty batches are dropped).
    pub fn emit(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.batches.push(batch);
        }
    }

    /// Counts rows dropped as late.
    pub fn late(&mut self, rows: u64) {
        self.late_rows += rows;
    }

    /// Counts rows of input `input` (0 or 1: a join's left or right) dropped as late.
    pub fn late_on(&mut self, input: usize, rows: u64) {
        self.late_rows += rows;
        self.late_by_input[input.min(1)] += rows;
    }

    /// Late rows counted per input since the last call.
    pub(crate) fn take_late_by_input(&mut self) -> [u64; 2] {
        std::mem::take(&mut self.late_by_input)
    }

    /// Sends late rows (already counted with [`Emitter::late`]) to the pipeline's late-rows sink.
    pub fn late_batch(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.late_batches.push(batch);
        }
    }

    /// The emitted batches, late rows and late batches since the last call.
    pub(crate) fn take(&mut self) -> (Vec<RecordBatch>, u64, Vec<RecordBatch>) {
        (std::mem::take(&mut self.batches), std::mem::take(&mut self.late_rows), std::mem::take(&mut self.late_batches))
    }

    /// Emitted batches, for tests of operators.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }
}

/// An operator's state as Arrow: named tables of rows (window panes, accumulator states, join
/// buffers…), each to be written as Arrow IPC or Parquet by the checkpoint store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateSnapshot {
    pub tables: Vec<(String, Vec<RecordBatch>)>,
    /// Set on a restore at another parallelism: the state of every former instance, of which
    /// instance `.0` of `.1` keeps what it owns (keyed state by the key groups of
    /// [`crate::operators::exchange`], source partitions as the connector deals them).
    pub rescaled: Option<(usize, usize)>,
}

impl StateSnapshot {
    /// A snapshot of one table.
    pub fn single(table: &str, batches: Vec<RecordBatch>) -> Self {
        Self { tables: vec![(table.to_string(), batches)], rescaled: None }
    }

    /// The batches of `table` (none when the snapshot has no such table, or it was empty).
    pub fn table(&self, table: &str) -> &[RecordBatch] {
        self.tables.iter().find(|(t, _)| t == table).map(|(_, b)| b.as_slice()).unwrap_or_default()
    }

    /// An operator's watermark as the `progress` table its snapshot holds.
    pub fn progress(watermark: i64) -> Result<(String, Vec<RecordBatch>)> {
        let schema = Arc::new(Schema::new(vec![Field::new("watermark", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![watermark]))])?;
        Ok(("progress".to_string(), vec![batch]))
    }

    /// The largest watermark of the `progress` tables (one per former instance after a change
    /// of parallelism); `None` without one.
    pub fn watermark(&self) -> Option<i64> {
        self.table("progress")
            .iter()
            .filter(|b| b.num_rows() > 0)
            .filter_map(|b| b.column(0).as_primitive_opt::<Int64Type>().map(|w| w.value(0)))
            .max()
    }
}

/// Takes the snapshots of one checkpoint (see [`crate::checkpoint`]).
pub trait Checkpointer: Send + Sync {
    /// Keeps `state` of instance `instance` of operator `operator` for checkpoint `epoch`.
    fn store(&self, operator: &str, instance: usize, epoch: Epoch, state: StateSnapshot) -> Result<()>;

    /// Instance `instance` finished (every input ended and its results were sent) with
    /// `state`, which stands for it in every later checkpoint.
    fn finished(&self, instance: usize, state: StateSnapshot) -> Result<()>;
}

/// One operator of a pipeline's dataflow graph. See the [module docs](self) for the protocol.
pub trait Operator: Send {
    /// What the operator is, for errors, reports and EXPLAIN (`window aggregate`).
    fn name(&self) -> &str;

    /// Rows arrived on input `input` (0 for a single-input operator).
    fn on_batch(&mut self, input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()>;

    /// The minimum watermark over all inputs rose to `watermark`.
    fn on_watermark(&mut self, watermark: i64, out: &mut Emitter) -> Result<()>;

    /// Every channel of input `input` has ended (called once per input, before
    /// [`Operator::on_end`] for the last one).
    fn on_input_end(&mut self, _input: usize, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    /// Every input has ended: emit what is still open.
    fn on_end(&mut self, out: &mut Emitter) -> Result<()> {
        self.on_watermark(WATERMARK_MAX, out)
    }

    /// The watermark to send downstream once the inputs' minimum is `watermark`: by default
    /// that minimum; less while the operator holds rows back that it will still emit (`LEAD`
    /// waits for the rows after a row), so that they are not behind the watermark downstream.
    fn output_watermark(&self, watermark: i64) -> i64 {
        watermark
    }

    /// When the operator next wants [`Operator::on_timer`] (processing time), if at all.
    fn next_timer(&self) -> Option<tokio::time::Instant> {
        None
    }

    /// The time given by [`Operator::next_timer`] has come.
    fn on_timer(&mut self, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    /// The operator's state at a barrier, without changing it.
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        Err(StreamError::Config(format!("the {} operator cannot be checkpointed yet", self.name())))
    }

    /// Replaces the operator's state with `state`, before any message.
    fn restore(&mut self, _state: StateSnapshot) -> Result<()> {
        Err(StreamError::Config(format!("the {} operator cannot be restored from a checkpoint yet", self.name())))
    }

    /// Checkpoint `epoch` is complete everywhere (sinks commit their transactions here).
    fn on_commit(&mut self, _epoch: Epoch) -> Result<()> {
        Ok(())
    }

    /// An estimate of the memory the operator's state holds, in bytes (rows kept, groups and
    /// their accumulators, indexes); sampled about once a second for the metrics.
    fn state_bytes(&self) -> usize {
        0
    }
}

/// The memory `batches` hold (buffers shared between slices count once per slice).
pub fn batches_bytes<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> usize {
    batches.into_iter().map(RecordBatch::get_array_memory_size).sum()
}
