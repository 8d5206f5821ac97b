//! A lowered streaming query, ready to run: what the SQL layer hands the runtime.
//!
//! A pipeline is a dataflow graph shaped as a tree: rows flow from its leaves (sources) through
//! stages (stateful operators, each run as `parallelism` instances) into one sink. Every node
//! has exactly one consumer; a node may have several inputs (a join has two, `UNION ALL` feeds
//! several nodes into the same input).
//!
//! ```text
//!  source ─(chain)─┐ hash on keys
//!                  ├──────────────▶ stage × parallelism ─(chain)─┐ hash / to-one
//!  source ─(chain)─┘  (input 0, 1)                               ├────────────▶ … ─▶ sink
//!                                           source ─(chain)──────┘
//! ```
//!
//! Edges ([`Edge`]): a source or stage feeding a stage routes each row by hash of that input's
//! keys over [key groups](crate::operators::exchange) (without keys, every row goes to instance
//! 0); a lookup join's table is broadcast to every instance and its stream rows are spread round
//! robin; with one instance every edge is forward; everything feeding the sink goes to its one
//! task. Watermarks, barriers and `End` go to every
//! instance downstream, and a stage takes the minimum over every upstream instance.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray, UInt32Array, new_null_array};
use arrow::compute::{CastOptions, cast_with_options, take};
use datafusion::physical_expr::PhysicalExpr;

use crate::checkpoint::{CheckpointConfig, Delivery, NodeEntry};
use crate::connector::{Connector, Role, TableDef};
use crate::error::{Result, StreamError};
use crate::operator::Operator;
use crate::operators::aggregate::{AggregateSpec, LocalWindowAggregate, WindowKind, aggregate_operator};
use crate::operators::join::{JoinOperator, JoinSpec};
use crate::operators::over::{OverOperator, OverStage};
use crate::operators::semi_join::SemiJoinOperator;
use crate::operators::stateless::StatelessChain;
use crate::operators::top_n::{TopNOperator, TopNStage};
use crate::operators::window_join::{JoinKind, WindowJoinOperator};

/// A table bound to the connector that serves it.
#[derive(Clone)]
pub struct BoundTable {
    pub table: TableDef,
    pub connector: Arc<dyn Connector>,
}

impl BoundTable {
    /// Whether `other` is this table, declared the same way: nodes reading it can share one
    /// read of it (see [`PipelineSpec::reuse_sources`]).
    pub fn same_table(&self, other: &BoundTable) -> bool {
        let (a, b) = (&self.table, &other.table);
        a.name == b.name
            && self.connector.name() == other.connector.name()
            && a.options == b.options
            && a.schema == b.schema
            && a.watermark == b.watermark
            && a.primary_key == b.primary_key
            && a.computed.iter().map(|c| (c.index, &c.text)).eq(b.computed.iter().map(|c| (c.index, &c.text)))
    }
}

impl std::fmt::Debug for BoundTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.table.name, self.connector.name())
    }
}

/// An aggregation stage.
#[derive(Debug, Clone)]
pub struct AggregateStage {
    pub spec: Arc<AggregateSpec>,
    /// HAVING, the SELECT list and the mapping onto the sink, fused after the aggregation.
    pub post: StatelessChain,
    /// Updating aggregates only: changed keys are emitted at most once per interval (zero:
    /// after every batch).
    pub update_interval: Duration,
    /// Updating aggregates only: the input is itself a changelog (the result of an updating
    /// aggregate), so `-U`/`-D` rows are retracted from the accumulators.
    pub changelog_input: bool,
    /// Windows only: where rows dropped as late go besides being counted.
    pub late: Option<Arc<LateOutput>>,
    /// Windows only: the rows come from one node, in its order, so their per-row watermarks rise
    /// along the input (false for a `UNION ALL`). See
    /// [`WindowAggregator::process_batch`](crate::operators::aggregate::WindowAggregator::process_batch).
    pub row_watermarks: bool,
    /// Whether batches are pre-aggregated before the exchange (`'table.optimizer.agg-phase-strategy'`).
    pub phases: AggPhases,
}

/// `'table.optimizer.agg-phase-strategy'`: whether a window aggregation with several instances
/// pre-aggregates each batch before the exchange (see
/// [`LocalWindowAggregate`](crate::operators::aggregate::LocalWindowAggregate)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AggPhases {
    /// `AUTO`: pre-aggregate until the first rows show that it does not pay.
    #[default]
    Auto,
    /// `ONE_PHASE`: every row crosses the exchange.
    One,
    /// `TWO_PHASE`: always pre-aggregate.
    Two,
}

