//! `'connector' = 'live'`: results kept in memory in a [`LiveCatalog`], for queries while the
//! pipeline runs (the Flight SQL server reads the same catalog). `CREATE MATERIALIZED VIEW`
//! declares one of these tables implicitly.
//!
//! Append-only (windowed) results are appended, bounded by `'retention'` (event time, over
//! `'retention.column'` or the table's first TIMESTAMP column) and `'max-rows'`; updating
//! results and tables with a PRIMARY KEY are kept by key. See [`streamsql_engine::live`].

use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use streamsql_engine::connector::{
    ChangelogMode, Connector, Delivery, OptionSpec, Role, Sink, TableDef, split_changes,
};
use streamsql_engine::live::{Chart, ChartKind, LiveCatalog, LiveRows, LiveTableOptions, Retention, Writer};
use streamsql_engine::operator::StateSnapshot;
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
    OptionSpec {
        key: "chart",
        required: false,
        roles: &[Role::Sink],
        help: "how the web console (--http) draws the table: 'line', 'area', 'bar', 'value' or 'table' \
               (default: line over window_start when the table has windows, else bar per key)",
    },
    OptionSpec {
        key: "chart.x",
        required: false,
        roles: &[Role::Sink],
        help: "the chart's time axis (line, area, value: a TIMESTAMP column) or categories (bar)",
    },
    OptionSpec {
        key: "chart.y",
        required: false,
        roles: &[Role::Sink],
        help: "the numeric column the chart draws (default: the first numeric column not used otherwise)",
    },
    OptionSpec {
        key: "chart.series",
        required: false,
        roles: &[Role::Sink],
        help: "line, area: the column whose values are drawn as separate lines (default: the first STRING column)",
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
    let primary_key: Vec<usize> = table
        .primary_key
        .iter()
        .map(|k| table.schema.index_of(k).map_err(|_| error(format!("PRIMARY KEY column '{k}' is not a column"))))
        .collect::<Result<_>>()?;
    let chart = chart(table, &primary_key)?;
    Ok(LiveTableOptions { primary_key, retention: Retention { max_age, max_rows }, chart })
}

