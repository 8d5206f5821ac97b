//! Ports between the engine and the outside world.
//!
//! The engine defines what a connector must do; `streamsql-connectors` implements it; the SQL
//! layer finds connectors by name through a [`ConnectorRegistry`] and never depends on the
//! connectors crate, the way DataFusion's SQL planner sees tables only through
//! `ContextProvider`.
//!
//! Lifecycle of a table declared with `CREATE TABLE ... WITH ('connector' = 'x', ...)`:
//!
//! ```text
//!  plan time:  registry.get("x") ─▶ Connector::options() checked (unknown / missing keys)
//!                                 ─▶ Connector::validate(table, role)      (values, schema)
//!              INSERT/SELECT     ─▶ Connector::check_external(table, role) (remote schema, may connect)
//!  run time:   Connector::open_source(table, ctx) / open_sink(table) ─▶ Source / Sink
//! ```
//!
//! Sources and sinks are synchronous and run on their own blocking threads, so a connector may
//! block on I/O freely. A `Source` returns batches until its input ends; an unbounded source
//! never returns `Ok(None)` and is stopped by the runtime between calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

pub use crate::checkpoint::Delivery;
use crate::error::{Result, StreamError};
use crate::metrics::PipelineMetrics;
use crate::operator::StateSnapshot;

/// A source of record batches: one instance of a table's reader.
///
/// A simple source (a file, a generator) is one ordered partition and implements
/// [`Source::next_batch`] only. A source that reads several partitions whose rows interleave (a
/// Kafka topic) says how many with [`Source::partitions`] and returns each batch from one of
/// them through [`Source::pull`]: the runtime keeps a watermark per partition, so every row is
/// judged by the rows before it *in its partition*, and the source's watermark is the minimum
/// over its partitions (see [`PartitionWatermarks`](crate::operators::watermark::PartitionWatermarks)).
pub trait Source: Send {
    /// The next batch, `Ok(None)` when a bounded input is exhausted.
    ///
    /// Batches must have exactly the table's declared schema (no hidden columns). Errors end the
    /// pipeline; a record that cannot be decoded is reported with its position (`file:line`).
    fn next_batch(&mut self) -> Result<Option<RecordBatch>>;

    /// How many partitions this instance reads (each counts for the watermark from the start,
    /// so an empty one holds it back). One for a simple source.
    fn partitions(&self) -> usize {
        1
    }

    /// How long a partition may go without rows before it stops holding the watermark back
    /// (`'source.idle-timeout'`); `None`: never.
    fn idle_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// The next rows, all of one partition, or word that nothing came for a while (so the
    /// runtime can notice a cancellation and idle partitions), or the end of a bounded input.
    fn pull(&mut self) -> Result<Pulled> {
        Ok(match self.next_batch()? {
            Some(batch) => Pulled::Rows { partition: 0, batch },
            None => Pulled::End,
        })
    }

    /// A name of local partition `local` that stays the same across restarts and parallelisms
    /// (`topic/3`), under which its watermark is checkpointed.
    fn partition_id(&self, local: usize) -> String {
        local.to_string()
    }

    /// Where the source is, after the rows it has returned: taken at a checkpoint barrier, so
    /// that [`Source::restore`] reads again exactly the rows that came after. Only called when
    /// the connector says [`Delivery::ExactlyOnce`] for its sources
    /// ([`Connector::delivery`]).
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        Err(StreamError::Internal("this source cannot be checkpointed".into()))
    }

    /// Moves to the position of a [`Source::snapshot`], before the first batch.
    fn restore(&mut self, _state: StateSnapshot) -> Result<()> {
        Err(StreamError::Internal("this source cannot be restored from a checkpoint".into()))
    }
}

/// What [`Source::pull`] returns.
#[derive(Debug)]
pub enum Pulled {
    /// Rows of partition `partition` (`0..partitions()`), in that partition's order.
    Rows { partition: usize, batch: RecordBatch },
    /// No rows came within the source's own poll interval.
    Nothing,
    /// A bounded input is exhausted.
    End,
}

/// A destination of record batches.
pub trait Sink: Send {
    /// Writes one batch whose schema is the sink table's declared schema.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Flushes and closes after the last batch (also after a cancellation).
    fn finish(&mut self) -> Result<()>;
    /// Closes after the pipeline failed (instead of [`Sink::finish`]). By default the same as
    /// `finish`, keeping what was written; a sink that replaces earlier output when it finishes
    /// keeps the earlier output instead.
    fn abort(&mut self) -> Result<()> {
        self.finish()
    }

