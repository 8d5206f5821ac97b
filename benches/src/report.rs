//! The results table and its place in BENCHMARKS.md.

use anyhow::Context;

use crate::cases::{CaseResult, Engine};

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0)))
        .map_or(0, |kb| kb >> 20);
    format!("{cpu}, {cores} cores, {memory} GiB RAM")
}

pub fn markdown(results: &[CaseResult], rows: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Measured {} on {}; {} pre-generated netflow rows in batches of 8192, {} build.\n\n",
        chrono_like_date(),
        machine(),
        rows,
        if cfg!(debug_assertions) { "debug (not representative)" } else { "release" }
    ));
    out.push_str("| query | parallelism | engine | events/s | events/s per core | streaming / batch (per core) | result rows | peak RSS (input data) |\n");
    out.push_str("|---|---:|---|---:|---:|---:|---:|---:|\n");
    for r in results {
        let batch = results.iter().find(|b| {
            b.case.engine == Engine::DataFusionBatch
                && b.case.window == r.case.window
                && b.case.parallelism == r.case.parallelism
        });
        let ratio = match (r.case.engine, batch) {
            (Engine::Streamsql, Some(b)) => format!("{:.2}", r.events_per_cpu_second() / b.events_per_cpu_second()),
            _ => "—".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} M | {:.2} M | {} | {} | {} MiB ({} MiB) |\n",
            r.case.window_label(),
            r.case.parallelism,
            r.case.engine_label(),
            r.events_per_second() / 1e6,
            r.events_per_cpu_second() / 1e6,
            ratio,
            r.result_rows,
            r.peak_rss_bytes >> 20,
            r.input_bytes >> 20,
        ));
    }
    out
}

fn chrono_like_date() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Replaces the section between `<!-- name:start -->` and `<!-- name:end -->` of BENCHMARKS.md
/// (at the workspace root) with `table`, dated and with the machine it ran on.
pub fn write_section(table: &str, name: &str) -> anyhow::Result<()> {
    let (start, end) = (format!("<!-- {name}:start -->"), format!("<!-- {name}:end -->"));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).context("reading BENCHMARKS.md")?;
    let (before, rest) = text.split_once(&start).with_context(|| format!("BENCHMARKS.md has no {start} marker"))?;
    let (_, after) = rest.split_once(&end).with_context(|| format!("BENCHMARKS.md has no {end} marker"))?;
    let stamp = if name == "results" {
        String::new()
    } else {
        format!("Measured {} on {}.\n\n", chrono_like_date(), machine())
    };
    std::fs::write(&path, format!("{before}{start}\n{stamp}{table}{end}{after}"))?;
    Ok(())
}
