//! Ad-hoc SQL over a snapshot of the live tables, run by DataFusion as a batch query.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};
use streamsql_engine::live::LiveCatalog;

/// The catalog and schema live tables are listed under (`streamsql.public.t`).
pub const CATALOG: &str = "streamsql";
pub const SCHEMA: &str = "public";

/// A query's rows.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Runs read-only SQL over the live tables of one catalog.
#[derive(Clone)]
pub struct QueryEngine {
    catalog: Arc<LiveCatalog>,
}

impl QueryEngine {
    pub fn new(catalog: Arc<LiveCatalog>) -> Self {
        Self { catalog }
    }

    pub fn catalog(&self) -> &Arc<LiveCatalog> {
        &self.catalog
    }

    fn context() -> SessionContext {
        let mut config = SessionConfig::new().with_default_catalog_and_schema(CATALOG, SCHEMA);
        // Clients such as the JDBC driver do not read Utf8View; keep strings plain.
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        config.options_mut().execution.target_partitions = 2;
        SessionContext::new_with_config(config)
    }

    /// A DataFusion context holding every live table as it is now: all tables are taken at the
    /// same instant, so joins across them see one consistent state.
    fn snapshot_context(&self) -> Result<SessionContext, DataFusionError> {
        let ctx = Self::context();
        let snapshot = self.catalog.snapshot().map_err(|e| DataFusionError::External(Box::new(e)))?;
        for table in snapshot {
            ctx.register_table(table.name.as_str(), Arc::new(MemTable::try_new(table.schema, vec![table.batches])?))?;
        }
        Ok(ctx)
    }

    /// The result schema of `sql`, planned against the tables' schemas (no rows are taken).
    pub async fn schema(&self, sql: &str) -> Result<SchemaRef, DataFusionError> {
        let ctx = Self::context();
        for (name, schema) in self.catalog.tables() {
            ctx.register_table(name.as_str(), Arc::new(MemTable::try_new(schema, vec![Vec::new()])?))?;
        }
        let frame = ctx.sql_with_options(sql, read_only()).await?;
        Ok(Arc::new(frame.schema().as_arrow().clone()))
    }

    /// Runs `sql` to completion over a fresh snapshot.
    pub async fn run(&self, sql: &str) -> Result<QueryResult, DataFusionError> {
        let ctx = self.snapshot_context()?;
        let frame = ctx.sql_with_options(sql, read_only()).await?;
        let planned: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        let schema = batches.first().map(RecordBatch::schema).unwrap_or(planned);
        Ok(QueryResult { schema, batches })
    }
}

/// Queries only: no DDL, DML or `SET` against the snapshot.
fn read_only() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}
