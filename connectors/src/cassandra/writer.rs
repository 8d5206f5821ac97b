//! Writing batches into Cassandra: prepared upserts, bounded concurrency, retries with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int8Array, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;
use streamsql_engine::connector::TableDef;
use streamsql_engine::operators::aggregate::ChangeOp;
use streamsql_engine::{Result, StreamError};

use super::options::CassandraOptions;
use super::{convert, schema};

/// Latency samples kept for percentiles (the first this many writes).
const MAX_SAMPLES: usize = 1 << 20;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A connection to one Cassandra table, writing Arrow batches. Usable from synchronous code: it
/// runs the driver on a small runtime of its own.
pub struct CassandraWriter {
    options: CassandraOptions,
    runtime: tokio::runtime::Runtime,
    session: Arc<Session>,
    insert: Arc<PreparedStatement>,
    /// `DELETE ... WHERE key = ?`, when the table has a PRIMARY KEY (for updating results).
    delete: Option<Arc<PreparedStatement>>,
    /// Indices of the PRIMARY KEY columns.
    key_columns: Vec<usize>,
    /// The Cassandra type of each column, which values are written as.
    cql_types: Vec<String>,
    rows_written: u64,
    latencies: Vec<Duration>,
    /// Writes retried after a failure, for the metrics.
    retries: Arc<std::sync::atomic::AtomicU64>,
}

impl CassandraWriter {
    /// Connects and prepares the upsert for `table`'s columns.
    pub fn open(table: &TableDef) -> Result<Self> {
        let options = CassandraOptions::parse(table)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cassandra-sink")
            .enable_all()
            .build()
            .map_err(|e| StreamError::io("starting the Cassandra client", e))?;
        let columns: Vec<String> = table.schema.fields().iter().map(|f| format!("\"{}\"", f.name())).collect();
        let marks = vec!["?"; columns.len()].join(", ");
        let ttl = if options.ttl_seconds.is_some() { " USING TTL ?" } else { "" };
        let cql = format!("INSERT INTO {} ({}) VALUES ({marks}){ttl}", options.qualified_table(), columns.join(", "));
        let key_columns: Vec<usize> = table.primary_key.iter().filter_map(|k| table.schema.index_of(k).ok()).collect();
        let delete_cql = (!key_columns.is_empty() && key_columns.len() == table.primary_key.len()).then(|| {
            let conditions: Vec<String> = table.primary_key.iter().map(|k| format!("\"{k}\" = ?")).collect();
            format!("DELETE FROM {} WHERE {}", options.qualified_table(), conditions.join(" AND "))
        });
        let (session, insert, delete, existing) = runtime.block_on(async {
            let session = options.connect().await?;
            let existing = schema::columns(&session, &options).await?;
            let prepare = async |cql: &str| {
                let mut statement = session.prepare(cql).await.map_err(|e| {
                    StreamError::Config(format!("Cassandra at {}: cannot prepare {cql}: {e}", options.hosts.join(", ")))
                })?;
                statement.set_consistency(options.consistency);
                statement.set_is_idempotent(true);
                statement.set_request_timeout(Some(options.request_timeout));
                Ok::<_, StreamError>(statement)
            };
            let insert = prepare(&cql).await?;
            let delete = match &delete_cql {
                Some(cql) => Some(Arc::new(prepare(cql).await?)),
                None => None,
            };
            Ok::<_, StreamError>((session, insert, delete, existing))
        })?;
        // The table as it is (declared in CQL or created from the DDL): values are written in
        // its column types.
        let cql_types = table
            .schema
            .fields()
            .iter()
            .map(|f| match existing.get(f.name()) {
                Some((cql, _)) => cql.clone(),
                None => schema::cql_type(f.data_type()).unwrap_or("blob").to_string(),
            })
            .collect();
        Ok(Self {
            options,
            runtime,
            session: Arc::new(session),
            insert: Arc::new(insert),
            delete,
            key_columns,
            cql_types,
            rows_written: 0,
            latencies: Vec::new(),
            retries: Arc::default(),
        })
    }

