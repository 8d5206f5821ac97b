//! One benchmark case: a window, a parallelism, and an engine.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::{Value, json};
use streamsql_connectors::Connectors;
use streamsql_connectors::netflow::{NetflowGenerator, NetflowOptions};
use streamsql_engine::runtime;
use streamsql_sql::Session;

use crate::memory::MemoryConnector;

const BATCH_ROWS: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Tumble5s,
    Hop1s10s,
    Cumulate1s10s,
    Session1s,
    /// Not a window: `COUNT(*)` and `SUM(bytes_in)` OVER the last 10 s per port, a row per row.
    Over10s,
}

impl Window {
    pub const ALL: [Window; 5] =
        [Window::Tumble5s, Window::Hop1s10s, Window::Cumulate1s10s, Window::Session1s, Window::Over10s];

    fn name(self) -> &'static str {
        match self {
            Window::Tumble5s => "tumble",
            Window::Hop1s10s => "hop",
            Window::Cumulate1s10s => "cumulate",
            Window::Session1s => "session",
            Window::Over10s => "over",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Streamsql,
    DataFusionBatch,
}

#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub window: Window,
    pub parallelism: usize,
    pub engine: Engine,
}

impl Case {
    pub fn to_arg(self) -> String {
        let w = self.window.name();
        let e = match self.engine {
            Engine::Streamsql => "stream",
            Engine::DataFusionBatch => "batch",
        };
        format!("{w}:{}:{e}", self.parallelism)
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = text.split(':').collect();
        let [w, p, e] = parts.as_slice() else { bail!("bad case {text}") };
        Ok(Case {
            window: Window::ALL.into_iter().find(|x| x.name() == *w).with_context(|| format!("no case {w}"))?,
            parallelism: p.parse()?,
            engine: if *e == "batch" { Engine::DataFusionBatch } else { Engine::Streamsql },
        })
    }

    pub fn window_label(self) -> &'static str {
        match self.window {
            Window::Tumble5s => "TUMBLE 5 s, COUNT(*) per flow_type",
            Window::Hop1s10s => "HOP 1 s / 10 s, COUNT(*) per flow_type",
            Window::Cumulate1s10s => "CUMULATE 1 s / 10 s, COUNT(*) per flow_type",
            Window::Session1s => "SESSION gap 1 s per dst_port, COUNT(*), SUM(bytes_in)",
            Window::Over10s => "COUNT(*), SUM(bytes_in) OVER 10 s per dst_port",
        }
    }

    pub fn engine_label(self) -> &'static str {
        match self.engine {
            Engine::Streamsql => "streamsql",
            Engine::DataFusionBatch => "DataFusion batch",
        }
    }

    pub fn label(self) -> String {
        format!("{} / parallelism {} / {}", self.window_label(), self.parallelism, self.engine_label())
    }
}

/// What one case measured.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
    pub rows: usize,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub result_rows: usize,
    pub peak_rss_bytes: u64,
    pub input_bytes: usize,
}

impl CaseResult {
    pub fn events_per_second(&self) -> f64 {
        self.rows as f64 / self.wall_seconds
    }

    pub fn events_per_cpu_second(&self) -> f64 {
        self.rows as f64 / self.cpu_seconds.max(1e-9)
    }

    pub fn summary(&self) -> String {
        format!(
            "{:.2} M events/s, {:.2} M events/s per core, {} result rows, peak RSS {} MiB",
            self.events_per_second() / 1e6,
            self.events_per_cpu_second() / 1e6,
            self.result_rows,
            self.peak_rss_bytes >> 20
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "rows": self.rows, "wall_seconds": self.wall_seconds, "cpu_seconds": self.cpu_seconds,
            "result_rows": self.result_rows, "peak_rss_bytes": self.peak_rss_bytes, "input_bytes": self.input_bytes,
        })
    }

    pub fn from_json(case: Case, text: &str) -> anyhow::Result<Self> {
        let v: Value = serde_json::from_str(text).with_context(|| format!("case output: {text}"))?;
        let num = |k: &str| v[k].as_f64().with_context(|| format!("missing {k}"));
        Ok(Self {
            case,
            rows: num("rows")? as usize,
            wall_seconds: num("wall_seconds")?,
            cpu_seconds: num("cpu_seconds")?,
            result_rows: num("result_rows")? as usize,
            peak_rss_bytes: num("peak_rss_bytes")? as u64,
            input_bytes: num("input_bytes")? as usize,
        })
    }
}

