//! `'connector' = 'memory'`: replays pre-generated batches, so timing excludes data generation.
//!
//! With `cycles` > 1 the batches are replayed that many times, event times shifted past the
//! previous cycle's (long runs without the memory of long inputs); with `hold` the source stays
//! open, sending nothing, that long after its last batch (so a checkpoint can see the final
//! state). Positions are checkpointed as the number of batches returned.
//!
//! With `partitioned`, the table is read by as many source instances as the pipeline's
//! parallelism, as a topic with one partition per instance would be: instance `i` of `n` reads
//! batches `i`, `i + n`, `i + 2n`, ... (DataFusion's batch scan of the same batches splits them
//! among its partitions the same way).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, TimestampMillisecondArray};
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use streamsql_engine::checkpoint::{Delivery, position_of, position_state};
use streamsql_engine::connector::{Connector, OptionSpec, Pulled, Role, Source, SourceContext, TableDef};
use streamsql_engine::operator::StateSnapshot;
use streamsql_engine::{Result, StreamError};

pub struct MemoryConnector {
    pub batches: Arc<Vec<RecordBatch>>,
    pub cycles: usize,
    pub hold: Duration,
    pub partitioned: bool,
}

impl MemoryConnector {
    pub fn new(batches: Vec<RecordBatch>) -> Self {
        Self { batches: Arc::new(batches), cycles: 1, hold: Duration::ZERO, partitioned: false }
    }
}

struct MemorySource {
    batches: Arc<Vec<RecordBatch>>,
    /// Batches this instance returned so far, over all cycles.
    returned: usize,
    /// This instance reads every `instances`-th batch from the `instance`-th on.
    instance: usize,
    instances: usize,
    cycles: usize,
    /// The event-time column and how far each cycle shifts it.
    event_time: Option<(usize, i64)>,
    hold: Duration,
    ended_at: Option<Instant>,
}

impl MemorySource {
    /// The `returned`-th batch of this instance.
    fn batch(&self, returned: usize) -> Result<Option<RecordBatch>> {
        let index = self.instance + returned * self.instances;
        let n = self.batches.len().max(1);
        if index >= n * self.cycles {
            return Ok(None);
        }
        let (cycle, i) = (index / n, index % n);
        let batch = self.batches[i].clone();
        let Some((column, span)) = self.event_time.filter(|_| cycle > 0) else { return Ok(Some(batch)) };
        let shift = span * cycle as i64;
        let ts = batch.column(column).as_primitive::<TimestampMillisecondType>();
        let shifted: TimestampMillisecondArray = ts.unary(|t| t + shift);
        let mut columns = batch.columns().to_vec();
        columns[column] = Arc::new(shifted);
        Ok(Some(RecordBatch::try_new(batch.schema(), columns)?))
    }
}

impl Source for MemorySource {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let batch = self.batch(self.returned)?;
        self.returned += 1;
        Ok(batch)
    }

    fn pull(&mut self) -> Result<Pulled> {
        if let Some(batch) = self.batch(self.returned)? {
            self.returned += 1;
            return Ok(Pulled::Rows { partition: 0, batch });
        }
        let ended = *self.ended_at.get_or_insert_with(Instant::now);
        if ended.elapsed() < self.hold {
            std::thread::sleep(Duration::from_millis(5));
            return Ok(Pulled::Nothing);
        }
        Ok(Pulled::End)
    }

    fn snapshot(&mut self) -> Result<StateSnapshot> {
        Ok(position_state(self.returned as u64))
    }

    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        self.returned = position_of(&state)? as usize;
        Ok(())
    }
}

impl Connector for MemoryConnector {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn options(&self) -> &'static [OptionSpec] {
        &[]
    }
    fn supports(&self, role: Role) -> bool {
        role == Role::Source
    }
    fn partitioned(&self, _table: &TableDef) -> bool {
        self.partitioned
    }
    fn delivery(&self, _table: &TableDef, _role: Role) -> Delivery {
        Delivery::ExactlyOnce
    }
    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        match self.batches.first() {
            Some(b) if b.schema().fields().len() != table.schema.fields().len() => {
                Err(StreamError::Config("the memory table must declare the pre-generated columns".into()))
            }
            _ => Ok(()),
        }
    }
    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        // Re-label the batches with the declared (nullable) schema once, outside the timed loop.
        let batches = self
            .batches
            .iter()
            .map(|b| RecordBatch::try_new(table.schema.clone(), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // Each cycle starts 10 s after the previous one's last event time.
        let cycles = self.cycles.max(1);
        let event_time = table.watermark.as_ref().map(|w| w.column).filter(|_| cycles > 1).and_then(|column| {
            let (mut low, mut high) = (i64::MAX, i64::MIN);
            for batch in &batches {
                let ts = batch.column(column).as_primitive::<TimestampMillisecondType>();
                low = low.min(arrow::compute::min(ts).unwrap_or(i64::MAX));
                high = high.max(arrow::compute::max(ts).unwrap_or(i64::MIN));
            }
            (low <= high).then(|| (column, high - low + 10_000))
        });
        Ok(Box::new(MemorySource {
            batches: Arc::new(batches),
            returned: 0,
            instance: ctx.instance,
            instances: ctx.instances.max(1),
            cycles,
            event_time,
            hold: self.hold,
            ended_at: None,
        }))
    }
}