/// One column of the late-rows sink (`SET 'late-rows.sink'`).
#[derive(Debug, Clone)]
pub enum LateColumn {
    /// The late row's value of this visible input column of the operator that dropped it.
    Input(usize),
    /// NULL: a column of the other input of a join, which this input's rows do not have.
    Null,
    /// Which operator dropped it (`window aggregate TUMBLE 10 s`).
    Operator,
    /// Which pipeline (`INSERT INTO counts`).
    Pipeline,
}

/// How an operator writes the rows it drops as late to the late-rows sink.
#[derive(Debug, Clone)]
pub struct LateOutput {
    /// Per column of the late-rows sink, what goes there.
    pub columns: Vec<LateColumn>,
    /// The late-rows sink's schema.
    pub schema: arrow::datatypes::SchemaRef,
    pub operator: String,
    pub pipeline: String,
}

impl LateOutput {
    /// The rows of `batch` (an input batch of the operator) at `rows` as rows of the late-rows
    /// sink.
    pub fn rows_of(&self, batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
        let n = rows.len();
        let rows = UInt32Array::from(rows.to_vec());
        let options = CastOptions { safe: false, ..CastOptions::default() };
        let columns = self
            .columns
            .iter()
            .zip(self.schema.fields())
            .map(|(column, field)| -> Result<ArrayRef> {
                let values: ArrayRef = match column {
                    LateColumn::Input(i) => take(batch.column(*i).as_ref(), &rows, None)?,
                    LateColumn::Null => new_null_array(field.data_type(), n),
                    LateColumn::Operator => Arc::new(StringArray::from(vec![self.operator.as_str(); n])),
                    LateColumn::Pipeline => Arc::new(StringArray::from(vec![self.pipeline.as_str(); n])),
                };
                Ok(cast_with_options(&values, field.data_type(), &options)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}

/// A join stage: input 0 is the left side, input 1 the right.
#[derive(Debug, Clone)]
pub struct JoinStage {
    pub spec: Arc<JoinSpec>,
    /// The residual condition, the SELECT list, ..., fused after the join.
    pub post: StatelessChain,
    /// `'table.exec.state.ttl'`: kept rows are dropped this long after they arrived.
    pub state_ttl: Option<Duration>,
    /// Interval and window joins: where each input's rows dropped as late go besides being
    /// counted.
    pub late: [Option<Arc<LateOutput>>; 2],
}

/// How rows reach the instances of a stage (with one instance, every edge is forward).
#[derive(Debug, Clone)]
pub enum Edge {
    /// Each row to the instance owning its keys' key group (no keys: instance 0).
    Hash(Vec<Arc<dyn PhysicalExpr>>),
    /// Every row to every instance.
    Broadcast,
    /// Each batch to the next instance in turn.
    Rebalance,
}

/// A stateful operator of the graph.
#[derive(Debug, Clone)]
pub enum Stage {
    Aggregate(AggregateStage),
    Join(JoinStage),
    Over(OverStage),
    TopN(TopNStage),
}

impl Stage {
    /// A new instance of the operator.
    pub fn instantiate(&self) -> Result<Box<dyn Operator>> {
        match self {
            Stage::Aggregate(stage) => aggregate_operator(stage),
            Stage::Join(stage) if stage.spec.window.is_some() => Ok(Box::new(
                WindowJoinOperator::new(stage.spec.clone(), stage.post.clone())?.with_late_output(stage.late.clone()),
            )),
            Stage::Join(stage) if stage.spec.kind == JoinKind::LeftSemi => {
                Ok(Box::new(SemiJoinOperator::new(stage.spec.clone(), stage.post.clone())?))
            }
            Stage::Join(stage) => Ok(Box::new(
                JoinOperator::new(stage.spec.clone(), stage.post.clone())?
                    .with_state_ttl(stage.state_ttl)
                    .with_late_output(stage.late.clone()),
            )),
            Stage::Over(stage) => Ok(Box::new(OverOperator::new(stage))),
            Stage::TopN(stage) => Ok(Box::new(TopNOperator::new(stage)?)),
        }
    }

    /// Whether the operator takes part in checkpoints (`snapshot`/`restore`); `Err` says which
    /// cannot yet.
    pub fn checkpointable(&self) -> Result<()> {
        match self {
            Stage::Aggregate(stage) if !stage.changelog_input => Ok(()),
            Stage::Aggregate(stage) if stage.changelog_input => {
                crate::operators::aggregate::retract::check_checkpointable(&stage.spec).map_err(StreamError::Config)
            }
            Stage::TopN(_) | Stage::Over(_) => Ok(()),
            Stage::Join(stage) if stage.spec.kind != JoinKind::LeftSemi => stage.spec.checkpointable(),
            // A semi join (of append-only inputs, without a TTL: the planner refuses the others):
            // the right side's keys and the left rows waiting for them.
            Stage::Join(_) => Ok(()),
            _ => Err(StreamError::Config(format!("the {} operator cannot be checkpointed yet", self.name()))),
        }
    }

    /// What it is, for reports: `window aggregate`, `updating aggregate`, `join`.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Aggregate(stage) if stage.spec.window.is_some_and(|w| w.kind == WindowKind::Session) => {
                "session window aggregate"
            }
            Stage::Aggregate(stage) if stage.spec.window.is_some() => "window aggregate",
            Stage::Aggregate(_) => "updating aggregate",
            Stage::Join(stage) if stage.spec.window.is_some() => "window join",
            Stage::Join(stage) if stage.spec.interval.is_some() => "interval join",
            Stage::Join(stage) if stage.spec.lookup.is_some() => "lookup join",
            Stage::Join(stage) if stage.spec.kind == JoinKind::LeftSemi => "semi join",
            Stage::Join(_) => "join",
            Stage::Over(_) => "over aggregate",
            Stage::TopN(_) => "top-n",
        }
    }

    /// How rows arriving on `input` reach the stage's instances.
    pub fn input_edge(&self, input: usize) -> Edge {
        match self {
            // A lookup join: every instance holds the whole table; stream rows may go anywhere.
            Stage::Join(stage) => match stage.spec.lookup {
                Some(table) if table == input => Edge::Broadcast,
                Some(_) => Edge::Rebalance,
                None => Edge::Hash(self.input_keys(input)),
            },
            Stage::Aggregate(_) | Stage::Over(_) | Stage::TopN(_) => Edge::Hash(self.input_keys(input)),
        }
    }

    /// The first phase of a two-phase aggregation, run before the exchange by each task that
    /// feeds the stage: for TUMBLE, HOP and CUMULATE windows over event time whose late rows
    /// are only counted (a late-rows sink needs the rows themselves), unless `ONE_PHASE`.
    pub fn pre_aggregation(&self) -> Result<Option<LocalWindowAggregate>> {
        let Stage::Aggregate(stage) = self else { return Ok(None) };
        let eligible = stage.spec.window.is_some_and(|w| w.kind != WindowKind::Session && !w.processing_time)
            && stage.late.is_none()
            && !stage.changelog_input;
        Ok(match stage.phases {
            _ if !eligible => None,
            AggPhases::One => None,
            AggPhases::Two => Some(LocalWindowAggregate::new(stage.spec.clone())?),
            AggPhases::Auto => Some(LocalWindowAggregate::new(stage.spec.clone())?.adaptive()),
        })
    }

    /// The keys rows arriving on `input` are routed by.
    pub fn input_keys(&self, input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        match self {
            Stage::Aggregate(stage) => stage.spec.key_exprs.clone(),
            Stage::Over(stage) => stage.spec.partition_by.clone(),
            Stage::TopN(stage) => stage.spec.partition_by.clone(),
            Stage::Join(stage) => match input {
                0 => stage.spec.left.keys.clone(),
                _ => stage.spec.right.keys.clone(),
            },
        }
    }

    /// The stateless operators fused after it.
    pub fn post(&self) -> &StatelessChain {
        match self {
            Stage::Aggregate(stage) => &stage.post,
            Stage::Join(stage) => &stage.post,
            Stage::Over(stage) => &stage.post,
            Stage::TopN(stage) => &stage.post,
        }
    }
}

/// One input of a stage: the node feeding it and which of the stage's inputs it is.
#[derive(Debug, Clone)]
pub struct StageInput {
    pub node: Node,
    pub input: usize,
}

/// A node of the graph with everything upstream of it.
#[derive(Debug, Clone)]
pub enum Node {
    /// A source read on `instances` tasks (one unless its connector is
    /// [`partitioned`](crate::connector::Connector::partitioned)), with the stateless operators
    /// fused into it; its batches carry the hidden event-time columns.
    Source { source: BoundTable, chain: StatelessChain, instances: usize },
    /// A stage run as `parallelism` instances.
    Stage { stage: Stage, inputs: Vec<StageInput>, parallelism: usize },
}

impl Node {
    /// How many tasks run this node.
    pub fn instances(&self) -> usize {
        match self {
            Node::Source { instances, .. } => (*instances).max(1),
            Node::Stage { parallelism, .. } => (*parallelism).max(1),
        }
    }

