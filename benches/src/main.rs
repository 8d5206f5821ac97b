//! Throughput benchmarks: streamsql against DataFusion batch over the same pre-generated batches.
//!
//! ```text
//! cargo run --release -p streamsql-bench                 # all cases, rewrites BENCHMARKS.md
//! cargo run --release -p streamsql-bench -- --rows 2000000 --no-write
//! cargo run --release -p streamsql-bench -- --cassandra    # needs scripts/cassandra.sh start
//! cargo run --release -p streamsql-bench -- --live         # live tables over Flight SQL
//! cargo run --release -p streamsql-bench -- --latency      # latency at 100,000 events/s
//! cargo run --release -p streamsql-bench -- --kafka        # needs scripts/kafka.sh start
//! cargo run --release -p streamsql-bench -- --ingest       # reading CSV / JSON files
//! cargo run --release -p streamsql-bench -- --nexmark      # pipelines/nexmark/, parallelism 1 and 2
//! cargo run --release -p streamsql-bench -- --flink        # the same queries beside Flink 1.20 (needs mvn, java)
//! ```
//!
//! Each case runs in a child process (the binary re-runs itself with `--case`), so its peak RSS
//! is its own. Data comes from the netflow generator before timing starts; the streaming run
//! reads it from memory, so the generator's speed is not measured.

mod cases;
mod cassandra;
mod checkpoints;
mod clock;
mod flink;
mod ingest;
mod kafka;
mod latency;
mod live;
mod memory;
mod nexmark;
mod report;

/// The binary's allocator (see the workspace manifest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::Command;

use anyhow::{Context, bail};

use crate::cases::{Case, CaseResult, Engine, Window};

