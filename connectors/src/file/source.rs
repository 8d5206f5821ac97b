//! Reading JSON lines or CSV files into batches.
//!
//! Every non-blank line of a JSON file, and every CSV record after the header (see
//! [`super::csv_records`]), either becomes a row or is a bad record: under
//! `'format.on-error' = 'skip'` it is counted in `bad_records`, under `'fail'` it stops the
//! pipeline with its `file:line`. So rows out + bad records = records in, exactly. A file that
//! shrinks while it is read is an error under both policies (see [`super::lines`]).
//!
//! Columns are found by their names as declared: JSON keys case-sensitively, with the rows
//! lacking a declared key (read as NULL) reported when the input ends; CSV header fields
//! exactly or, failing that, in other case. The values of JSON keys that are no column are
//! skipped: only their JSON syntax is checked.

use std::fs::File;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use serde_json::Value;
use streamsql_engine::checkpoint::{position_of, position_state};
use streamsql_engine::connector::{Source, SourceContext, TableDef};
use streamsql_engine::metrics::PipelineMetrics;
use streamsql_engine::operator::StateSnapshot;
use streamsql_engine::{Result, StreamError};

use super::FileOptions;
use super::csv_records::{BadRecord, CsvRecords};
use super::lines::{Line, LineReader};
use crate::format::decode::{FieldValue, JsonColumns, JsonField, RecordDecoder, declared_name};
use crate::format::{Format, OnError};

enum Reader {
    Json {
        lines: LineReader,
        columns: JsonColumns,
        /// The buffer each line is read into.
        line: Line,
    },
    /// `positions[i]`: the header field of column `i`; `fields`: how many the header has.
    Csv { records: CsvRecords, positions: Vec<usize>, fields: usize },
}

pub(super) struct FileSource {
    table: String,
    path: String,
    reader: Reader,
    decoder: RecordDecoder,
    on_error: OnError,
    batch_size: usize,
    metrics: Arc<PipelineMetrics>,
    done: bool,
    /// Whether the rows missing JSON fields were reported.
    reported: bool,
    /// Records (lines, CSV records) read so far: the position a checkpoint keeps.
    records: u64,
    /// Reading again up to a checkpoint's position: bad records were counted the first time.
    replaying: bool,
}

impl FileSource {
    pub(super) fn open(table: &TableDef, options: FileOptions, ctx: &SourceContext) -> Result<Self> {
        let file = File::open(&options.path)
            .map_err(|e| StreamError::io(format!("table '{}': cannot open '{}'", table.name, options.path), e))?;
        let reader = match options.format {
            Format::Json => Reader::Json {
                lines: LineReader::new(&options.path, file, usize::MAX)?,
                columns: JsonColumns::new(&table.schema).with_metrics(ctx.metrics.clone()),
                line: Line::default(),
            },
            Format::Csv => {
                let mut records = CsvRecords::new(&options.path, file, options.delimiter, options.max_record_bytes)?;
                let (header_line, header) = records.header(&options.path)?;
                let mut positions = Vec::with_capacity(table.schema.fields().len());
                for field in table.schema.fields() {
                    let name = declared_name(field);
                    let position = header.iter().position(|h| h == name).or_else(|| {
                        let folded: Vec<usize> =
                            (0..header.len()).filter(|&i| header[i].eq_ignore_ascii_case(name)).collect();
                        let [only] = folded[..] else { return None };
                        tracing::warn!(
                            "table '{}': column \"{name}\" is read from CSV header field \"{}\" ({}), which differs in case",
                            table.name,
                            header[only],
                            options.path
                        );
                        Some(only)
                    });
                    let Some(position) = position else {
                        return Err(StreamError::Data(format!(
                            "{}:{header_line}: the CSV header has no column '{name}' (header: {})",
                            options.path,
                            header.join(", ")
                        )));
                    };
                    positions.push(position);
                }
                Reader::Csv { records, positions, fields: header.len() }
            }
        };
        Ok(Self {
            table: table.name.clone(),
            path: options.path,
            reader,
            decoder: RecordDecoder::new(table.schema.clone())?,
            on_error: options.on_error,
            batch_size: ctx.batch_size.max(1),
            metrics: ctx.metrics.clone(),
            done: false,
            reported: false,
            records: 0,
            replaying: false,
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
                if !self.replaying {
                    PipelineMetrics::add(&self.metrics.bad_records, 1);
                }
                Ok(())
            }
        }
    }

    /// Reads one record; `false` at the end of the file.
    fn read_record(&mut self) -> Result<bool> {
        let outcome = match &mut self.reader {
            Reader::Json { lines, columns, line } => {
                if !lines.next_line_into(line)? {
                    return Ok(false);
                }
                if line.is_blank(None) {
                    return Ok(true);
                }
                decode_json(&mut self.decoder, columns, &self.table, &line.bytes)
                    .map_err(|reason| (line.number, reason))
            }
            Reader::Csv { records, positions, fields } => match records.next_record(*fields)? {
                None => return Ok(false),
                Some(Err(BadRecord { line, reason })) => Err((line, reason)),
                Some(Ok(record)) => self
                    .decoder
                    .push(|i| record.fields.get(positions[i]).map_or(FieldValue::Missing, FieldValue::Text))
                    .map_err(|reason| (record.line, reason)),
            },
        };
        if let Err((line, reason)) = outcome {
            self.bad_record(line, reason)?;
        }
        self.records += 1;
        Ok(true)
    }

    /// Says how many rows lacked a declared JSON field, once, when reading ends.
    fn report_missing_fields(&mut self) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        if let Reader::Json { columns, .. } = &self.reader
            && let Some(summary) = columns.missing_summary()
        {
            tracing::warn!("table '{}' ({}): {summary}", self.table, self.path);
        }
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        self.report_missing_fields();
    }
}

/// Decodes one JSON line into `decoder`; keys that are not columns are ignored.
fn decode_json(
    decoder: &mut RecordDecoder,
    columns: &mut JsonColumns,
    table: &str,
    bytes: &[u8],
) -> std::result::Result<(), String> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1))?;
    if let Some(values) = columns.read_object(text, table) {
        decoder.push(|i| values[i].as_ref().map_or(FieldValue::Missing, JsonField::field))?;
        columns.count_missing_of(|i| values[i].is_some());
        return Ok(());
    }
    // Not an object: parsed again to say what it is.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => {
            let fields = columns.fields(&object, table);
            decoder.push(|i| fields[i].map_or(FieldValue::Missing, FieldValue::Json))?;
            columns.count_missing(&fields);
            Ok(())
        }
        Ok(_) => Err("expected a JSON object".to_string()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

impl Source for FileSource {
    /// Records read so far (every one of them is in a batch already returned).
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        Ok(position_state(self.records))
    }

    /// Reads the records before the position again and drops them.
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        let position = position_of(&state)?;
        self.replaying = true;
        if let Reader::Json { columns, .. } = &mut self.reader {
            columns.set_counting(false);
        }
        while self.records < position {
            if !self.read_record()? {
                self.done = true;
                break;
            }
            if self.decoder.rows() >= self.batch_size {
                self.decoder.finish()?;
            }
        }
        if self.decoder.rows() > 0 {
            self.decoder.finish()?;
        }
        self.replaying = false;
        if let Reader::Json { columns, .. } = &mut self.reader {
            columns.set_counting(true);
        }
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while !self.done && self.decoder.rows() < self.batch_size {
            if !self.read_record()? {
                self.done = true;
            }
        }
        if self.decoder.rows() == 0 {
            self.report_missing_fields();
            return Ok(None);
        }
        Ok(Some(self.decoder.finish()?))
    }
}
