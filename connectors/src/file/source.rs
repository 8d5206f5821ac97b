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
//!
//! At a parallelism above 1 a regular file is decoded on that many threads, a few MiB at a time,
//! and its rows come out in the file's order (see [`super::parallel`]): the same rows, bad
//! records and positions as reading it on one thread.

use std::fs::File;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use streamsql_engine::checkpoint::{position_of, position_state};
use streamsql_engine::connector::{Source, SourceContext, TableDef};
use streamsql_engine::metrics::PipelineMetrics;
use streamsql_engine::operator::StateSnapshot;
use streamsql_engine::{Result, StreamError};

use super::FileOptions;
use super::csv_records::{BadRecord, CsvRecords};
use super::lines::{Line, LineReader, Place};
use super::parallel::{Chunk, ChunkRows, Counts, ParallelReader};
use crate::format::decode::{FieldValue, JsonColumns, JsonField, RecordDecoder, declared_name};
use crate::format::{Format, OnError};

/// How records become rows: what a reader keeps from one chunk of the file to the next.
pub(super) enum Layout {
    Json(JsonColumns),
    /// `positions[i]`: the header field of column `i`; `fields`: how many the header has.
    Csv {
        positions: Vec<usize>,
        fields: usize,
    },
}

/// Where records come from.
enum Input {
    /// JSON lines, with the buffer each line is read into.
    Lines {
        lines: LineReader,
        line: Line,
    },
    Csv(CsvRecords),
    /// Nothing yet (a chunk's reader between chunks).
    None,
}

/// Reads records and decodes them into rows: what reading the whole file and reading one chunk
/// of it share.
pub(super) struct Records {
    table: String,
    path: String,
    input: Input,
    layout: Layout,
    decoder: RecordDecoder,
    on_error: OnError,
    delimiter: u8,
    max_record_bytes: usize,
    /// Bad records skipped and not counted in the metrics yet.
    skipped: u64,
}

impl Records {
    /// Applies the on-error policy to a bad record at `line`.
    fn bad_record(&mut self, line: u64, reason: String) -> Result<()> {
        match self.on_error {
            OnError::Fail => Err(StreamError::Data(format!(
                "{}:{line}: {reason} (set 'format.on-error' = 'skip' to skip such records)",
                self.path
            ))),
            OnError::Skip => {
                self.skipped += 1;
                Ok(())
            }
        }
    }

    /// Reads one record (a JSON line, blank or not; a CSV record); `false` at the end of the input.
    fn read_record(&mut self) -> Result<bool> {
        let outcome = match (&mut self.input, &mut self.layout) {
            (Input::Lines { lines, line }, Layout::Json(columns)) => {
                if !lines.next_line_into(line)? {
                    return Ok(false);
                }
                if line.is_blank(None) {
                    return Ok(true);
                }
                decode_json(&mut self.decoder, columns, &self.table, &line.bytes)
                    .map_err(|reason| (line.number, reason))
            }
            (Input::Csv(records), Layout::Csv { positions, fields }) => match records.next_record(*fields)? {
                None => return Ok(false),
                Some(Err(BadRecord { line, reason })) => Err((line, reason)),
                Some(Ok(record)) => self
                    .decoder
                    .push(|i| record.fields.get(positions[i]).map_or(FieldValue::Missing, FieldValue::Text))
                    .map_err(|reason| (record.line, reason)),
            },
            _ => return Ok(false),
        };
        if let Err((line, reason)) = outcome {
            self.bad_record(line, reason)?;
        }
        Ok(true)
    }

    /// Where the next record starts, when that is known without reading further.
    fn place(&self) -> Option<Place> {
        match &self.input {
            Input::Lines { lines, .. } => Some(lines.place()),
            Input::Csv(records) => records.place(),
            Input::None => None,
        }
    }

    /// The file's length when it was opened, for a regular file.
    fn opened_len_bytes(&self) -> Option<u64> {
        match &self.input {
            Input::Lines { lines, .. } => lines.opened_len_bytes(),
            Input::Csv(records) => records.opened_len_bytes(),
            Input::None => None,
        }
    }

    /// Reads the file on from `at` (a record's start), on this thread.
    fn resume(&mut self, at: Place, opened_len_bytes: u64) -> Result<()> {
        let file = File::open(&self.path)
            .map_err(|e| StreamError::io(format!("table '{}': cannot open '{}' again", self.table, self.path), e))?;
        self.input = match self.layout {
            Layout::Json(_) => Input::Lines {
                lines: LineReader::resume(&self.path, file, at, opened_len_bytes, usize::MAX)?,
                line: Line::default(),
            },
            Layout::Csv { .. } => Input::Csv(CsvRecords::from_lines(
                LineReader::resume(&self.path, file, at, opened_len_bytes, self.max_record_bytes)?,
                self.delimiter,
                self.max_record_bytes,
            )),
        };
        Ok(())
    }

