//! Running pipelines: tasks, channels, cancellation, errors and the final report.
//!
//! ```text
//!  spawn_blocking: source task ─┐ bounded mpsc, one per (upstream instance, downstream instance)
//!  spawn_blocking: source task ─┴──▶ tokio: stage instance × parallelism ──▶ … stages …
//!                                       ──bounded mpsc (fan-in)──▶ spawn_blocking: sink task
//! ```
//!
//! The tasks are built from the spec's tree of [`Node`]s (see [`crate::pipeline`]): one task per
//! source table read (per instance of a partitioned source), which feeds every node reading
//! that table; `parallelism` tasks per stage (each runs [`run_operator`]); one sink task.
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

use crate::checkpoint::{CheckpointStats, Checkpoints, NodeCheckpointer};
use crate::connector::{ChangelogMode, Pulled, Sink, SourceContext};
use crate::error::{Result, StreamError};
use crate::message::Message;
use crate::metrics::{
    ConnectorMetrics, ConnectorSnapshot, MetricsSnapshot, OperatorMetrics, OperatorSnapshot, PipelineMetrics,
};
use crate::operator::{Emitter, Epoch, Operator, StateSnapshot};
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
    /// The sink wrote the `LIMIT`'s rows: the pipeline stops as if cancelled, and has ended.
    limit_reached: AtomicBool,
    error: Mutex<Option<StreamError>>,
    metrics: Arc<PipelineMetrics>,
    /// Each source instance's watermark; the pipeline's is their minimum.
    source_watermarks: Vec<AtomicI64>,
    /// Counters per node, in `EXPLAIN`'s order (inputs first); set once every task is spawned.
    operators: OnceLock<Vec<Arc<OperatorMetrics>>>,
    /// The pipeline's checkpoints, when it takes them.
    checkpoints: Option<Arc<Checkpoints>>,
    /// Error counters per source table and the sink.
    connectors: OnceLock<Vec<ConnectorMetrics>>,
}

impl Shared {
    /// The pipeline's counters, its connectors' errors included.
    fn metrics_snapshot(&self) -> MetricsSnapshot {
        let mut snapshot = self.metrics.snapshot();
        for connector in self.connectors.get().map(Vec::as_slice).unwrap_or_default() {
            snapshot.add_errors(&connector.counters.snapshot());
            snapshot.sink_retries += connector.retries.get().map_or(0, |r| r.load(Ordering::Relaxed));
        }
        snapshot
    }

