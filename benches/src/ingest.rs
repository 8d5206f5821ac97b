//! Reading files: the netflow rows written as CSV and as JSON lines, read by the `file`
//! connector into a TUMBLE count (and into a blackhole, to see the reader alone), beside
//! DataFusion's own CSV / JSON scan of the same file into the same aggregation.
//!
//! The files are written before timing starts; each case runs in its own process.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use arrow::array::{AsArray, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit, TimestampMillisecondType};
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, SessionConfig, SessionContext};
use serde_json::{Value, json};
use streamsql_connectors::Connectors;
use streamsql_engine::runtime;
use streamsql_sql::Session;

use crate::cases::{cpu_seconds, generate, peak_rss_bytes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// Every row into a blackhole (streamsql) / `COUNT(*)` over a full scan (DataFusion).
    Scan,
    /// `COUNT(*)` per flow_type per 5-second TUMBLE window.
    Tumble,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestCase {
    pub format: FileFormat,
    pub query: Query,
    pub batch: bool,
    /// streamsql's `'parallelism.default'` (a file is then decoded on that many threads);
    /// DataFusion's target partitions (it splits the file into that many ranges).
    pub parallelism: usize,
}

impl IngestCase {
    /// Every format, query and engine at parallelism 1, then at 2.
    pub fn all() -> Vec<IngestCase> {
        let mut cases = Vec::new();
        for parallelism in [1, 2] {
            for format in [FileFormat::Csv, FileFormat::Json] {
                for query in [Query::Scan, Query::Tumble] {
                    for batch in [false, true] {
                        cases.push(IngestCase { format, query, batch, parallelism });
                    }
                }
            }
        }
        cases
    }

    pub fn to_arg(self) -> String {
        format!(
            "{}:{}:{}:p{}",
            if self.format == FileFormat::Csv { "csv" } else { "json" },
            if self.query == Query::Scan { "scan" } else { "tumble" },
            if self.batch { "batch" } else { "stream" },
            self.parallelism
        )
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        IngestCase::all().into_iter().find(|c| c.to_arg() == text).with_context(|| format!("no ingest case {text}"))
    }

    fn label(self) -> (&'static str, &'static str, &'static str) {
        (
            if self.format == FileFormat::Csv { "CSV" } else { "JSON lines" },
            match (self.query, self.batch) {
                (Query::Scan, false) => "read every row (into a blackhole)",
                (Query::Scan, true) => "read every row (`COUNT` of each column)",
                (Query::Tumble, _) => "TUMBLE 5 s, COUNT(*) per flow_type",
            },
            if self.batch { "DataFusion batch" } else { "streamsql" },
        )
    }

    fn path(self, dir: &Path) -> PathBuf {
        dir.join(if self.format == FileFormat::Csv { "flows.csv" } else { "flows.jsonl" })
    }
}

/// Writes the netflow rows as `flows.csv` and `flows.jsonl` in `dir`; returns their sizes.
fn write_files(rows: usize, dir: &Path) -> anyhow::Result<(u64, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut csv = BufWriter::new(File::create(dir.join("flows.csv"))?);
    let mut jsonl = BufWriter::new(File::create(dir.join("flows.jsonl"))?);
    writeln!(csv, "ts,dst_port,flow_type,bytes_in")?;
    for batch in generate(rows)? {
        let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
        let port = batch.column(1).as_any().downcast_ref::<Int32Array>().context("dst_port")?;
        let kind = batch.column(2).as_any().downcast_ref::<StringArray>().context("flow_type")?;
        let bytes = batch.column(3).as_any().downcast_ref::<Int64Array>().context("bytes_in")?;
        for row in 0..batch.num_rows() {
            let time = chrono::DateTime::from_timestamp_millis(ts.value(row)).context("ts")?;
            let time = time.format("%Y-%m-%d %H:%M:%S%.3f");
            let (port, kind, bytes) = (port.value(row), kind.value(row), bytes.value(row));
            writeln!(csv, "{time},{port},{kind},{bytes}")?;
            writeln!(jsonl, r#"{{"ts":"{time}","dst_port":{port},"flow_type":"{kind}","bytes_in":{bytes}}}"#)?;
        }
    }
    csv.flush()?;
    jsonl.flush()?;
    Ok((std::fs::metadata(dir.join("flows.csv"))?.len(), std::fs::metadata(dir.join("flows.jsonl"))?.len()))
}

/// One case, in this process: its measurements as JSON.
pub fn run_case(case: IngestCase, dir: &Path, rows: usize) -> anyhow::Result<Value> {
    let path = case.path(dir);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let (rows_read, result_rows) = if case.batch {
        runtime.block_on(run_batch(case, &path))?
    } else {
        runtime.block_on(run_streaming(case, &path))?
    };
    let wall_seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu_before;
    if rows_read != rows as u64 {
        bail!("{}: read {rows_read} rows of {rows}", case.to_arg());
    }
    Ok(json!({
        "rows": rows, "wall_seconds": wall_seconds, "cpu_seconds": cpu_seconds,
        "result_rows": result_rows, "peak_rss_bytes": peak_rss_bytes(),
    }))
}

/// Rows read and result rows.
async fn run_streaming(case: IngestCase, path: &Path) -> anyhow::Result<(u64, u64)> {
    let mut session = Session::new(Arc::new(Connectors::builtin()));
    let format = if case.format == FileFormat::Csv { "csv" } else { "json" };
    let query = match case.query {
        Query::Scan => "CREATE TABLE out (ts TIMESTAMP(3), dst_port INT, flow_type STRING, bytes_in BIGINT)
               WITH ('connector' = 'blackhole');
             INSERT INTO out SELECT * FROM flows;"
            .to_string(),
        Query::Tumble => "CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING,
               flows BIGINT) WITH ('connector' = 'blackhole');
             INSERT INTO counts SELECT window_start, window_end, flow_type, COUNT(*)
             FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND))
             GROUP BY window_start, window_end, flow_type;"
            .to_string(),
    };
    let sql = format!(
        "SET 'parallelism.default' = '{}';
         CREATE TABLE flows (ts TIMESTAMP(3), dst_port INT, flow_type STRING, bytes_in BIGINT,
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
           WITH ('connector' = 'file', 'path' = '{}', 'format' = '{format}');
         {query}",
        case.parallelism,
        path.display()
    );
    let mut pipelines = session.execute(&sql).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pipeline = pipelines.pop().context("no pipeline")?;
    let report = runtime::start(pipeline).join().await?;
    let metrics = &report.metrics;
    if metrics.late_rows > 0 || metrics.bad_records > 0 {
        bail!("{} late rows, {} bad records: the benchmark data must be clean", metrics.late_rows, metrics.bad_records);
    }
    Ok((metrics.rows_in, metrics.rows_out))
}

