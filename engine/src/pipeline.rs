//! A lowered streaming query, ready to run: what the SQL layer hands the runtime.

use std::sync::Arc;
use std::time::Duration;

use crate::connector::{Connector, TableDef};
use crate::operators::aggregate::AggregateSpec;
use crate::operators::stateless::StatelessChain;

/// A table bound to the connector that serves it.
#[derive(Clone)]
pub struct BoundTable {
    pub table: TableDef,
    pub connector: Arc<dyn Connector>,
}

impl std::fmt::Debug for BoundTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.table.name, self.connector.name())
    }
}

/// The aggregation stage of a pipeline, run as `parallelism` instances.
#[derive(Debug, Clone)]
pub struct AggregateStage {
    pub spec: Arc<AggregateSpec>,
    /// HAVING, the SELECT list and the mapping onto the sink, fused after the aggregation.
    pub post: StatelessChain,
    /// Updating aggregates only: changed keys are emitted at most once per interval (zero:
    /// after every batch).
    pub update_interval: Duration,
}

/// One running query: `source → pre → [exchange → aggregate → post] → sink`.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// What the user wrote, shortened, for reports (`INSERT INTO flow_counts`).
    pub name: String,
    pub source: BoundTable,
    /// Stateless operators fused into the source task; their input carries the hidden
    /// event-time columns.
    pub pre: StatelessChain,
    pub aggregate: Option<AggregateStage>,
    /// The sink table; batches reach it with exactly its schema.
    pub sink: BoundTable,
    /// Number of aggregation instances.
    pub parallelism: usize,
    /// Largest batch a source produces.
    pub batch_size: usize,
}

impl PipelineSpec {
    /// Whether results are a changelog (an aggregation without a window) rather than
    /// append-only rows.
    pub fn is_updating(&self) -> bool {
        self.aggregate.as_ref().is_some_and(|a| a.spec.window.is_none())
    }
}
