//! The Nexmark queries side by side with Apache Flink 1.20 on this machine: both engines read
//! the same pre-generated events (JSON lines, written once by the `nexmark` generator) and run
//! the same query text of `pipelines/nexmark/` into a blackhole, one process per run, the two
//! engines interleaved query by query.
//!
//! Flink runs on a local MiniCluster from the Maven Central jars of `benches/flink/pom.xml`
//! (fetched once into `~/.cache/streamsql-flink/lib`), through `benches/flink/RunSql.java`. Its
//! start-up (JVM, planner, code generation, MiniCluster) is measured by running the same query
//! over a fixed 1,000-event input; Flink's rate is reported with and without it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::cases::peak_rss_bytes;
use crate::nexmark::{TABLES, run_script};

/// Events of the input that measures Flink's start-up.
const WARM_UP_EVENTS: u64 = 1_000;

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The three tables over the JSON files in `dir`, in streamsql's or Flink's DDL.
fn tables(dir: &Path, flink: bool) -> String {
    TABLES
        .iter()
        .map(|(name, columns)| {
            let path = dir.join(format!("{name}.jsonl"));
            let with = if flink {
                format!("'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'", path.display())
            } else {
                format!("'connector' = 'file', 'path' = '{}', 'format' = 'json'", path.display())
            };
            format!(
                "CREATE TABLE {name} ({columns},\n  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND\n) WITH ({with});\n"
            )
        })
        .collect()
}

/// Writes `events` events of the generator as `person.jsonl`, `auction.jsonl`, `bid.jsonl`.
fn generate(dir: &Path, events: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut sql = String::new();
    for (name, columns) in TABLES {
        sql.push_str(&format!(
            "CREATE TABLE {name} ({columns}) WITH ('connector' = 'nexmark', 'kind' = '{name}', \
             'number-of-rows' = '{events}');
             CREATE TABLE {name}_file ({columns}) WITH ('connector' = 'file', 'path' = '{}', 'format' = 'json');
             INSERT INTO {name}_file SELECT * FROM {name};\n",
            dir.join(format!("{name}.jsonl")).display()
        ));
    }
    run_script(&sql)?.map_err(|reason| anyhow::anyhow!("{reason}"))?;
    Ok(())
}

/// The part of a query file after its three tables: its sink (and views) and its INSERT.
fn query_part(name: &str) -> anyhow::Result<String> {
    let sql = std::fs::read_to_string(repo_dir().join(format!("pipelines/nexmark/{name}.sql")))?;
    let bid = sql.find("CREATE TABLE bid (").context("no bid table")?;
    let end = sql[bid..].find(");").context("bid table not closed")? + bid + 2;
    Ok(sql[end..].to_string())
}

/// Runs a script in this process (a child of `run`): its measurements as JSON.
pub fn run_script_case(path: &Path) -> anyhow::Result<Value> {
    let measured = run_script(&std::fs::read_to_string(path)?)?.map_err(|reason| anyhow::anyhow!("{reason}"))?;
    let rows: u64 = measured.reports.iter().map(|r| r.metrics.rows_out).sum();
    Ok(json!({
        "wall_seconds": measured.wall_seconds, "cpu_seconds": measured.cpu_seconds,
        "result_rows": rows, "peak_rss_bytes": peak_rss_bytes(),
    }))
}

/// The JVM flags Flink's distribution sets for Java 17 (`env.java.opts.all`).
const JAVA_FLAGS: &[&str] = &[
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
];

fn flink_lib() -> anyhow::Result<PathBuf> {
    let home = std::env::var("HOME").context("HOME")?;
    Ok(Path::new(&home).join(".cache/streamsql-flink/lib"))
}

/// Fetches Flink's jars once.
fn fetch_flink() -> anyhow::Result<PathBuf> {
    let lib = flink_lib()?;
    if lib.join(".complete").exists() {
        return Ok(lib);
    }
    eprintln!("fetching Flink 1.20 from Maven Central into {} ...", lib.display());
    let status = Command::new("mvn")
        .args(["-q", "-B", "-f"])
        .arg(repo_dir().join("benches/flink/pom.xml"))
        .arg("dependency:copy-dependencies")
        .arg(format!("-DoutputDirectory={}", lib.display()))
        .status()
        .context("running mvn")?;
    if !status.success() {
        bail!("mvn dependency:copy-dependencies failed");
    }
    std::fs::write(lib.join(".complete"), "")?;
    Ok(lib)
}

