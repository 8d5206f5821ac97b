//! Running pipelines: tasks, channels, cancellation, errors and the final report.
//!
//! ```text
//!  spawn_blocking: source task ──bounded mpsc──▶ tokio: aggregation instance × parallelism
//!                                                   ──bounded mpsc (fan-in)──▶ spawn_blocking: sink task
//! ```
//!
//! - A failure anywhere records the first error and cancels the pipeline; [`RunningPipeline::join`]
//!   returns that error.
//! - [`PipelineControl::cancel`] (Ctrl-C) stops the source between batches. Channels then close
//!   without [`Message::End`], so aggregations stop without emitting open windows and the sink
//!   flushes what it has.
//! - Every task is owned by the [`RunningPipeline`]; dropping it cancels the pipeline and aborts
//!   the tokio tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{Field, Int8Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::connector::{ChangelogMode, Sink, SourceContext};
use crate::error::{Result, StreamError};
use crate::message::Message;
use crate::metrics::{MetricsSnapshot, PipelineMetrics};
use crate::operators::aggregate::updating::op_field;
use crate::operators::aggregate::{ChangeOp, aggregate_operator};
use crate::operators::exchange::HashRouter;
use crate::operators::watermark::WatermarkAssigner;
use crate::pipeline::PipelineSpec;
use crate::task::{Output, TaskContext, run_operator};
use crate::time::WATERMARK_MAX;

/// Messages buffered per edge: small, so backpressure reaches the source quickly.
const CHANNEL_CAPACITY: usize = 8;

struct Shared {
    cancelled: AtomicBool,
    error: Mutex<Option<StreamError>>,
    metrics: Arc<PipelineMetrics>,
}

impl Shared {
    fn fail(&self, error: StreamError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(error);
        }
        self.cancelled.store(true, Ordering::SeqCst);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn has_failed(&self) -> bool {
        self.error.lock().map(|e| e.is_some()).unwrap_or(true)
    }
}

/// A handle to stop a running pipeline and read its counters, cloneable across tasks.
#[derive(Clone)]
pub struct PipelineControl {
    shared: Arc<Shared>,
}

impl PipelineControl {
    /// Stops the pipeline: sources stop, open windows are not emitted, sinks are flushed.
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
    }

    /// The pipeline's counters at this moment.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }
}

/// How a pipeline ended.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    pub name: String,
    pub metrics: MetricsSnapshot,
    /// True when stopped by [`PipelineControl::cancel`] before its input ended.
    pub cancelled: bool,
}

