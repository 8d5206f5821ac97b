//! The physical lines of an input file that may change while it is read.
//!
//! A line is kept up to a length limit (the rest is read past, not stored), so one huge line
//! cannot exhaust memory. At the end of a regular file the reader checks that the file did not
//! shrink: if it is now shorter than what was read, or shorter than it was when opened, it was
//! truncated or replaced under us and rows may be missing, so that is an error rather than a
//! clean end. A last line without `\n` in a file that did not shrink is a complete line.
//!
//! The same reader takes the lines of one chunk of a file held in memory (see
//! [`super::parallel`]): numbered and placed as in the file, with no end check.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, ErrorKind, Read};

use streamsql_engine::{Result, StreamError};

/// How much of the file is read at a time.
const READ_BUFFER_BYTES: usize = 256 << 10;

/// One physical line.
#[derive(Default)]
pub(super) struct Line {
    /// 1-based line number in the file.
    pub number: u64,
    /// Where the line starts in the file, in bytes.
    pub offset: u64,
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

/// Where a file's bytes come from: the file itself, or one chunk of it read already.
enum Input {
    File(BufReader<File>),
    Chunk(Cursor<Vec<u8>>),
}

impl Input {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self {
            Input::File(reader) => reader.fill_buf(),
            Input::Chunk(cursor) => cursor.fill_buf(),
        }
    }

    fn consume(&mut self, bytes: usize) {
        match self {
            Input::File(reader) => reader.consume(bytes),
            Input::Chunk(cursor) => cursor.consume(bytes),
        }
    }
}

/// Reads physical lines, watching for the file shrinking.
pub(super) struct LineReader {
    path: String,
    input: Input,
    /// The file's length when it was first opened; `None` for what has no length to check (a
    /// pipe, a chunk).
    opened_len_bytes: Option<u64>,
    /// Bytes of the file consumed so far (where the next line starts).
    offset_bytes: u64,
    line: u64,
    max_line_bytes: usize,
}

impl LineReader {
    pub(super) fn new(path: &str, file: File, max_line_bytes: usize) -> Result<Self> {
        let metadata = file.metadata().map_err(|e| StreamError::io(format!("reading '{path}'"), e))?;
        Ok(Self {
            path: path.to_string(),
            input: Input::File(BufReader::with_capacity(READ_BUFFER_BYTES, file)),
            opened_len_bytes: metadata.is_file().then_some(metadata.len()),
            offset_bytes: 0,
            line: 0,
            max_line_bytes,
        })
    }

    /// The lines of `bytes`, the part of the file from `at` on, which ends after a `\n` or at
    /// the end of the file.
    pub(super) fn chunk(path: &str, bytes: Vec<u8>, at: Place, max_line_bytes: usize) -> Self {
        Self {
            path: path.to_string(),
            input: Input::Chunk(Cursor::new(bytes)),
            opened_len_bytes: None,
            offset_bytes: at.offset,
            line: at.line,
            max_line_bytes,
        }
    }

    /// Reads the regular file `file` (the one first opened with `opened_len_bytes` bytes) on
    /// from `at`.
    pub(super) fn resume(
        path: &str,
        mut file: File,
        at: Place,
        opened_len_bytes: u64,
        max_line_bytes: usize,
    ) -> Result<Self> {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(at.offset))
            .map_err(|e| StreamError::io(format!("reading '{path}' from byte {}", at.offset), e))?;
        Ok(Self {
            path: path.to_string(),
            input: Input::File(BufReader::with_capacity(READ_BUFFER_BYTES, file)),
            opened_len_bytes: Some(opened_len_bytes),
            offset_bytes: at.offset,
            line: at.line,
            max_line_bytes,
        })
    }

    /// Where the next line starts.
    pub(super) fn place(&self) -> Place {
        Place { offset: self.offset_bytes, line: self.line }
    }

    /// The file's length when it was opened, for a regular file.
    pub(super) fn opened_len_bytes(&self) -> Option<u64> {
        self.opened_len_bytes
    }

    /// The next line, `None` at the end of the file.
    pub(super) fn next_line(&mut self) -> Result<Option<Line>> {
        let mut line = Line::default();
        Ok(self.next_line_into(&mut line)?.then_some(line))
    }

    /// Reads the next line into `line`, reusing its buffer; `false` at the end of the file.
    pub(super) fn next_line_into(&mut self, line: &mut Line) -> Result<bool> {
        line.bytes.clear();
        line.too_long = false;
        line.offset = self.offset_bytes;
        let mut started = false;
        loop {
            let buffer = match self.input.fill_buf() {
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
            self.input.consume(consumed);
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
        match (&self.input, self.opened_len_bytes) {
            (Input::File(reader), Some(opened_len_bytes)) => {
                grew_since_end(&self.path, reader.get_ref(), opened_len_bytes, self.place())
            }
            _ => Ok(false),
        }
    }
}

/// A place in a file: a byte offset where a line starts, and the number of lines before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Place {
    pub offset: u64,
    pub line: u64,
}

/// Called where reading `file` (first opened with `opened_len_bytes` bytes) found nothing more
/// at `at`: `true` when the file has grown since (read on); an error when it shrank.
pub(super) fn grew_since_end(path: &str, file: &File, opened_len_bytes: u64, at: Place) -> Result<bool> {
    let len_bytes = file.metadata().map_err(|e| StreamError::io(format!("reading '{path}'"), e))?.len();
    if len_bytes < at.offset || at.offset < opened_len_bytes {
        return Err(StreamError::io(
            format!("reading '{path}'"),
            std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "the file shrank while it was read (it had {opened_len_bytes} bytes when opened, {} were read, \
                     it now has {len_bytes}): it was truncated or replaced, and rows after line {} may be lost",
                    at.offset, at.line
                ),
            ),
        ));
    }
    Ok(len_bytes > at.offset)
}

/// Reads from `file` into `buffer` until it is full or the file ends (`Interrupted` retried).
pub(super) fn read_full(path: &str, file: &mut File, buffer: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(StreamError::io(format!("reading '{path}'"), e)),
        }
    }
    Ok(filled)
}