struct Options {
    rows: usize,
    write: bool,
    case: Option<Case>,
    cassandra: bool,
    live: bool,
    /// `--latency`: watermark-to-emit and event-to-live-table at a steady rate.
    latency: bool,
    kafka: bool,
    /// `--checkpoints`: what checkpoints cost.
    checkpoints: bool,
    /// Children of `--checkpoints`.
    checkpoint_case: Option<String>,
    checkpoint_groups: bool,
    cycles: usize,
    /// `--ingest`: reading CSV and JSON files.
    ingest: bool,
    /// Children of `--ingest`: the case and the directory of its files.
    ingest_case: Option<ingest::IngestCase>,
    dir: Option<std::path::PathBuf>,
    /// `--nexmark`: the Nexmark queries; its children run one `NAME:PARALLELISM` each.
    nexmark: bool,
    nexmark_case: Option<String>,
    /// `--flink`: Nexmark beside Flink, for `--queries` (default: all but q13) at `--parallelism`.
    flink: bool,
    queries: Option<Vec<String>>,
    parallelism: usize,
    /// Children of `--flink`: a script to run and measure.
    script_case: Option<std::path::PathBuf>,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        rows: 10_000_000,
        write: true,
        case: None,
        cassandra: false,
        live: false,
        latency: false,
        kafka: false,
        checkpoints: false,
        checkpoint_case: None,
        checkpoint_groups: false,
        cycles: 40,
        ingest: false,
        ingest_case: None,
        dir: None,
        nexmark: false,
        nexmark_case: None,
        flink: false,
        queries: None,
        parallelism: 1,
        script_case: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rows" => options.rows = args.next().context("--rows needs a number")?.parse()?,
            "--no-write" => options.write = false,
            "--cassandra" => options.cassandra = true,
            "--live" => options.live = true,
            "--latency" => options.latency = true,
            "--kafka" => options.kafka = true,
            "--checkpoints" => options.checkpoints = true,
            "--checkpoint-case" => {
                options.checkpoint_case = Some(args.next().context("--checkpoint-case needs an interval")?)
            }
            "--checkpoint-groups" => options.checkpoint_groups = true,
            "--ingest" => options.ingest = true,
            "--ingest-case" => {
                options.ingest_case =
                    Some(ingest::IngestCase::parse(&args.next().context("--ingest-case needs a value")?)?)
            }
            "--nexmark" => options.nexmark = true,
            "--nexmark-case" => {
                options.nexmark_case = Some(args.next().context("--nexmark-case needs NAME:PARALLELISM")?)
            }
            "--flink" => options.flink = true,
            "--queries" => {
                let list = args.next().context("--queries needs a list such as q0,q5")?;
                options.queries = Some(list.split(',').map(|q| q.trim().to_string()).collect());
            }
            "--parallelism" => options.parallelism = args.next().context("--parallelism needs a number")?.parse()?,
            "--script-case" => options.script_case = Some(args.next().context("--script-case needs a file")?.into()),
            "--dir" => options.dir = Some(args.next().context("--dir needs a directory")?.into()),
            "--cycles" => options.cycles = args.next().context("--cycles needs a number")?.parse()?,
            "--case" => options.case = Some(Case::parse(&args.next().context("--case needs a value")?)?),
            "--help" | "-h" => {
                println!(
                    "streamsql-bench [--rows N] [--no-write] [--cassandra | --live | --latency | --kafka | --ingest | --nexmark | --flink [--queries q0,q5] [--parallelism N] | --checkpoints [--cycles N]]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

/// Prints a results table and, unless `--no-write`, puts it in its section of BENCHMARKS.md.
fn publish(table: &str, section: &str, write: bool) -> anyhow::Result<()> {
    println!("{table}");
    if write {
        report::write_section(table, section)?;
        eprintln!("wrote BENCHMARKS.md");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    if let Some(case) = options.case {
        let result = cases::run_case(case, options.rows)?;
        println!("{}", serde_json::to_string(&result.to_json())?);
        return Ok(());
    }
    if let Some(case) = options.ingest_case {
        let dir = options.dir.context("--ingest-case needs --dir")?;
        println!("{}", ingest::run_case(case, &dir, options.rows)?);
        return Ok(());
    }
    if let Some(case) = &options.nexmark_case {
        println!("{}", nexmark::run_case(case, options.rows as u64)?);
        return Ok(());
    }
    if let Some(script) = &options.script_case {
        println!("{}", flink::run_script_case(script)?);
        return Ok(());
    }
    if options.flink {
        let rows = if options.rows == 10_000_000 { 2_000_000 } else { options.rows as u64 };
        let queries =
            options.queries.clone().unwrap_or_else(|| (0..=22).filter(|&q| q != 13).map(|q| format!("q{q}")).collect());
        let table = flink::run(rows, &queries, options.parallelism)?;
        publish(&table, "flink", options.write)?;
        return Ok(());
    }
    if options.nexmark {
        let table = nexmark::run(options.rows as u64)?;
        publish(&table, "nexmark", options.write)?;
        return Ok(());
    }
    if options.ingest {
        let table = ingest::run(options.rows, options.dir.as_deref())?;
        publish(&table, "ingest", options.write)?;
        return Ok(());
    }
    if let Some(interval) = &options.checkpoint_case {
        println!("{}", checkpoints::overhead_case(interval, options.rows, options.cycles)?);
        return Ok(());
    }
    if options.checkpoint_groups {
        println!("{}", checkpoints::groups_case(options.rows)?);
        return Ok(());
    }
    if options.checkpoints {
        let table = checkpoints::run(options.rows, options.cycles, 3)?;
        publish(&table, "checkpoints", options.write)?;
        return Ok(());
    }
    if options.cassandra {
        let rows = if options.rows == 10_000_000 { 500_000 } else { options.rows as u64 };
        eprintln!("writing {rows} rows into Cassandra at 127.0.0.1:9042 ...");
        let table = cassandra::markdown(&cassandra::run(rows)?);
        publish(&table, "cassandra", options.write)?;
        return Ok(());
    }
    if options.kafka {
        let rows = if options.rows == 10_000_000 { 2_000_000 } else { options.rows as u64 };
        eprintln!("{rows} rows through Kafka at 127.0.0.1:9092 ...");
        let table = kafka::markdown(&kafka::run(rows)?);
        publish(&table, "kafka", options.write)?;
        return Ok(());
    }
    if options.live {
        let rows = if options.rows == 10_000_000 { 1_000_000 } else { options.rows as u64 };
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let table = runtime.block_on(async {
            eprintln!("query latency on live tables of {rows} rows ...");
            let latency = live::query_latency(rows, 30).await?;
            eprintln!("freshness ...");
            let mut fresh = Vec::new();
            for (rate, interval) in
                [(10_000, "0"), (10_000, "100 ms"), (10_000, "1 s"), (100_000, "0"), (100_000, "1 s")]
            {
                fresh.push(live::freshness(rate, interval, 12).await?);
            }
            anyhow::Ok(live::markdown(rows, &latency, &fresh))
        })?;
        publish(&table, "live", options.write)?;
        return Ok(());
    }
    if options.latency {
        let seconds = 30;
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let results = runtime.block_on(async {
            let mut results = Vec::new();
            for (query, parallelism) in [
                (latency::Query::Tumble { delay_ms: 0 }, 1),
                (latency::Query::Tumble { delay_ms: 0 }, 2),
                (latency::Query::Tumble { delay_ms: 100 }, 1),
                (latency::Query::IntervalJoin, 1),
                (latency::Query::IntervalJoin, 2),
            ] {
                results.push(latency::run(query, parallelism, seconds).await?);
            }
            anyhow::Ok(results)
        })?;
        publish(&latency::markdown(&results, seconds, &load), "latency", options.write)?;
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut results: Vec<CaseResult> = Vec::new();
    for window in Window::ALL {
        for parallelism in [1, 2] {
            for engine in [Engine::Streamsql, Engine::DataFusionBatch] {
                let case = Case { window, parallelism, engine };
                eprintln!("running {} ...", case.label());
                let output = Command::new(&exe)
                    .args(["--case", &case.to_arg(), "--rows", &options.rows.to_string()])
                    .output()
                    .with_context(|| format!("running {}", case.label()))?;
                if !output.status.success() {
                    bail!("{} failed: {}", case.label(), String::from_utf8_lossy(&output.stderr));
                }
                let line = String::from_utf8_lossy(&output.stdout);
                let result = CaseResult::from_json(case, line.trim())?;
                eprintln!("  {}", result.summary());
                results.push(result);
            }
        }
    }
    publish(&report::markdown(&results, options.rows), "results", options.write)
}
