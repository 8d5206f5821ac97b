//! CSV records from physical lines: where a record starts and ends, and what happens when a
//! damaged line would swallow the lines after it.
//!
//! A record is one line, or several when a quoted field spans line breaks. A quoted field that
//! is still open after `'csv.max-record-bytes'`, or that is malformed further down (a quote that
//! neither doubles nor ends its field), or still open at the end of the file, makes only the
//! line where the record began bad: reading starts again at the next line, so the lines the open
//! quote ran over are read as the records they are. A record that is well formed as CSV but has
//! the wrong number of fields or invalid UTF-8 is one bad record, however many lines it spans.
//!
//! Blank lines (only spaces, tabs, `\r`) are not records; they are skipped and not counted.
//!
//! Each unclosed quote costs reading ahead up to the next quote character or
//! `'csv.max-record-bytes'` (whichever comes first) a second time.
//!
//! Reading one chunk of a file ([`CsvRecords::chunk`]), a record whose quoted field is still
//! open at the chunk's end is not judged: reading stops before it and [`CsvRecords::crossed`]
//! says where it starts, since only the lines after the chunk can tell what it is.

use std::collections::VecDeque;
use std::fs::File;

use streamsql_engine::{Result, StreamError};

use super::lines::{Line, LineReader, Place};
use crate::format::csv_fields::{FieldSplitter, Fields, Progress};

/// A record that cannot be used: where it began and why.
pub(super) struct BadRecord {
    pub line: u64,
    pub reason: String,
}

/// A well-formed record: its first line and its fields.
pub(super) struct Record<'a> {
    pub line: u64,
    pub fields: Fields<'a>,
}

/// Reads CSV records, a header first.
pub(super) struct CsvRecords {
    lines: LineReader,
    /// Lines read ahead while looking for the end of a quoted field, to be read again.
    pending: VecDeque<Line>,
    /// The buffer of the line a record starts on, kept from one record to the next.
    current: Line,
    splitter: FieldSplitter,
    delimiter: u8,
    max_record_bytes: usize,
    /// Whether the lines are one chunk of the file, not all that follow.
    chunk: bool,
    /// Reading a chunk: where the record that runs past its end starts.
    crossed: Option<Place>,
}

impl CsvRecords {
    pub(super) fn new(path: &str, file: File, delimiter: u8, max_record_bytes: usize) -> Result<Self> {
        Ok(Self::from_lines(LineReader::new(path, file, max_record_bytes)?, delimiter, max_record_bytes))
    }

    /// The records in `lines` (made with `max_record_bytes` as their limit).
    pub(super) fn from_lines(lines: LineReader, delimiter: u8, max_record_bytes: usize) -> Self {
        Self {
            lines,
            pending: VecDeque::new(),
            current: Line::default(),
            splitter: FieldSplitter::new(delimiter),
            delimiter,
            max_record_bytes,
            chunk: false,
            crossed: None,
        }
    }

    /// The records of one chunk of the file, the lines in `lines`, which is not its end.
    pub(super) fn chunk(lines: LineReader, delimiter: u8, max_record_bytes: usize) -> Self {
        Self { chunk: true, ..Self::from_lines(lines, delimiter, max_record_bytes) }
    }

    /// Where the record starts that runs past the end of the chunk (reading ended before it).
    pub(super) fn crossed(&self) -> Option<Place> {
        self.crossed
    }

    /// Where the next record starts, when no line was read ahead (else `None`).
    pub(super) fn place(&self) -> Option<Place> {
        self.pending.is_empty().then(|| self.lines.place())
    }

    /// The file's length when it was opened, for a regular file.
    pub(super) fn opened_len_bytes(&self) -> Option<u64> {
        self.lines.opened_len_bytes()
    }

    /// Reads the header: the first record, whose fields are column names. Returns its line.
    pub(super) fn header(&mut self, path: &str) -> Result<(u64, Vec<String>)> {
        match self.next_any()? {
            None => Err(StreamError::Data(format!("{path}: the file is empty; a CSV file starts with a header row"))),
            Some(Err(BadRecord { line, reason })) => {
                Err(StreamError::Data(format!("{path}:{line}: cannot read the CSV header: {reason}")))
            }
            Some(Ok(header)) => {
                // A byte-order mark some editors write is not part of the first name.
                let names = header.fields.iter().map(|h| h.trim_start_matches('\u{feff}').trim().to_string());
                Ok((header.line, names.collect()))
            }
        }
    }

