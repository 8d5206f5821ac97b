//! A lowered streaming query, ready to run: what the SQL layer hands the runtime.

use std::sync::Arc;

use crate::connector::{Connector, TableDef};
use crate::operators::stateless::StatelessChain;
use crate::operators::window::WindowAggregateSpec;

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
    pub spec: Arc<WindowAggregateSpec>,
    /// HAVING, the SELECT list and the mapping onto the sink, fused after the aggregation.
    pub post: StatelessChain,
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