    fn connectors(&self) -> Vec<ConnectorSnapshot> {
        self.connectors.get().map(Vec::as_slice).unwrap_or_default().iter().map(ConnectorMetrics::snapshot).collect()
    }

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
        self.shared.metrics_snapshot()
    }

    /// The counters of each source and stage at this moment, numbered as `EXPLAIN` numbers them.
    pub fn operators(&self) -> Vec<OperatorSnapshot> {
        self.shared.operators()
    }

    /// Whether the pipeline takes checkpoints.
    pub fn checkpoints(&self) -> bool {
        self.shared.checkpoints.is_some()
    }

    /// The error counters of each source table and of the sink, at this moment.
    pub fn connectors(&self) -> Vec<ConnectorSnapshot> {
        self.shared.connectors()
    }

    /// The last complete checkpoint, if the pipeline takes them and one completed.
    pub fn last_checkpoint(&self) -> Option<CheckpointStats> {
        self.shared.checkpoints.as_ref().and_then(|c| c.last())
    }

    /// Stops the pipeline after a final checkpoint (a savepoint), so that a restart replays
    /// nothing: waits for the checkpoint in progress and one more, at most `timeout`, then
    /// cancels. Returns the final checkpoint's epoch; `None` if the pipeline does not
    /// checkpoint, or no checkpoint completed in time (it is cancelled all the same).
    pub async fn stop_with_savepoint(&self, timeout: std::time::Duration) -> Option<Epoch> {
        let checkpoints = self.shared.checkpoints.clone();
        let taken = async {
            let checkpoints = checkpoints?;
            let deadline = tokio::time::Instant::now() + timeout;
            let epoch = loop {
                if self.shared.is_cancelled() {
                    return None;
                }
                if let Some(epoch) = checkpoints.request() {
                    break epoch;
                }
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            };
            while checkpoints.last().is_none_or(|l| l.epoch < epoch) {
                if self.shared.is_cancelled() || tokio::time::Instant::now() >= deadline || !checkpoints.in_flight() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            checkpoints.last().filter(|l| l.epoch >= epoch).map(|l| l.epoch)
        }
        .await;
        self.cancel();
        taken
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
    /// The checkpoint the pipeline resumed from, if it did.
    pub restored_from: Option<Epoch>,
    /// The last checkpoint it completed, if it takes them.
    pub last_checkpoint: Option<CheckpointStats>,
}

/// A started pipeline.
pub struct RunningPipeline {
    name: String,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    /// Requests checkpoints on the interval; stopped when the pipeline ends.
    coordinator: Option<JoinHandle<()>>,
}

impl Drop for RunningPipeline {
    /// Cancels the pipeline: tokio tasks are aborted, and the blocking source and sink threads
    /// (which cannot be aborted) stop at their next batch.
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
        if let Some(coordinator) = &self.coordinator {
            coordinator.abort();
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
        if let Some(coordinator) = self.coordinator.take() {
            coordinator.abort();
        }
        let cancelled = self.shared.is_cancelled() && !self.shared.limit_reached.load(Ordering::SeqCst);
        let checkpoints = self.shared.checkpoints.clone();
        if let Some(checkpoints) = &checkpoints {
            if !cancelled
                && !self.shared.has_failed()
                && let Err(e) = checkpoints.completed()
            {
                self.shared.fail(e);
            }
            // A shell may start the same pipeline again, to resume it.
            checkpoints.release();
        }
        let error = self.shared.error.lock().ok().and_then(|mut e| e.take());
        match error {
            Some(e) => Err(e),
            None => Ok(PipelineReport {
                name: self.name.clone(),
                metrics: self.shared.metrics_snapshot(),
                operators: self.shared.operators(),
                cancelled,
                restored_from: checkpoints.as_ref().and_then(|c| c.restored_epoch()),
                last_checkpoint: checkpoints.as_ref().and_then(|c| c.last()),
            }),
        }
    }
}

/// Opens the pipeline's checkpoints, if it takes them: refuses a pipeline with a part that
/// cannot take part, or whose stored checkpoint is of another job.
fn open_checkpoints(spec: &PipelineSpec) -> Result<Option<Arc<Checkpoints>>> {
    let Some(config) = spec.checkpoint.clone() else { return Ok(None) };
    let nodes = spec.checkpoint_nodes()?;
    Ok(Some(Arc::new(Checkpoints::open(config, &spec.name, nodes)?)))
}

/// Starts `spec` on the current tokio runtime.
pub fn start(spec: PipelineSpec) -> RunningPipeline {
    // One watermark slot per source instance.
    let sources: usize = spec.inputs.iter().map(Node::source_instances).sum();
    let opened = open_checkpoints(&spec);
    let shared = Arc::new(Shared {
        cancelled: AtomicBool::new(false),
        limit_reached: AtomicBool::new(false),
        error: Mutex::new(None),
        metrics: Arc::new(PipelineMetrics::default()),
        source_watermarks: (0..sources).map(|_| AtomicI64::new(WATERMARK_MIN)).collect(),
        operators: OnceLock::new(),
        connectors: OnceLock::new(),
        checkpoints: opened.as_ref().ok().cloned().flatten(),
    });
    if let Err(e) = opened {
        shared.fail(e);
        return RunningPipeline { name: spec.name, shared, tasks: Vec::new(), coordinator: None };
    }
    let (late, late_rx) = match &spec.late_sink {
        Some(_) => {
            let (late_tx, late_rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
            (Some(late_tx), Some(late_rx))
        }
        None => (None, None),
    };
    let mut spawner = Spawner {
        shared: &shared,
        batch_size: spec.batch_size,
        parallelism: spec.parallelism,
        tasks: Vec::new(),
        sources: 0,
        operators: Vec::new(),
        late_aligned: (late.is_some() && shared.checkpoints.is_some()).then(Vec::new),
        late,
        connectors: Vec::new(),
        reads: Vec::new(),
        reuse_sources: spec.reuse_sources,
    };
    // Upstream instances send into one channel the sink reads. With checkpoints, each sends
    // into a channel of its own, and an aligner task aligns their barriers before that channel
    // (sinks block on their I/O, some in runtimes of their own, so they cannot run the async
    // loop themselves).
    let (sink_tx, sink_rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
    let mut aligned = Vec::new();
    let mut upstream_ends = 0;
    for node in &spec.inputs {
        let outputs = (0..node.instances())
            .map(|_| {
                if shared.checkpoints.is_none() {
                    upstream_ends += 1;
                    return Output::forward(sink_tx.clone());
                }
                let (tx, rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
                aligned.push((0, rx));
                Output::forward(tx)
            })
            .collect();
        if let Err(e) = spawner.spawn(node, outputs) {
            shared.fail(e);
        }
    }
    if let Err(e) = spawner.spawn_reads() {
        shared.fail(e);
    }
    if !aligned.is_empty() {
        upstream_ends += 1;
        spawner.tasks.push(spawn_aligner(&shared, aligned, sink_tx.clone()));
    }
    drop(sink_tx);
    // Without checkpoints the late-rows sink ends when the last stage instance holding a
    // sender has ended; with them, an aligner aligns the barriers of the instances' channels
    // before it, as for the sink.
    let late_tx = spawner.late.take();
    if let (Some(late_tx), Some(inputs)) = (late_tx, spawner.late_aligned.take()) {
        spawner.tasks.push(spawn_aligner(&shared, inputs, late_tx));
    }
    let sink_node = spawner.operators.len();
    let _ = shared.operators.set(spawner.operators);
    let sink_retries = Arc::new(OnceLock::new());
    spawner.connectors.push(ConnectorMetrics {
        table: spec.sink.table.name.clone(),
        connector: spec.sink.connector.name().to_string(),
        role: "sink",
        counters: Arc::default(),
        retries: sink_retries.clone(),
    });
    let _ = shared.connectors.set(spawner.connectors);
    let mut tasks = spawner.tasks;
    if let (Some(table), Some(late_rx)) = (spec.late_sink.clone(), late_rx) {
        // The late-rows sink is the node after the sink in checkpoints.
        let late_node = sink_node + 1;
        match shared.checkpoints.as_ref().map(|c| c.restore_state(late_node, 0)).transpose() {
            Ok(restored) => {
                let shared = shared.clone();
                tasks.push(tokio::task::spawn_blocking(move || {
                    let place = LatePlace { node: late_node, restored: restored.flatten() };
                    if let Err(e) = unwound("the late-rows sink", || run_late_sink(&table, late_rx, place, &shared)) {
                        shared.fail(e);
                    }
                }));
            }
            Err(e) => shared.fail(e),
        }
    }
    let restored = shared.checkpoints.as_ref().map(|c| c.restore_state(sink_node, 0)).transpose();
    match restored {
        Ok(restored) => {
            let shared = shared.clone();
            let spec = spec.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                let place = SinkPlace {
                    upstream: upstream_ends,
                    node: sink_node,
                    restored: restored.flatten(),
                    retries: sink_retries,
                };
                let run = || run_sink(&spec, sink_rx, place, &shared);
                if let Err(e) = unwound("the sink", run) {
                    shared.fail(e);
                }
            }));
        }
        Err(e) => shared.fail(e),
    }
    let coordinator = shared.checkpoints.clone().map(|checkpoints| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let interval = checkpoints.config().interval;
            loop {
                tokio::time::sleep(interval).await;
                if shared.is_cancelled() {
                    return;
                }
                checkpoints.request();
                if let Some(why) = checkpoints.fatal() {
                    shared.fail(StreamError::Remote(why));
                    return;
                }
            }
        })
    });

    RunningPipeline { name: spec.name, shared, tasks, coordinator }
}