/// The table's chart: as declared by `'chart'`, `'chart.x'`, `'chart.y'` and `'chart.series'`,
/// the columns left out chosen from the table's; without `'chart'`, the kind that suits the
/// table (a line over its windows, a bar per key, a table).
fn chart(table: &TableDef, primary_key: &[usize]) -> Result<Chart> {
    let opts = table.opts();
    let error = |message: String| StreamError::Config(format!("table '{}': {message}", table.name));
    let schema = &table.schema;
    let is_time = |t: &DataType| matches!(t, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64);
    let is_number = |t: &DataType| t.is_numeric();
    let is_text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let column = |key: &str, wanted: &dyn Fn(&DataType) -> bool, what: &str| -> Result<Option<String>> {
        let Some(name) = opts.get(key) else { return Ok(None) };
        match schema.column_with_name(name) {
            Some((_, f)) if wanted(f.data_type()) => Ok(Some(name.to_string())),
            Some((_, f)) => Err(error(format!("'{key}' '{name}' is {}, not {what}", f.data_type()))),
            None => Err(error(format!(
                "'{key}' '{name}' is not a column; the columns are {}",
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    };
    let first = |wanted: &dyn Fn(&DataType) -> bool, skip: &[Option<String>]| {
        schema
            .fields()
            .iter()
            .find(|f| wanted(f.data_type()) && !skip.iter().flatten().any(|s| s == f.name()))
            .map(|f| f.name().to_string())
    };
    let declared = match opts.get("chart") {
        None => None,
        Some(text) => {
            Some(ChartKind::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(text.trim())).ok_or_else(|| {
                error(format!("option 'chart' must be one of 'line', 'area', 'bar', 'value' or 'table', got '{text}'"))
            })?)
        }
    };
    let window = ["window_start", "window_end"]
        .into_iter()
        .find(|w| schema.column_with_name(w).is_some_and(|(_, f)| is_time(f.data_type())))
        .map(str::to_string);
    let key = primary_key.first().map(|&i| schema.field(i).name().to_string());
    let kind = match declared {
        Some(kind) => kind,
        None if opts.get("chart.x").is_some()
            || opts.get("chart.y").is_some()
            || opts.get("chart.series").is_some() =>
        {
            return Err(error(
                "'chart.x', 'chart.y' and 'chart.series' need 'chart' (line, area, bar or value)".into(),
            ));
        }
        None if first(&is_number, &[]).is_none() => ChartKind::Table,
        None if window.is_some() => ChartKind::Line,
        None if key.is_some() || first(&is_text, &[]).is_some() => ChartKind::Bar,
        None => ChartKind::Table,
    };
    let mut chart = Chart { kind, x: None, y: None, series: None };
    match kind {
        ChartKind::Table => {
            if let Some(key) = ["chart.x", "chart.y", "chart.series"].into_iter().find(|k| opts.get(k).is_some()) {
                return Err(error(format!("'{key}' does not apply to 'chart' = 'table'")));
            }
        }
        ChartKind::Line | ChartKind::Area | ChartKind::Value => {
            chart.x = column("chart.x", &is_time, "a TIMESTAMP or DATE")?.or(window).or_else(|| first(&is_time, &[]));
            if chart.x.is_none() && kind != ChartKind::Value {
                return Err(error(format!(
                    "a '{}' chart needs a TIMESTAMP column for its time axis, and the table has none",
                    kind.name()
                )));
            }
            if kind == ChartKind::Value {
                if opts.get("chart.series").is_some() {
                    return Err(error("'chart.series' does not apply to 'chart' = 'value'".into()));
                }
            } else {
                chart.series = column("chart.series", &|_| true, "a column")?.or_else(|| first(&is_text, &[]));
            }
            chart.y = column("chart.y", &is_number, "a number")?
                .or_else(|| first(&is_number, &[chart.x.clone(), chart.series.clone()]));
        }
        ChartKind::Bar => {
            if opts.get("chart.series").is_some() {
                return Err(error(
                    "'chart.series' does not apply to 'chart' = 'bar' (its categories are 'chart.x')".into(),
                ));
            }
            chart.x = column("chart.x", &|_| true, "a column")?.or(key).or_else(|| first(&is_text, &[]));
            if chart.x.is_none() {
                return Err(error("a 'bar' chart needs a column for its categories ('chart.x')".into()));
            }
            chart.y = column("chart.y", &is_number, "a number")?.or_else(|| first(&is_number, &[chart.x.clone()]));
        }
    }
    if kind != ChartKind::Table && chart.y.is_none() {
        return Err(error(format!(
            "a '{}' chart needs a numeric column to draw ('chart.y'), and the table has none",
            kind.name()
        )));
    }
    Ok(chart)
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
    /// A checkpoint holds the table's rows, and a restart puts them back before the results
    /// after the checkpoint arrive again: every result is in the table once.
    fn delivery(&self, _table: &TableDef, role: Role) -> Delivery {
        match role {
            Role::Sink => Delivery::ExactlyOnce,
            _ => Delivery::Unsupported,
        }
    }
    fn open_sink(&self, table: &TableDef) -> Result<Box<dyn Sink>> {
        let live = self.catalog.get_or_create(&table.name, table.schema.clone(), table_options(table)?)?;
        Ok(Box::new(LiveSink { columns: table.schema.fields().len(), table: live.writer() }))
    }
}

struct LiveSink {
    table: Writer,
    columns: usize,
}

impl LiveSink {
    /// A checkpoint holds the whole table: it must be this pipeline's alone.
    fn only_writer(&self) -> Result<()> {
        match self.table.writers() {
            1 => Ok(()),
            n => Err(StreamError::Config(format!(
                "checkpoints: live table '{}' is written by {n} pipelines; a checkpoint of one of them cannot \
                 hold it (write each pipeline's results to a table of its own)",
                self.table.name()
            ))),
        }
    }
}

impl Sink for LiveSink {
    /// The table's rows and whether they are kept by key.
    fn snapshot(&mut self) -> Result<StateSnapshot> {
        self.only_writer()?;
        let rows = self.table.checkpoint_rows()?;
        let Some(keyed) = rows.keyed else { return Ok(StateSnapshot::default()) };
        let schema = Arc::new(Schema::new(vec![Field::new("keyed", DataType::Boolean, false)]));
        let layout = RecordBatch::try_new(schema, vec![Arc::new(BooleanArray::from(vec![keyed]))])?;
        Ok(StateSnapshot {
            tables: vec![("layout".into(), vec![layout]), ("rows".into(), rows.batches)],
            rescaled: None,
        })
    }

    /// Puts the rows of a [`LiveSink::snapshot`] back in the table.
    fn restore(&mut self, state: StateSnapshot) -> Result<()> {
        self.only_writer()?;
        let keyed = state.table("layout").iter().find(|b| b.num_rows() > 0).map(|b| b.column(0).as_boolean().value(0));
        self.table.restore_rows(LiveRows { keyed, batches: state.table("rows").to_vec() })
    }

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    fn table(name: &str, primary_key: &[&str]) -> TableDef {
        TableDef {
            name: name.into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("n", DataType::Int64, false),
            ])),
            options: BTreeMap::from([("connector".to_string(), "live".to_string())]),
            watermark: None,
            primary_key: primary_key.iter().map(|k| k.to_string()).collect(),
            computed: Vec::new(),
        }
    }

    fn rows(table: &TableDef, rows: &[(&str, i64)]) -> RecordBatch {
        let keys: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let values: Vec<i64> = rows.iter().map(|r| r.1).collect();
        RecordBatch::try_new(
            table.schema.clone(),
            vec![Arc::new(StringArray::from(keys)), Arc::new(Int64Array::from(values))],
        )
        .expect("batch")
    }

    fn contents(catalog: &LiveCatalog, name: &str) -> Vec<(String, i64)> {
        let (_, batches) = catalog.table(name).expect("table").snapshot().expect("snapshot");
        let mut out = Vec::new();
        for b in batches {
            let (k, n) = (b.column(0).as_string::<i32>(), b.column(1).as_primitive::<arrow::datatypes::Int64Type>());
            out.extend((0..b.num_rows()).map(|i| (k.value(i).to_string(), n.value(i))));
        }
        out.sort();
        out
    }

    /// A restarted process's sink puts the checkpointed rows back, appended or by key; the rows
    /// written after the checkpoint are not in it.
    #[test]
    fn a_checkpoint_brings_the_table_back() -> Result<()> {
        for key in [&[][..], &["k"][..]] {
            let def = table("t", key);
            let catalog = LiveCatalog::new();
            let mut sink = LiveConnector::new(catalog.clone()).open_sink(&def)?;
            sink.write(&rows(&def, &[("a", 1), ("b", 2)]))?;
            sink.write(&rows(&def, &[("a", 3)]))?;
            let state = sink.snapshot()?;
            sink.write(&rows(&def, &[("c", 9)]))?;
            let before = contents(&catalog, "t");
            drop(sink);

            let restarted = LiveCatalog::new();
            let mut sink = LiveConnector::new(restarted.clone()).open_sink(&def)?;
            sink.restore(state)?;
            let expected = if key.is_empty() {
                vec![("a".into(), 1), ("a".into(), 3), ("b".into(), 2)]
            } else {
                vec![("a".into(), 3), ("b".into(), 2)]
            };
            assert_eq!(contents(&restarted, "t"), expected, "key {key:?}");
            sink.write(&rows(&def, &[("c", 9)]))?;
            assert_eq!(contents(&restarted, "t"), before, "key {key:?}");
        }
        Ok(())
    }

    /// A checkpoint holds the whole table: one written by two pipelines is refused, by name.
    #[test]
    fn a_table_two_pipelines_write_is_not_checkpointed() -> Result<()> {
        let def = table("shared", &[]);
        let catalog = LiveCatalog::new();
        let connector = LiveConnector::new(catalog);
        let mut first = connector.open_sink(&def)?;
        let second = connector.open_sink(&def)?;
        let error = first.snapshot().expect_err("refused").to_string();
        assert!(error.contains("live table 'shared' is written by 2 pipelines"), "{error}");
        drop(second);
        assert!(first.snapshot().is_ok());
        Ok(())
    }
}