    /// The next record with any number of fields; `None` at the end of the file.
    fn next_any(&mut self) -> Result<Option<Result<Record<'_>, BadRecord>>> {
        let Some(line) = self.read_record()? else { return Ok(None) };
        Ok(Some(match line {
            Ok((line, plain)) => {
                let fields =
                    if plain { self.splitter.plain_fields(&self.current.bytes) } else { self.splitter.fields() };
                fields.map(|fields| Record { line, fields }).map_err(|reason| BadRecord { line, reason })
            }
            Err(bad) => Err(bad),
        }))
    }

    /// The next record, which must have `fields` fields; `None` at the end of the file.
    pub(super) fn next_record(&mut self, fields: usize) -> Result<Option<Result<Record<'_>, BadRecord>>> {
        Ok(self.next_any()?.map(|record| match record {
            Ok(record) if record.fields.len() != fields => Err(BadRecord {
                line: record.line,
                reason: format!("{} fields where the header has {fields}", record.fields.len()),
            }),
            other => other,
        }))
    }

    fn next_line(&mut self) -> Result<Option<Line>> {
        match self.pending.pop_front() {
            Some(line) => Ok(Some(line)),
            None => self.lines.next_line(),
        }
    }

    /// Reads the next line into `line`; `false` at the end of the file.
    fn next_line_into(&mut self, line: &mut Line) -> Result<bool> {
        match self.pending.pop_front() {
            Some(pending) => {
                *line = pending;
                Ok(true)
            }
            None => self.lines.next_line_into(line),
        }
    }

    /// Feeds the splitter the lines of the next record and returns its first line number, and
    /// whether the record is that one line without quotes, split in place
    /// ([`FieldSplitter::split_plain`]; the line is then `self.current`).
    fn read_record(&mut self) -> Result<Option<Result<(u64, bool), BadRecord>>> {
        let mut first = std::mem::take(&mut self.current);
        let record = self.read_record_from(&mut first);
        self.current = first;
        record
    }

    /// [`CsvRecords::read_record`], with `first` the buffer for the record's first line.
    fn read_record_from(&mut self, first: &mut Line) -> Result<Option<Result<(u64, bool), BadRecord>>> {
        loop {
            if !self.next_line_into(first)? {
                return Ok(None);
            }
            if !first.is_blank(Some(self.delimiter)) {
                break;
            }
        }
        let start = first.number;
        if first.too_long {
            return Ok(Some(Err(BadRecord {
                line: start,
                reason: format!("the line is longer than 'csv.max-record-bytes' ({} bytes)", self.max_record_bytes),
            })));
        }
        if self.splitter.split_plain(&first.bytes) {
            return Ok(Some(Ok((start, true))));
        }
        self.splitter.start();
        let mut progress = self.splitter.feed_line(&first.bytes);
        let mut size_bytes = first.bytes.len();
        // Lines after `first` taken into the record: read again if the record turns out bad.
        let mut taken: Vec<Line> = Vec::new();
        let reason = loop {
            match progress {
                Ok(Progress::Complete) => return Ok(Some(Ok((start, false)))),
                Ok(Progress::InQuotes) => {}
                Err(reason) => match taken.last() {
                    None => break reason,
                    Some(line) => {
                        break format!(
                            "a quoted field opened on this line is not closed: line {} cannot continue it ({reason})",
                            line.number
                        );
                    }
                },
            }
            let Some(next) = self.next_line()? else {
                if self.chunk {
                    self.crossed = Some(Place { offset: first.offset, line: start - 1 });
                    self.pending.clear();
                    return Ok(None);
                }
                break "a quoted field opened on this line is not closed by the end of the file".to_string();
            };
            size_bytes += 1 + next.bytes.len();
            let too_long = next.too_long || size_bytes > self.max_record_bytes;
            progress = self.splitter.feed_line(&next.bytes);
            taken.push(next);
            if too_long {
                break format!(
                    "a quoted field opened on this line is not closed within 'csv.max-record-bytes' ({} bytes)",
                    self.max_record_bytes
                );
            }
        };
        for line in taken.into_iter().rev() {
            self.pending.push_front(line);
        }
        Ok(Some(Err(BadRecord { line: start, reason })))
    }
}
