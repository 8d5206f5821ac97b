//! What the seeded generators (`netflow`, `transactions`, `http-log`) share: the options every
//! one takes, the check of declared columns against the columns a generator produces, and the
//! source that paces a generator to `'rows-per-second'`, projects the declared columns and
//! checkpoints its position.

use std::time::{Duration, Instant};

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use streamsql_engine::checkpoint::{position_of, position_state};
use streamsql_engine::connector::{OptionSpec, Role, Source, TableDef};
use streamsql_engine::operator::StateSnapshot;
use streamsql_engine::types::sql_name;
use streamsql_engine::{Result, StreamError};

use crate::format::parse::timestamp_millis;

pub(crate) const SRC: &[Role] = &[Role::Source];

/// The options of [`CommonOptions`], for a generator's option table.
pub(crate) const COMMON_OPTIONS: [OptionSpec; 3] = [
    OptionSpec {
        key: "rows-per-second",
        required: false,
        roles: SRC,
        help: "wall-clock rate limit; 0 (default) = as fast as possible",
    },
    OptionSpec {
        key: "number-of-rows",
        required: false,
        roles: SRC,
        help: "stop after this many rows (default: unbounded)",
    },
    OptionSpec {
        key: "seed",
        required: false,
        roles: SRC,
        help: "random seed (default 42); the same seed gives the same rows",
    },
];

/// The options every generator takes.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonOptions {
    /// Wall-clock pace; 0 = as fast as possible.
    pub rows_per_second: u64,
    pub number_of_rows: Option<u64>,
    pub seed: u64,
}

impl CommonOptions {
    pub fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let number_of_rows = match opts.get("number-of-rows") {
            None => None,
            Some(_) => Some(opts.parse("number-of-rows", 0u64, "a non-negative integer")?),
        };
        Ok(Self {
            rows_per_second: opts.parse("rows-per-second", 0u64, "a non-negative integer")?,
            number_of_rows,
            seed: opts.parse("seed", 42u64, "an integer")?,
        })
    }
}

/// `'start-time'` in epoch milliseconds, or `default`.
pub(crate) fn start_time(table: &TableDef, default: i64, example: &str) -> Result<i64> {
    match table.opts().get("start-time") {
        None => Ok(default),
        Some(text) => timestamp_millis(text).ok_or_else(|| {
            StreamError::Config(format!(
                "table '{}': option 'start-time' must be a timestamp like '{example}', got '{text}'",
                table.name
            ))
        }),
    }
}

/// The generator's column index for each declared column, checking names and types
/// (`generator` names it in messages: "the netflow generator").
pub(crate) fn column_mapping(table: &TableDef, full: &Schema, generator: &str) -> Result<Vec<usize>> {
    let describe = || {
        full.fields().iter().map(|f| format!("{} {}", f.name(), sql_name(f.data_type()))).collect::<Vec<_>>().join(", ")
    };
    table
        .schema
        .fields()
        .iter()
        .map(|declared| {
            let Some(index) = full.fields().iter().position(|f| f.name().eq_ignore_ascii_case(declared.name())) else {
                return Err(StreamError::Config(format!(
                    "table '{}': the {generator} has no column '{}'; its columns are {}",
                    table.name,
                    declared.name(),
                    describe()
                )));
            };
            let produced = full.field(index).data_type();
            if produced != declared.data_type() {
                return Err(StreamError::Config(format!(
                    "table '{}': column '{}' is declared {} but the {generator} produces {}",
                    table.name,
                    declared.name(),
                    sql_name(declared.data_type()),
                    sql_name(produced)
                )));
            }
            Ok(index)
        })
        .collect()
}

/// A deterministic generator of rows: the same options give the same rows, whatever the batch
/// sizes asked for.
pub trait RowGenerator: Send {
    /// Rows produced so far.
    fn rows_generated(&self) -> u64;

    /// The next at most `rows` rows of the generator's full schema, `None` when a bounded run is
    /// done.
    fn next_batch(&mut self, rows: usize) -> Option<RecordBatch>;
}

/// A generator as a source: paced to `'rows-per-second'`, projected to the declared columns.
pub(crate) struct GeneratorSource<G> {
    generator: G,
    rows_per_second: u64,
    columns: Vec<usize>,
    schema: SchemaRef,
    batch_size: usize,
    started: Option<Instant>,
    /// Rows generated before this run (a restore): not paced again.
    resumed_at: u64,
}

impl<G: RowGenerator> GeneratorSource<G> {
    pub(crate) fn new(
        generator: G,
        rows_per_second: u64,
        columns: Vec<usize>,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Self {
        Self {
            generator,
            rows_per_second,
            columns,
            schema,
            batch_size: batch_size.max(1),
            started: None,
            resumed_at: 0,
        }
    }
}

impl<G: RowGenerator> Source for GeneratorSource<G> {
    /// Rows generated so far: the generator is deterministic by seed, so a restore generates
    /// them again and throws them away.
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        Ok(position_state(self.generator.rows_generated()))
    }

    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        let position = position_of(&state)?;
        while self.generator.rows_generated() < position {
            let left = (position - self.generator.rows_generated()).min(8192) as usize;
            if self.generator.next_batch(left).is_none() {
                break;
            }
        }
        self.resumed_at = self.generator.rows_generated();
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let rows = if self.rows_per_second > 0 {
            // About twenty batches a second, so paced output flows smoothly.
            self.batch_size.min((self.rows_per_second as usize / 20).max(1))
        } else {
            self.batch_size
        };
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.rows_per_second > 0 {
            let paced = self.generator.rows_generated() - self.resumed_at;
            let due = Duration::from_secs_f64(paced as f64 / self.rows_per_second as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let Some(batch) = self.generator.next_batch(rows) else { return Ok(None) };
        let batch = batch.project(&self.columns)?;
        Ok(Some(RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?))
    }
}
