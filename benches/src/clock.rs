//! `'connector' = 'clock'`: rows at a steady wall-clock rate, each stamped with the wall-clock
//! time its batch was made, for the benchmarks that measure how long an event takes to reach a
//! live table.
//!
//! Columns are filled by name: `k` (BIGINT, the row's sequence number modulo `'keys'`),
//! `emitted_at` (BIGINT, ms since the epoch), `emitted_us` (BIGINT, µs since the epoch) and `ts`
//! (TIMESTAMP(3), the same instant, for `WATERMARK FOR ts`). The source is partitioned: at
//! parallelism P each of its P instances makes `rows-per-second / P` rows, and the sequence
//! numbers interleave. Batches are made every half millisecond or so, with the rows due by then.
//!
//! A [`ReleaseLog`] records when each instance handed each batch over, so a benchmark knows when
//! the source's watermark passed a given time (the watermark follows the batch's `ts`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use streamsql_engine::StreamError;
use streamsql_engine::connector::{Connector, OptionSpec, Role, Source, SourceContext, TableDef};

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// A source instance: its table and its number.
type Instance = (String, usize);

/// When each source instance handed over each batch (µs since the epoch, ascending), per
/// table and instance.
#[derive(Default)]
pub struct ReleaseLog {
    batches: Mutex<Vec<(Instance, Vec<i64>)>>,
}

impl ReleaseLog {
    fn record(&self, table: &str, instance: usize, at_us: i64) {
        let Ok(mut batches) = self.batches.lock() else { return };
        match batches.iter_mut().find(|((t, i), _)| t == table && *i == instance) {
            Some((_, times)) => times.push(at_us),
            None => batches.push(((table.to_string(), instance), vec![at_us])),
        }
    }

    /// The first moment (µs) at which every instance of every logged table had handed over a
    /// batch stamped at `ms` or later, that is when the sources' watermarks all passed
    /// `ms - delay`; `None` if some instance never got there.
    pub fn all_reached(&self, ms: i64) -> Option<i64> {
        let batches = self.batches.lock().ok()?;
        let mut latest = None;
        for (_, times) in batches.iter() {
            // A batch is stamped with the millisecond it was made in.
            let first = times.partition_point(|&us| us.div_euclid(1000) < ms);
            latest = latest.max(Some(*times.get(first)?));
        }
        latest
    }
}

#[derive(Default)]
pub struct ClockConnector {
    log: Option<Arc<ReleaseLog>>,
}

impl ClockConnector {
    /// A clock whose sources record their batches in `log`.
    pub fn logged(log: Arc<ReleaseLog>) -> Self {
        Self { log: Some(log) }
    }
}

const CLOCK_OPTIONS: &[OptionSpec] = &[
    OptionSpec { key: "rows-per-second", required: true, roles: &[Role::Source], help: "steady input rate" },
    OptionSpec { key: "seconds", required: true, roles: &[Role::Source], help: "how long to produce rows" },
    OptionSpec {
        key: "keys",
        required: false,
        roles: &[Role::Source],
        help: "k is the row's sequence number modulo this (default 1000; 0: the sequence number itself)",
    },
];

#[derive(Clone, Copy)]
enum Column {
    K,
    EmittedAtMs,
    EmittedUs,
    Ts,
}

struct ClockSource {
    table: String,
    rate: f64,
    keys: i64,
    instance: usize,
    instances: usize,
    started: Instant,
    until: Duration,
    produced: u64,
    columns: Vec<Column>,
    schema: SchemaRef,
    log: Option<Arc<ReleaseLog>>,
}

impl Source for ClockSource {
    fn next_batch(&mut self) -> streamsql_engine::Result<Option<RecordBatch>> {
        loop {
            let elapsed = self.started.elapsed();
            if elapsed >= self.until {
                return Ok(None);
            }
            let due = (elapsed.as_secs_f64() * self.rate) as u64;
            if due > self.produced {
                let n = (due - self.produced).min(8192) as usize;
                let (step, offset) = (self.instances as i64, self.instance as i64);
                let first = self.produced as i64;
                self.produced += n as u64;
                let sequence = (first..first + n as i64).map(|i| i * step + offset);
                let at_us = now_us();
                let at_ms = at_us.div_euclid(1000);
                let columns = self
                    .columns
                    .iter()
                    .map(|column| -> ArrayRef {
                        match column {
                            Column::K if self.keys == 0 => Arc::new(Int64Array::from_iter_values(sequence.clone())),
                            Column::K => {
                                Arc::new(Int64Array::from_iter_values(sequence.clone().map(|i| i % self.keys)))
                            }
                            Column::EmittedAtMs => Arc::new(Int64Array::from_value(at_ms, n)),
                            Column::EmittedUs => Arc::new(Int64Array::from_value(at_us, n)),
                            Column::Ts => Arc::new(TimestampMillisecondArray::from_value(at_ms, n)),
                        }
                    })
                    .collect();
                let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
                if let Some(log) = &self.log {
                    log.record(&self.table, self.instance, at_us);
                }
                return Ok(Some(batch));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

impl Connector for ClockConnector {
    fn name(&self) -> &'static str {
        "clock"
    }
    fn options(&self) -> &'static [OptionSpec] {
        CLOCK_OPTIONS
    }
    fn supports(&self, role: Role) -> bool {
        role == Role::Source
    }
    fn default_schema(&self) -> Option<SchemaRef> {
        Some(Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("emitted_at", DataType::Int64, true),
        ])))
    }
    fn partitioned(&self, _table: &TableDef) -> bool {
        true
    }
    fn validate(&self, table: &TableDef, _role: Role) -> streamsql_engine::Result<()> {
        columns(&table.schema).map(|_| ())
    }
    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> streamsql_engine::Result<Box<dyn Source>> {
        let opts = table.opts();
        let instances = ctx.instances.max(1);
        let rate: u64 = opts.parse("rows-per-second", 1000, "a number")?;
        Ok(Box::new(ClockSource {
            table: table.name.clone(),
            rate: rate as f64 / instances as f64,
            keys: opts.parse("keys", 1000, "a number")?,
            instance: ctx.instance,
            instances,
            until: Duration::from_secs(opts.parse("seconds", 10, "a number")?),
            started: Instant::now(),
            produced: 0,
            columns: columns(&table.schema)?,
            schema: table.schema.clone(),
            log: self.log.clone(),
        }))
    }
}

fn columns(schema: &Schema) -> streamsql_engine::Result<Vec<Column>> {
    schema
        .fields()
        .iter()
        .map(|field| {
            let column = match field.name().as_str() {
                "k" => Column::K,
                "emitted_at" => Column::EmittedAtMs,
                "emitted_us" => Column::EmittedUs,
                "ts" => Column::Ts,
                other => {
                    return Err(StreamError::Config(format!(
                        "the clock has no column '{other}' (it has k, emitted_at, emitted_us and ts)"
                    )));
                }
            };
            let expected = match column {
                Column::Ts => DataType::Timestamp(TimeUnit::Millisecond, None),
                _ => DataType::Int64,
            };
            if field.data_type() != &expected {
                return Err(StreamError::Config(format!(
                    "the clock's column '{other}' is {expected}",
                    other = field.name()
                )));
            }
            Ok(column)
        })
        .collect()
}