/// User + system CPU time of this process, in seconds.
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of this process.
pub(crate) fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The benchmark input: netflow rows, only the columns the queries read.
pub(crate) fn generate(rows: usize) -> anyhow::Result<Vec<RecordBatch>> {
    let options = NetflowOptions {
        number_of_rows: Some(rows as u64),
        max_out_of_orderness_ms: 800,
        event_rows_per_second: 10_000,
        ..NetflowOptions::default()
    };
    let mut generator = NetflowGenerator::new(options);
    let schema = streamsql_connectors::netflow::netflow_schema();
    let columns = ["ts", "dst_port", "flow_type", "bytes_in"]
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut batches = Vec::new();
    while let Some(batch) = generator.next_batch(BATCH_ROWS) {
        batches.push(batch.project(&columns)?);
    }
    Ok(batches)
}

pub fn run_case(case: Case, rows: usize) -> anyhow::Result<CaseResult> {
    let batches = generate(rows)?;
    let input_bytes = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let result_rows = match case.engine {
        Engine::Streamsql => runtime.block_on(run_streaming(case, batches))?,
        Engine::DataFusionBatch => runtime.block_on(run_batch(case, batches))?,
    };
    let wall_seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu_before;
    Ok(CaseResult { case, rows, wall_seconds, cpu_seconds, result_rows, peak_rss_bytes: peak_rss_bytes(), input_bytes })
}

async fn run_streaming(case: Case, batches: Vec<RecordBatch>) -> anyhow::Result<usize> {
    // Read by `parallelism` source instances, as a topic with a partition per instance would be.
    let source = MemoryConnector { partitioned: true, ..MemoryConnector::new(batches) };
    let registry = Connectors::builtin().with(Arc::new(source));
    let mut session = Session::new(Arc::new(registry));
    let window = match case.window {
        Window::Tumble5s => "TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND)",
        Window::Hop1s10s => "HOP(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '10' SECOND)",
        Window::Cumulate1s10s => "CUMULATE(TABLE flows, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '10' SECOND)",
        Window::Session1s | Window::Over10s => "",
    };
    let query = match case.window {
        Window::Session1s => "CREATE TABLE out (window_start TIMESTAMP(3), window_end TIMESTAMP(3), dst_port INT,
               flows BIGINT, bytes BIGINT) WITH ('connector' = 'blackhole');
             INSERT INTO out SELECT window_start, window_end, dst_port, COUNT(*), SUM(bytes_in)
             FROM TABLE(SESSION(TABLE flows PARTITION BY dst_port, DESCRIPTOR(ts), INTERVAL '1' SECOND))
             GROUP BY window_start, window_end, dst_port;"
            .to_string(),
        Window::Over10s => "CREATE TABLE out (dst_port INT, ts TIMESTAMP(3), flows BIGINT, bytes BIGINT)
               WITH ('connector' = 'blackhole');
             INSERT INTO out SELECT dst_port, ts,
               COUNT(*) OVER (PARTITION BY dst_port ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW),
               SUM(bytes_in) OVER (PARTITION BY dst_port ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW)
             FROM flows;"
            .to_string(),
        _ => format!(
            "CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING, flows BIGINT)
               WITH ('connector' = 'blackhole');
             INSERT INTO counts
             SELECT window_start, window_end, flow_type, COUNT(*) FROM TABLE({window})
             GROUP BY window_start, window_end, flow_type;"
        ),
    };
    let sql = format!(
        "SET 'parallelism.default' = '{p}';
         CREATE TABLE flows (ts TIMESTAMP(3), dst_port INT, flow_type STRING, bytes_in BIGINT,
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'memory');
         {query}",
        p = case.parallelism
    );
    let mut pipelines = session.execute(&sql).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pipeline = pipelines.pop().context("no pipeline")?;
    let report = runtime::start(pipeline).join().await?;
    if report.metrics.late_rows > 0 {
        bail!("{} late rows: the benchmark data must be on time", report.metrics.late_rows);
    }
    Ok(report.metrics.rows_out as usize)
}