    /// How many source tasks run under and at this node.
    pub fn source_instances(&self) -> usize {
        match self {
            Node::Source { .. } => self.instances(),
            Node::Stage { inputs, .. } => inputs.iter().map(|i| i.node.source_instances()).sum(),
        }
    }

    /// Whether this node's rows arrive in one order in which their `_wm` only rises: one source
    /// task reading one partition, or a stage (whose results carry no watermark of their own).
    pub fn ordered(&self) -> bool {
        match self {
            Node::Source { source, instances, .. } => *instances <= 1 && !source.connector.partitioned(&source.table),
            Node::Stage { .. } => true,
        }
    }

    /// Every source under this node, left to right.
    pub fn sources(&self) -> Vec<&BoundTable> {
        match self {
            Node::Source { source, .. } => vec![source],
            Node::Stage { inputs, .. } => inputs.iter().flat_map(|i| i.node.sources()).collect(),
        }
    }

    /// Every stage under and at this node, inputs first.
    pub fn stages(&self) -> Vec<&Stage> {
        match self {
            Node::Source { .. } => Vec::new(),
            Node::Stage { stage, inputs, .. } => {
                let mut stages: Vec<&Stage> = inputs.iter().flat_map(|i| i.node.stages()).collect();
                stages.push(stage);
                stages
            }
        }
    }
}

/// One running query: a tree of nodes into one sink.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// What the user wrote, shortened, for reports (`INSERT INTO flow_counts`).
    pub name: String,
    /// The nodes feeding the sink (several for a `UNION ALL`).
    pub inputs: Vec<Node>,
    /// The sink table; batches reach it with exactly its schema.
    pub sink: BoundTable,
    /// Whether results are a changelog (`_op` column) rather than append-only rows.
    pub updating: bool,
    /// Where rows dropped as late are written, with the stages' [`LateOutput`]s.
    pub late_sink: Option<BoundTable>,
    /// Number of instances of each stage.
    pub parallelism: usize,
    /// Largest batch a source produces.
    pub batch_size: usize,
    /// Checkpoints, when `'execution.checkpointing.interval'` is set.
    pub checkpoint: Option<CheckpointConfig>,
    /// `LIMIT n`: the pipeline ends once its sink has written `n` rows.
    pub limit: Option<u64>,
    /// Whether source nodes reading the same table share one read of it, decoded once
    /// (`'table.optimizer.reuse-source-enabled'`, on by default as in Flink).
    pub reuse_sources: bool,
}

