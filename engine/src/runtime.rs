//! Running pipelines: tasks, channels, cancellation, errors and the final report.
//!
//! ```text
//!  spawn_blocking: source task ─┐ bounded mpsc, one per (upstream instance, downstream instance)
//!  spawn_blocking: source task ─┴──▶ tokio: stage instance × parallelism ──▶ … stages …
//!                                       ──bounded mpsc (fan-in)──▶ spawn_blocking: sink task
//! ```
//!
//! The tasks are built from the spec's tree of [`Node`]s (see [`crate::pipeline`]): one task per
//! source, `parallelism` tasks per stage (each runs [`run_operator`]), one sink task.
//!
//! - A failure anywhere records the first error and cancels the pipeline; [`RunningPipeline::join`]
//!   returns that error.
//! - [`PipelineControl::cancel`] (Ctrl-C) stops the source between batches. Channels then close
//!   without [`Message::End`], so aggregations stop without emitting open windows and the sink
//!   flushes what it has.
//! - Every task is owned by the [`RunningPipeline`]; dropping it cancels the pipeline and aborts
//!   the tokio tasks.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{Field, Int8Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::connector::{ChangelogMode, Pulled, Sink, SourceContext};
use crate::error::{Result, StreamError};
use crate::message::Message;
use crate::metrics::{MetricsSnapshot, OperatorMetrics, OperatorSnapshot, PipelineMetrics};
use crate::operators::aggregate::ChangeOp;
use crate::operators::aggregate::updating::op_field;
use crate::operators::exchange::HashRouter;
use crate::operators::stateless::StatelessChain;
use crate::operators::watermark::PartitionWatermarks;
use crate::pipeline::{BoundTable, Edge, Node, PipelineSpec, Stage};
use crate::task::{Output, TaskContext, run_operator};
use crate::time::{WATERMARK_MAX, WATERMARK_MIN};

/// Messages buffered per edge: small, so backpressure reaches the source quickly.
const CHANNEL_CAPACITY: usize = 8;

struct Shared {
    cancelled: AtomicBool,
    error: Mutex<Option<StreamError>>,
    metrics: Arc<PipelineMetrics>,
    /// Each source instance's watermark; the pipeline's is their minimum.
    source_watermarks: Vec<AtomicI64>,
    /// Counters per node, in `EXPLAIN`'s order (inputs first); set once every task is spawned.
    operators: OnceLock<Vec<Arc<OperatorMetrics>>>,
}

impl Shared {
    fn source_watermark(&self, source: usize, watermark: i64) {
        if let Some(slot) = self.source_watermarks.get(source) {
            slot.store(watermark, Ordering::Relaxed);
        }
        let minimum = self.source_watermarks.iter().map(|w| w.load(Ordering::Relaxed)).min().unwrap_or(watermark);
        self.metrics.watermark.store(minimum, Ordering::Relaxed);
    }

    fn fail(&self, error: StreamError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(error);
        }
        self.cancelled.store(true, Ordering::SeqCst);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn operators(&self) -> Vec<OperatorSnapshot> {
        let operators = self.operators.get().map(Vec::as_slice).unwrap_or_default();
        operators.iter().enumerate().map(|(i, o)| o.snapshot(i + 1)).collect()
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

    /// The counters of each source and stage at this moment, numbered as `EXPLAIN` numbers them.
    pub fn operators(&self) -> Vec<OperatorSnapshot> {
        self.shared.operators()
    }
}

/// How a pipeline ended.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    pub name: String,
    pub metrics: MetricsSnapshot,
    /// Rows in and out of each source and stage, numbered as `EXPLAIN` numbers them.
    pub operators: Vec<OperatorSnapshot>,
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
                operators: self.shared.operators(),
                cancelled: self.shared.is_cancelled(),
            }),
        }
    }
}