    /// A reader of chunks of the same file, for a decoding thread.
    pub(super) fn for_chunks(&self, schema: SchemaRef) -> Result<Self> {
        Ok(Self {
            table: self.table.clone(),
            path: self.path.clone(),
            input: Input::None,
            layout: match &self.layout {
                Layout::Json(columns) => Layout::Json(JsonColumns::new(&schema).sharing_warnings_with(columns)),
                Layout::Csv { positions, fields } => Layout::Csv { positions: positions.clone(), fields: *fields },
            },
            decoder: RecordDecoder::new(schema)?,
            on_error: self.on_error,
            delimiter: self.delimiter,
            max_record_bytes: self.max_record_bytes,
            skipped: 0,
        })
    }

    /// Reads the records of `chunk` into batches of at most `batch_size` rows.
    pub(super) fn read_chunk(&mut self, chunk: Chunk, batch_size: usize) -> ChunkRows {
        let lines = LineReader::chunk(
            &self.path,
            chunk.bytes,
            chunk.at,
            if matches!(self.layout, Layout::Json(_)) { usize::MAX } else { self.max_record_bytes },
        );
        self.input = match self.layout {
            Layout::Json(_) => Input::Lines { lines, line: Line::default() },
            // The last chunk ends where the file does: a quoted field still open there is a bad
            // record, as when reading the whole file.
            Layout::Csv { .. } if chunk.last => {
                Input::Csv(CsvRecords::from_lines(lines, self.delimiter, self.max_record_bytes))
            }
            Layout::Csv { .. } => Input::Csv(CsvRecords::chunk(lines, self.delimiter, self.max_record_bytes)),
        };
        let mut rows = ChunkRows::default();
        let mut records = 0;
        let outcome = (|| {
            loop {
                if !self.read_record()? {
                    break;
                }
                records += 1;
                if self.decoder.rows() >= batch_size {
                    let batch = self.decoder.finish()?;
                    rows.batches.push_back((batch, self.counts(std::mem::take(&mut records))));
                }
            }
            if self.decoder.rows() > 0 {
                let batch = self.decoder.finish()?;
                rows.batches.push_back((batch, self.counts(std::mem::take(&mut records))));
            }
            Ok(())
        })();
        if let Err(e) = outcome {
            // As on one thread: the rows of the unfinished batch go with the failure.
            let _ = self.decoder.finish();
            rows.error = Some(e);
        }
        rows.tail = self.counts(records);
        if let Input::Csv(records) = &self.input {
            rows.crossed = records.crossed();
        }
        self.input = Input::None;
        rows
    }

    /// `records` records read, with the bad records and missing keys counted since last asked.
    fn counts(&mut self, records: u64) -> Counts {
        Counts {
            records,
            skipped: std::mem::take(&mut self.skipped),
            missing: match &mut self.layout {
                Layout::Json(columns) => columns.take_missing(),
                Layout::Csv { .. } => (0, Vec::new()),
            },
        }
    }
}

/// How the file is being read.
enum Mode {
    /// On the source's thread, record by record.
    Sequential,
    /// A chunk at a time on decoding threads; `current`: the rows of the chunk being handed on.
    Parallel { reader: Box<ParallelReader>, current: Option<ChunkRows> },
    /// To be read in parallel from the next record on, once it is known where that starts.
    ToParallel,
}

pub(super) struct FileSource {
    records: Records,
    mode: Mode,
    /// How many threads decode in parallel (1: none), and how much of the file each takes at a time.
    threads: usize,
    chunk_bytes: usize,
    /// Reading on alone from where the threads stopped: back to them after the next batch.
    back_to_threads: bool,
    batch_size: usize,
    metrics: Arc<PipelineMetrics>,
    done: bool,
    /// Whether the rows missing JSON fields were reported.
    reported: bool,
    /// Records (lines, CSV records) read so far: the position a checkpoint keeps.
    position: u64,
    /// Reading again up to a checkpoint's position: bad records were counted the first time.
    replaying: bool,
}

