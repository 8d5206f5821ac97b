//! The `streamsql` binary: the only place that wires SQL, connectors and the engine together.
//!
//! - no arguments, on a terminal: the interactive shell ([`repl`]);
//! - `-f FILE`, `-e SQL`, or statements piped to standard input: run them ([`run`]) and exit;
//! - `--flight [ADDR]` with any of those, or `serve`: also serve live tables over Flight SQL
//!   ([`serve`]), and keep serving after bounded pipelines finish, until Ctrl-C or SIGTERM;
//! - `--http [ADDR]`: the HTTP console with `/metrics` ([`console`]); on a terminal, a status
//!   line while pipelines run ([`status`]).

#[macro_use]
mod stdio;

mod console;
mod output;
mod repl;
mod run;
mod serve;
mod status;
mod terminal_sink;
mod vars;

/// See the workspace manifest for why not glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use clap::{Parser, Subcommand};
use streamsql_engine::limits;
use streamsql_engine::live::LiveCatalog;
use streamsql_flight::QueryLimits;

use crate::output::OutputFormat;
use crate::serve::{DEFAULT_FLIGHT_ADDR, FlightOptions};

/// Streaming SQL over event streams: windows, watermarks, sources and sinks. With no -f or -e,
/// opens an interactive shell.
#[derive(Debug, Parser)]
#[command(name = "streamsql", version, about, long_about = None)]
struct Args {
    /// Run the statements of a SQL file (`-` reads standard input) until its pipelines finish.
    #[arg(short = 'f', long = "file", value_name = "FILE", conflicts_with = "execute")]
    file: Option<PathBuf>,

    /// Run these SQL statements (separated by `;`) until their pipelines finish, then exit.
    #[arg(short = 'e', long = "execute", value_name = "SQL")]
    execute: Option<String>,

    /// Set a script variable: `${NAME}` and `${NAME:-default}` in -f, -e and piped statements
    /// become VALUE (else the environment variable NAME, else the default). Repeatable.
    #[arg(short = 'D', long = "define", value_name = "NAME=VALUE", value_parser = vars::parse_define)]
    define: Vec<(String, String)>,

    /// No status line (pipelines, events/s, watermark lag, late rows) on a terminal's stderr
    /// while -f or -e pipelines run.
    #[arg(short = 'q', long)]
    quiet: bool,

    /// More log lines on stderr: -v what pipelines and connectors do (info), -vv debug, -vvv
    /// trace. RUST_LOG, when set, takes precedence (e.g. RUST_LOG=streamsql_connectors=debug).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Instances of each aggregation, unless the statements say `SET 'parallelism.default'`.
    #[arg(short = 'p', long, value_name = "N")]
    parallelism: Option<usize>,

    /// How SELECT rows are shown [default: table in the shell and with -e; with -f, Flink-style
    /// `+I[...]` lines]
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<OutputFormat>,

    /// Serve live tables (CREATE MATERIALIZED VIEW, 'connector' = 'live') over Arrow Flight SQL
    /// on ADDR [default: 127.0.0.1:50051]; keeps serving after bounded pipelines finish, until
    /// Ctrl-C or SIGTERM.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_FLIGHT_ADDR, global = true)]
    flight: Option<std::net::SocketAddr>,

    /// Serve the HTTP console on ADDR [default: 127.0.0.1:8080]: `/metrics` (Prometheus text
    /// format); keeps serving after bounded pipelines finish, until Ctrl-C or SIGTERM.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_HTTP_ADDR, global = true)]
    http: Option<std::net::SocketAddr>,

    /// Require this token from Flight SQL clients (as a bearer token, or as the password of
    /// Basic auth) and from HTTP console clients (as a bearer token).
    #[arg(long, value_name = "TOKEN", env = "STREAMSQL_FLIGHT_TOKEN", global = true, hide_env_values = true)]
    flight_token: Option<String>,

    /// Memory one ad-hoc query over live tables (Flight SQL, the shell) may use, its result
    /// included, e.g. 512MiB or 2GB; all queries together may use twice this.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = parse_size, global = true)]
    query_memory_limit: usize,

    /// How long an ad-hoc query may run before it is cancelled, e.g. 30s or 2min.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout, global = true)]
    query_timeout: Duration,

    /// Ad-hoc queries running at once; more wait for a slot, up to --query-timeout.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024), global = true)]
    query_concurrency: u16,