impl PipelineSpec {
    /// A pipeline `source → pre → [exchange → aggregate → post] → sink`.
    pub fn linear(
        name: String,
        source: BoundTable,
        pre: StatelessChain,
        aggregate: Option<AggregateStage>,
        sink: BoundTable,
        parallelism: usize,
        batch_size: usize,
    ) -> Self {
        let updating = aggregate.as_ref().is_some_and(|a| a.spec.window.is_none());
        let mut node = Node::Source { source, chain: pre, instances: 1 };
        if let Some(stage) = aggregate {
            node = Node::Stage {
                stage: Stage::Aggregate(stage),
                inputs: vec![StageInput { node, input: 0 }],
                parallelism,
            };
        }
        Self {
            name,
            inputs: vec![node],
            sink,
            updating,
            late_sink: None,
            parallelism,
            batch_size,
            checkpoint: None,
            limit: None,
            reuse_sources: true,
        }
    }

    /// The nodes a checkpoint of this pipeline holds, numbered as `EXPLAIN` numbers them
    /// (inputs before the stages they feed), then the sink and the late-rows sink, if any;
    /// `Err` names the first that cannot take part in checkpoints.
    pub fn checkpoint_nodes(&self) -> Result<Vec<NodeEntry>> {
        fn walk(node: &Node, out: &mut Vec<NodeEntry>) -> Result<()> {
            match node {
                Node::Source { source, .. } => {
                    let delivery = source.connector.delivery(&source.table, Role::Source);
                    if delivery != Delivery::ExactlyOnce {
                        return Err(StreamError::Config(format!(
                            "checkpoints: source table '{}' (connector '{}') cannot be checkpointed yet",
                            source.table.name,
                            source.connector.name()
                        )));
                    }
                    out.push(NodeEntry {
                        name: format!("source {}", source.table.name),
                        instances: node.instances(),
                        // Partitions are dealt to the instances again; positions are per partition.
                        rescalable: source.connector.partitioned(&source.table),
                    });
                }
                Node::Stage { stage, inputs, .. } => {
                    for input in inputs {
                        walk(&input.node, out)?;
                    }
                    stage.checkpointable().map_err(|e| StreamError::Config(format!("checkpoints: {e}")))?;
                    // Keyed state: every instance takes its key groups from all former instances.
                    // A lookup join's instances each take the whole table of one former instance,
                    // and deal its stream rows among them. A semi join whose right keys the
                    // operator itself cast refuses when it restores.
                    out.push(NodeEntry {
                        name: stage.name().to_string(),
                        instances: node.instances(),
                        rescalable: true,
                    });
                }
            }
            Ok(())
        }
        let mut nodes = Vec::new();
        for node in &self.inputs {
            walk(node, &mut nodes)?;
        }
        // The late-rows sink takes part as the sink does, after it.
        let sinks = std::iter::once(("sink", &self.sink)).chain(self.late_sink.iter().map(|l| ("late-rows sink", l)));
        for (what, bound) in sinks {
            if bound.connector.delivery(&bound.table, Role::Sink) == Delivery::Unsupported {
                return Err(StreamError::Config(format!(
                    "checkpoints: {what} table '{}' (connector '{}') cannot take part in checkpoints yet",
                    bound.table.name,
                    bound.connector.name()
                )));
            }
            nodes.push(NodeEntry { name: format!("{what} {}", bound.table.name), instances: 1, rescalable: false });
        }
        Ok(nodes)
    }