    /// At a checkpoint barrier, after every batch before it was written: makes them durable
    /// and returns what [`Sink::restore`] needs to take back anything written after (a file's
    /// length). By default nothing: right for sinks whose [`Connector::delivery`] is
    /// idempotent or at least once.
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        Ok(StateSnapshot::default())
    }

    /// Resumes from a [`Sink::snapshot`], before the first batch.
    fn restore(&mut self, _state: StateSnapshot) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `epoch` is complete (its manifest is written), right after this sink's
    /// [`Sink::snapshot`] for it: a sink that holds output back until then
    /// ([`crate::checkpoint::Delivery::Transactional`]) commits what that snapshot covered. A
    /// failed checkpoint is never announced; the next snapshot covers its output too.
    fn checkpoint_complete(&mut self, _epoch: crate::operator::Epoch) -> Result<()> {
        Ok(())
    }

    /// Closes a sink whose pipeline was stopped before its input ended (a cancel, a stop with
    /// savepoint) instead of [`Sink::finish`]. By default the same as `finish`; a transactional
    /// sink commits nothing beyond the last complete checkpoint, since a restart from that
    /// checkpoint writes the rest again.
    fn cancel(&mut self) -> Result<()> {
        self.finish()
    }

    /// The sink's count of writes it retried after a failure (a service outage), which it
    /// updates as it retries, for the metrics; `None` for sinks that do not retry.
    fn retries(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        None
    }
}

/// Whether a table is read from or written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Sink,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Sink => "sink",
        })
    }
}

/// `WATERMARK FOR column AS column - INTERVAL ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkDef {
    /// Index of the event-time column in the table schema.
    pub column: usize,
    /// How far behind the largest event time seen the watermark trails.
    pub delay_ms: i64,
}

/// A table as declared by `CREATE TABLE`: what connectors are given.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    pub schema: SchemaRef,
    /// `WITH (...)` options, keys as written (they are case-sensitive, as in Flink).
    pub options: BTreeMap<String, String>,
    pub watermark: Option<WatermarkDef>,
    /// `PRIMARY KEY (...) NOT ENFORCED` column names.
    pub primary_key: Vec<String>,
    /// Computed columns (`c AS expr`): connectors never see them; the source task computes them
    /// from the other columns of each batch, before watermarks are assigned.
    pub computed: Vec<ComputedColumn>,
}

/// A computed column of a table: `name AS expr`.
#[derive(Debug, Clone)]
pub struct ComputedColumn {
    /// Its position among the table's columns.
    pub index: usize,
    /// Evaluated over the table's other (physical and metadata) columns, in their order.
    pub expr: Arc<dyn datafusion::physical_expr::PhysicalExpr>,
    /// The expression as written, for DESCRIBE.
    pub text: String,
}

impl TableDef {
    /// The table as its connector reads and checks it: without computed columns (and without a
    /// watermark, whose column index is the whole table's).
    pub fn physical(&self) -> TableDef {
        if self.computed.is_empty() {
            return self.clone();
        }
        let fields: Vec<_> = (0..self.schema.fields().len())
            .filter(|i| !self.computed.iter().any(|c| c.index == *i))
            .map(|i| self.schema.field(i).clone())
            .collect();
        TableDef {
            schema: Arc::new(arrow::datatypes::Schema::new_with_metadata(fields, self.schema.metadata().clone())),
            watermark: None,
            computed: Vec::new(),
            ..self.clone()
        }
    }

    /// Adds the computed columns to a batch of the [physical](TableDef::physical) table's columns.
    pub fn compute(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.computed.is_empty() {
            return Ok(batch);
        }
        let mut physical = batch.columns().iter();
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for i in 0..self.schema.fields().len() {
            match self.computed.iter().find(|c| c.index == i) {
                Some(column) => {
                    let value = column.expr.evaluate(&batch).map_err(|e| {
                        StreamError::Data(format!(
                            "table '{}', computed column '{}' ({}): {e}",
                            self.name,
                            self.schema.field(i).name(),
                            column.text
                        ))
                    })?;
                    columns.push(value.into_array(batch.num_rows())?);
                }
                None => columns.push(physical.next().cloned().ok_or_else(|| {
                    StreamError::Internal(format!("table '{}': a batch lacks physical columns", self.name))
                })?),
            }
        }
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?)
    }

    /// The connector name (`'connector'` option).
    pub fn connector(&self) -> &str {
        self.options.get("connector").map(String::as_str).unwrap_or("")
    }

    /// The table as an append-only sink of a changelog sees it: an `op` column (`+I`, `-U`, `+U`,
    /// `-D`) in front of its columns (`changelog_op` if the table has an `op` column itself).
    pub fn with_op_column(&self) -> TableDef {
        let name = if self.schema.column_with_name("op").is_some() { "changelog_op" } else { "op" };
        let mut fields = vec![Arc::new(arrow::datatypes::Field::new(name, arrow::datatypes::DataType::Utf8, false))];
        fields.extend(self.schema.fields().iter().cloned());
        TableDef { schema: Arc::new(arrow::datatypes::Schema::new(fields)), ..self.clone() }
    }

    /// A typed view of the options with errors that name this table.
    pub fn opts(&self) -> Options<'_> {
        Options { table: self }
    }
}