/// Starts `spec` on the current tokio runtime.
pub fn start(spec: PipelineSpec) -> RunningPipeline {
    // One watermark slot per source instance.
    let sources: usize = spec.inputs.iter().map(Node::source_instances).sum();
    let shared = Arc::new(Shared {
        cancelled: AtomicBool::new(false),
        error: Mutex::new(None),
        metrics: Arc::new(PipelineMetrics::default()),
        source_watermarks: (0..sources).map(|_| AtomicI64::new(WATERMARK_MIN)).collect(),
        operators: OnceLock::new(),
    });
    let (sink_tx, sink_rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
    let mut tasks = Vec::new();
    let late = spec.late_sink.clone().map(|table| {
        let (late_tx, late_rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
        let shared = shared.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            if let Err(e) = unwound("the late-rows sink", || run_late_sink(&table, late_rx, &shared)) {
                shared.fail(e);
            }
        }));
        late_tx
    });
    let mut spawner =
        Spawner { shared: &shared, batch_size: spec.batch_size, tasks, sources: 0, operators: Vec::new(), late };
    let mut upstream_ends = 0;
    for node in &spec.inputs {
        upstream_ends += node.instances();
        let outputs = (0..node.instances()).map(|_| Output::forward(sink_tx.clone())).collect();
        spawner.spawn(node, outputs);
    }
    drop(sink_tx);
    // The late-rows sink ends when the last stage instance holding a sender has ended.
    spawner.late = None;
    let _ = shared.operators.set(spawner.operators);
    let mut tasks = spawner.tasks;
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

/// Spawns the tasks of a node and everything upstream of it.
struct Spawner<'a> {
    shared: &'a Arc<Shared>,
    batch_size: usize,
    tasks: Vec<JoinHandle<()>>,
    /// Sources spawned so far (each one's index into the shared watermarks).
    sources: usize,
    /// Counters of the nodes spawned so far, each after its inputs.
    operators: Vec<Arc<OperatorMetrics>>,
    /// Into the late-rows sink, for stages that route late rows.
    late: Option<mpsc::Sender<Message>>,
}

impl Spawner<'_> {
    /// Spawns `node`, whose instance *i* sends its results to `outputs[i]`.
    fn spawn(&mut self, node: &Node, outputs: Vec<Output>) {
        match node {
            Node::Source { source, chain, .. } => {
                let index = self.sources;
                self.sources += outputs.len();
                let counters = Arc::new(OperatorMetrics::new(format!("source {}", source.table.name)));
                self.operators.push(counters.clone());
                let shared = self.shared.clone();
                let (source, chain, batch_size) = (source.clone(), chain.clone(), self.batch_size);
                let instances = outputs.len();
                for (instance, mut output) in outputs.into_iter().enumerate() {
                    let shared = shared.clone();
                    let (source, chain, counters) = (source.clone(), chain.clone(), counters.clone());
                    self.tasks.push(tokio::task::spawn_blocking(move || {
                        // The error is recorded before the channels close, so downstream tasks
                        // that see them close know the pipeline failed.
                        let place = SourcePlace { index: index + instance, counters: &counters };
                        let ctx = SourceContext { batch_size, metrics: shared.metrics.clone(), instance, instances };
                        let run = || run_source(&source, &chain, ctx, &mut output, place, &shared);
                        if let Err(e) = unwound("the source", run) {
                            shared.fail(e);
                        }
                        drop(output);
                    }));
                }
            }
            Node::Stage { stage, inputs, .. } => {
                let parallelism = node.instances();
                let mut channels: Vec<Vec<(usize, mpsc::Receiver<Message>)>> =
                    (0..parallelism).map(|_| Vec::new()).collect();
                for input in inputs {
                    let edge = stage.input_edge(input.input);
                    let upstream = (0..input.node.instances())
                        .map(|_| {
                            let mut targets = Vec::with_capacity(parallelism);
                            for instance in &mut channels {
                                let (tx, rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
                                targets.push(tx);
                                instance.push((input.input, rx));
                            }
                            match &edge {
                                _ if parallelism == 1 => Output::forward(targets.remove(0)),
                                Edge::Hash(keys) => Output::hash(HashRouter::new(keys.clone(), parallelism), targets),
                                Edge::Broadcast => Output::broadcast(targets),
                                Edge::Rebalance => Output::rebalance(targets),
                            }
                        })
                        .collect();
                    self.spawn(&input.node, upstream);
                }
                let counters = Arc::new(OperatorMetrics::new(stage.name().to_string()));
                self.operators.push(counters.clone());
                for (instance, (channels, mut output)) in channels.into_iter().zip(outputs).enumerate() {
                    let shared = self.shared.clone();
                    let (stage, counters) = (stage.clone(), counters.clone());
                    let routes_late = match &stage {
                        Stage::Aggregate(a) => a.late.is_some(),
                        Stage::Join(j) => j.late.iter().any(Option::is_some),
                        Stage::Over(o) => o.late.is_some(),
                        Stage::TopN(_) => false,
                    };
                    let late = self.late.clone().filter(|_| routes_late);
                    self.tasks.push(tokio::spawn(async move {
                        let ctx = TaskContext {
                            instance,
                            metrics: &shared.metrics,
                            checkpointer: None,
                            operator: Some(&counters),
                            late_rows: late.as_ref(),
                        };
                        let result = match stage.instantiate() {
                            Ok(mut operator) => run_operator(operator.as_mut(), channels, &mut output, &ctx).await,
                            Err(e) => Err(e),
                        };
                        // Recorded before the output closes, so downstream knows the pipeline failed.
                        if let Err(e) = result {
                            shared.fail(e);
                        }
                        drop(output);
                    }));
                }
            }
        }
    }
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

/// Where a source task reports: its index among the pipeline's sources, and its counters.
struct SourcePlace<'a> {
    index: usize,
    counters: &'a OperatorMetrics,
}