async fn run_batch(case: Case, batches: Vec<RecordBatch>) -> anyhow::Result<usize> {
    let config = SessionConfig::new().with_target_partitions(case.parallelism);
    let ctx = SessionContext::new_with_config(config);
    let schema = batches.first().context("no data")?.schema();
    // Split the batches round-robin into one partition per core, as DataFusion would scan them.
    let mut partitions = vec![Vec::new(); case.parallelism];
    for (i, batch) in batches.into_iter().enumerate() {
        partitions[i % case.parallelism].push(batch);
    }
    ctx.register_table("flows", Arc::new(MemTable::try_new(schema, partitions)?))?;
    let sql = match case.window {
        Window::Tumble5s => {
            "SELECT date_bin(INTERVAL '5 seconds', ts, TIMESTAMP '1970-01-01 00:00:00') AS window_start, flow_type, COUNT(*) AS flows
             FROM flows GROUP BY 1, 2"
        }
        // Each row belongs to the 10 windows starting in (ts - 10 s, ts], one per second.
        Window::Hop1s10s => {
            "SELECT window_start, flow_type, COUNT(*) AS flows FROM (
               SELECT flow_type, unnest(generate_series(s - 9000, s, 1000)) AS window_start
               FROM (SELECT flow_type, (arrow_cast(ts, 'Int64') / 1000) * 1000 AS s FROM flows))
             GROUP BY 1, 2"
        }
        // Each row belongs to the windows of its 10 s period ending after it, one per second.
        Window::Cumulate1s10s => {
            "SELECT p, window_end, flow_type, COUNT(*) AS flows FROM (
               SELECT flow_type, p, unnest(generate_series(s + 1000, p + 10000, 1000)) AS window_end
               FROM (SELECT flow_type, (arrow_cast(ts, 'Int64') / 1000) * 1000 AS s,
                            (arrow_cast(ts, 'Int64') / 10000) * 10000 AS p FROM flows))
             GROUP BY 1, 2, 3"
        }
        // Sessions found with LAG and a running count of session starts.
        Window::Session1s => {
            "SELECT dst_port, sid, MIN(t) AS window_start, MAX(t) + 1000 AS window_end, COUNT(*), SUM(bytes_in) FROM (
               SELECT *, SUM(new) OVER (PARTITION BY dst_port ORDER BY t ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS sid
               FROM (SELECT dst_port, bytes_in, arrow_cast(ts, 'Int64') AS t,
                       CASE WHEN arrow_cast(ts, 'Int64') - LAG(arrow_cast(ts, 'Int64')) OVER (PARTITION BY dst_port ORDER BY ts) < 1000
                       THEN 0 ELSE 1 END AS new FROM flows))
             GROUP BY dst_port, sid"
        }
        Window::Over10s => {
            "SELECT dst_port, ts,
               COUNT(*) OVER (PARTITION BY dst_port ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW),
               SUM(bytes_in) OVER (PARTITION BY dst_port ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW)
             FROM flows"
        }
    };
    let results = ctx.sql(sql).await?.collect().await?;
    Ok(results.iter().map(|b| b.num_rows()).sum())
}
