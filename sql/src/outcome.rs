//! What executing one statement produced, for a caller to show or run.
//!
//! The session plans and answers what it knows (the catalog); running pipelines and showing
//! rows is the caller's business, so a pipeline comes back planned but not started, and
//! statements about running pipelines come back as [`Control`] requests.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use streamsql_engine::pipeline::PipelineSpec;

/// Runs the plan of an [`Outcome::Constant`] to its rows.
pub async fn run_constant(
    plan: LogicalPlan,
    state: SessionState,
) -> datafusion::error::Result<(SchemaRef, Vec<RecordBatch>)> {
    let frame = SessionContext::new_with_state(state).execute_logical_plan(plan).await?;
    let schema: SchemaRef = std::sync::Arc::new(frame.schema().as_arrow().clone());
    Ok((schema, frame.collect().await?))
}

/// The result of one statement.
#[derive(Debug)]
pub enum Outcome {
    /// `SET`, `CREATE TABLE`, `CREATE VIEW`: what changed, as a confirmation for the user.
    Done(String),
    /// `INSERT INTO`: a pipeline to start; it writes to its sink table.
    Insert(PipelineSpec),
    /// A bare `SELECT`: a pipeline whose sink prints rows (`'print'`); a caller that shows rows
    /// its own way replaces `spec.sink`.
    Query(PipelineSpec),
    /// A `SELECT` that reads only live tables (`CREATE MATERIALIZED VIEW`, `'connector' = 'live'`):
    /// not a stream but a batch query over their current rows, to run with DataFusion (the SQL
    /// text, as written).
    LiveQuery(String),
    /// A `SELECT` that reads no table (`SELECT 1 + 1`, `SELECT now()`): one row or a few,
    /// computed once as a batch, planned with the session's functions (Flink's and those of
    /// `CREATE FUNCTION`); run it with [`run_constant`].
    Constant(Box<LogicalPlan>, Box<SessionState>),
    /// `SHOW TABLES`, `SHOW VIEWS`, `DESCRIBE`: a small table of text.
    Table(ResultTable),
    /// `EXPLAIN`: the dataflow, as lines of text.
    Text(String),
    /// `SHOW PIPELINES`, `STOP PIPELINE`: about pipelines the caller runs.
    Control(Control),
}

/// A statement about running pipelines, which live outside the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    ShowPipelines,
    /// `STOP PIPELINE id [WITH SAVEPOINT]`.
    StopPipeline {
        id: u64,
        savepoint: bool,
    },
}

/// Rows of text with a header, plus notes shown under the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines shown after the table (`DESCRIBE`'s connector and options).
    pub notes: Vec<String>,
}

impl ResultTable {
    /// A table with these column names and no rows yet.
    pub fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new(), notes: Vec::new() }
    }
}
