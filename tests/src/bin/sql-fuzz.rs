//! `sql-fuzz`: plans generated and mutated SQL scripts in fresh sessions and reports every
//! panic, abort and hang, each reduced and kept as a regression case.
//!
//! ```text
//! cargo run --release -p streamsql-tests --bin sql-fuzz -- --statements 1000000 --seed 1
//! cargo run --release -p streamsql-tests --bin sql-fuzz -- --seconds 60          # random seed
//! cargo run --release -p streamsql-tests --bin sql-fuzz -- --seed 1 --print-case 1234
//! cargo run --release -p streamsql-tests --bin sql-fuzz -- --replay tests/fuzz-regressions
//! ```
//!
//! Exits with 1 when anything was found. See `streamsql_tests::fuzz` for how it works.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use streamsql_engine::limits::PLANNING_STACK_BYTES;
use streamsql_tests::fuzz::case::{offline_registry, run_script_with};
use streamsql_tests::fuzz::supervise::{Finding, Kind, Plan, Probe, Verdict, WorkerCommand, run_generated};
use streamsql_tests::fuzz::worker::Cases;
use streamsql_tests::fuzz::{case, reduce, regressions, worker};

#[derive(Parser, Debug)]
#[command(about = "Fuzz the SQL front end: no script may panic, abort or hang the planner")]
struct Args {
    /// Stop after this many generated statements.
    #[arg(long, default_value_t = 1_000_000)]
    statements: u64,
    /// Stop after this many seconds, even if fewer statements ran.
    #[arg(long)]
    seconds: Option<f64>,
    /// Seed of the generated cases (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker processes running cases side by side.
    #[arg(long, default_value_t = 1)]
    jobs: u64,
    /// A case taking longer than this is a hang.
    #[arg(long, default_value_t = 10.0)]
    case_timeout_secs: f64,
    /// Stack of the thread that plans, in MiB (default: as much as the shell's planning thread).
    #[arg(long, default_value_t = PLANNING_STACK_BYTES >> 20)]
    stack_mb: usize,
    /// Where found cases are saved (default: tests/fuzz-regressions in the source tree).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Do not save found cases.
    #[arg(long)]
    no_save: bool,
    /// Seconds spent reducing each distinct finding before it is saved.
    #[arg(long, default_value_t = 60.0)]
    reduce_secs: f64,
    /// Print the script of this case (with --seed) and exit.
    #[arg(long)]
    print_case: Option<u64>,
    /// Replay every .sql file in this folder (each in a worker) instead of generating cases.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Plan this many cases in this process (no isolation) and print the most common errors, to
    /// see which parts of the grammar the generator fails to reach.
    #[arg(long)]
    census: Option<u64>,
    /// Print a progress line this often, in seconds (0: never).
    #[arg(long, default_value_t = 10.0)]
    progress_secs: f64,

