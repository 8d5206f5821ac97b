//! The `streamsql` binary: the only place that wires SQL, connectors and the engine together.

mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Streaming SQL over event streams: windows, watermarks, sources and sinks in one SQL file.
#[derive(Debug, Parser)]
#[command(name = "streamsql", version, about, long_about = None)]
struct Args {
    /// Run the statements of a SQL file (`-` reads standard input) until its pipelines finish.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,

    /// Instances of each aggregation, unless the file says `SET 'parallelism.default'`.
    #[arg(short = 'p', long, value_name = "N")]
    parallelism: Option<usize>,
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
    let Some(file) = args.file else {
        eprintln!(
            "streamsql: the interactive shell is not available yet.\n\
             Run a pipeline file instead:  streamsql -f pipelines/netflow.sql\n\
             (see streamsql --help)"
        );
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("streamsql: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run::run_file(&file, args.parallelism))
}
