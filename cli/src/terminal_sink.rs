//! A sink that shows query rows on the terminal in the `--format` the user chose.
//!
//! The SQL layer plans a bare `SELECT` with a `'print'` sink; the binary swaps in this one
//! ([`show_on_terminal`]) so that terminal concerns stay out of the `sql` crate.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use streamsql_connectors::format::encode::RecordWriter;
use streamsql_connectors::format::{Format, RowFormatter};
use streamsql_engine::connector::{Connector, OptionSpec, Role, Sink, TableDef};
use streamsql_engine::pipeline::{BoundTable, PipelineSpec};
use streamsql_engine::{Result, StreamError};

use crate::output::{OutputFormat, render_table};

/// Replaces the sink of a planned query by the terminal, in `format`.
pub fn show_on_terminal(spec: &mut PipelineSpec, format: OutputFormat) {
    let table = TableDef {
        name: "terminal".into(),
        schema: spec.sink.table.schema.clone(),
        options: BTreeMap::from([("connector".to_string(), TERMINAL.to_string())]),
        watermark: None,
        primary_key: Vec::new(),
        computed: Vec::new(),
    };
    // An updating query's changes are shown with their op column, as the print sink shows them.
    let table = if spec.is_updating() { table.with_op_column() } else { table };
    spec.sink = BoundTable { table, connector: Arc::new(TerminalConnector { format }) };
}

/// Shows finished query results (a query over live tables) in `format`.
pub fn show_batches(format: OutputFormat, schema: SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let table = TableDef {
        name: "terminal".into(),
        schema,
        options: BTreeMap::new(),
        watermark: None,
        primary_key: Vec::new(),
        computed: Vec::new(),
    };
    let mut sink = TerminalConnector { format }.open_sink(&table)?;
    if batches.iter().all(|b| b.num_rows() == 0) && format == OutputFormat::Table {
        outln!("(no rows)");
    }
    for batch in batches {
        sink.write(batch)?;
    }
    sink.finish()
}

const TERMINAL: &str = "terminal";

struct TerminalConnector {
    format: OutputFormat,
}

impl Connector for TerminalConnector {
    fn name(&self) -> &'static str {
        TERMINAL
    }
    fn options(&self) -> &'static [OptionSpec] {
        &[]
    }
    fn supports(&self, role: Role) -> bool {
        role == Role::Sink
    }
    fn validate(&self, _table: &TableDef, _role: Role) -> Result<()> {
        Ok(())
    }
    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        Ok(match self.format {
            OutputFormat::Table => Box::new(TableSink),
            OutputFormat::Csv => {
                Box::new(RecordSink(RecordWriter::new(Format::Csv, Stdout, table.schema.clone(), b',')))
            }
            OutputFormat::Json => {
                Box::new(RecordSink(RecordWriter::new(Format::Json, Stdout, table.schema.clone(), b',')))
            }
        })
    }
}

/// Standard output, where a closed pipe (`streamsql -e ... | head`) ends output quietly.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::io::stdout().lock().write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            other => other,
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match std::io::stdout().lock().flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}

/// One table per arriving batch, so rows show as soon as they exist.
struct TableSink;

impl Sink for TableSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let cells = RowFormatter::new(batch, "NULL")?;
        let header: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        let rows: Vec<Vec<String>> = (0..batch.num_rows()).map(|row| cells.values(row)).collect();
        let text = format!("{}\n", render_table(&header, &rows));
        let mut out = Stdout;
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| StreamError::io("writing to the terminal", e))
    }

    fn finish(&mut self) -> Result<()> {
        Stdout.flush().map_err(|e| StreamError::io("writing to the terminal", e))
    }
}

/// CSV or JSON lines, written as each batch arrives.
struct RecordSink(RecordWriter<Stdout>);

impl Sink for RecordSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.0.write(batch)?;
        self.0.get_mut().flush().map_err(|e| StreamError::io("writing to the terminal", e))
    }

    fn finish(&mut self) -> Result<()> {
        self.0.finish()?;
        self.0.get_mut().flush().map_err(|e| StreamError::io("writing to the terminal", e))
    }
}
