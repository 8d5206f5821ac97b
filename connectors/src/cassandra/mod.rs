//! `'connector' = 'cassandra'`: upserts rows into an Apache Cassandra (or ScyllaDB) table with
//! the scylla driver.
//!
//! ```sql
//! CREATE TABLE flow_counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING,
//!   flows BIGINT, PRIMARY KEY (flow_type, window_start) NOT ENFORCED)
//! WITH ('connector' = 'cassandra', 'hosts' = '127.0.0.1:9042', 'keyspace' = 'netflow',
//!       'table' = 'flow_counts', 'create-table' = 'true');
//! ```
//!
//! - When a pipeline is planned, the table is checked (columns and types) or, with
//!   `'create-table' = 'true'`, created: the first PRIMARY KEY column is the partition key, the
//!   rest are clustering columns, ascending unless `'clustering-order'` says otherwise
//!   (`'ts DESC'`).
//! - Updating results (an aggregation without a window) are applied by the PRIMARY KEY: the last
//!   change of each key in a batch is written, an upsert for `+I`/`+U`, a delete for `-D`.
//! - `'sink.ttl'` (`'7 d'`) gives written rows a time to live.
//! - Writes are prepared `INSERT`s (upserts, so replays are idempotent), token-aware, at most
//!   `'max-concurrent-requests'` in flight; a batch is written before the next is taken, which
//!   backpressures the pipeline. Timeouts, unavailability and lost connections are retried with
//!   exponential backoff for up to `'retry.max-duration'` seconds.

mod convert;
mod options;
mod schema;
mod writer;

use std::future::Future;

use streamsql_engine::connector::{
    ChangelogMode, Connector, Delivery, OptionSpec, Role, Sink, TableDef, split_changes,
};
use streamsql_engine::{Result, StreamError};

pub use options::CassandraOptions;
pub use writer::CassandraWriter;

pub struct CassandraConnector;

impl Connector for CassandraConnector {
    fn name(&self) -> &'static str {
        "cassandra"
    }

    fn options(&self) -> &'static [OptionSpec] {
        options::OPTIONS
    }

    /// Cassandra writes are upserts by primary key (each batch is written before the barrier
    /// after it passes): rows written again after a restore overwrite themselves.
    fn delivery(&self, _table: &TableDef, role: Role) -> Delivery {
        if role == Role::Sink { Delivery::Idempotent } else { Delivery::Unsupported }
    }

    fn supports(&self, role: Role) -> bool {
        role == Role::Sink
    }

    /// Updating results are applied by PRIMARY KEY: upserts for `+I`/`+U`, deletes for `-D`.
    fn changelog(&self) -> ChangelogMode {
        ChangelogMode::Native
    }

    fn validate_updating(&self, table: &TableDef) -> Result<()> {
        if table.primary_key.is_empty() {
            return Err(StreamError::Config(format!(
                "table '{}' takes updating results (an aggregation without a window), which the Cassandra sink \
                 applies by key: declare PRIMARY KEY (the GROUP BY columns) NOT ENFORCED",
                table.name
            )));
        }
        Ok(())
    }

    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        let options = CassandraOptions::parse(table)?;
        for field in table.schema.fields() {
            schema::cql_type(field.data_type()).ok_or_else(|| {
                StreamError::Config(format!(
                    "table '{}': column '{}' has a type the Cassandra sink cannot write ({})",
                    table.name,
                    field.name(),
                    field.data_type()
                ))
            })?;
        }
        if options.create_table && table.primary_key.is_empty() {
            return Err(StreamError::Config(format!(
                "table '{}': 'create-table' = 'true' needs PRIMARY KEY (partition_key, clustering...) NOT ENFORCED",
                table.name
            )));
        }
        Ok(())
    }

    fn check_external(&self, table: &TableDef, _role: Role) -> Result<()> {
        let options = CassandraOptions::parse(table)?;
        let table = table.clone();
        run_async(async move {
            let session = options.connect().await?;
            if options.create_table {
                schema::create(&session, &options, &table).await?;
            }
            schema::check(&session, &options, &table).await
        })
    }

    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        Ok(Box::new(CassandraSink { writer: CassandraWriter::open(table)?, columns: table.schema.fields().len() }))
    }
}

struct CassandraSink {
    writer: CassandraWriter,
    columns: usize,
}

impl Sink for CassandraSink {
    fn write(&mut self, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        match split_changes(batch, self.columns)? {
            (rows, Some(ops)) => self.writer.write_changes(&rows, &ops),
            (rows, None) => self.writer.write_batch(&rows),
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.writer.finish();
        Ok(())
    }

    fn retries(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        Some(self.writer.retries())
    }
}

/// Runs a future to completion from synchronous code, inside or outside a tokio runtime, on a
/// thread of its own.
fn run_async<T: Send + 'static>(future: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StreamError::io("starting the Cassandra client", e))?
            .block_on(future)
    })
    .join()
    .map_err(|_| StreamError::Internal("the Cassandra client thread panicked".into()))?
}
