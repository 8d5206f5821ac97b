//! Writing batches to a JSON lines or CSV file.

use std::fs::File;
use std::io::{BufWriter, Write};

use arrow::record_batch::RecordBatch;
use streamsql_engine::connector::{Sink, TableDef};
use streamsql_engine::{Result, StreamError};

use super::FileOptions;
use crate::format::encode::RecordWriter;

pub(super) struct FileSink {
    path: String,
    writer: RecordWriter<BufWriter<File>>,
}

impl FileSink {
    pub(super) fn create(table: &TableDef, options: FileOptions) -> Result<Self> {
        if let Some(dir) = std::path::Path::new(&options.path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StreamError::io(format!("table '{}': cannot create '{}'", table.name, dir.display()), e)
            })?;
        }
        let file = File::create(&options.path)
            .map_err(|e| StreamError::io(format!("table '{}': cannot create '{}'", table.name, options.path), e))?;
        Ok(Self {
            writer: RecordWriter::new(options.format, BufWriter::new(file), table.schema.clone(), options.delimiter),
            path: options.path,
        })
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch)
    }

    fn finish(&mut self) -> Result<()> {
        self.writer.finish()?;
        self.writer.get_mut().flush().map_err(|e| StreamError::io(format!("writing '{}'", self.path), e))
    }
}
