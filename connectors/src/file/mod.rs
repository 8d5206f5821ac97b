//! `'connector' = 'file'`: read or write one file of JSON lines or CSV.
//!
//! ```sql
//! CREATE TABLE flows (...) WITH ('connector' = 'file', 'path' = 'flows.jsonl', 'format' = 'json');
//! ```
//!
//! Reading (`source.rs`): physical lines (`lines.rs`, which notices a file shrinking under it) →
//! records (a JSON line, or a CSV record from `csv_records.rs`, which bounds quoted fields) →
//! rows, or bad records under `'format.on-error'`. No record is lost without being counted. At a
//! parallelism above 1 a regular file is decoded on that many threads, a chunk each at a time,
//! its rows handed on in the file's order (`parallel.rs`).
//!
//! Writing (`sink.rs`): rows go to a hidden part file next to `'path'`, flushed after every
//! batch; when the pipeline ends the part file is renamed over `'path'`, so a rerun leaves the
//! previous output in place until then (what a failure does is told in `sink.rs`). A file has
//! one writer at a time in a process: a table whose file a running pipeline writes cannot be
//! planned as a sink ([`written_file`] lets the binary check the pipelines of one script, which
//! are all planned before any runs).

mod csv_records;
mod lines;
mod parallel;
mod sink;
mod source;

use std::path::{Path, PathBuf};

use streamsql_engine::connector::{Connector, Delivery, OptionSpec, Role, Sink, Source, SourceContext, TableDef};
use streamsql_engine::{Result, StreamError};

use crate::format::{Format, OnError, decode::RecordDecoder};

pub struct FileConnector;

const BOTH: &[Role] = &[Role::Source, Role::Sink];

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "path",
        required: true,
        roles: BOTH,
        help: "the file to read, or to write (a sink writes '.<name>.part-<pid>-<n>' next to it, flushed every \
               batch, and renames it over the file when the pipeline ends)",
    },
    OptionSpec { key: "format", required: true, roles: BOTH, help: "'json' (JSON lines) or 'csv' (with a header row)" },
    OptionSpec {
        key: "format.on-error",
        required: false,
        roles: &[Role::Source],
        help: "'fail' (default) stops at a malformed record; 'skip' skips and counts it",
    },
    OptionSpec { key: "csv.delimiter", required: false, roles: BOTH, help: "one ASCII character (default ',')" },
    OptionSpec {
        key: "csv.max-record-bytes",
        required: false,
        roles: &[Role::Source],
        help: "the longest a CSV record may be, in bytes or with KiB/MiB/GiB (default '1 MiB'); a longer line, or a \
               quoted field still open past it, is a bad record at its first line and reading resumes at the next line",
    },
];

/// `'csv.max-record-bytes'` when it is not set.
const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// Options of a file table, parsed.
struct FileOptions {
    path: String,
    format: Format,
    on_error: OnError,
    delimiter: u8,
    max_record_bytes: usize,
}

impl FileOptions {
    fn parse(table: &TableDef) -> Result<Self> {
        let opts = table.opts();
        let delimiter = match opts.get("csv.delimiter") {
            None => b',',
            Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
            Some("\\t") => b'\t',
            Some(d) => {
                return Err(StreamError::Config(format!(
                    "table '{}': option 'csv.delimiter' must be one ASCII character, got '{d}'",
                    table.name
                )));
            }
        };
        let max_record_bytes = match opts.get("csv.max-record-bytes") {
            None => DEFAULT_MAX_RECORD_BYTES,
            Some(text) => parse_size_bytes(text).filter(|&n| n > 0).ok_or_else(|| {
                StreamError::Config(format!(
                    "table '{}': option 'csv.max-record-bytes' must be a positive size such as '65536', '64 KiB' or \
                     '1 MiB', got '{text}'",
                    table.name
                ))
            })?,
        };
        let path = opts.required("path")?.to_string();
        if path.trim().is_empty() {
            return Err(StreamError::Config(format!("table '{}': option 'path' is empty", table.name)));
        }
        Ok(Self {
            path,
            format: Format::from_choice(opts.choice("format", Format::CHOICES, "json")?),
            on_error: OnError::from_choice(opts.choice("format.on-error", OnError::CHOICES, "fail")?),
            delimiter,
            max_record_bytes,
        })
    }
}