    /// Keep checkpoints in DIR, a local directory or s3://bucket/prefix (when a script sets
    /// 'execution.checkpointing.interval'), unless
    /// it sets 'state.checkpoints.dir'; a job started again with the same DIR resumes from its
    /// latest checkpoint.
    #[arg(long, value_name = "DIR", global = true)]
    state_dir: Option<PathBuf>,

    /// Remove a job's earlier checkpoints and start it from the beginning.
    #[arg(long, global = true)]
    from_scratch: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Flight SQL with no pipelines of its own (`--flight` sets the address).
    Serve,
}

/// `512MiB`, `2GB`, `1048576`: a size in bytes, binary or decimal units.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().map_err(|_| format!("'{text}' is not a size such as 512MiB or 2GB"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}'; use B, KB, KiB, MB, MiB, GB or GiB")),
    };
    let bytes = number.checked_mul(scale).ok_or_else(|| format!("'{text}' is too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("'{text}' is too small; give at least 1MiB"));
    }
    Ok(bytes)
}

/// `30s`, `2 min`, `500 ms`: a positive duration.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match streamsql_engine::time::parse_duration_ms(text) {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms.unsigned_abs())),
        _ => Err(format!("'{text}' is not a positive duration such as 30s or 2min")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Statements are parsed and planned on this thread; give it room for deep (but bounded)
    // expressions, as the query runtime's threads have.
    match limits::on_planning_stack(move || run(args)) {
        Ok(code) => code,
        Err(e) => {
            errln!("streamsql: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Log filter without `RUST_LOG`: warnings, but only errors from the Cassandra driver, whose
/// warnings (a node it could not reach) come before our own error saying what happened.
const DEFAULT_LOG_FILTER: &str = "warn,scylla=error";

/// Where `--http` serves without an address: loopback only.
const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

fn run(args: Args) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(match args.verbose {
                0 => DEFAULT_LOG_FILTER,
                1 => "info,scylla=warn",
                2 => "debug,scylla=info,rdkafka=info,hyper=info,h2=info,tower=info",
                _ => "trace",
            })
        }))
        .with_writer(|| stdio::LogWriter)
        // Colours only for a person at a terminal, not in files and pipes.
        .with_ansi(std::io::stderr().is_terminal())
        // Its own report of a failed write uses eprintln!, which panics on a closed stderr.
        .log_internal_errors(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            errln!("streamsql: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let catalog = LiveCatalog::new();
    let query_limits = QueryLimits {
        memory_per_query_bytes: args.query_memory_limit,
        memory_total_bytes: args.query_memory_limit.saturating_mul(2),
        timeout: args.query_timeout,
        max_concurrent: usize::from(args.query_concurrency),
    };
    let flight = match (&args.command, args.flight) {
        (_, Some(address)) => Some(FlightOptions { address, token: args.flight_token.clone(), limits: query_limits }),
        (Some(Command::Serve), None) => Some(FlightOptions {
            address: DEFAULT_FLIGHT_ADDR.parse().expect("the default address parses"),
            token: args.flight_token.clone(),
            limits: query_limits,
        }),
        (None, None) => {
            if args.flight_token.is_some() && args.http.is_none() {
                errln!("streamsql: --flight-token needs --flight or --http");
                return ExitCode::from(2);
            }
            None
        }
    };
    let variables = args.define.iter().cloned().collect();
    let context = run::Context {
        variables,
        http: args.http,
        http_token: args.flight_token.clone(),
        status_line: !args.quiet && std::io::stderr().is_terminal(),
        registry: streamsql_connectors::registry_with_live(&catalog),
        catalog,
        flight,
        query_limits,
        state_dir: args.state_dir.as_ref().map(|d| d.to_string_lossy().to_string()),
        from_scratch: args.from_scratch,
    };
    if let Some(Command::Serve) = args.command {
        return runtime.block_on(run::serve_only(context));
    }
    if let Some(sql) = &args.execute {
        let format = args.format.unwrap_or(OutputFormat::Table);
        return runtime.block_on(run::run_script(context, sql, "-e", args.parallelism, Some(format)));
    }
    if let Some(file) = &args.file {
        return runtime.block_on(run::run_file(context, file, args.parallelism, args.format));
    }
    if std::io::stdin().is_terminal() {
        return repl::run(runtime, context, args.parallelism, args.format.unwrap_or(OutputFormat::Table));
    }
    // Statements piped in (`streamsql < job.sql`) run like a file.
    runtime.block_on(run::run_file(context, Path::new("-"), args.parallelism, args.format))
}