    /// (internal) Run cases in this process and report them on stdout.
    #[arg(long, hide = true)]
    worker: bool,
    /// (internal) Worker: read scripts from stdin.
    #[arg(long, hide = true)]
    stdin: bool,
    /// (internal) Worker: the first case index.
    #[arg(long, hide = true, default_value_t = 0)]
    from: u64,
    /// (internal) Worker: the step between case indices.
    #[arg(long, hide = true, default_value_t = 1)]
    stride: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(clean) => {
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("sql-fuzz: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether nothing was found.
fn run(args: Args) -> Result<bool> {
    let stack_bytes = args.stack_mb.max(1) * 1024 * 1024;
    if args.worker {
        let cases = if args.stdin {
            Cases::Stdin
        } else {
            Cases::Generated {
                seed: args.seed.unwrap_or(0),
                from: args.from,
                stride: args.stride,
                statements: args.statements,
                time: args.seconds.map(Duration::from_secs_f64),
            }
        };
        worker::run(cases, stack_bytes).context("worker")?;
        return Ok(true);
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    if let Some(index) = args.print_case {
        print!("{}", case(seed, index).sql);
        return Ok(true);
    }
    if let Some(cases) = args.census {
        let thread = std::thread::Builder::new().stack_size(stack_bytes).spawn(move || census(seed, cases))?;
        thread.join().map_err(|_| anyhow::anyhow!("a case panicked; run without --census to find it"))?;
        return Ok(true);
    }
    let command = WorkerCommand { exe: std::env::current_exe()?, stack_mb: args.stack_mb };
    let case_timeout = Duration::from_secs_f64(args.case_timeout_secs);
    if let Some(dir) = &args.replay {
        return replay(&command, case_timeout, dir);
    }
    let plan = Plan {
        seed,
        statements: args.statements,
        time: args.seconds.map(Duration::from_secs_f64),
        jobs: args.jobs,
        case_timeout,
        progress_every: (args.progress_secs > 0.0).then(|| Duration::from_secs_f64(args.progress_secs)),
    };
    eprintln!(
        "sql-fuzz: seed {seed}, up to {} statements{}, {} job(s); reproduce a case with --seed {seed} --print-case N",
        plan.statements,
        plan.time.map(|t| format!(" or {:.0} s", t.as_secs_f64())).unwrap_or_default(),
        plan.jobs
    );
    let totals = run_generated(&command, &plan)?;
    println!("{}", totals.summary(seed));
    if totals.findings.is_empty() {
        return Ok(true);
    }
    let save_dir = (!args.no_save).then(|| args.save.clone().unwrap_or_else(regressions::default_dir));
    keep_findings(&command, case_timeout, seed, &totals.findings, save_dir, Duration::from_secs_f64(args.reduce_secs))?;
    Ok(false)
}

/// Reduces the first finding of each distinct bug, saves it, and prints what to look at.
fn keep_findings(
    command: &WorkerCommand,
    case_timeout: Duration,
    seed: u64,
    findings: &[Finding],
    save_dir: Option<PathBuf>,
    reduce_budget: Duration,
) -> Result<()> {
    let mut distinct: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    for finding in findings {
        distinct.entry(finding.signature()).or_default().push(finding);
    }
    println!("{} distinct finding(s):", distinct.len());
    let mut probe = Probe::new(command.clone(), case_timeout);
    for (signature, all) in &distinct {
        let first = all[0];
        let sql = case(seed, first.index).sql;
        let cases = all.iter().map(|f| f.index.to_string()).take(10).collect::<Vec<_>>().join(", ");
        println!("\n== {signature} ({} case(s): {cases})", all.len());
        let reduced = reduce::reduce(&mut probe, &sql, first.kind, &first.detail, reduce_budget)?;
        println!("-- reduced from {} to {} bytes:\n{}", sql.len(), reduced.len(), shorten(&reduced, 2_000));
        if let Some(dir) = &save_dir {
            let origin = format!("sql-fuzz --seed {seed} --print-case {}", first.index);
            let path = regressions::save(dir, first.kind, &first.detail, &origin, &reduced)?;
            println!("-- saved as {}", path.display());
        }
    }
    Ok(())
}

fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    format!("{}... ({} bytes in all)", text.chars().take(chars).collect::<String>(), text.len())
}

/// Runs every regression file; returns whether all passed.
fn replay(command: &WorkerCommand, case_timeout: Duration, dir: &std::path::Path) -> Result<bool> {
    let files = regressions::files(dir).with_context(|| format!("listing {}", dir.display()))?;
    let mut probe = Probe::new(command.clone(), case_timeout);
    let mut failed = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        match probe.run(regressions::script(&text))? {
            Verdict::Passed => println!("ok     {}", file.display()),
            Verdict::Failed(kind, detail) => {
                failed += 1;
                let detail = detail.lines().take(8).collect::<Vec<_>>().join("\n       ");
                println!("{:<6} {}\n       {detail}", kind_label(kind), file.display());
            }
        }
    }
    println!("sql-fuzz: replayed {} regression case(s) from {}: {failed} failed", files.len(), dir.display());
    Ok(failed == 0)
}

fn kind_label(kind: Kind) -> &'static str {
    kind.name()
}

/// Counts errors by their message with names, numbers and quoted text blurred.
fn census(seed: u64, cases: u64) {
    let registry = offline_registry();
    let mut errors: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let (mut parsed, mut planned) = (0, 0);
    for index in 0..cases {
        let sql = case(seed, index).sql;
        let stats = run_script_with(&sql, &registry, &mut |e| {
            errors.entry(blur(e.message())).or_insert_with(|| (0, e.to_string())).0 += 1;
        });
        parsed += stats.parsed;
        planned += stats.planned;
    }
    let mut common: Vec<(String, (u64, String))> = errors.into_iter().collect();
    common.sort_by_key(|(_, (count, _))| std::cmp::Reverse(*count));
    println!("{cases} cases: {parsed} statements parsed, {planned} planned; most common errors:");
    for (message, (count, _)) in common.iter().take(60) {
        println!("{count:>7}  {message}");
    }
    println!("\nan example of each of the ten most common:");
    for (_, (_, example)) in common.iter().take(10) {
        println!("{}\n", shorten(example, 600));
    }
}

fn blur(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars().take(140) {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push_str(if quoted { "'…" } else { "'" });
            }
            _ if quoted => {}
            c if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            c => out.push(c),
        }
    }
    out
}
