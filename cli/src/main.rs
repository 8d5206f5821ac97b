//! The `streamsql` binary: the only place that wires SQL, connectors and the engine together.
//!
//! - no arguments, on a terminal: the interactive shell ([`repl`]);
//! - `-f FILE`, `-e SQL`, or statements piped to standard input: run them ([`run`]) and exit.

mod output;
mod repl;
mod run;
mod terminal_sink;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::output::OutputFormat;

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

    /// Instances of each aggregation, unless the statements say `SET 'parallelism.default'`.
    #[arg(short = 'p', long, value_name = "N")]
    parallelism: Option<usize>,

    /// How SELECT rows are shown [default: table in the shell and with -e; with -f, Flink-style
    /// `+I[...]` lines]
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<OutputFormat>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("streamsql: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(sql) = &args.execute {
        let format = args.format.unwrap_or(OutputFormat::Table);
        return runtime.block_on(run::run_script(sql, "-e", args.parallelism, Some(format)));
    }
    if let Some(file) = &args.file {
        return runtime.block_on(run::run_file(file, args.parallelism, args.format));
    }
    if std::io::stdin().is_terminal() {
        return repl::run(runtime, args.parallelism, args.format.unwrap_or(OutputFormat::Table));
    }
    // Statements piped in (`streamsql < job.sql`) run like a file.
    runtime.block_on(run::run_file(Path::new("-"), args.parallelism, args.format))
}
