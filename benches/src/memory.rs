//! `'connector' = 'memory'`: replays pre-generated batches, so timing excludes data generation.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use streamsql_engine::connector::{Connector, OptionSpec, Role, Source, SourceContext, TableDef};
use streamsql_engine::{Result, StreamError};

pub struct MemoryConnector {
    pub batches: Arc<Vec<RecordBatch>>,
}

struct MemorySource {
    batches: Arc<Vec<RecordBatch>>,
    next: usize,
}

impl Source for MemorySource {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let batch = self.batches.get(self.next).cloned();
        self.next += 1;
        Ok(batch)
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
    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        match self.batches.first() {
            Some(b) if b.schema().fields().len() != table.schema.fields().len() => {
                Err(StreamError::Config("the memory table must declare the pre-generated columns".into()))
            }
            _ => Ok(()),
        }
    }
    fn open_source(&self, table: &TableDef, _ctx: &SourceContext) -> Result<Box<dyn Source>> {
        // Re-label the batches with the declared (nullable) schema once, outside the timed loop.
        let batches = self
            .batches
            .iter()
            .map(|b| RecordBatch::try_new(table.schema.clone(), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Box::new(MemorySource { batches: Arc::new(batches), next: 0 }))
    }
}
