//! What the seeded generators (`netflow`, `transactions`, `http-log`) share: the options every
//! one takes, the check of declared columns against the columns a generator produces, the
//! source that paces a generator to `'rows-per-second'`, projects the declared columns and
//! checkpoints its position, and the connector around it ([`GeneratorConnector`], given a
//! [`GeneratorKind`]).

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use streamsql_engine::checkpoint::{position_of, position_state};
use streamsql_engine::connector::{Connector, Delivery, OptionSpec, Role, Source, SourceContext, TableDef};
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

/// `n` addresses of public-looking IPv4 hosts, drawn from `rng`.
pub(crate) fn random_hosts(rng: &mut rand::rngs::SmallRng, n: usize) -> Vec<String> {
    use rand::Rng;
    (0..n)
        .map(|_| {
            format!(
                "{}.{}.{}.{}",
                rng.random_range(11..=223),
                rng.random_range(0..=255),
                rng.random_range(0..=255),
                rng.random_range(1..=254)
            )
        })
        .collect()
}

/// Running totals of `weights`, to draw an index with probability proportional to its weight
/// (`cumulative.partition_point(|&c| c <= draw)` for a draw below the last total).
pub(crate) fn cumulative_weights(weights: impl Iterator<Item = u32>) -> Vec<u32> {
    weights
        .scan(0, |total, weight| {
            *total += weight;
            Some(*total)
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

/// What makes a seeded generator a connector: its name, options, columns and generator.
pub trait GeneratorKind: Send + Sync + 'static {
    /// The value of `'connector'`.
    const NAME: &'static str;
    /// How messages name it: "the netflow generator".
    const DESCRIPTION: &'static str;
    type Options;
    type Generator: RowGenerator + 'static;

    fn options() -> &'static [OptionSpec];
    /// Every column the generator produces.
    fn schema() -> SchemaRef;
    fn parse(table: &TableDef) -> Result<Self::Options>;
    /// The wall-clock pace of `options`; 0 = as fast as possible.
    fn rows_per_second(options: &Self::Options) -> u64;
    fn generator(options: Self::Options) -> Self::Generator;
}

/// A generator as a connector: a source only, deterministic by seed (so checkpointed by its
/// position), with any subset of its columns declared.
pub struct GeneratorConnector<K>(PhantomData<K>);

impl<K> Default for GeneratorConnector<K> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<K: GeneratorKind> Connector for GeneratorConnector<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn options(&self) -> &'static [OptionSpec] {
        K::options()
    }

    fn supports(&self, role: Role) -> bool {
        role == Role::Source
    }

    /// Deterministic by seed: a restore generates the same rows again from its position.
    fn delivery(&self, _table: &TableDef, _role: Role) -> Delivery {
        Delivery::ExactlyOnce
    }

    fn default_schema(&self) -> Option<SchemaRef> {
        Some(K::schema())
    }

    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        K::parse(table)?;
        column_mapping(table, &K::schema(), K::DESCRIPTION)?;
        Ok(())
    }

    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        let options = K::parse(table)?;
        let columns = column_mapping(table, &K::schema(), K::DESCRIPTION)?;
        let rate = K::rows_per_second(&options);
        Ok(Box::new(GeneratorSource::new(K::generator(options), rate, columns, table.schema.clone(), ctx.batch_size)))
    }
}

/// Every row a generator makes, asked for `batch` rows at a time, as one batch (for tests).
#[cfg(test)]
pub(crate) fn generate_all(mut generator: impl RowGenerator, batch: usize, schema: &SchemaRef) -> RecordBatch {
    let mut batches = Vec::new();
    while let Some(b) = generator.next_batch(batch) {
        batches.push(b);
    }
    arrow::compute::concat_batches(schema, &batches).expect("batches of one schema")
}