/// Spawns the tasks of a node and everything upstream of it.
struct Spawner<'a> {
    shared: &'a Arc<Shared>,
    batch_size: usize,
    /// The pipeline's parallelism (a file source decodes on that many threads).
    parallelism: usize,
    tasks: Vec<JoinHandle<()>>,
    /// Sources spawned so far (each one's index into the shared watermarks).
    sources: usize,
    /// Counters of the nodes spawned so far, each after its inputs.
    operators: Vec<Arc<OperatorMetrics>>,
    /// Into the late-rows sink, for stages that route late rows.
    late: Option<mpsc::Sender<Message>>,
    /// With checkpoints: the late-rows channel of each instance that routes late rows, for the
    /// aligner before the late-rows sink (each instance gets a channel of its own).
    late_aligned: Option<Vec<(usize, mpsc::Receiver<Message>)>>,
    /// Error counters of the sources spawned so far.
    connectors: Vec<ConnectorMetrics>,
    /// The source tables read so far, each spawned once the whole graph is walked
    /// ([`Spawner::spawn_reads`]).
    reads: Vec<SourceRead>,
    /// Whether nodes that read the same table share one read of it
    /// (`'table.optimizer.reuse-source-enabled'`).
    reuse_sources: bool,
}

/// One read of a source table: its tasks (one per instance) decode it once and feed every node
/// that reads the table, each through its own fused chain (a self-join reads its table once,
/// as Flink's reused source scan does).
struct SourceRead {
    source: BoundTable,
    /// The table's error counters, counted once however many nodes read it.
    errors: Arc<PipelineMetrics>,
    readers: Vec<NodeReader>,
}