/// A started pipeline.
pub struct RunningPipeline {
    name: String,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RunningPipeline {
    /// Cancels the pipeline: tokio tasks are aborted, and the blocking source and sink threads
    /// (which cannot be aborted) stop at their next batch.
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RunningPipeline {
    /// A handle to cancel the pipeline or watch it.
    pub fn control(&self) -> PipelineControl {
        PipelineControl { shared: self.shared.clone() }
    }

    /// Waits for every task; returns the first error, or the report.
    pub async fn join(mut self) -> Result<PipelineReport> {
        for task in std::mem::take(&mut self.tasks) {
            if let Err(e) = task.await {
                self.shared.fail(StreamError::Internal(format!("a pipeline task failed: {e}")));
            }
        }
        let error = self.shared.error.lock().ok().and_then(|mut e| e.take());
        match error {
            Some(e) => Err(e),
            None => Ok(PipelineReport {
                name: self.name.clone(),
                metrics: self.shared.metrics.snapshot(),
                cancelled: self.shared.is_cancelled(),
            }),
        }
    }
}

/// Starts `spec` on the current tokio runtime.
pub fn start(spec: PipelineSpec) -> RunningPipeline {
    let shared = Arc::new(Shared {
        cancelled: AtomicBool::new(false),
        error: Mutex::new(None),
        metrics: Arc::new(PipelineMetrics::default()),
    });
    let (sink_tx, sink_rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
    let mut tasks = Vec::new();

    let upstream_ends = match &spec.aggregate {
        None => {
            let shared = shared.clone();
            let spec = spec.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                let outputs = vec![sink_tx];
                // The error is recorded before the channels close, so downstream tasks that see
                // them close know the pipeline failed.
                if let Err(e) = unwound("the source", || run_source(&spec, &outputs, None, &shared)) {
                    shared.fail(e);
                }
                drop(outputs);
            }));
            1
        }
        Some(stage) => {
            let parallelism = spec.parallelism.max(1);
            let mut inputs = Vec::with_capacity(parallelism);
            for instance in 0..parallelism {
                let (tx, rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
                inputs.push(tx);
                let shared = shared.clone();
                let stage = stage.clone();
                let out = sink_tx.clone();
                tasks.push(tokio::spawn(async move {
                    let mut output = Output::forward(out);
                    let ctx = TaskContext { instance, metrics: &shared.metrics, checkpointer: None };
                    let result = match aggregate_operator(&stage) {
                        Ok(mut operator) => run_operator(operator.as_mut(), vec![rx], &mut output, &ctx).await,
                        Err(e) => Err(e),
                    };
                    // Recorded before the output closes, so the sink knows the pipeline failed.
                    if let Err(e) = result {
                        shared.fail(e);
                    }
                    drop(output);
                }));
            }
            drop(sink_tx);
            let router = HashRouter::new(stage.spec.key_exprs.clone(), parallelism);
            let shared = shared.clone();
            let spec = spec.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                if let Err(e) = unwound("the source", || run_source(&spec, &inputs, Some(router), &shared)) {
                    shared.fail(e);
                }
                drop(inputs);
            }));
            parallelism
        }
    };

    {
        let shared = shared.clone();
        let spec = spec.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            if let Err(e) = unwound("the sink", || run_sink(&spec, sink_rx, upstream_ends, &shared)) {
                shared.fail(e);
            }
        }));
    }

    RunningPipeline { name: spec.name, shared, tasks }
}

/// Runs `work`, turning a panic into an error that fails the pipeline: recorded before the
/// task's channels close, like any other error (a connector's bug must not pass for the end of
/// its input).
fn unwound<T>(what: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(StreamError::Internal(format!("{what} panicked: {message}")))
    })
}

/// Source task: decode, assign watermarks, run the pre chain, route. Blocking thread.
fn run_source(
    spec: &PipelineSpec,
    outputs: &[mpsc::Sender<Message>],
    mut router: Option<HashRouter>,
    shared: &Shared,
) -> Result<()> {
    let ctx = SourceContext { batch_size: spec.batch_size, metrics: shared.metrics.clone() };
    let table = &spec.source.table;
    let mut source = spec.source.connector.open_source(table, &ctx)?;
    let event_time = table.watermark.as_ref().map(|w| (w.column, w.delay_ms));
    let mut assigner = WatermarkAssigner::new(&table.schema, event_time);
    let mut last_watermark = assigner.current();
    let send = |output: &mpsc::Sender<Message>, message: Message| output.blocking_send(message).is_ok();

    loop {
        if shared.is_cancelled() {
            return Ok(());
        }
        let Some(batch) = source.next_batch()? else { break };
        PipelineMetrics::add(&shared.metrics.rows_in, batch.num_rows());
        let batch = assigner.assign(batch)?;
        if let Some(batch) = spec.pre.apply(batch)? {
            let pieces = match router.as_mut() {
                Some(router) => router.route(batch)?,
                None => vec![(0, batch)],
            };
            for (partition, piece) in pieces {
                if !send(&outputs[partition], Message::Batch(piece)) {
                    return Ok(());
                }
            }
        }
        let watermark = assigner.current();
        if watermark > last_watermark {
            last_watermark = watermark;
            shared.metrics.watermark.store(watermark, Ordering::Relaxed);
            if router.is_some() {
                for output in outputs {
                    if !send(output, Message::Watermark(watermark)) {
                        return Ok(());
                    }
                }
            }
        }
    }
    shared.metrics.watermark.store(WATERMARK_MAX, Ordering::Relaxed);
    for output in outputs {
        send(output, Message::End);
    }
    Ok(())
}

