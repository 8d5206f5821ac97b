//! Ad-hoc SQL over a snapshot of the live tables, run by DataFusion as a batch query.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Tokenizer};
use futures::StreamExt;
use streamsql_engine::limits;
use streamsql_engine::live::LiveCatalog;

use crate::governor::{Governor, QueryLimits};

/// The catalog and schema live tables are listed under (`streamsql.public.t`).
pub const CATALOG: &str = "streamsql";
pub const SCHEMA: &str = "public";

/// A query's rows, with their memory still reserved in the query pool until they are dropped.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    memory: Option<MemoryReservation>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The schema, the rows, and what keeps their memory reserved.
    pub fn into_parts(self) -> (SchemaRef, Vec<RecordBatch>, Option<MemoryReservation>) {
        (self.schema, self.batches, self.memory)
    }

    /// Bytes the result holds (as reserved in the query pool).
    pub fn bytes(&self) -> usize {
        self.memory.as_ref().map(MemoryReservation::size).unwrap_or_default()
    }
}

/// Runs read-only SQL over the live tables of one catalog, each query on the query runtime of
/// its [`Governor`]: each on a thread of its own, within the limits.
#[derive(Clone)]
pub struct QueryEngine {
    catalog: Arc<LiveCatalog>,
    governor: Arc<Governor>,
    functions: Option<SessionFunctions>,
}

/// Builds the session state each query runs with from a builder holding its configuration and
/// runtime: the functions (and planners, rules) it brings on top of DataFusion's. The binary
/// brings Flink's (`streamsql_sql::functions::with_flink_functions`), so a query here means
/// what it means in a pipeline.
pub type SessionFunctions = Arc<dyn Fn(SessionStateBuilder) -> SessionState + Send + Sync>;

impl QueryEngine {
    /// An engine over `catalog` whose queries keep to `limits`.
    pub fn new(catalog: Arc<LiveCatalog>, limits: QueryLimits) -> Self {
        Self { catalog, governor: Arc::new(Governor::new(limits)), functions: None }
    }

    /// Queries run with `functions` (see [`SessionFunctions`]) instead of DataFusion's alone.
    pub fn with_functions(mut self, functions: SessionFunctions) -> Self {
        self.functions = Some(functions);
        self
    }

    pub fn catalog(&self) -> &Arc<LiveCatalog> {
        &self.catalog
    }

    pub fn governor(&self) -> &Arc<Governor> {
        &self.governor
    }

    fn context(&self) -> Result<SessionContext, DataFusionError> {
        let mut config = SessionConfig::new().with_default_catalog_and_schema(CATALOG, SCHEMA);
        // Clients such as the JDBC driver do not read Utf8View; keep strings plain.
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        config.options_mut().execution.target_partitions = 2;
        let runtime = RuntimeEnvBuilder::new().with_memory_pool(self.governor.query_pool()).build_arc()?;
        let builder = SessionStateBuilder::new().with_config(config).with_runtime_env(runtime);
        let state = match &self.functions {
            Some(functions) => functions(builder),
            None => builder.with_default_features().build(),
        };
        Ok(SessionContext::new_with_state(state))
    }

    /// The result schema of `sql`, planned against the tables' schemas (no rows are taken).
    pub async fn schema(&self, sql: &str) -> Result<SchemaRef, DataFusionError> {
        let engine = self.clone();
        let sql = sql.to_string();
        self.governor
            .run(async move {
                let ctx = engine.context()?;
                for (name, schema) in engine.catalog.tables() {
                    ctx.register_table(name.as_str(), Arc::new(MemTable::try_new(schema, vec![Vec::new()])?))?;
                }
                let frame = plan(&ctx, &sql).await?;
                Ok(Arc::new(frame.schema().as_arrow().clone()) as SchemaRef)
            })
            .await
    }

    /// Runs `sql` to completion over a fresh snapshot; its rows stay reserved in the query pool
    /// while the result lives.
    pub async fn run(&self, sql: &str) -> Result<QueryResult, DataFusionError> {
        let engine = self.clone();
        let sql = sql.to_string();
        self.governor.run(async move { engine.run_here(&sql).await }).await
    }

    async fn run_here(&self, sql: &str) -> Result<QueryResult, DataFusionError> {
        let ctx = self.context()?;
        // Every live table as it is now: all are taken at the same instant, so joins across
        // them see one consistent state.
        let snapshot = self.catalog.snapshot().map_err(|e| DataFusionError::External(Box::new(e)))?;
        for table in snapshot {
            ctx.register_table(table.name.as_str(), Arc::new(MemTable::try_new(table.schema, vec![table.batches])?))?;
        }
        let frame = plan(&ctx, sql).await?;
        let planned: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let memory = MemoryConsumer::new("query result").register(&ctx.runtime_env().memory_pool);
        let mut stream = frame.execute_stream().await?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            memory.try_grow(batch.get_array_memory_size())?;
            batches.push(batch);
        }
        let schema = batches.first().map(RecordBatch::schema).unwrap_or(planned);
        Ok(QueryResult { schema, batches, memory: Some(memory) })
    }
}

/// Parses `sql` within the [limits](streamsql_engine::limits) and plans it read-only.
async fn plan(ctx: &SessionContext, sql: &str) -> Result<DataFrame, DataFusionError> {
    let statement = parse(sql)?;
    let plan = ctx.state().statement_to_plan(statement).await?;
    read_only().verify_plan(&plan)?;
    ctx.execute_logical_plan(plan).await
}

/// One statement, refused with its position when it is over a limit: too long, nested too deep
/// for the parser, or an expression too deep for the planner (after `AND`/`OR` chains are
/// balanced).
fn parse(sql: &str) -> Result<DFStatement, DataFusionError> {
    let limit = |e: limits::LimitExceeded| DataFusionError::Plan(e.to_string());
    limits::check_size(sql, limits::MAX_STATEMENT_BYTES, Location { line: 1, column: 1 }).map_err(limit)?;
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| DataFusionError::SQL(Box::new(e.into()), None))?;
    limits::check_nesting(&tokens).map_err(limit)?;
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(limits::PARSER_RECURSION_LIMIT)
        .build()?
        .parse_statements()?;
    if statements.len() != 1 {
        return Err(DataFusionError::Plan(format!("expected one statement, found {}", statements.len())));
    }
    let mut statement = statements.pop_front().ok_or_else(|| DataFusionError::Plan("no statement".into()))?;
    if let DFStatement::Statement(inner) = &mut statement {
        limits::balance_chains(inner.as_mut());
        limits::check_expression_depth(inner.as_ref()).map_err(limit)?;
    }
    Ok(statement)
}

/// Queries only: no DDL, DML or `SET` against the snapshot.
fn read_only() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}
