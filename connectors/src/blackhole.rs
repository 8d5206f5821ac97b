//! `'connector' = 'blackhole'`: a sink that discards every row (for benchmarks and dry runs).

use arrow::record_batch::RecordBatch;
use streamsql_engine::Result;
use streamsql_engine::connector::{Connector, Delivery, OptionSpec, Role, Sink, TableDef};

pub struct BlackholeConnector;

struct BlackholeSink;

impl Sink for BlackholeSink {
    fn write(&mut self, _batch: &RecordBatch) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Connector for BlackholeConnector {
    fn name(&self) -> &'static str {
        "blackhole"
    }
    fn options(&self) -> &'static [OptionSpec] {
        &[]
    }
    /// Discards rows, so a replay discards them again.
    fn delivery(&self, _table: &TableDef, role: Role) -> Delivery {
        if role == Role::Sink { Delivery::AtLeastOnce } else { Delivery::Unsupported }
    }

    fn supports(&self, role: Role) -> bool {
        role == Role::Sink
    }
    fn validate(&self, _table: &TableDef, _role: Role) -> Result<()> {
        Ok(())
    }
    fn open_sink(&self, _table: &TableDef) -> Result<Box<dyn Sink>> {
        Ok(Box::new(BlackholeSink))
    }
}
