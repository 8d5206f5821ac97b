//! `streamsql -f FILE` and `streamsql -e SQL`: plan every statement, run the pipelines
//! concurrently, report.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;

use streamsql_engine::connector::ConnectorRegistry;
use streamsql_engine::live::LiveCatalog;
use streamsql_engine::runtime::{self, PipelineReport};
use streamsql_sql::{Outcome, Session, SqlError};

use crate::output::{OutputFormat, render_result};
use streamsql_flight::{QueryLimits, ServerHandle};

use crate::serve::{FlightOptions, interrupted, start_server};
use crate::terminal_sink::show_on_terminal;

/// What every way of running statements shares: the connectors, the live tables they fill, and
/// whether to serve those over Flight SQL.
pub struct Context {
    pub registry: Arc<dyn ConnectorRegistry>,
    pub catalog: Arc<LiveCatalog>,
    pub flight: Option<FlightOptions>,
    /// Bounds on ad-hoc queries over live tables (Flight SQL and the shell).
    pub query_limits: QueryLimits,
}

impl Context {
    /// Starts the Flight SQL server, if asked for.
    pub fn start_server(&self) -> Result<Option<ServerHandle>, ExitCode> {
        let Some(options) = &self.flight else { return Ok(None) };
        start_server(options, self.catalog.clone()).map(Some).map_err(|e| {
            eprintln!("streamsql: {e}");
            ExitCode::from(2)
        })
    }
}

/// `streamsql serve`: Flight SQL only, until Ctrl-C or SIGTERM.
pub async fn serve_only(context: Context) -> ExitCode {
    let server = match context.start_server() {
        Ok(Some(server)) => server,
        Ok(None) => return ExitCode::from(2),
        Err(code) => return code,
    };
    interrupted().await;
    stop_server(server).await
}

async fn stop_server(server: ServerHandle) -> ExitCode {
    match server.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamsql: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit code after Ctrl-C, as shells expect (128 + SIGINT).
const INTERRUPTED: u8 = 130;

fn read_script(file: &Path) -> std::io::Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(file)
    }
}

/// `streamsql -f FILE`.
pub async fn run_file(
    context: Context,
    file: &Path,
    parallelism: Option<usize>,
    format: Option<OutputFormat>,
) -> ExitCode {
    let shown = file.display().to_string();
    match read_script(file) {
        Ok(sql) => run_script(context, &sql, &shown, parallelism, format).await,
        Err(e) => {
            eprintln!("streamsql: cannot read {shown}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the statements of `sql` (named `shown` in messages): answers of `SHOW`, `DESCRIBE` and
/// `EXPLAIN` are printed at once, then every pipeline runs until all finish. Query rows are
/// printed by the `'print'` connector unless `format` asks for another look. With a Flight SQL
/// server, it starts first and keeps serving after the pipelines finish, until Ctrl-C or SIGTERM.
pub async fn run_script(
    context: Context,
    sql: &str,
    shown: &str,
    parallelism: Option<usize>,
    format: Option<OutputFormat>,
) -> ExitCode {
    let mut session = Session::new(context.registry.clone());
    if let Some(n) = parallelism
        && let Err(e) = session.execute(&format!("SET 'parallelism.default' = '{n}'"))
    {
        eprintln!("streamsql: --parallelism: {}", e.message());
        return ExitCode::from(2);
    }
    let report_error = |e: SqlError| {
        let snippet = e.snippet().map(|s| format!("\n{s}")).unwrap_or_default();
        match e.location() {
            Some((line, column)) => eprintln!("error: {shown}:{line}:{column}: {}{snippet}", e.message()),
            None => eprintln!("error: {shown}: {}{snippet}", e.message()),
        }
        ExitCode::FAILURE
    };
    let statements = match session.parse(sql) {
        Ok(statements) => statements,
        Err(e) => return report_error(e),
    };
    let mut pipelines = Vec::new();
    let mut printed = false;
    for statement in statements {
        let kind = statement.statement.kind();
        let outcome = match session.execute_statement(sql, statement) {
            Ok(outcome) => outcome,
            Err(e) => return report_error(e),
        };
        match outcome {
            Outcome::Done(_) => {}
            Outcome::Insert(spec) => pipelines.push(spec),
            Outcome::Query(mut spec) => {
                if let Some(format) = format {
                    show_on_terminal(&mut spec, format);
                }
                pipelines.push(spec)
            }
            Outcome::Table(table) => {
                print!("{}", render_result(&table));
                printed = true;
            }
            Outcome::Text(text) => {
                print!("{text}");
                printed = true;
            }
            // Live tables are filled by the pipelines this script starts, which have not run
            // yet: their rows are only there for a shell or a Flight SQL client.
            Outcome::LiveQuery(_) => {
                eprintln!(
                    "error: {shown}: {kind} reads live tables, which this script's pipelines fill only once they run; \
                     query them from the streamsql shell or over Flight SQL (--flight)"
                );
                return ExitCode::FAILURE;
            }
            Outcome::Control(_) => {
                eprintln!(
                    "error: {shown}: {kind} is about the pipelines of an interactive session; run it in the streamsql shell (streamsql with no -f or -e)"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let server = match context.start_server() {
        Ok(server) => server,
        Err(code) => return code,
    };
    if server.is_none() && pipelines.iter().any(|p| p.sink.connector.name() == "live") {
        eprintln!("streamsql: note: live tables are kept in memory for Flight SQL clients; add --flight to query them");
    }
    if pipelines.is_empty() && server.is_none() {
        if !printed {
            eprintln!("streamsql: {shown} has no INSERT INTO or SELECT statement; nothing to run");
        }
        return ExitCode::SUCCESS;
    }

    let running: Vec<_> = pipelines.into_iter().map(runtime::start).collect();
    let controls: Vec<_> = running.iter().map(|p| p.control()).collect();
    let mut joins = tokio::task::JoinSet::new();
    for (index, pipeline) in running.into_iter().enumerate() {
        joins.spawn(async move { (index, pipeline.join().await) });
    }

    let mut reports: Vec<PipelineReport> = Vec::new();
    let mut failed = false;
    let mut stopped = false;
    loop {
        tokio::select! {
            next = joins.join_next() => {
                let Some(joined) = next else { break };
                match joined {
                    Ok((_, Ok(report))) => reports.push(report),
                    Ok((index, Err(e))) => {
                        eprintln!("error: pipeline {} failed: {e}", index + 1);
                        failed = true;
                        controls.iter().for_each(|c| c.cancel());
                    }
                    Err(e) => {
                        eprintln!("error: a pipeline task failed: {e}");
                        failed = true;
                        controls.iter().for_each(|c| c.cancel());
                    }
                }
            }
            () = interrupted(), if !stopped => {
                eprintln!("streamsql: stopping (Ctrl-C or SIGTERM); open windows are not emitted");
                stopped = true;
                controls.iter().for_each(|c| c.cancel());
            }
        }
    }
    for report in &reports {
        let m = report.metrics;
        eprintln!(
            "{}: {} rows in, {} rows out, {} late rows dropped, {} bad records skipped{}",
            report.name,
            m.rows_in,
            m.rows_out,
            m.late_rows,
            m.bad_records,
            if report.cancelled { " (stopped)" } else { "" }
        );
    }
    if let Some(server) = server {
        if !failed && !stopped {
            eprintln!(
                "streamsql: {}; serving live tables on grpc://{} until Ctrl-C or SIGTERM",
                if reports.is_empty() { "no pipelines" } else { "pipelines finished" },
                server.address
            );
            interrupted().await;
        }
        if stop_server(server).await != ExitCode::SUCCESS {
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else if stopped {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}