impl FileSource {
    pub(super) fn open(table: &TableDef, options: FileOptions, ctx: &SourceContext) -> Result<Self> {
        let file = File::open(&options.path)
            .map_err(|e| StreamError::io(format!("table '{}': cannot open '{}'", table.name, options.path), e))?;
        let (input, layout) = match options.format {
            Format::Json => (
                Input::Lines { lines: LineReader::new(&options.path, file, usize::MAX)?, line: Line::default() },
                Layout::Json(JsonColumns::new(&table.schema).with_metrics(ctx.metrics.clone())),
            ),
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
                (Input::Csv(records), Layout::Csv { positions, fields: header.len() })
            }
        };
        let records = Records {
            table: table.name.clone(),
            path: options.path,
            input,
            layout,
            decoder: RecordDecoder::new(table.schema.clone())?,
            on_error: options.on_error,
            delimiter: options.delimiter,
            max_record_bytes: options.max_record_bytes,
            skipped: 0,
        };
        let threads = ctx.parallelism.max(1);
        Ok(Self {
            // A pipe or a device is read on one thread: what it has cannot be read again.
            mode: if threads > 1 && records.opened_len_bytes().is_some() { Mode::ToParallel } else { Mode::Sequential },
            records,
            threads,
            chunk_bytes: super::parallel::CHUNK_BYTES,
            back_to_threads: false,
            batch_size: ctx.batch_size.max(1),
            metrics: ctx.metrics.clone(),
            done: false,
            reported: false,
            position: 0,
            replaying: false,
        })
    }

    /// Reads one record on this thread; `false` at the end of the file.
    fn read_record(&mut self) -> Result<bool> {
        let read = self.records.read_record();
        // The shared counter is touched only for a bad record, not for every record.
        if self.records.skipped > 0 {
            let skipped = std::mem::take(&mut self.records.skipped);
            if !self.replaying {
                PipelineMetrics::add(&self.metrics.bad_records, skipped as usize);
            }
        }
        if read? {
            self.position += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Says how many rows lacked a declared JSON field, once, when reading ends.
    fn report_missing_fields(&mut self) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        if let Layout::Json(columns) = &self.records.layout
            && let Some(summary) = columns.missing_summary()
        {
            tracing::warn!("table '{}' ({}): {summary}", self.records.table, self.records.path);
        }
    }

    /// Starts decoding in parallel from the next record on, if where it starts is known (a CSV
    /// reader that read lines ahead goes on alone).
    fn start_parallel(&mut self) -> Result<()> {
        self.mode = Mode::Sequential;
        let (Some(at), Some(opened_len_bytes)) = (self.records.place(), self.records.opened_len_bytes()) else {
            return Ok(());
        };
        let mut workers = Vec::with_capacity(self.threads);
        for _ in 0..self.threads {
            workers.push(self.records.for_chunks(self.records.decoder.schema())?);
        }
        self.records.input = Input::None;
        let reader = ParallelReader::start(
            &self.records.path,
            at,
            opened_len_bytes,
            workers,
            self.batch_size,
            self.chunk_bytes,
        )?;
        self.mode = Mode::Parallel { reader: Box::new(reader), current: None };
        self.back_to_threads = false;
        Ok(())
    }

    /// Counts records read by a decoding thread as read.
    fn count(&mut self, counts: Counts) {
        self.position += counts.records;
        PipelineMetrics::add(&self.metrics.bad_records, counts.skipped as usize);
        if let Layout::Json(columns) = &mut self.records.layout {
            columns.add_missing(counts.missing.0, &counts.missing.1);
        }
    }

    /// The next batch from the decoding threads; `None` at the end of the file, or where this
    /// thread is to read on by itself (the mode is then [`Mode::Sequential`]).
    fn next_parallel_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let Mode::Parallel { reader, current } = &mut self.mode else { return Ok(None) };
            if let Some(rows) = current {
                if let Some((batch, counts)) = rows.batches.pop_front() {
                    self.count(counts);
                    return Ok(Some(batch));
                }
                let rows = current.take().expect("a chunk is being handed on");
                if let Some(at) = rows.crossed {
                    reader.hand_off(at);
                }
                self.count(rows.tail);
                if let Some(error) = rows.error {
                    self.mode = Mode::Sequential;
                    self.done = true;
                    return Err(error);
                }
                continue;
            }
            match reader.next_chunk() {
                Ok(Some(rows)) => *current = Some(rows),
                Ok(None) => {
                    let handoff = reader.handoff();
                    self.mode = Mode::Sequential;
                    match handoff {
                        Some((at, opened_len_bytes)) => {
                            self.records.resume(at, opened_len_bytes)?;
                            self.back_to_threads = true;
                        }
                        None => self.done = true,
                    }
                    return Ok(None);
                }
                Err(e) => {
                    self.mode = Mode::Sequential;
                    self.done = true;
                    return Err(e);
                }
            }
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
        Ok(position_state(self.position))
    }

    /// Reads the records before the position again and drops them.
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        let position = position_of(&state)?;
        self.replaying = true;
        if let Layout::Json(columns) = &mut self.records.layout {
            columns.set_counting(false);
        }
        let replayed = (|| {
            while self.position < position {
                if !self.read_record()? {
                    self.done = true;
                    break;
                }
                if self.records.decoder.rows() >= self.batch_size {
                    self.records.decoder.finish()?;
                }
            }
            if self.records.decoder.rows() > 0 {
                self.records.decoder.finish()?;
            }
            Ok(())
        })();
        self.replaying = false;
        if let Layout::Json(columns) = &mut self.records.layout {
            columns.set_counting(true);
        }
        replayed
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if matches!(self.mode, Mode::ToParallel) && !self.done {
            self.start_parallel()?;
        }
        // After the threads' last batch: the end, or this thread reads on from where they stopped.
        if matches!(self.mode, Mode::Parallel { .. })
            && let Some(batch) = self.next_parallel_batch()?
        {
            return Ok(Some(batch));
        }
        while !self.done && self.records.decoder.rows() < self.batch_size {
            if !self.read_record()? {
                self.done = true;
            }
        }
        if self.records.decoder.rows() == 0 {
            self.report_missing_fields();
            return Ok(None);
        }
        if self.back_to_threads {
            // Past what the threads left to this one (a batch holds at least a record).
            self.mode = Mode::ToParallel;
        }
        Ok(Some(self.records.decoder.finish()?))
    }
}