/// What the sink task does with the hidden columns of each batch.
enum SinkLayout {
    /// Keep the table's columns, drop hidden ones.
    Plain,
    /// Keep the table's columns and the trailing `_op` column.
    Changes(SchemaRef),
    /// Put `_op` in front as text (`+I`, `-U`, ...); the table's schema already has `op` first.
    OpColumn,
}

impl SinkLayout {
    fn of(spec: &PipelineSpec) -> Self {
        if !spec.is_updating() {
            return SinkLayout::Plain;
        }
        match spec.sink.connector.changelog() {
            ChangelogMode::Native => {
                let mut fields: Vec<Field> =
                    spec.sink.table.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(op_field());
                SinkLayout::Changes(Arc::new(Schema::new(fields)))
            }
            ChangelogMode::OpColumn | ChangelogMode::Unsupported => SinkLayout::OpColumn,
        }
    }

    fn apply(&self, schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch> {
        let columns = batch.columns();
        Ok(match self {
            SinkLayout::Plain => RecordBatch::try_new(schema.clone(), columns[..schema.fields().len()].to_vec())?,
            SinkLayout::Changes(with_op) => {
                let visible = with_op.fields().len() - 1;
                let mut kept = columns[..visible].to_vec();
                kept.push(op_column(&batch)?.clone());
                RecordBatch::try_new(with_op.clone(), kept)?
            }
            SinkLayout::OpColumn => {
                let ops = op_column(&batch)?.as_primitive::<Int8Type>();
                let symbols = ops
                    .values()
                    .iter()
                    .map(|op| ChangeOp::from_i8(*op).map(|op| Some(op.symbol())))
                    .collect::<Result<StringArray>>()?;
                let mut kept: Vec<ArrayRef> = vec![Arc::new(symbols)];
                kept.extend(columns[..schema.fields().len() - 1].iter().cloned());
                RecordBatch::try_new(schema.clone(), kept)?
            }
        })
    }
}

fn op_column(batch: &RecordBatch) -> Result<&ArrayRef> {
    batch
        .columns()
        .last()
        .filter(|c| c.data_type() == &arrow::datatypes::DataType::Int8)
        .ok_or_else(|| StreamError::Internal("updating results without an op column".into()))
}

/// Sink task: strips hidden columns, writes, finishes. Blocking thread.
fn run_sink(spec: &PipelineSpec, mut input: mpsc::Receiver<Message>, upstream: usize, shared: &Shared) -> Result<()> {
    let mut sink: Box<dyn Sink> = spec.sink.connector.open_sink(&spec.sink.table)?;
    let schema = spec.sink.table.schema.clone();
    let layout = SinkLayout::of(spec);
    let mut ends = 0;
    let result = (|| {
        while let Some(message) = input.blocking_recv() {
            match message {
                Message::Batch(batch) => {
                    let visible = layout.apply(&schema, batch)?;
                    sink.write(&visible)?;
                    PipelineMetrics::add(&shared.metrics.rows_out, visible.num_rows());
                }
                Message::Watermark(_) => {}
                Message::Barrier(epoch) => {
                    return Err(StreamError::Internal(format!(
                        "checkpoint barrier {epoch} reached a sink, but sinks do not take part in checkpoints yet"
                    )));
                }
                Message::End => {
                    ends += 1;
                    if ends == upstream {
                        break;
                    }
                }
            }
        }
        Ok(())
    })();
    // A cancelled pipeline flushes what it wrote; a failed one aborts (a sink that replaces
    // earlier output keeps it). Upstream tasks record their error before their channels close.
    let closed = if result.is_err() || shared.has_failed() { sink.abort() } else { sink.finish() };
    result.and(closed)
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
