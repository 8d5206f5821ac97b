//! What checkpoints cost: throughput with checkpoints every 1 s and 10 s against none, and the
//! size, duration and recovery time of a checkpoint of 1 M open groups.
//!
//! Each measurement runs in a child process of its own (peak RSS and CPU time are per process).
//! Inputs are the benchmark's netflow batches in memory, replayed for long runs with event time
//! shifted per cycle; state goes to a temporary directory on local disk.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use streamsql_connectors::Connectors;
use streamsql_engine::runtime;
use streamsql_sql::Session;

use crate::cases::{cpu_seconds, generate, peak_rss_bytes};
use crate::memory::MemoryConnector;

const TABLE: &str = "CREATE TABLE flows (ts TIMESTAMP(3), dst_port INT, flow_type STRING, bytes_in BIGINT,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'memory');";

fn state_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("streamsql-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Child: a TUMBLE count over `rows` × `cycles` rows at parallelism 1, checkpointing every
/// `interval` (`none`: not at all).
pub fn overhead_case(interval: &str, rows: usize, cycles: usize) -> anyhow::Result<Value> {
    let batches = generate(rows)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = state_dir("overhead");
    let checkpoints = match interval {
        "none" => String::new(),
        every => format!(
            "SET 'execution.checkpointing.interval' = '{every}'; SET 'state.checkpoints.dir' = '{}';",
            dir.display()
        ),
    };
    let sql = format!(
        "{checkpoints}
         {TABLE}
         CREATE TABLE counts (window_start TIMESTAMP(3), window_end TIMESTAMP(3), flow_type STRING, flows BIGINT)
           WITH ('connector' = 'blackhole');
         INSERT INTO counts SELECT window_start, window_end, flow_type, COUNT(*)
         FROM TABLE(TUMBLE(TABLE flows, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY window_start, window_end, flow_type;"
    );
    let connector = MemoryConnector { cycles, ..MemoryConnector::new(batches) };
    let mut session = Session::new(Arc::new(Connectors::builtin().with(Arc::new(connector))));
    let pipeline = session.execute(&sql).map_err(|e| anyhow::anyhow!("{e}"))?.pop().context("no pipeline")?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    // The state directory goes when the pipeline ends, so the last checkpoint is read here.
    let report = runtime.block_on(async {
        let running = runtime::start(pipeline);
        let control = running.control();
        let watch = tokio::spawn(async move {
            let mut last = None;
            loop {
                if let Some(stats) = control.last_checkpoint() {
                    last = Some(stats);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                if control.metrics().rows_in as usize >= rows * cycles {
                    return last;
                }
            }
        });
        let report = running.join().await;
        (report, watch.await.ok().flatten())
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let (report, last) = report;
    let report = report?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "rows": rows * cycles, "cpu_seconds": cpu, "wall_seconds": wall, "result_rows": report.metrics.rows_out,
        "checkpoints": report.last_checkpoint.or(last).map_or(0, |s| s.epoch),
        "last_bytes": report.last_checkpoint.or(last).map_or(0, |s| s.bytes),
        "last_ms": report.last_checkpoint.or(last).map_or(0, |s| s.duration.as_millis() as u64),
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}

/// Child: an updating aggregate keyed by event time (about 1 M keys in 10 M rows), a
/// checkpoint once every row is in, then a restart from it.
pub fn groups_case(rows: usize) -> anyhow::Result<Value> {
    let batches = Arc::new(generate(rows)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = state_dir("groups");
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '1 s'; SET 'state.checkpoints.dir' = '{}';
         SET 'update-interval' = '200 ms';
         {TABLE}
         CREATE TABLE per_ms (ts TIMESTAMP(3), flows BIGINT, bytes BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO per_ms SELECT ts, COUNT(*), SUM(bytes_in) FROM flows GROUP BY ts;",
        dir.display()
    );
    let plan = |hold: Duration| -> anyhow::Result<_> {
        let connector = MemoryConnector { batches: batches.clone(), cycles: 1, hold, partitioned: false };
        let mut session = Session::new(Arc::new(Connectors::builtin().with(Arc::new(connector))));
        session.execute(&sql).map_err(|e| anyhow::anyhow!("{e}"))?.pop().context("no pipeline")
    };
    let first = plan(Duration::from_secs(600))?;
    let (groups, stats) = runtime.block_on(async {
        let running = runtime::start(first);
        let control = running.control();
        while (control.metrics().rows_in as usize) < rows {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Two checkpoints after the last row: the second sees every change flushed.
        let seen = control.last_checkpoint().map_or(0, |s| s.epoch);
        let stats = loop {
            match control.last_checkpoint() {
                Some(stats) if stats.epoch >= seen + 2 => break stats,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let groups = control.operators().last().map_or(0, |o| o.rows_out);
        control.cancel();
        running.join().await?;
        anyhow::Ok((groups, stats))
    })?;
    let restart = plan(Duration::ZERO)?;
    let started = Instant::now();
    let report = runtime.block_on(async { runtime::start(restart).join().await })?;
    let restore_seconds = started.elapsed().as_secs_f64();
    if report.restored_from != Some(stats.epoch) {
        bail!("the restart resumed from {:?}, not checkpoint {}", report.restored_from, stats.epoch);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "rows": rows, "groups": groups, "bytes": stats.bytes, "duration_ms": stats.duration.as_millis() as u64,
        "restore_seconds": restore_seconds,
    }))
}

fn child(args: &[String]) -> anyhow::Result<Value> {
    let output = Command::new(std::env::current_exe()?).args(args).output()?;
    if !output.status.success() {
        bail!("{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim())?)
}

/// Parent: every measurement, interleaved (`rounds` rounds), as a BENCHMARKS.md section.
pub fn run(rows: usize, cycles: usize, rounds: usize) -> anyhow::Result<String> {
    let intervals = ["none", "10 s", "1 s"];
    let mut results: Vec<Vec<Value>> = vec![Vec::new(); intervals.len()];
    for round in 0..rounds {
        for (i, interval) in intervals.iter().enumerate() {
            eprintln!("round {}: checkpoints {interval} ...", round + 1);
            let args = ["--checkpoint-case", interval, "--rows", &rows.to_string(), "--cycles", &cycles.to_string()];
            let result = child(&args.map(String::from))?;
            eprintln!("  {result}");
            results[i].push(result);
        }
    }
    let median = |values: &[Value], key: &str| -> f64 {
        let mut v: Vec<f64> = values.iter().filter_map(|r| r[key].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let base = median(&results[0], "cpu_seconds");
    let events = (rows * cycles) as f64;
    let mut table = format!(
        "TUMBLE 5 s count per flow type, parallelism 1, {} M rows ({} × {} M replayed, event time shifted per \
         cycle), blackhole sink, state on local disk; median of {rounds} interleaved rounds.\n\n\
         | checkpoints | CPU s | M events/s per core | cost vs none | checkpoints taken | last checkpoint |\n\
         |---|---:|---:|---:|---:|---|\n",
        rows * cycles / 1_000_000,
        cycles,
        rows / 1_000_000
    );
    for (i, interval) in intervals.iter().enumerate() {
        let cpu = median(&results[i], "cpu_seconds");
        table.push_str(&format!(
            "| {interval} | {cpu:.2} | {:.1} | {:+.1} % | {:.0} | {:.0} bytes, {:.0} ms |\n",
            events / cpu / 1e6,
            (cpu / base - 1.0) * 100.0,
            median(&results[i], "checkpoints"),
            median(&results[i], "last_bytes"),
            median(&results[i], "last_ms"),
        ));
    }
    eprintln!("1 M open groups ...");
    let groups = child(&["--checkpoint-groups".into(), "--rows".into(), "10000000".into()])?;
    eprintln!("  {groups}");
    table.push_str(&format!(
        "\nAn updating aggregate `GROUP BY ts` over 10 M rows ({:.2} M open groups): a checkpoint of \
         {:.1} MiB taken in {} ms (the operator's snapshot, the Arrow IPC files and their fsync); a restart \
         from it (reading and restoring the state, the source seeking to its end) took {:.2} s.\n",
        groups["groups"].as_f64().unwrap_or(0.0) / 1e6,
        groups["bytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
        groups["duration_ms"],
        groups["restore_seconds"].as_f64().unwrap_or(0.0),
    ));
    Ok(table)
}