/// Runs a Flink script: (CPU seconds, wall seconds, peak RSS bytes) of the whole JVM.
fn run_flink(lib: &Path, script: &Path, parallelism: usize) -> anyhow::Result<(f64, f64, u64)> {
    let flink = repo_dir().join("benches/flink");
    // Flink unpacks a 21 MB RPC jar into the JVM's temporary directory on every start and does
    // not always remove it: keep it in the run's directory, which goes when the run ends.
    let tmp = script.parent().context("a script without a directory")?.join("java-tmp");
    std::fs::create_dir_all(&tmp)?;
    let output = Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib %M", "java", "-Xmx4g"])
        .arg(format!("-Djava.io.tmpdir={}", tmp.display()))
        .args(JAVA_FLAGS)
        .arg(format!("-Dlog4j2.configurationFile={}", flink.join("log4j2.properties").display()))
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .arg(flink.join("RunSql.java"))
        .arg(script)
        .arg(parallelism.to_string())
        .output()
        .context("running java")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        bail!("Flink failed on {}: {}", script.display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim().lines().last().unwrap_or(""))
        .with_context(|| format!("Flink's output: {stderr}"))?;
    let rss_kib =
        stderr.lines().find_map(|l| l.strip_prefix("peak-rss-kib ")).and_then(|n| n.trim().parse::<u64>().ok());
    Ok((
        v["cpu_seconds"].as_f64().context("cpu_seconds")?,
        v["wall_seconds"].as_f64().context("wall_seconds")?,
        rss_kib.unwrap_or(0) * 1024,
    ))
}

/// `queries` (names such as `q5`) at `parallelism`, both engines; the markdown table.
pub fn run(events: u64, queries: &[String], parallelism: usize) -> anyhow::Result<String> {
    let lib = fetch_flink()?;
    let dir = std::env::temp_dir().join(format!("streamsql-flink-{}", std::process::id()));
    let (data, tiny) = (dir.join("events"), dir.join("warm-up"));
    eprintln!("writing {events} Nexmark events as JSON lines into {} ...", data.display());
    generate(&data, events)?;
    generate(&tiny, WARM_UP_EVENTS)?;
    let exe = std::env::current_exe()?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut lines = Vec::new();
    for name in queries {
        let query = query_part(name)?;
        let ours = dir.join(format!("{name}.streamsql.sql"));
        std::fs::write(
            &ours,
            format!("SET 'parallelism.default' = '{parallelism}';\n{}{query}", tables(&data, false)),
        )?;
        let (theirs, warm_up) = (dir.join(format!("{name}.flink.sql")), dir.join(format!("{name}.flink-warm-up.sql")));
        std::fs::write(&theirs, format!("{}{query}", tables(&data, true)))?;
        std::fs::write(&warm_up, format!("{}{query}", tables(&tiny, true)))?;

        eprintln!("{name}: streamsql ...");
        let output = Command::new(&exe).arg("--script-case").arg(&ours).output()?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let reason = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("failed").replace('|', "\\|");
            lines.push(format!("| {name} | streamsql: {reason} | | | | | |"));
            continue;
        }
        let v: Value = serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim())?;
        let our_cpu = v["cpu_seconds"].as_f64().context("cpu_seconds")?;
        let our_rss = v["peak_rss_bytes"].as_u64().unwrap_or(0);
        eprintln!("{name}: Flink ...");
        let (cpu, wall, rss) = match run_flink(&lib, &theirs, parallelism) {
            Ok(measured) => measured,
            Err(e) => {
                eprintln!("{e:#}");
                let reason = format!("{e:#}");
                let first = reason.lines().find(|l| l.contains("Exception")).unwrap_or("failed").replace('|', "\\|");
                lines.push(format!("| {name} | {:.2} M | Flink: {first} | | | | |", events as f64 / our_cpu / 1e6));
                continue;
            }
        };
        eprintln!("{name}: Flink start-up ...");
        let (start_cpu, _, _) = run_flink(&lib, &warm_up, parallelism)?;
        let ours = events as f64 / our_cpu.max(1e-9);
        let flink = events as f64 / cpu.max(1e-9);
        let flink_marginal = events as f64 / (cpu - start_cpu).max(1e-3);
        let line = format!(
            "| {name} | {:.2} M | {:.3} M | {:.3} M ({:.1} − {:.1} CPU s) | {:.0}× | {:.0}× | {} / {} MiB |",
            ours / 1e6,
            flink / 1e6,
            flink_marginal / 1e6,
            cpu,
            start_cpu,
            ours / flink,
            ours / flink_marginal,
            our_rss >> 20,
            rss >> 20,
        );
        eprintln!("  {line}  (Flink wall {wall:.1} s)");
        lines.push(line);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = format!(
        "{events} Nexmark events (JSON lines written by the `nexmark` generator, read by both engines), \
         parallelism {parallelism}, streamsql release build, Flink 1.20.3 on a local MiniCluster (JDK 17, \
         mini-batch on as in Nexmark's Flink configuration); load average before the run: {}.\n\n",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    out.push_str(
        "| query | streamsql events/s per core | Flink events/s per core | Flink, start-up excluded (CPU s) | \
         ratio | ratio, Flink start-up excluded | peak RSS streamsql / Flink |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}
