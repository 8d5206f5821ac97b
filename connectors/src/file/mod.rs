//! `'connector' = 'file'`: read or write one file of JSON lines or CSV.
//!
//! ```sql
//! CREATE TABLE flows (...) WITH ('connector' = 'file', 'path' = 'flows.jsonl', 'format' = 'json');
//! ```

mod sink;
mod source;

use streamsql_engine::connector::{Connector, OptionSpec, Role, Sink, Source, SourceContext, TableDef};
use streamsql_engine::{Result, StreamError};

use crate::format::{Format, OnError, decode::RecordDecoder};

pub struct FileConnector;

const BOTH: &[Role] = &[Role::Source, Role::Sink];

const OPTIONS: &[OptionSpec] = &[
    OptionSpec { key: "path", required: true, roles: BOTH, help: "the file to read or write" },
    OptionSpec { key: "format", required: true, roles: BOTH, help: "'json' (JSON lines) or 'csv' (with a header row)" },
    OptionSpec {
        key: "format.on-error",
        required: false,
        roles: &[Role::Source],
        help: "'fail' (default) stops at a malformed record; 'skip' skips and counts it",
    },
    OptionSpec { key: "csv.delimiter", required: false, roles: BOTH, help: "one ASCII character (default ',')" },
];

/// Options of a file table, parsed.
struct FileOptions {
    path: String,
    format: Format,
    on_error: OnError,
    delimiter: u8,
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
        let path = opts.required("path")?.to_string();
        if path.trim().is_empty() {
            return Err(StreamError::Config(format!("table '{}': option 'path' is empty", table.name)));
        }
        Ok(Self {
            path,
            format: Format::from_choice(opts.choice("format", Format::CHOICES, "json")?),
            on_error: OnError::from_choice(opts.choice("format.on-error", OnError::CHOICES, "fail")?),
            delimiter,
        })
    }
}

impl Connector for FileConnector {
    fn name(&self) -> &'static str {
        "file"
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
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

    fn open_source(&self, table: &TableDef, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        let options = FileOptions::parse(table)?;
        Ok(Box::new(source::FileSource::open(table, options, ctx)?))
    }

    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        let options = FileOptions::parse(table)?;
        Ok(Box::new(sink::FileSink::create(table, options)?))
    }
}