/// Typed access to a table's `WITH` options, with errors a user can act on.
pub struct Options<'a> {
    table: &'a TableDef,
}

impl Options<'_> {
    /// The raw value of an option.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.table.options.get(key).map(String::as_str)
    }

    /// The value of a required option.
    pub fn required(&self, key: &str) -> Result<&str> {
        self.get(key)
            .ok_or_else(|| StreamError::Config(format!("table '{}': option '{key}' is required", self.table.name)))
    }

    /// Parses an option with `FromStr`, or returns `default` when it is absent.
    pub fn parse<T: std::str::FromStr>(&self, key: &str, default: T, expected: &str) -> Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                StreamError::Config(format!(
                    "table '{}': option '{key}' must be {expected}, got '{v}'",
                    self.table.name
                ))
            }),
        }
    }

    /// A positive duration option (`'30 s'`, `'500 ms'`), or `default` when it is absent.
    pub fn duration(&self, key: &str, default: std::time::Duration) -> Result<std::time::Duration> {
        let Some(text) = self.get(key) else { return Ok(default) };
        crate::time::parse_duration_ms(text)
            .filter(|ms| *ms > 0)
            .map(|ms| std::time::Duration::from_millis(ms as u64))
            .ok_or_else(|| {
                StreamError::Config(format!(
                    "table '{}': option '{key}' must be a positive duration such as '10 s' or '500 ms', got '{text}'",
                    self.table.name
                ))
            })
    }

    /// An option that must be one of `choices` (compared case-insensitively).
    pub fn choice(&self, key: &str, choices: &[&'static str], default: &'static str) -> Result<&'static str> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        choices.iter().find(|c| c.eq_ignore_ascii_case(v.trim())).copied().ok_or_else(|| {
            StreamError::Config(format!(
                "table '{}': option '{key}' must be one of {}, got '{v}'",
                self.table.name,
                choices.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// Field metadata marking a column declared `METADATA [FROM 'key']`: its value is the key, and
/// the connector fills the column from the record's metadata (a Kafka record's partition,
/// offset, timestamp) rather than from its payload.
pub const METADATA_FIELD: &str = "streamsql.metadata";

/// The metadata key a column is read from, if it is a metadata column.
pub fn metadata_key(field: &arrow::datatypes::Field) -> Option<&str> {
    field.metadata().get(METADATA_FIELD).map(String::as_str)
}

/// One metadata column a connector offers (`ts TIMESTAMP(3) METADATA FROM 'timestamp'`).
#[derive(Debug)]
pub struct MetadataSpec {
    pub key: &'static str,
    /// The type the column must be declared with.
    pub data_type: arrow::datatypes::DataType,
    /// Whether a sink can write it (a table with a read-only metadata column can only be read).
    pub writable: bool,
    pub help: &'static str,
}

/// One option a connector accepts.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    pub key: &'static str,
    pub required: bool,
    /// Which roles the option applies to.
    pub roles: &'static [Role],
    /// One line shown in error messages and docs.
    pub help: &'static str,
}

/// What a running source may need from the pipeline.
#[derive(Clone)]
pub struct SourceContext {
    /// Largest number of rows per batch.
    pub batch_size: usize,
    /// The source table's error counters: bad records skipped, rows missing fields, failed
    /// requests (they count towards the pipeline's too).
    pub metrics: Arc<PipelineMetrics>,
    /// Which instance of the table's reader this is, of `instances` (always 0 of 1 unless the
    /// connector is [`Connector::partitioned`]); a partitioned source reads its share.
    pub instance: usize,
    pub instances: usize,
    /// The pipeline's parallelism: a source read by one instance (a file) may decode on that
    /// many threads, handing its rows on in their order.
    pub parallelism: usize,
    /// Whether the pipeline checkpoints: the source's position then lives in checkpoints, and
    /// a source that would also record it elsewhere (Kafka group offsets) does not.
    pub checkpoints: bool,
}

/// How a sink takes the results of an updating query (a changelog, see
/// [`crate::operators::aggregate::updating`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangelogMode {
    /// Rows are appended with an `op` column (`+I`, `-U`, `+U`, `-D`) in front: the table is
    /// opened with that column added to its schema.
    OpColumn,
    /// The sink applies changes itself: batches carry the hidden `_op` column (an `Int8`
    /// [`crate::operators::aggregate::ChangeOp`]) after the table's columns.
    Native,
    /// The sink cannot take updates; planning an updating query into it fails.
    Unsupported,
}

/// Splits a batch written to a [`ChangelogMode::Native`] sink into the table's `columns` and,
/// for updating results, the trailing op column.
pub fn split_changes(batch: &RecordBatch, columns: usize) -> Result<(RecordBatch, Option<arrow::array::Int8Array>)> {
    use arrow::array::AsArray;
    if batch.num_columns() == columns {
        return Ok((batch.clone(), None));
    }
    let op = batch.columns().last().and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int8Type>()).cloned();
    match op {
        Some(op) if batch.num_columns() == columns + 1 => {
            Ok((batch.project(&(0..columns).collect::<Vec<_>>())?, Some(op)))
        }
        _ => Err(StreamError::Internal(format!(
            "a sink of {columns} columns got a batch of {} columns",
            batch.num_columns()
        ))),
    }
}