/// `path` as an absolute path with symbolic links resolved (those of its directory when it does
/// not exist yet), so that two spellings of one file compare equal.
fn absolute(path: &Path) -> PathBuf {
    if let Ok(path) = std::fs::canonicalize(path) {
        return path;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent().map(std::fs::canonicalize), absolute.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => absolute,
    }
}

/// The file a `'file'` table writes as a sink, as an absolute path, to tell whether two tables
/// write the same file; `None` for other tables and for a path that exists and is not a regular
/// file (`/dev/stdout`, a named pipe), which any number of sinks may write.
pub fn written_file(table: &TableDef) -> Option<PathBuf> {
    if table.connector() != "file" {
        return None;
    }
    let path = Path::new(table.options.get("path")?);
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return None;
    }
    Some(absolute(path))
}

/// Parses a size in bytes: a number, optionally followed by `B`, `KiB`, `MiB` or `GiB`.
fn parse_size_bytes(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.parse::<usize>().ok()?.checked_mul(multiplier)
}

impl Connector for FileConnector {
    fn name(&self) -> &'static str {
        "file"
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    /// A file is read once, to its end.
    fn bounded(&self, _table: &TableDef) -> bool {
        true
    }

    /// A regular file is decoded a chunk at a time on threads (see `parallel.rs`).
    fn decodes_in_parallel(&self, table: &TableDef) -> bool {
        FileOptions::parse(table).is_ok_and(|options| std::fs::metadata(&options.path).is_ok_and(|m| m.is_file()))
    }

    fn supports(&self, _role: Role) -> bool {
        true
    }

    fn validate(&self, table: &TableDef, role: Role) -> Result<()> {
        FileOptions::parse(table)?;
        if role == Role::Source {
            // Every column type must be decodable.
            RecordDecoder::new(table.schema.clone())
                .map_err(|e| StreamError::Config(format!("table '{}': {e}", table.name)))?;
        }
        Ok(())
    }

    /// A sink's file must not be written by a running pipeline already.
    fn check_external(&self, table: &TableDef, role: Role) -> Result<()> {
        if role == Role::Sink
            && let Some(file) = written_file(table)
            && let Some(writer) = sink::writer_of(&file)
        {
            return Err(StreamError::Config(sink::one_writer_message(&table.name, &file, &writer)));
        }
        Ok(())
    }

    /// Sources read again from the record after the checkpoint. Sinks write a part file,
    /// cut back to its checkpointed length on restore and renamed over the target when the
    /// output is complete: exactly once (at least once into a path that is not a regular file,
    /// such as `/dev/stdout`).
    fn delivery(&self, table: &TableDef, role: Role) -> Delivery {
        let Ok(options) = FileOptions::parse(table) else { return Delivery::Unsupported };
        let special = std::fs::metadata(&options.path).is_ok_and(|m| !m.is_file());
        match role {
            Role::Sink if special => Delivery::AtLeastOnce,
            // A pipe or a device cannot be read again.
            Role::Source if special => Delivery::Unsupported,
            _ => Delivery::ExactlyOnce,
        }
    }

    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        let options = FileOptions::parse(table)?;
        Ok(Box::new(source::FileSource::open(table, options, ctx)?))
    }

    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        let options = FileOptions::parse(table)?;
        Ok(Box::new(sink::FileSink::create(table, options)?))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size_bytes;

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_size_bytes("65536"), Some(65536));
        assert_eq!(parse_size_bytes(" 64 KiB "), Some(65536));
        assert_eq!(parse_size_bytes("1MiB"), Some(1 << 20));
        assert_eq!(parse_size_bytes("2 gib"), Some(2 << 30));
        assert_eq!(parse_size_bytes("12 B"), Some(12));
        assert_eq!(parse_size_bytes("1.5 MiB"), None);
        assert_eq!(parse_size_bytes("-1"), None);
        assert_eq!(parse_size_bytes("MiB"), None);
        assert_eq!(parse_size_bytes("1 MB"), None);
    }
}
