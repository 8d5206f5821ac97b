//! The Nexmark queries of `pipelines/nexmark/` on the built-in `nexmark` generator, at
//! parallelism 1 and 2, each in its own process: events/s, events per CPU-second, peak RSS and
//! result rows, or the reason a query is refused.
//!
//! The generator runs inside the measured process (it builds Arrow batches directly); the
//! `generator` row measures it alone (every column of every bid, person and auction into a
//! blackhole), so it can be told apart from the queries' own cost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use streamsql_connectors::Connectors;
use streamsql_engine::runtime;
use streamsql_sql::Session;

use crate::cases::{cpu_seconds, peak_rss_bytes};

/// The columns of the three kinds of events, as `pipelines/nexmark/` declares them.
pub(crate) const TABLES: [(&str, &str); 3] = [
    (
        "person",
        "id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR, \
         dateTime TIMESTAMP(3), extra VARCHAR",
    ),
    (
        "auction",
        "id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), \
         expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR",
    ),
    (
        "bid",
        "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR",
    ),
];

/// The queries, in order, and the generator alone.
fn names() -> Vec<String> {
    let mut names = vec!["generator".to_string()];
    names.extend((0..=22).map(|q| format!("q{q}")));
    names
}

fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/nexmark")
}

/// The script of `name` with `events` events, at `parallelism`.
fn script(name: &str, events: u64, parallelism: usize) -> anyhow::Result<String> {
    let dir = pipelines_dir();
    let sql = if name == "generator" {
        // The three tables of any query, each into its own blackhole.
        let q0 = std::fs::read_to_string(dir.join("q0.sql"))?;
        let mut sql = q0.split("CREATE TABLE nexmark_q0").next().context("q0.sql has no sink")?.to_string();
        for (table, columns) in TABLES {
            sql.push_str(&format!(
                "CREATE TABLE {table}_out ({columns}) WITH ('connector' = 'blackhole');
                 INSERT INTO {table}_out SELECT * FROM {table};\n"
            ));
        }
        sql
    } else {
        std::fs::read_to_string(dir.join(format!("{name}.sql"))).with_context(|| format!("reading {name}.sql"))?
    };
    let side_input = std::fs::canonicalize(dir.join("side_input.csv"))?;
    Ok(format!(
        "SET 'parallelism.default' = '{parallelism}';\n{}",
        sql.replace("'number-of-rows' = '100000'", &format!("'number-of-rows' = '{events}'"))
            .replace("'pipelines/nexmark/side_input.csv'", &format!("'{}'", side_input.display()))
    ))
}

/// The pipelines of a script, run to their end together: their reports, and the wall and CPU
/// seconds they took (planning not included).
pub(crate) struct Measured {
    pub reports: Vec<runtime::PipelineReport>,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
}

/// Plans `sql` and runs its pipelines, measured; `Ok(Err(reason))` when planning refuses it.
pub(crate) fn run_script(sql: &str) -> anyhow::Result<Result<Measured, String>> {
    let mut session = Session::new(Arc::new(Connectors::builtin()));
    let pipelines = match session.execute(sql) {
        Ok(pipelines) => pipelines,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let reports = runtime.block_on(async {
        let running: Vec<_> = pipelines.into_iter().map(runtime::start).collect();
        let mut reports = Vec::new();
        for pipeline in running {
            reports.push(pipeline.join().await?);
        }
        anyhow::Ok(reports)
    })?;
    Ok(Ok(Measured { reports, wall_seconds: started.elapsed().as_secs_f64(), cpu_seconds: cpu_seconds() - cpu_before }))
}

/// One query at one parallelism, in this process: its measurements as JSON.
pub fn run_case(case: &str, events: u64) -> anyhow::Result<Value> {
    let (name, parallelism) = case.split_once(':').context("a case is NAME:PARALLELISM")?;
    let measured = match run_script(&script(name, events, parallelism.parse()?)?)? {
        Ok(measured) => measured,
        Err(reason) => return Ok(json!({ "refused": reason.lines().next().unwrap_or("").to_string() })),
    };
    let late_rows: u64 = measured.reports.iter().map(|r| r.metrics.late_rows).sum();
    let result_rows: u64 = measured.reports.iter().map(|r| r.metrics.rows_out).sum();
    Ok(json!({
        "events": events, "wall_seconds": measured.wall_seconds, "cpu_seconds": measured.cpu_seconds,
        "result_rows": result_rows, "late_rows": late_rows, "peak_rss_bytes": peak_rss_bytes(),
    }))
}

/// Every query at parallelism 1 and 2, each in a child process; the markdown table.
pub fn run(events: u64) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut lines = Vec::new();
    for name in names() {
        for parallelism in [1, 2] {
            let case = format!("{name}:{parallelism}");
            eprintln!("running {case} ...");
            let output = Command::new(&exe)
                .args(["--nexmark-case", &case, "--rows", &events.to_string()])
                .output()
                .with_context(|| format!("running {case}"))?;
            if !output.status.success() {
                bail!("{case} failed: {}", String::from_utf8_lossy(&output.stderr));
            }
            let v: Value = serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim())?;
            let line = if let Some(reason) = v["refused"].as_str() {
                format!("| {name} | {parallelism} | refused: {} | | | | |", reason.replace('|', "\\|"))
            } else {
                let num = |k: &str| v[k].as_f64().with_context(|| format!("missing {k}"));
                let (wall, cpu) = (num("wall_seconds")?, num("cpu_seconds")?);
                format!(
                    "| {name} | {parallelism} | {:.2} M | {:.2} M | {:.1} | {} | {} MiB |",
                    events as f64 / wall / 1e6,
                    events as f64 / cpu.max(1e-9) / 1e6,
                    wall,
                    num("result_rows")? as u64,
                    num("peak_rss_bytes")? as u64 >> 20
                )
            };
            eprintln!("  {line}");
            lines.push(line);
        }
    }
    let mut out = format!(
        "{events} events per query (`'number-of-rows'`; 2 % persons, 6 % auctions, 92 % bids; 10,000 events \
         per second of event time), {} build; load average before the run: {}.\n\n",
        if cfg!(debug_assertions) { "debug (not representative)" } else { "release" },
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    out.push_str("| query | parallelism | events/s | events/s per core | seconds | result rows | peak RSS |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}
