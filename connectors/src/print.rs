//! `'connector' = 'print'`: writes rows to stdout as Flink does: `identifier> +I[v1, v2, ...]`.

use std::io::Write;

use arrow::record_batch::RecordBatch;
use streamsql_engine::connector::{
    ChangelogMode, Connector, Delivery, OptionSpec, Role, Sink, TableDef, split_changes,
};
use streamsql_engine::operators::aggregate::ChangeOp;
use streamsql_engine::{Result, StreamError};

use crate::format::RowFormatter;

pub struct PrintConnector;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "print-identifier",
        required: false,
        roles: &[Role::Sink],
        help: "prefix of every printed line (default: the table name)",
    },
    OptionSpec {
        key: "standard-error",
        required: false,
        roles: &[Role::Sink],
        help: "'true' prints to stderr instead of stdout",
    },
];

struct PrintSink {
    prefix: String,
    /// Columns of the table; a batch with one more carries the changelog op.
    columns: usize,
    stderr: bool,
}

impl Sink for PrintSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        // Updating results carry a trailing op column (the changelog), shown as Flink shows it.
        let (batch, ops) = split_changes(batch, self.columns)?;
        let rows = RowFormatter::new(&batch, "NULL")?;
        let mut text = String::new();
        for row in 0..batch.num_rows() {
            text.push_str(&self.prefix);
            text.push_str(match &ops {
                Some(ops) => ChangeOp::from_i8(ops.value(row))?.symbol(),
                None => "+I",
            });
            text.push('[');
            text.push_str(&rows.values(row).join(", "));
            text.push_str("]\n");
        }
        let result = if self.stderr {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            std::io::stdout().lock().write_all(text.as_bytes())
        };
        match result {
            // A closed pipe (`streamsql -f x.sql | head`) ends output, not the pipeline.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(|e| StreamError::io("writing to the terminal", e)),
        }
    }

    fn finish(&mut self) -> Result<()> {
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

impl Connector for PrintConnector {
    fn name(&self) -> &'static str {
        "print"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    /// Rows after the last checkpoint are printed again after a restart.
    fn delivery(&self, _table: &TableDef, role: Role) -> Delivery {
        if role == Role::Sink { Delivery::AtLeastOnce } else { Delivery::Unsupported }
    }

    fn supports(&self, role: Role) -> bool {
        role == Role::Sink
    }
    fn changelog(&self) -> ChangelogMode {
        ChangelogMode::Native
    }
    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        table.opts().parse("standard-error", false, "'true' or 'false'")?;
        Ok(())
    }
    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        let opts = table.opts();
        let identifier = opts.get("print-identifier").unwrap_or(&table.name);
        Ok(Box::new(PrintSink {
            prefix: if identifier.is_empty() { String::new() } else { format!("{identifier}> ") },
            columns: table.schema.fields().len(),
            stderr: opts.parse("standard-error", false, "'true' or 'false'")?,
        }))
    }
}
