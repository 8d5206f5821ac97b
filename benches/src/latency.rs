//! Latency at a steady input rate: how long after the watermark passes a window's end its
//! result is in a live table (watermark-to-emit), and how long after an event its result is
//! there (event-to-live-table), for a TUMBLE count and an interval join.
//!
//! The input is the `clock` source ([`crate::clock`]): rows made at a fixed rate, each stamped
//! with the wall-clock time its batch was made, which is also its event time, so the watermark
//! follows the wall clock. Results go to a live table; a reader in the same process wakes on
//! every change of the table ([`LiveCatalog::subscribe`]) and notes when each result row became
//! visible, so "in the live table" means what a Flight SQL or console reader could see then.
//!
//! - **watermark-to-emit** (windows): from the moment the last source instance handed over the
//!   batch whose watermark passes the window's end (from the clock's [`ReleaseLog`]) to the
//!   moment the window's last result row is visible. It is the engine's part: the exchange, the
//!   window operator, the sink and the table.
//! - **event-to-live-table**: from the newest event a result counts (`MAX(emitted_us)` of the
//!   window; the later of the two rows of a joined pair) being made to the result being visible.
//!   For a window it adds the watermark delay and the wait for the next batch to the above.
//!
//! Results of the first two seconds (warm-up) and windows closed by the end of the input rather
//! than by a watermark are left out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use streamsql_connectors::Connectors;
use streamsql_connectors::live::LiveConnector;
use streamsql_engine::live::LiveCatalog;
use streamsql_engine::runtime;
use streamsql_sql::Session;

use crate::clock::{ClockConnector, ReleaseLog, now_us};
use crate::live::percentile;

/// Input events per second in every case (all sources together).
pub const RATE: u64 = 100_000;

#[derive(Clone, Copy)]
pub enum Query {
    /// `COUNT(*)` and `MAX(emitted_us)` per `k % 8` per 100 ms TUMBLE window.
    Tumble { delay_ms: i64 },
    /// Two sources at half the rate each, joined on `k` within a second either way.
    IntervalJoin,
}

impl Query {
    fn label(&self) -> String {
        match self {
            Query::Tumble { delay_ms } => {
                format!("TUMBLE 100 ms, COUNT per key (8 keys), watermark delay {delay_ms} ms")
            }
            Query::IntervalJoin => "interval join (±1 s) of two streams, watermark delay 0 ms".to_string(),
        }
    }

    fn sql(&self, parallelism: usize, seconds: u64) -> String {
        let source = |name: &str, rate: u64, keys: u64, delay_ms: i64| {
            format!(
                "CREATE TABLE {name} (k BIGINT, emitted_us BIGINT, ts TIMESTAMP(3), \
                 WATERMARK FOR ts AS ts - INTERVAL '{delay_ms}' MILLISECOND) \
                 WITH ('connector' = 'clock', 'rows-per-second' = '{rate}', 'seconds' = '{seconds}', 'keys' = '{keys}');\n"
            )
        };
        let mut sql = format!("SET 'parallelism.default' = '{parallelism}';\n");
        match self {
            Query::Tumble { delay_ms } => {
                sql += &source("clock", RATE, 1000, *delay_ms);
                sql += "CREATE MATERIALIZED VIEW results WITH ('max-rows' = '100000') AS \
                        SELECT window_end, k % 8 AS part, COUNT(*) AS n, MAX(emitted_us) AS newest \
                        FROM TABLE(TUMBLE(TABLE clock, DESCRIPTOR(ts), INTERVAL '100' MILLISECOND)) \
                        GROUP BY window_start, window_end, k % 8;";
            }
            Query::IntervalJoin => {
                // Each k is made once per side, at about the same moment on both.
                sql += &source("a", RATE / 2, 0, 0);
                sql += &source("b", RATE / 2, 0, 0);
                // A short table: the reader reads only the batches added since it last looked.
                sql += "CREATE MATERIALIZED VIEW results WITH ('max-rows' = '5000') AS \
                        SELECT a.k, a.emitted_us AS a_us, b.emitted_us AS b_us FROM a JOIN b ON a.k = b.k \
                        AND a.ts BETWEEN b.ts - INTERVAL '1' SECOND AND b.ts + INTERVAL '1' SECOND;";
            }
        }
        sql
    }
}

pub struct LatencyResult {
    pub query: String,
    pub parallelism: usize,
    /// Windows or joined rows measured.
    pub results: usize,
    pub unit: &'static str,
    /// Input events per second, as the pipelines counted them.
    pub input_rate: f64,
    /// The process's CPU time over wall time while the case ran (cores busy).
    pub cores: f64,
    pub watermark_to_emit: Option<(f64, f64)>,
    pub event_to_table: (f64, f64),
}

/// What the reader saw of one window: its newest event and when its last row became visible.
#[derive(Default)]
struct Window {
    newest_us: i64,
    visible_us: i64,
}