/// Source task: decode, assign watermarks (one per partition), run the fused chain, send on.
/// Blocking thread.
fn run_source(
    bound: &BoundTable,
    chain: &StatelessChain,
    ctx: SourceContext,
    output: &mut Output,
    place: SourcePlace<'_>,
    shared: &Shared,
) -> Result<()> {
    let index = place.index;
    let table = &bound.table;
    let mut source = bound.connector.open_source(table, &ctx)?;
    let event_time = table.watermark.as_ref().map(|w| (w.column, w.delay_ms));
    let mut watermarks =
        PartitionWatermarks::new(&table.schema, event_time, source.partitions(), source.idle_timeout());
    // Whether downstream was told this reader is idle (and not told otherwise since).
    let mut idle = false;

    loop {
        if shared.is_cancelled() {
            return Ok(());
        }
        match source.pull()? {
            Pulled::End => break,
            Pulled::Nothing => {}
            Pulled::Rows { partition, batch } => {
                PipelineMetrics::add(&shared.metrics.rows_in, batch.num_rows());
                PipelineMetrics::add(&place.counters.rows_in, batch.num_rows());
                let batch = watermarks.assign(partition, batch)?;
                idle = false;
                if let Some(batch) = chain.apply(batch)? {
                    PipelineMetrics::add(&place.counters.rows_out, batch.num_rows());
                    // Time spent waiting for downstream (backpressure) does not count as idle.
                    let blocked = std::time::Instant::now();
                    if !output.send_batch_blocking(batch)? {
                        return Ok(());
                    }
                    watermarks.pause(blocked.elapsed());
                }
            }
        }
        let now = std::time::Instant::now();
        if let Some(watermark) = watermarks.advanced(now) {
            idle = false;
            shared.source_watermark(index, watermark);
            if !output.send_all_blocking(Message::Watermark(watermark)) {
                return Ok(());
            }
        } else if !idle && watermarks.all_idle(now) {
            // Every partition of this reader is idle: downstream stops waiting for it.
            idle = true;
            if !output.send_all_blocking(Message::Idle) {
                return Ok(());
            }
        }
    }
    shared.source_watermark(index, WATERMARK_MAX);
    output.send_all_blocking(Message::End);
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
                Message::Watermark(_) | Message::Idle => {}
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

/// The late-rows sink task: writes what stages route to it until every one of them has ended.
/// Blocking thread.
fn run_late_sink(bound: &BoundTable, mut input: mpsc::Receiver<Message>, shared: &Shared) -> Result<()> {
    let mut sink: Box<dyn Sink> = bound.connector.open_sink(&bound.table)?;
    let result = (|| {
        while let Some(message) = input.blocking_recv() {
            if let Message::Batch(batch) = message {
                sink.write(&batch)?;
            }
        }
        Ok(())
    })();
    let closed = if result.is_err() || shared.has_failed() { sink.abort() } else { sink.finish() };
    result.and(closed)
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