    /// Whether results are a changelog (an aggregation without a window) rather than
    /// append-only rows.
    pub fn is_updating(&self) -> bool {
        self.updating
    }

    /// Every source of the pipeline.
    pub fn sources(&self) -> Vec<&BoundTable> {
        self.inputs.iter().flat_map(|n| n.sources()).collect()
    }

    /// Every stage, inputs before the stages they feed.
    pub fn stages(&self) -> Vec<&Stage> {
        self.inputs.iter().flat_map(|n| n.stages()).collect()
    }

    /// The pipeline's graph: its sources and stages numbered as `EXPLAIN` and the counters
    /// number them (inputs first), then the sink.
    pub fn graph(&self) -> Vec<GraphNode> {
        fn walk(node: &Node, out: &mut Vec<GraphNode>) -> usize {
            match node {
                Node::Source { source, .. } => out.push(GraphNode {
                    name: format!("source {}", source.table.name),
                    instances: node.instances(),
                    inputs: Vec::new(),
                }),
                Node::Stage { stage, inputs, .. } => {
                    let fed = inputs
                        .iter()
                        .map(|input| {
                            let from = walk(&input.node, out);
                            let edge = match stage.input_edge(input.input) {
                                _ if node.instances() == 1 => "forward",
                                Edge::Hash(_) => "hash",
                                Edge::Broadcast => "broadcast",
                                Edge::Rebalance => "rebalance",
                            };
                            (from, edge)
                        })
                        .collect();
                    out.push(GraphNode { name: stage.name().to_string(), instances: node.instances(), inputs: fed });
                }
            }
            out.len() - 1
        }
        let mut graph = Vec::new();
        let fed = self.inputs.iter().map(|node| (walk(node, &mut graph), "forward")).collect();
        graph.push(GraphNode { name: format!("sink {}", self.sink.table.name), instances: 1, inputs: fed });
        graph
    }
}

/// One node of a pipeline's graph ([`PipelineSpec::graph`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    /// What it is, as its counters name it: `source flows`, `window aggregate`, `sink counts`.
    pub name: String,
    /// How many tasks run it.
    pub instances: usize,
    /// The nodes feeding it (their indices in the graph), each with how rows travel:
    /// `forward`, `hash`, `broadcast` or `rebalance`.
    pub inputs: Vec<(usize, &'static str)>,
}