pub async fn run(query: Query, parallelism: usize, seconds: u64) -> anyhow::Result<LatencyResult> {
    let catalog = LiveCatalog::new();
    let log = Arc::new(ReleaseLog::default());
    let registry = Connectors::builtin()
        .with(Arc::new(LiveConnector::new(catalog.clone())))
        .with(Arc::new(ClockConnector::logged(log.clone())));
    let mut session = Session::new(Arc::new(registry));
    let specs = session.execute(&query.sql(parallelism, seconds)).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let mut changes = catalog.subscribe();
    let started_us = now_us();
    let cpu_before = crate::cases::cpu_seconds();
    let pipelines: Vec<_> = specs.into_iter().map(runtime::start).collect();
    let done = tokio::spawn(async move {
        let mut reports = Vec::new();
        for pipeline in pipelines {
            reports.push(pipeline.join().await);
        }
        reports
    });

    let warm_until_us = started_us + 2_000_000;
    let mut windows: BTreeMap<i64, Window> = BTreeMap::new();
    let mut pairs: Vec<f64> = Vec::new();
    let (mut seen, mut missed) = (0u64, 0usize);
    let mut finished = false;
    while !finished {
        finished = done.is_finished();
        let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
        let visible_us = now_us();
        let Some(table) = catalog.table("results") else { continue };
        if table.version() == seen {
            continue;
        }
        let (version, batches) = table.snapshot()?;
        // Each change appended one batch; the newest `version - seen` are the unseen ones.
        let new = (version - seen) as usize;
        missed += new.saturating_sub(batches.len());
        seen = version;
        for batch in &batches[batches.len().saturating_sub(new)..] {
            match query {
                Query::Tumble { .. } => note_windows(batch, visible_us, &mut windows)?,
                Query::IntervalJoin => note_pairs(batch, visible_us, warm_until_us, &mut pairs)?,
            }
        }
    }
    let cores = (crate::cases::cpu_seconds() - cpu_before) / ((now_us() - started_us) as f64 / 1e6);
    let mut rows_in = 0;
    for report in done.await? {
        let report = report?;
        rows_in += report.metrics.rows_in;
        if report.metrics.late_rows > 0 {
            bail!("{} rows were late; the clock should never be", report.metrics.late_rows);
        }
    }
    if missed > 0 {
        bail!("the reader fell behind the live table and missed {missed} batches");
    }

    let input_rate = rows_in as f64 / seconds as f64;
    let label = query.label();
    let result = match query {
        Query::Tumble { delay_ms } => {
            let (mut to_emit, mut to_table) = (Vec::new(), Vec::new());
            for (end, window) in windows.range(warm_until_us / 1000..) {
                // Closed by a batch of the sources (not by the end of the input).
                let Some(closed_us) = log.all_reached(end + delay_ms) else { continue };
                to_emit.push((window.visible_us - closed_us) as f64 / 1e3);
                to_table.push((window.visible_us - window.newest_us) as f64 / 1e3);
            }
            if to_emit.len() < 100 {
                bail!("only {} windows were measured", to_emit.len());
            }
            LatencyResult {
                query: label,
                parallelism,
                results: to_emit.len(),
                unit: "windows",
                input_rate,
                cores,
                watermark_to_emit: Some((percentile(&mut to_emit, 50.0), percentile(&mut to_emit, 99.0))),
                event_to_table: (percentile(&mut to_table, 50.0), percentile(&mut to_table, 99.0)),
            }
        }
        Query::IntervalJoin => {
            let expected = (seconds - 2) * RATE / 2;
            if (pairs.len() as u64) < expected * 9 / 10 {
                bail!("only {} joined rows were measured, of about {expected}", pairs.len());
            }
            LatencyResult {
                query: label,
                parallelism,
                results: pairs.len(),
                unit: "joined rows",
                input_rate,
                cores,
                watermark_to_emit: None,
                event_to_table: (percentile(&mut pairs, 50.0), percentile(&mut pairs, 99.0)),
            }
        }
    };
    let wm =
        result.watermark_to_emit.map_or("—".to_string(), |(p50, p99)| format!("p50 {p50:.2} ms, p99 {p99:.2} ms"));
    eprintln!(
        "  {} at parallelism {parallelism}: {} {}; watermark-to-emit {wm}; event-to-live-table p50 {:.2} ms, p99 {:.2} ms",
        result.query, result.results, result.unit, result.event_to_table.0, result.event_to_table.1
    );
    Ok(result)
}

fn note_windows(batch: &RecordBatch, visible_us: i64, windows: &mut BTreeMap<i64, Window>) -> anyhow::Result<()> {
    let ends = batch.column_by_name("window_end").context("no window_end")?.as_primitive::<TimestampMillisecondType>();
    let newest = batch.column_by_name("newest").context("no newest")?.as_primitive::<Int64Type>();
    for row in 0..batch.num_rows() {
        let window = windows.entry(ends.value(row)).or_default();
        window.newest_us = window.newest_us.max(newest.value(row));
        window.visible_us = window.visible_us.max(visible_us);
    }
    Ok(())
}

fn note_pairs(batch: &RecordBatch, visible_us: i64, warm_until_us: i64, pairs: &mut Vec<f64>) -> anyhow::Result<()> {
    let a = batch.column_by_name("a_us").context("no a_us")?.as_primitive::<Int64Type>();
    let b = batch.column_by_name("b_us").context("no b_us")?.as_primitive::<Int64Type>();
    for (a, b) in a.values().iter().zip(b.values()) {
        let later = (*a).max(*b);
        if later >= warm_until_us {
            pairs.push((visible_us - later) as f64 / 1e3);
        }
    }
    Ok(())
}

pub fn markdown(results: &[LatencyResult], seconds: u64, load: &str) -> String {
    let mut out = format!(
        "{RATE} input events per second for {seconds} s per case (the first 2 s left out), release build; \
         load average before the run: {load}.\n\n\
         | query | parallelism | input events/s | CPU (cores) | measured | watermark-to-emit p50 | p99 | event-to-live-table p50 | p99 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in results {
        let (wm50, wm99) = r.watermark_to_emit.map_or(("—".to_string(), "—".to_string()), |(p50, p99)| {
            (format!("{p50:.2} ms"), format!("{p99:.2} ms"))
        });
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {} {} | {wm50} | {wm99} | {:.2} ms | {:.2} ms |\n",
            r.query, r.parallelism, r.input_rate, r.cores, r.results, r.unit, r.event_to_table.0, r.event_to_table.1
        ));
    }
    out
}