impl SourceRead {
    /// Whether a node reading `source` on `instances` tasks can share this read: the same
    /// table, declared the same way, read by as many instances.
    fn serves(&self, source: &BoundTable, instances: usize) -> bool {
        self.source.same_table(source) && self.readers[0].outputs.len() == instances
    }
}

/// A source node: the chain it runs over its table's batches, and where each of its instances
/// sends them.
struct NodeReader {
    chain: StatelessChain,
    outputs: Vec<Output>,
    /// Its first slot in the shared watermarks (one per instance).
    index: usize,
    /// Its node number, for checkpoints.
    node: usize,
    counters: Arc<OperatorMetrics>,
    /// The state each instance resumes from.
    restored: Vec<Option<StateSnapshot>>,
}

impl Spawner<'_> {
    /// The state instance `instance` of node `node` restores, if the pipeline resumes.
    fn restored(&self, node: usize, instance: usize) -> Result<Option<StateSnapshot>> {
        match &self.shared.checkpoints {
            Some(checkpoints) => checkpoints.restore_state(node, instance),
            None => Ok(None),
        }
    }

    /// Spawns `node`, whose instance *i* sends its results to `outputs[i]`.
    fn spawn(&mut self, node: &Node, outputs: Vec<Output>) -> Result<()> {
        match node {
            Node::Source { source, chain, .. } => {
                let index = self.sources;
                self.sources += outputs.len();
                let node_index = self.operators.len();
                let counters = Arc::new(OperatorMetrics::new(format!("source {}", source.table.name)));
                self.operators.push(counters.clone());
                let restored = (0..outputs.len()).map(|i| self.restored(node_index, i)).collect::<Result<_>>()?;
                let reader = NodeReader { chain: chain.clone(), outputs, index, node: node_index, counters, restored };
                let instances = reader.outputs.len();
                let reuse = self.reuse_sources;
                match self.reads.iter_mut().find(|read| reuse && read.serves(source, instances)) {
                    Some(read) => read.readers.push(reader),
                    None => {
                        let errors = Arc::new(PipelineMetrics::default());
                        self.connectors.push(ConnectorMetrics {
                            table: source.table.name.clone(),
                            connector: source.connector.name().to_string(),
                            role: "source",
                            counters: errors.clone(),
                            retries: Arc::default(),
                        });
                        self.reads.push(SourceRead { source: source.clone(), errors, readers: vec![reader] });
                    }
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
                            Ok(match &edge {
                                _ if parallelism == 1 => Output::forward(targets.remove(0)),
                                Edge::Hash(keys) => {
                                    let output = Output::hash(HashRouter::new(keys.clone(), parallelism), targets);
                                    match stage.pre_aggregation()? {
                                        Some(local) => output.pre_aggregating(local, parallelism),
                                        None => output,
                                    }
                                }
                                Edge::Broadcast => Output::broadcast(targets),
                                Edge::Rebalance => Output::rebalance(targets),
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    self.spawn(&input.node, upstream)?;
                }
                let node_index = self.operators.len();
                let counters = Arc::new(OperatorMetrics::new(stage.name().to_string()));
                self.operators.push(counters.clone());
                for (instance, (channels, mut output)) in channels.into_iter().zip(outputs).enumerate() {
                    output.count_backpressure(counters.clone());
                    let shared = self.shared.clone();
                    let restored = self.restored(node_index, instance)?;
                    let checkpointer = shared
                        .checkpoints
                        .clone()
                        .map(|checkpoints| NodeCheckpointer { checkpoints, node: node_index });
                    let (stage, counters) = (stage.clone(), counters.clone());
                    let routes_late = match &stage {
                        Stage::Aggregate(a) => a.late.is_some(),
                        Stage::Join(j) => j.late.iter().any(Option::is_some),
                        Stage::Over(o) => o.late.is_some(),
                        Stage::TopN(_) => false,
                    };
                    let late = if routes_late { self.late_sender() } else { None };
                    self.tasks.push(tokio::spawn(async move {
                        let ctx = TaskContext {
                            instance,
                            metrics: &shared.metrics,
                            checkpointer: checkpointer.as_ref().map(|c| c as &dyn crate::operator::Checkpointer),
                            operator: Some(&counters),
                            late_rows: late.as_ref(),
                        };
                        let result = match stage.instantiate() {
                            Ok(mut operator) => match restored.map(|state| operator.restore(state)).transpose() {
                                Ok(_) => run_operator(operator.as_mut(), channels, &mut output, &ctx).await,
                                Err(e) => Err(e),
                            },
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
        Ok(())
    }
}

impl Spawner<'_> {
    /// The sender into the late-rows sink for one more instance that routes late rows: with
    /// checkpoints a channel of its own, which the late-rows aligner reads.
    fn late_sender(&mut self) -> Option<mpsc::Sender<Message>> {
        let late = self.late.as_ref()?;
        match &mut self.late_aligned {
            Some(inputs) => {
                let (tx, rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
                inputs.push((0, rx));
                Some(tx)
            }
            None => Some(late.clone()),
        }
    }

    /// Spawns the tasks of every source read: instance *i* of a read feeds instance *i* of each
    /// node reading its table.
    fn spawn_reads(&mut self) -> Result<()> {
        for read in std::mem::take(&mut self.reads) {
            let SourceRead { source, errors, readers } = read;
            let instances = readers[0].outputs.len();
            let mut per_instance: Vec<Vec<SourceOutput>> = (0..instances).map(|_| Vec::new()).collect();
            let mut restored: Vec<Vec<Option<StateSnapshot>>> = (0..instances).map(|_| Vec::new()).collect();
            for reader in readers {
                let NodeReader { chain, outputs, index, node, counters, restored: states } = reader;
                for (instance, (mut output, state)) in outputs.into_iter().zip(states).enumerate() {
                    output.count_backpressure(counters.clone());
                    per_instance[instance].push(SourceOutput {
                        chain: chain.clone(),
                        output,
                        watermark_slot: index + instance,
                        node,
                        counters: counters.clone(),
                        open: true,
                    });
                    restored[instance].push(state);
                }
            }
            for (instance, (mut outputs, states)) in per_instance.into_iter().zip(restored).enumerate() {
                // Nodes sharing a read share its position: a checkpoint holds the same state for each.
                if states.iter().any(|state| state != &states[0]) {
                    return Err(StreamError::Config(format!(
                        "the checkpoint holds different positions for the nodes reading table '{}', which this \
                         version reads once for all of them; start with --from-scratch, or SET \
                         'table.optimizer.reuse-source-enabled' = 'false' to resume",
                        source.table.name
                    )));
                }
                let restored = states.into_iter().next().flatten();
                let (shared, source, errors, batch_size, parallelism) =
                    (self.shared.clone(), source.clone(), errors.clone(), self.batch_size, self.parallelism);
                self.tasks.push(tokio::task::spawn_blocking(move || {
                    // The error is recorded before the channels close, so downstream tasks
                    // that see them close know the pipeline failed.
                    let ctx = SourceContext {
                        batch_size,
                        metrics: errors,
                        instance,
                        instances,
                        parallelism,
                        checkpoints: shared.checkpoints.is_some(),
                    };
                    let run = || run_source(&source, ctx, &mut outputs, SourcePlace { instance, restored }, &shared);
                    if let Err(e) = unwound("the source", run) {
                        shared.fail(e);
                    }
                    drop(outputs);
                }));
            }
        }
        Ok(())
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

/// Where a source task starts: its instance and the state it resumes from.
struct SourcePlace {
    instance: usize,
    restored: Option<StateSnapshot>,
}

/// A node a source task feeds: its fused chain, its output, its slot among the pipeline's
/// source watermarks, its node number (for checkpoints) and its counters.
struct SourceOutput {
    chain: StatelessChain,
    output: Output,
    watermark_slot: usize,
    node: usize,
    counters: Arc<OperatorMetrics>,
    /// Whether downstream still takes its messages.
    open: bool,
}

impl SourceOutput {
    /// Sends `message` to every instance downstream; false once downstream is gone.
    fn send_all(&mut self, message: &Message) -> bool {
        self.open = self.open && self.output.send_all_blocking(message.clone());
        self.open
    }
}

/// Table of a source's snapshot holding its partitions' watermarks.
const WATERMARKS_TABLE: &str = "watermarks";

/// A source's state at a barrier: its position and its partitions' watermarks.
fn source_snapshot(
    source: &mut dyn crate::connector::Source,
    watermarks: &PartitionWatermarks,
) -> Result<StateSnapshot> {
    let mut state = source.snapshot()?;
    let ids: Vec<String> = (0..source.partitions()).map(|p| source.partition_id(p)).collect();
    state.tables.push((WATERMARKS_TABLE.to_string(), vec![watermarks.snapshot(&ids)?]));
    Ok(state)
}

/// Source task: decode, assign watermarks (one per partition), run each node's fused chain,
/// send on. Blocking thread.
fn run_source(
    bound: &BoundTable,
    ctx: SourceContext,
    outputs: &mut [SourceOutput],
    place: SourcePlace,
    shared: &Shared,
) -> Result<()> {
    let table = &bound.table;
    // The connector reads the table's physical columns; computed ones are added here.
    let mut source = bound.connector.open_source(&table.physical(), &ctx)?;
    let event_time = table.watermark.as_ref().map(|w| (w.column, w.delay_ms));
    let mut watermarks =
        PartitionWatermarks::new(&table.schema, event_time, source.partitions(), source.idle_timeout());
    if let Some(mut state) = place.restored {
        let at = state.tables.iter().position(|(t, _)| t == WATERMARKS_TABLE);
        let saved = at.map(|i| state.tables.remove(i).1).unwrap_or_default();
        let ids: Vec<String> = (0..source.partitions()).map(|p| source.partition_id(p)).collect();
        watermarks.restore(&saved, &ids)?;
        source.restore(state)?;
    }
    let checkpoints = shared.checkpoints.as_deref();
    // The last checkpoint this source took part in.
    let mut barrier: Epoch = 0;
    // Whether downstream was told this reader is idle (and not told otherwise since).
    let mut idle = false;
    // Sends `message` to every node; false once none takes messages any more.
    let send_all = |outputs: &mut [SourceOutput], message: Message| {
        let mut open = false;
        for output in outputs.iter_mut() {
            open |= output.send_all(&message);
        }
        open
    };

    loop {
        if shared.is_cancelled() {
            return Ok(());
        }
        if let Some(checkpoints) = checkpoints {
            let requested = checkpoints.requested();
            if requested > barrier {
                barrier = requested;
                let state = source_snapshot(source.as_mut(), &watermarks)?;
                for output in outputs.iter() {
                    checkpoints.store(output.node, place.instance, requested, &state)?;
                }
                if !send_all(outputs, Message::Barrier(requested)) {
                    return Ok(());
                }
            }
        }
        match source.pull()? {
            Pulled::End => break,
            Pulled::Nothing => {}
            Pulled::Rows { partition, batch } => {
                PipelineMetrics::add(&shared.metrics.rows_in, batch.num_rows());
                let batch = watermarks.assign(partition, table.compute(batch)?)?;
                idle = false;
                // Time spent waiting for downstream (backpressure) does not count as idle.
                let blocked = std::time::Instant::now();
                let mut open = false;
                for output in outputs.iter_mut().filter(|output| output.open) {
                    PipelineMetrics::add(&output.counters.rows_in, batch.num_rows());
                    if let Some(rows) = output.chain.apply(batch.clone())? {
                        PipelineMetrics::add(&output.counters.rows_out, rows.num_rows());
                        output.open = output.output.send_batch_blocking(rows)?;
                    }
                    open |= output.open;
                }
                if !open {
                    return Ok(());
                }
                watermarks.pause(blocked.elapsed());
            }
        }
        let now = std::time::Instant::now();
        if let Some(watermark) = watermarks.advanced(now) {
            idle = false;
            for output in outputs.iter() {
                shared.source_watermark(output.watermark_slot, watermark);
            }
            if !send_all(outputs, Message::Watermark(watermark)) {
                return Ok(());
            }
        } else if !idle && watermarks.all_idle(now) {
            // Every partition of this reader is idle: downstream stops waiting for it.
            idle = true;
            if !send_all(outputs, Message::Idle) {
                return Ok(());
            }
        }
    }
    for output in outputs.iter() {
        shared.source_watermark(output.watermark_slot, WATERMARK_MAX);
    }
    if let Some(checkpoints) = checkpoints {
        // At its end, the source stands in for every later checkpoint: a restore reads no more.
        let state = source_snapshot(source.as_mut(), &watermarks)?;
        for output in outputs.iter() {
            checkpoints.finished(output.node, place.instance, state.clone())?;
        }
    }
    send_all(outputs, Message::End);
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

/// Aligns checkpoint barriers over the upstream instances of the sink, passing everything on
/// into the sink's one channel: batches as they come, a barrier once every instance sent it.
struct Aligner;

impl Operator for Aligner {
    fn name(&self) -> &str {
        "sink aligner"
    }

    fn on_batch(&mut self, _input: usize, batch: RecordBatch, out: &mut Emitter) -> Result<()> {
        out.emit(batch);
        Ok(())
    }

    fn on_watermark(&mut self, _watermark: i64, _out: &mut Emitter) -> Result<()> {
        Ok(())
    }

    /// Holds nothing: the sink after it snapshots.
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StateSnapshot> {
        Ok(StateSnapshot::default())
    }
}

/// Spawns an [`Aligner`] over `inputs` into `into` (a sink's channel); without inputs (no
/// stage routes late rows) it only sends the end.
fn spawn_aligner(
    shared: &Arc<Shared>,
    inputs: Vec<(usize, mpsc::Receiver<Message>)>,
    into: mpsc::Sender<Message>,
) -> JoinHandle<()> {
    let (shared, mut output) = (shared.clone(), Output::forward(into));
    tokio::spawn(async move {
        if inputs.is_empty() {
            output.send_all(Message::End).await;
            return;
        }
        let ctx = TaskContext {
            instance: 0,
            metrics: &shared.metrics,
            checkpointer: Some(&PassOn),
            operator: None,
            late_rows: None,
        };
        if let Err(e) = run_operator(&mut Aligner, inputs, &mut output, &ctx).await {
            shared.fail(e);
        }
    })
}

/// The [`Aligner`]'s checkpointer: it has no state, so it stores nothing.
struct PassOn;

impl crate::operator::Checkpointer for PassOn {
    fn store(&self, _operator: &str, _instance: usize, _epoch: Epoch, _state: StateSnapshot) -> Result<()> {
        Ok(())
    }

    fn finished(&self, _instance: usize, _state: StateSnapshot) -> Result<()> {
        Ok(())
    }
}

/// What the sink task needs besides its channel: how many upstream ends to wait for, its node
/// (for checkpoints) and the state it resumes from.
struct SinkPlace {
    upstream: usize,
    node: usize,
    restored: Option<StateSnapshot>,
    /// Where the sink's count of retried writes goes once it is open.
    retries: Arc<OnceLock<Arc<std::sync::atomic::AtomicU64>>>,
}

/// Sink task: strips hidden columns, writes; at an (aligned) barrier, flushes and stores the
/// sink's snapshot; finishes after every upstream ended. Blocking thread.
fn run_sink(spec: &PipelineSpec, mut input: mpsc::Receiver<Message>, place: SinkPlace, shared: &Shared) -> Result<()> {
    let mut sink: Box<dyn Sink> = spec.sink.connector.open_sink(&spec.sink.table)?;
    if let Some(retries) = sink.retries() {
        let _ = place.retries.set(retries);
    }
    let schema = spec.sink.table.schema.clone();
    let layout = SinkLayout::of(spec);
    let mut ends = 0;
    let mut ended = false;
    let mut remaining = spec.limit;
    let result = (|| {
        if let Some(state) = place.restored {
            sink.restore(state)?;
        }
        while remaining != Some(0)
            && let Some(message) = input.blocking_recv()
        {
            match message {
                Message::Batch(batch) => {
                    let mut visible = layout.apply(&schema, batch)?;
                    if let Some(left) = remaining.as_mut() {
                        let rows = (*left).min(visible.num_rows() as u64);
                        visible = visible.slice(0, rows as usize);
                        *left -= rows;
                    }
                    sink.write(&visible)?;
                    PipelineMetrics::add(&shared.metrics.rows_out, visible.num_rows());
                }
                Message::Watermark(_) | Message::Idle => {}
                Message::Barrier(epoch) => sink_barrier(sink.as_mut(), "sink", place.node, epoch, shared)?,
                Message::End => {
                    ends += 1;
                    if ends == place.upstream {
                        ended = true;
                        // Everything is written: the sink stands in for checkpoints still asked for.
                        if let Some(checkpoints) = &shared.checkpoints {
                            checkpoints.finished(place.node, 0, sink.snapshot()?)?;
                        }
                        break;
                    }
                }
            }
        }
        if remaining == Some(0) {
            // LIMIT: every row asked for is written; the rest of the pipeline stops.
            shared.limit_reached.store(true, Ordering::SeqCst);
            shared.cancelled.store(true, Ordering::SeqCst);
        }
        Ok(())
    })();
    // A pipeline whose input ended (or that reached its LIMIT) finishes; a cancelled one
    // flushes what it wrote (a transactional sink only what its checkpoints cover); a failed one
    // aborts (a sink that replaces earlier output keeps it). Upstream tasks record their error
    // before their channels close.
    let closed = if result.is_err() || shared.has_failed() {
        sink.abort()
    } else if ended || remaining == Some(0) {
        sink.finish()
    } else {
        sink.cancel()
    };
    result.and(closed)
}

/// A sink (`what`, checkpoint node `node`) at an aligned barrier: stores its snapshot, then lets
/// it commit once checkpoint `epoch` is complete. Every other participant stored before passing
/// the barrier on, so this store completes the checkpoint (unless it failed), or the other
/// sink's does, which is not far behind ([`Checkpoints::wait_complete`]).
fn sink_barrier(sink: &mut dyn Sink, what: &str, node: usize, epoch: Epoch, shared: &Shared) -> Result<()> {
    let Some(checkpoints) = &shared.checkpoints else {
        return Err(StreamError::Internal(format!(
            "checkpoint barrier {epoch} reached the {what} of a pipeline without checkpoints"
        )));
    };
    checkpoints.store(node, 0, epoch, &sink.snapshot()?)?;
    if checkpoints.wait_complete(epoch, || shared.has_failed() || shared.is_cancelled()) {
        sink.checkpoint_complete(epoch)?;
    }
    Ok(())
}

/// The late-rows sink's node in checkpoints and the state it resumes from.
struct LatePlace {
    node: usize,
    restored: Option<StateSnapshot>,
}

/// The late-rows sink task: writes what stages route to it until every one of them has ended.
/// With checkpoints it takes part in them as the sink does (its barriers aligned before it),
/// and ends at the aligner's end. Blocking thread.
fn run_late_sink(
    bound: &BoundTable,
    mut input: mpsc::Receiver<Message>,
    place: LatePlace,
    shared: &Shared,
) -> Result<()> {
    let mut sink: Box<dyn Sink> = bound.connector.open_sink(&bound.table)?;
    let mut ended = false;
    let result = (|| {
        if let Some(state) = place.restored {
            sink.restore(state)?;
        }
        while let Some(message) = input.blocking_recv() {
            match (message, &shared.checkpoints) {
                (Message::Batch(batch), _) => sink.write(&batch)?,
                (Message::Barrier(epoch), _) => {
                    sink_barrier(sink.as_mut(), "late-rows sink", place.node, epoch, shared)?
                }
                (Message::End, Some(checkpoints)) => {
                    ended = true;
                    checkpoints.finished(place.node, 0, sink.snapshot()?)?;
                    break;
                }
                _ => {}
            }
        }
        Ok(())
    })();
    let closed = if result.is_err() || shared.has_failed() {
        sink.abort()
    } else if ended || shared.checkpoints.is_none() {
        sink.finish()
    } else {
        // Stopped before its input ended: a restart from the last checkpoint writes the rest.
        sink.cancel()
    };
    result.and(closed)
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
