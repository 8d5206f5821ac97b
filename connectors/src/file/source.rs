//! Reading JSON lines or CSV files into batches.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use serde_json::Value;
use streamsql_engine::connector::{Source, SourceContext, TableDef};
use streamsql_engine::metrics::PipelineMetrics;
use streamsql_engine::{Result, StreamError};

use super::FileOptions;
use crate::format::decode::{FieldValue, RecordDecoder};
use crate::format::{Format, OnError};

enum Reader {
    Json { lines: std::io::Lines<BufReader<File>>, line: u64, columns: HashMap<String, usize> },
    Csv { records: csv::StringRecordsIntoIter<File>, positions: Vec<Option<usize>> },
}

pub(super) struct FileSource {
    path: String,
    reader: Reader,
    decoder: RecordDecoder,
    on_error: OnError,
    batch_size: usize,
    metrics: Arc<PipelineMetrics>,
    done: bool,
}

impl FileSource {
    pub(super) fn open(table: &TableDef, options: FileOptions, ctx: &SourceContext) -> Result<Self> {
        let file = File::open(&options.path)
            .map_err(|e| StreamError::io(format!("table '{}': cannot open '{}'", table.name, options.path), e))?;
        let reader = match options.format {
            Format::Json => Reader::Json {
                lines: BufReader::new(file).lines(),
                line: 0,
                columns: table.schema.fields().iter().enumerate().map(|(i, f)| (f.name().clone(), i)).collect(),
            },
            Format::Csv => {
                let mut csv = csv::ReaderBuilder::new().delimiter(options.delimiter).flexible(true).from_reader(file);
                let header = csv
                    .headers()
                    .map_err(|e| StreamError::Data(format!("{}:1: cannot read the CSV header: {e}", options.path)))?
                    .clone();
                let positions: Vec<Option<usize>> =
                    table.schema.fields().iter().map(|f| header.iter().position(|h| h.trim() == f.name())).collect();
                if let Some(missing) = table.schema.fields().iter().zip(&positions).find(|(_, p)| p.is_none()) {
                    return Err(StreamError::Data(format!(
                        "{}:1: the CSV header has no column '{}' (header: {})",
                        options.path,
                        missing.0.name(),
                        header.iter().collect::<Vec<_>>().join(", ")
                    )));
                }
                Reader::Csv { records: csv.into_records(), positions }
            }
        };
        Ok(Self {
            path: options.path,
            reader,
            decoder: RecordDecoder::new(table.schema.clone())?,
            on_error: options.on_error,
            batch_size: ctx.batch_size.max(1),
            metrics: ctx.metrics.clone(),
            done: false,
        })
    }

    /// Applies the on-error policy to a bad record at `line`.
    fn bad_record(&self, line: u64, reason: String) -> Result<()> {
        match self.on_error {
            OnError::Fail => Err(StreamError::Data(format!(
                "{}:{line}: {reason} (set 'format.on-error' = 'skip' to skip such records)",
                self.path
            ))),
            OnError::Skip => {
                PipelineMetrics::add(&self.metrics.bad_records, 1);
                Ok(())
            }
        }
    }

    /// Reads one record; `false` at the end of the file.
    fn read_record(&mut self) -> Result<bool> {
        match &mut self.reader {
            Reader::Json { lines, line, columns } => {
                let Some(text) = lines.next() else { return Ok(false) };
                *line += 1;
                let n = *line;
                let text = text.map_err(|e| StreamError::io(format!("{}:{n}", self.path), e))?;
                if text.trim().is_empty() {
                    return Ok(true);
                }
                let outcome = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(object)) => {
                        let mut fields: Vec<Option<&Value>> = vec![None; columns.len()];
                        for (key, value) in &object {
                            if let Some(&i) = columns.get(key) {
                                fields[i] = Some(value);
                            }
                        }
                        self.decoder.push(|i| fields[i].map_or(FieldValue::Missing, FieldValue::Json))
                    }
                    Ok(_) => Err("expected a JSON object".to_string()),
                    Err(e) => Err(format!("invalid JSON: {e}")),
                };
                if let Err(reason) = outcome {
                    self.bad_record(n, reason)?;
                }
                Ok(true)
            }
            Reader::Csv { records, positions } => {
                let Some(record) = records.next() else { return Ok(false) };
                let outcome = match record {
                    Ok(record) => {
                        let n = record.position().map_or(0, |p| p.line());
                        let result = self.decoder.push(|i| match positions[i].and_then(|p| record.get(p)) {
                            Some(text) => FieldValue::Text(text),
                            None => FieldValue::Missing,
                        });
                        result.map_err(|reason| (n, reason))
                    }
                    Err(e) => Err((e.position().map_or(0, |p| p.line()), format!("invalid CSV: {e}"))),
                };
                if let Err((n, reason)) = outcome {
                    self.bad_record(n, reason)?;
                }
                Ok(true)
            }
        }
    }
}

impl Source for FileSource {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while !self.done && self.decoder.rows() < self.batch_size {
            if !self.read_record()? {
                self.done = true;
            }
        }
        if self.decoder.rows() == 0 {
            return Ok(None);
        }
        Ok(Some(self.decoder.finish()?))
    }
}