async fn run_batch(case: IngestCase, path: &Path) -> anyhow::Result<(u64, u64)> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(case.parallelism));
    let schema = Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("dst_port", DataType::Int32, true),
        Field::new("flow_type", DataType::Utf8, true),
        Field::new("bytes_in", DataType::Int64, true),
    ]);
    let path = path.to_str().context("path")?;
    match case.format {
        FileFormat::Csv => {
            ctx.register_csv("flows", path, CsvReadOptions::new().schema(&schema).has_header(true)).await?
        }
        FileFormat::Json => {
            ctx.register_json("flows", path, JsonReadOptions::default().schema(&schema).file_extension(".jsonl"))
                .await?
        }
    }
    if case.query == Query::Scan {
        // Every column counted, so every column is decoded.
        let sql = "SELECT COUNT(*), COUNT(ts), COUNT(dst_port), COUNT(flow_type), COUNT(bytes_in) FROM flows";
        let batches = ctx.sql(sql).await?.collect().await?;
        let count = batches.first().context("no count")?.column(0).as_primitive::<Int64Type>();
        return Ok((count.value(0) as u64, 1));
    }
    let sql = "SELECT date_bin(INTERVAL '5 seconds', ts, TIMESTAMP '1970-01-01 00:00:00') AS window_start, flow_type,
                 COUNT(*) AS flows FROM flows GROUP BY 1, 2";
    let results = ctx.sql(sql).await?.collect().await?;
    let rows_read =
        results.iter().map(|b| b.column(2).as_primitive::<Int64Type>().iter().flatten().sum::<i64>()).sum::<i64>();
    Ok((rows_read as u64, results.iter().map(|b| b.num_rows() as u64).sum()))
}

/// Writes the files, runs every case in a child process and returns the markdown table.
///
/// The files are written into a temporary directory and removed at the end, or, with `dir`,
/// kept there (and written only if missing), for profiling a case on its own with
/// `--ingest-case CASE --dir DIR --rows N`.
pub fn run(rows: usize, dir: Option<&Path>) -> anyhow::Result<String> {
    let keep = dir.is_some();
    let dir = dir.map_or_else(
        || std::env::temp_dir().join(format!("streamsql-ingest-{}", std::process::id())),
        Path::to_path_buf,
    );
    let (csv_bytes, json_bytes) = if keep && dir.join("flows.csv").exists() && dir.join("flows.jsonl").exists() {
        (std::fs::metadata(dir.join("flows.csv"))?.len(), std::fs::metadata(dir.join("flows.jsonl"))?.len())
    } else {
        eprintln!("writing {rows} netflow rows as CSV and JSON lines into {} ...", dir.display());
        write_files(rows, &dir)?
    };
    let exe = std::env::current_exe()?;
    let mut lines = Vec::new();
    for case in IngestCase::all() {
        eprintln!("running {} ...", case.to_arg());
        let output = Command::new(&exe)
            .args(["--ingest-case", &case.to_arg(), "--dir"])
            .arg(&dir)
            .args(["--rows", &rows.to_string()])
            .output()
            .with_context(|| format!("running {}", case.to_arg()))?;
        if !output.status.success() {
            if !keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
            bail!("{} failed: {}", case.to_arg(), String::from_utf8_lossy(&output.stderr));
        }
        let v: Value = serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim())?;
        let num = |k: &str| v[k].as_f64().with_context(|| format!("missing {k}"));
        let (wall, cpu) = (num("wall_seconds")?, num("cpu_seconds")?);
        let (format, query, engine) = case.label();
        let line = format!(
            "| {format} | {query} | {engine} | {} | {:.2} M | {:.2} M | {} | {} MiB |",
            case.parallelism,
            rows as f64 / wall / 1e6,
            rows as f64 / cpu.max(1e-9) / 1e6,
            num("result_rows")? as u64,
            num("peak_rss_bytes")? as u64 >> 20
        );
        eprintln!("  {line}");
        lines.push(line);
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut out = format!(
        "{rows} netflow rows (`ts`, `dst_port`, `flow_type`, `bytes_in`): CSV {} MiB, JSON lines {} MiB; \
         {} build.\n\n",
        csv_bytes >> 20,
        json_bytes >> 20,
        if cfg!(debug_assertions) { "debug (not representative)" } else { "release" }
    );
    out.push_str("| file | query | engine | parallelism | rows/s | rows/s per core | result rows | peak RSS |\n");
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|\n");
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}