#[cfg(test)]
mod tests {
    //! Reading a file on several threads against reading it on one: the same rows in the same
    //! order, the same bad records and missing keys, the same error, the same positions.

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use arrow::record_batch::RecordBatch;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use streamsql_engine::connector::{Source, SourceContext, TableDef};
    use streamsql_engine::metrics::PipelineMetrics;

    use super::FileSource;
    use crate::file::FileOptions;

    fn table(path: &str, format: &str, on_error: &str) -> TableDef {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Float64, true),
        ]);
        let options: BTreeMap<String, String> = [
            ("connector", "file"),
            ("path", path),
            ("format", format),
            ("format.on-error", on_error),
            ("csv.max-record-bytes", "200"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        TableDef {
            name: "events".into(),
            schema: Arc::new(schema),
            options,
            watermark: None,
            primary_key: Vec::new(),
            computed: Vec::new(),
        }
    }

    /// A JSON lines or CSV text with plain records and every kind of awkward one.
    fn text(rng: &mut SmallRng, csv: bool) -> String {
        let mut out = String::new();
        if csv {
            out.push_str("id,ts,k,v\n");
        }
        for id in 0..rng.random_range(0..400) {
            let ts = 1_700_000_000_000_i64 + rng.random_range(0..100_000);
            let line = match (csv, rng.random_range(0..24)) {
                (_, 0) => "   ".to_string(),
                (_, 1) => String::new(),
                (false, 2) => format!("{{\"id\":{id},\"ts\":{ts}}}"),
                (false, 3) => "{\"id\":".to_string(),
                (false, 4) => format!("{{\"id\":{id},\"ts\":{ts},\"k\":\"a\\\"b\\nc\",\"v\":\"x\"}}"),
                (false, 5) => "[1,2]".to_string(),
                (false, 6) => format!("{{\"id\":{id},\"ts\":{ts},\"k\":\"é\\u00e9\",\"v\":2.5}}"),
                (false, _) => format!("{{\"id\":{id},\"ts\":{ts},\"k\":\"k{}\",\"v\":{}}}", id % 7, id as f64 / 4.0),
                (true, 2) => format!("{id},{ts},\"a,b\",1.5"),
                (true, 3) => format!("{id},{ts},\"multi\nline\n\"\"quoted\"\"\",2"),
                (true, 4) => format!("{id},{ts},\"never closed,3"),
                (true, 5) => format!("{id},{ts},k"),
                (true, 6) => format!("{id},{ts},k,not-a-number"),
                (true, 7) => format!("{id},{ts},\"{}\",4", "long ".repeat(rng.random_range(10..60))),
                (true, 8) => format!("{id},{ts},\"bad\"quote,5"),
                (true, 9) => format!("{id},{ts},\"open\n{}", "x".repeat(rng.random_range(0..300))),
                (true, _) => format!("{id},{ts},k{},{}", id % 7, id as f64 / 4.0),
            };
            out.push_str(&line);
            if rng.random_range(0..50) > 0 {
                out.push('\n');
            } else {
                out.push_str("\r\n");
            }
        }
        if rng.random_bool(0.3) {
            out.pop();
        }
        out
    }

    struct Read {
        batches: Vec<RecordBatch>,
        /// The position after each batch, and at the end.
        positions: Vec<u64>,
        end: u64,
        error: Option<String>,
        bad: u64,
        missing: u64,
    }

    fn open(
        table: &TableDef,
        threads: usize,
        chunk_bytes: usize,
        batch_size: usize,
    ) -> (FileSource, Arc<PipelineMetrics>) {
        let metrics = Arc::new(PipelineMetrics::default());
        let ctx = SourceContext {
            batch_size,
            metrics: metrics.clone(),
            instance: 0,
            instances: 1,
            parallelism: threads,
            checkpoints: false,
        };
        let options = FileOptions::parse(table).expect("options");
        let mut source = FileSource::open(table, options, &ctx).expect("open");
        source.chunk_bytes = chunk_bytes;
        (source, metrics)
    }

    fn read(source: &mut FileSource, metrics: &PipelineMetrics) -> Read {
        let mut read = Read { batches: Vec::new(), positions: Vec::new(), end: 0, error: None, bad: 0, missing: 0 };
        loop {
            match source.next_batch() {
                Ok(Some(batch)) => {
                    assert!(batch.num_rows() > 0);
                    read.batches.push(batch);
                    read.positions.push(super::position_of(&source.snapshot().expect("snapshot")).expect("position"));
                }
                Ok(None) => {
                    read.end = super::position_of(&source.snapshot().expect("snapshot")).expect("position");
                    break;
                }
                Err(e) => {
                    read.error = Some(e.to_string());
                    break;
                }
            }
        }
        let counts = metrics.snapshot();
        (read.bad, read.missing) = (counts.bad_records, counts.rows_missing_fields);
        read
    }

    fn rows(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                let values: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, row).expect("value"))
                    .collect();
                out.push(values.join("|"));
            }
        }
        out
    }

    #[test]
    fn threads_read_what_one_thread_reads() {
        let dir = std::env::temp_dir().join(format!("streamsql-parallel-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for seed in 0..160_u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let csv = seed % 2 == 0;
            let path = dir.join(if csv { "in.csv" } else { "in.jsonl" });
            std::fs::write(&path, text(&mut rng, csv)).expect("input");
            let path = path.to_string_lossy().into_owned();
            let on_error = if seed % 5 == 4 { "fail" } else { "skip" };
            let table = table(&path, if csv { "csv" } else { "json" }, on_error);
            let batch_size = [1, 7, 100][rng.random_range(0..3)];
            let (mut one, one_metrics) = open(&table, 1, 0, batch_size);
            let expected = read(&mut one, &one_metrics);
            let threads = rng.random_range(2..4);
            let chunk_bytes = [1, 13, 100, 700, 5000][rng.random_range(0..5)];
            let (mut many, many_metrics) = open(&table, threads, chunk_bytes, batch_size);
            let got = read(&mut many, &many_metrics);
            let case =
                format!("seed {seed}: {threads} threads, chunks of {chunk_bytes} bytes, batches of {batch_size}");
            assert_eq!(got.error, expected.error, "{case}");
            if expected.error.is_some() {
                // Both stop at the same record, having handed on rows before it (not the same
                // number: batches end at other rows).
                let (got, expected) = (rows(&got.batches), rows(&expected.batches));
                let common = got.len().min(expected.len());
                assert!(
                    got[..common] == expected[..common],
                    "{case}: {} rows before the error, {} on one thread",
                    got.len(),
                    expected.len()
                );
                continue;
            }
            assert_eq!(rows(&got.batches), rows(&expected.batches), "{case}");
            assert_eq!((got.bad, got.missing), (expected.bad, expected.missing), "{case}");
            assert_eq!(got.end, expected.end, "{case}");
            // Resuming after any batch reads the rest, counting its bad records once.
            if got.batches.is_empty() {
                continue;
            }
            let after = rng.random_range(0..got.batches.len());
            let (mut resumed, resumed_metrics) = open(&table, threads, chunk_bytes, batch_size);
            resumed.restore(super::position_state(got.positions[after])).expect("restore");
            let rest = read(&mut resumed, &resumed_metrics);
            let mut again = got.batches[..=after].to_vec();
            again.extend(rest.batches);
            assert_eq!(rows(&again), rows(&expected.batches), "{case}: resumed after batch {after}");
            let (mut before, before_metrics) = open(&table, threads, chunk_bytes, batch_size);
            let mut counted = 0;
            for _ in 0..=after {
                before.next_batch().expect("batch").expect("a batch");
                counted = before_metrics.snapshot().bad_records;
            }
            assert_eq!(counted + rest.bad, expected.bad, "{case}: bad records counted once across the restart");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
