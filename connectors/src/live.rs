//! `'connector' = 'live'`: results kept in memory in a [`LiveCatalog`], for queries while the
//! pipeline runs (the Flight SQL server reads the same catalog). `CREATE MATERIALIZED VIEW`
//! declares one of these tables implicitly.
//!
//! Append-only (windowed) results are appended, bounded by `'retention'` (event time, over
//! `'retention.column'` or the table's first TIMESTAMP column) and `'max-rows'`; updating
//! results and tables with a PRIMARY KEY are kept by key. See [`streamsql_engine::live`].

use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use streamsql_engine::connector::{ChangelogMode, Connector, OptionSpec, Role, Sink, TableDef, split_changes};
use streamsql_engine::live::{LiveCatalog, LiveTable, LiveTableOptions, Retention};
use streamsql_engine::time::parse_duration_ms;
use streamsql_engine::{Result, StreamError};

const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "retention",
        required: false,
        roles: &[Role::Sink],
        help: "keep append-only rows this long in event time behind the newest, e.g. '1 HOUR'",
    },
    OptionSpec {
        key: "retention.column",
        required: false,
        roles: &[Role::Sink],
        help: "the TIMESTAMP column 'retention' measures (default: the first TIMESTAMP column)",
    },
    OptionSpec {
        key: "max-rows",
        required: false,
        roles: &[Role::Sink],
        help: "keep at most this many of the newest append-only rows",
    },
];

/// The `live` connector, writing into one catalog.
pub struct LiveConnector {
    catalog: Arc<LiveCatalog>,
}

impl LiveConnector {
    pub fn new(catalog: Arc<LiveCatalog>) -> Self {
        Self { catalog }
    }
}

fn table_options(table: &TableDef) -> Result<LiveTableOptions> {
    let opts = table.opts();
    let error = |message: String| StreamError::Config(format!("table '{}': {message}", table.name));
    let max_age = match opts.get("retention") {
        None => None,
        Some(text) => {
            let ms = parse_duration_ms(text).filter(|ms| *ms > 0).ok_or_else(|| {
                error(format!("option 'retention' must be a duration such as '1 HOUR', got '{text}'"))
            })?;
            let is_time = |t: &DataType| matches!(t, DataType::Timestamp(..));
            let column = match opts.get("retention.column") {
                Some(name) => match table.schema.column_with_name(name) {
                    Some((i, f)) if is_time(f.data_type()) => i,
                    Some(_) => return Err(error(format!("'retention.column' '{name}' is not a TIMESTAMP column"))),
                    None => return Err(error(format!("'retention.column' '{name}' is not a column"))),
                },
                None => table.schema.fields().iter().position(|f| is_time(f.data_type())).ok_or_else(|| {
                    error("'retention' needs a TIMESTAMP column (such as window_end) to measure age by".into())
                })?,
            };
            Some((column, ms))
        }
    };
    if max_age.is_none() && opts.get("retention.column").is_some() {
        return Err(error("'retention.column' is set without 'retention'".into()));
    }
    let max_rows = match opts.get("max-rows") {
        None => None,
        Some(_) => Some(opts.parse::<usize>("max-rows", 0, "a positive number of rows")?)
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| error("option 'max-rows' must be a positive number of rows".into()))?,
    };
    let primary_key = table
        .primary_key
        .iter()
        .map(|k| table.schema.index_of(k).map_err(|_| error(format!("PRIMARY KEY column '{k}' is not a column"))))
        .collect::<Result<_>>()?;
    Ok(LiveTableOptions { primary_key, retention: Retention { max_age, max_rows } })
}

impl Connector for LiveConnector {
    fn name(&self) -> &'static str {
        "live"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn supports(&self, role: Role) -> bool {
        role == Role::Sink
    }
    fn changelog(&self) -> ChangelogMode {
        ChangelogMode::Native
    }
    fn validate(&self, table: &TableDef, _role: Role) -> Result<()> {
        table_options(table).map(|_| ())
    }
    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        let live = self.catalog.get_or_create(&table.name, table.schema.clone(), table_options(table)?)?;
        Ok(Box::new(LiveSink { columns: table.schema.fields().len(), table: live }))
    }
}

struct LiveSink {
    table: Arc<LiveTable>,
    columns: usize,
}

impl Sink for LiveSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match split_changes(batch, self.columns)? {
            (rows, Some(ops)) => self.table.apply_changes(&rows, &ops),
            (rows, None) => self.table.append(&rows),
        }
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