/// A kind of table (`'connector' = 'name'`).
pub trait Connector: Send + Sync {
    /// The value of `'connector'` that selects this connector.
    fn name(&self) -> &'static str;

    /// Every option this connector accepts besides `'connector'`.
    fn options(&self) -> &'static [OptionSpec];

    /// Whether the connector can be read from / written to.
    fn supports(&self, role: Role) -> bool;

    /// The schema of a table declared with no columns, for connectors that know their own
    /// schema (generators). `None` means columns must be declared.
    fn default_schema(&self) -> Option<SchemaRef> {
        None
    }

    /// The metadata columns a table of this connector may declare; none by default.
    fn metadata(&self) -> &'static [MetadataSpec] {
        &[]
    }

    /// Whether a source of `table` reads several partitions whose rows interleave (a Kafka
    /// topic). Their `_wm` does not rise along the stream, so operators close windows on the
    /// source's watermark (the minimum over its partitions) only, and the table is read by
    /// `parallelism` instances, each given its share of the partitions
    /// ([`SourceContext::instance`]).
    fn partitioned(&self, _table: &TableDef) -> bool {
        false
    }

    /// Whether one instance reading `table` decodes it on [`SourceContext::parallelism`] threads,
    /// handing its rows on in their order (a regular file): for `EXPLAIN`.
    fn decodes_in_parallel(&self, _table: &TableDef) -> bool {
        false
    }

    /// Whether reading `table` yields a fixed set of rows and ends (a file), so a query can use
    /// it as a lookup join's dimension table: loaded once, the stream side never kept.
    fn bounded(&self, _table: &TableDef) -> bool {
        false
    }

    /// What the connector promises when a pipeline resumes from a checkpoint, as a source of
    /// `table` or as its sink (see [`Delivery`]). By default it cannot take part in checkpoints.
    fn delivery(&self, _table: &TableDef, _role: Role) -> Delivery {
        Delivery::Unsupported
    }

    /// How the sink takes updating results; the default appends them with an `op` column.
    fn changelog(&self) -> ChangelogMode {
        ChangelogMode::OpColumn
    }

    /// Checks option values and the declared schema, without touching the outside world.
    fn validate(&self, table: &TableDef, role: Role) -> Result<()>;

    /// Checks that `table`, a [`ChangelogMode::Native`] sink, can apply updating results (an
    /// upserting sink needs the key to upsert and delete by).
    fn validate_updating(&self, _table: &TableDef) -> Result<()> {
        Ok(())
    }

    /// Checks the table against the outside world when a pipeline using it is planned: a
    /// database table exists with matching columns (or is created, if the options say so).
    /// May block on the network while it checks.
    fn check_external(&self, _table: &TableDef, _role: Role) -> Result<()> {
        Ok(())
    }

    /// Opens a source for a validated table. The default refuses: for write-only connectors.
    fn open_source(&self, table: &TableDef, _ctx: &SourceContext) -> Result<Box<dyn Source>> {
        Err(StreamError::Config(format!("table '{}': connector '{}' cannot be read from", table.name, self.name())))
    }

    /// Opens a sink for a validated table. The default refuses: for read-only connectors.
    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        Err(StreamError::Config(format!("table '{}': connector '{}' cannot be written to", table.name, self.name())))
    }
}

/// Looks connectors up by name.
pub trait ConnectorRegistry: Send + Sync {
    /// The connector called `name`, if there is one.
    fn get(&self, name: &str) -> Option<Arc<dyn Connector>>;
    /// All connector names, for error messages.
    fn names(&self) -> Vec<&'static str>;
}