    /// Writes every row of `batch`; returns once all are acknowledged.
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = convert::rows(batch, &self.cql_types, self.options.ttl_seconds)?;
        let count = rows.len();
        let latencies =
            self.runtime.block_on(write_rows(&self.session, &self.insert, rows, &self.options, &self.retries))?;
        let room = MAX_SAMPLES.saturating_sub(self.latencies.len());
        self.latencies.extend(latencies.into_iter().take(room));
        self.rows_written += count as u64;
        Ok(())
    }

    /// Applies a batch of changes (`ops`, one [`ChangeOp`] per row): the last change of each
    /// key in the batch is written, an upsert for `+I`/`+U`, a delete for `-D` and for a `-U`
    /// that no `+U` follows in the batch (a filter after an aggregate drops the `+U` of a row
    /// that no longer qualifies; when the `+U` comes in the next batch it writes the row again).
    /// Only the last change per key is sent because the writes of a batch run concurrently;
    /// batches are written in order.
    pub fn write_changes(&mut self, batch: &RecordBatch, ops: &Int8Array) -> Result<()> {
        let Some(delete) = self.delete.clone() else {
            return Err(StreamError::Internal(
                "updating results reached a Cassandra sink without a PRIMARY KEY".into(),
            ));
        };
        let key_fields: Vec<SortField> =
            self.key_columns.iter().map(|&c| SortField::new(batch.schema().field(c).data_type().clone())).collect();
        let converter = RowConverter::new(key_fields)?;
        let keys: Vec<ArrayRef> = self.key_columns.iter().map(|&c| batch.column(c).clone()).collect();
        let keys = converter.convert_columns(&keys)?;
        let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            last.insert(keys.row(row).data(), row);
        }
        let mut rows: Vec<usize> = last.into_values().collect();
        rows.sort_unstable();
        let mut deletes = Vec::new();
        let mut upserts = Vec::new();
        for row in rows {
            match ChangeOp::from_i8(ops.value(row))? {
                ChangeOp::Delete | ChangeOp::UpdateBefore => deletes.push(row),
                _ => upserts.push(row),
            }
        }
        let pick = |rows: Vec<usize>| UInt32Array::from_iter_values(rows.into_iter().map(|r| r as u32));
        let upserts = take_record_batch(batch, &pick(upserts))?;
        let deletes = take_record_batch(&batch.project(&self.key_columns)?, &pick(deletes))?;
        self.write_batch(&upserts)?;
        let key_types: Vec<String> = self.key_columns.iter().map(|&c| self.cql_types[c].clone()).collect();
        let rows = convert::rows(&deletes, &key_types, None)?;
        let count = rows.len();
        self.runtime.block_on(write_rows(&self.session, &delete, rows, &self.options, &self.retries))?;
        self.rows_written += count as u64;
        Ok(())
    }

    /// Rows acknowledged so far.
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// The `p`-th percentile (0..=100) of write latency, retries included.
    pub fn latency_percentile(&self, p: f64) -> Option<Duration> {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        sorted.get(((p / 100.0) * last as f64).round() as usize).copied()
    }

    /// The count of writes retried after a failure, updated while it retries.
    pub fn retries(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.retries.clone()
    }

    /// Logs what was written.
    pub fn finish(&self) {
        tracing::info!(
            rows = self.rows_written,
            p50_ms = self.latency_percentile(50.0).map_or(0.0, |d| d.as_secs_f64() * 1e3),
            p99_ms = self.latency_percentile(99.0).map_or(0.0, |d| d.as_secs_f64() * 1e3),
            "cassandra sink {} finished",
            self.options.qualified_table()
        );
    }
}

/// Writes rows with at most `max_concurrent_requests` in flight; returns each row's latency.
async fn write_rows(
    session: &Session,
    insert: &PreparedStatement,
    rows: Vec<Vec<Option<CqlValue>>>,
    options: &CassandraOptions,
    retries: &std::sync::atomic::AtomicU64,
) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(rows.len());
    let mut rows = rows.into_iter();
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < options.max_concurrent_requests {
            match rows.next() {
                Some(row) => in_flight.push(write_row(session, insert, row, options, retries)),
                None => break,
            }
        }
        match in_flight.next().await {
            Some(latency) => latencies.push(latency?),
            None => return Ok(latencies),
        }
    }
}

/// Whether a failed write may succeed later (the node is down, overloaded or slow), as opposed
/// to a request Cassandra will always reject.
fn retryable(error: &ExecutionError) -> bool {
    match error {
        ExecutionError::BadQuery(_) | ExecutionError::PrepareError(_) => false,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => matches!(
            db,
            DbError::Unavailable { .. }
                | DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::ReadTimeout { .. }
                | DbError::WriteTimeout { .. }
                | DbError::WriteFailure { .. }
                | DbError::ServerError
                | DbError::TruncateError
                | DbError::RateLimitReached { .. }
                | DbError::Unprepared { .. }
        ),
        ExecutionError::LastAttemptError(RequestAttemptError::SerializationError(_)) => false,
        _ => true,
    }
}

async fn write_row(
    session: &Session,
    insert: &PreparedStatement,
    row: Vec<Option<CqlValue>>,
    options: &CassandraOptions,
    retries: &std::sync::atomic::AtomicU64,
) -> Result<Duration> {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut warned = false;
    loop {
        match session.execute_unpaged(insert, &row).await {
            Ok(_) => return Ok(started.elapsed()),
            Err(e) if retryable(&e) && started.elapsed() < options.retry_max_duration => {
                if !warned {
                    tracing::warn!(
                        "writing to Cassandra {} at {} failed, retrying for up to {} s: {e}",
                        options.qualified_table(),
                        options.hosts.join(", "),
                        options.retry_max_duration.as_secs()
                    );
                    warned = true;
                }
                retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                let after = if warned {
                    format!(" (gave up after {} s of retries)", started.elapsed().as_secs())
                } else {
                    String::new()
                };
                return Err(StreamError::Data(format!(
                    "writing to Cassandra {} at {} failed{after}: {e}",
                    options.qualified_table(),
                    options.hosts.join(", ")
                )));
            }
        }
    }
}
