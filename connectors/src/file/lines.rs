//! The physical lines of an input file that may change while it is read.
//!
//! A line is kept up to a length limit (the rest is read past, not stored), so one huge line
//! cannot exhaust memory. At the end of a regular file the reader checks that the file did not
//! shrink: if it is now shorter than what was read, or shorter than it was when opened, it was
//! truncated or replaced under us and rows may be missing, so that is an error rather than a
//! clean end. A last line without `\n` in a file that did not shrink is a complete line.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind};

use streamsql_engine::{Result, StreamError};

/// How much of the file is read at a time.
const READ_BUFFER_BYTES: usize = 256 << 10;

/// One physical line.
#[derive(Default)]
pub(super) struct Line {
    /// 1-based line number in the file.
    pub number: u64,
    /// The line without its `\n` (a `\r` before it is kept); only its start if `too_long`.
    pub bytes: Vec<u8>,
    /// The line is longer than the reader's limit.
    pub too_long: bool,
}

impl Line {
    /// Whether the line holds nothing but spaces, tabs and a `\r` (other than `delimiter`).
    pub fn is_blank(&self, delimiter: Option<u8>) -> bool {
        !self.too_long && self.bytes.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\r') && Some(b) != delimiter)
    }
}

/// Reads physical lines, watching for the file shrinking.
pub(super) struct LineReader {
    path: String,
    reader: BufReader<File>,
    /// Whether the file is a regular file (a pipe has no length to check).
    regular: bool,
    /// The file's length when it was opened.
    opened_len_bytes: u64,
    /// Bytes consumed so far.
    offset_bytes: u64,
    line: u64,
    max_line_bytes: usize,
}

impl LineReader {
    pub(super) fn new(path: &str, file: File, max_line_bytes: usize) -> Result<Self> {
        let metadata = file.metadata().map_err(|e| StreamError::io(format!("reading '{path}'"), e))?;
        Ok(Self {
            path: path.to_string(),
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
            regular: metadata.is_file(),
            opened_len_bytes: metadata.len(),
            offset_bytes: 0,
            line: 0,
            max_line_bytes,
        })
    }

    /// The next line, `None` at the end of the file.
    pub(super) fn next_line(&mut self) -> Result<Option<Line>> {
        let mut line = Line { number: 0, bytes: Vec::new(), too_long: false };
        Ok(self.next_line_into(&mut line)?.then_some(line))
    }

    /// Reads the next line into `line`, reusing its buffer; `false` at the end of the file.
    pub(super) fn next_line_into(&mut self, line: &mut Line) -> Result<bool> {
        line.bytes.clear();
        line.too_long = false;
        let mut started = false;
        loop {
            let buffer = match self.reader.fill_buf() {
                Ok(buffer) => buffer,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(StreamError::io(format!("reading '{}' at line {}", self.path, self.line + 1), e));
                }
            };
            if buffer.is_empty() {
                if self.grew_since_end()? {
                    continue;
                }
                if !started {
                    return Ok(false);
                }
                break;
            }
            started = true;
            let newline = memchr::memchr(b'\n', buffer);
            let chunk = &buffer[..newline.unwrap_or(buffer.len())];
            let room = self.max_line_bytes.saturating_sub(line.bytes.len());
            if chunk.len() > room {
                line.too_long = true;
            }
            line.bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            let consumed = chunk.len() + usize::from(newline.is_some());
            self.reader.consume(consumed);
            self.offset_bytes += consumed as u64;
            if newline.is_some() {
                break;
            }
        }
        self.line += 1;
        line.number = self.line;
        Ok(true)
    }

    /// Called where reading found nothing more: `true` when the file has grown since (read on);
    /// an error when it shrank.
    fn grew_since_end(&self) -> Result<bool> {
        if !self.regular {
            return Ok(false);
        }
        let len_bytes =
            self.reader.get_ref().metadata().map_err(|e| StreamError::io(format!("reading '{}'", self.path), e))?.len();
        if len_bytes < self.offset_bytes || self.offset_bytes < self.opened_len_bytes {
            return Err(StreamError::io(
                format!("reading '{}'", self.path),
                std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "the file shrank while it was read (it had {} bytes when opened, {} were read, it now has \
                         {len_bytes}): it was truncated or replaced, and rows after line {} may be lost",
                        self.opened_len_bytes, self.offset_bytes, self.line
                    ),
                ),
            ));
        }
        Ok(len_bytes > self.offset_bytes)
    }
}
