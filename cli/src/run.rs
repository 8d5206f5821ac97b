//! `streamsql -f FILE` and `streamsql -e SQL`: plan every statement, run the pipelines
//! concurrently, report.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;

use streamsql_engine::connector::ConnectorRegistry;
use streamsql_engine::live::LiveCatalog;
use streamsql_engine::pipeline::PipelineSpec;
use streamsql_engine::runtime::{self, PipelineReport};
use streamsql_sql::{Outcome, Session, SqlError, run_constant};

use crate::output::{OutputFormat, render_result};
use streamsql_flight::{QueryLimits, ServerHandle};

use crate::serve::{FlightOptions, interrupted, start_server};
use crate::terminal_sink::{show_batches, show_on_terminal};

/// What every way of running statements shares: the connectors, the live tables they fill, and
/// whether to serve those over Flight SQL.
pub struct Context {
    pub registry: Arc<dyn ConnectorRegistry>,
    pub catalog: Arc<LiveCatalog>,
    pub flight: Option<FlightOptions>,
    /// Bounds on ad-hoc queries over live tables (Flight SQL and the shell).
    pub query_limits: QueryLimits,
    /// `--state-dir`: where pipelines keep checkpoints, unless a script says otherwise.
    pub state_dir: Option<String>,
    /// `--from-scratch`: earlier checkpoints are removed instead of resumed from.
    pub from_scratch: bool,
    /// `-D name=value`: script variables (`${name}`).
    pub variables: std::collections::BTreeMap<String, String>,
    /// `--http`: where the HTTP console (`/metrics`) listens, and the token it requires.
    pub http: Option<std::net::SocketAddr>,
    pub http_token: Option<String>,
    /// Whether to draw the status line (stderr is a terminal, no --quiet).
    pub status_line: bool,
}

impl Context {
    /// Starts the Flight SQL server, if asked for.
    pub fn start_server(&self) -> Result<Option<ServerHandle>, ExitCode> {
        let Some(options) = &self.flight else { return Ok(None) };
        start_server(options, self.catalog.clone()).map(Some).map_err(|e| {
            errln!("streamsql: {e}");
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
            errln!("streamsql: {e}");
            ExitCode::FAILURE
        }
    }
}

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
            errln!("streamsql: cannot read {shown}: {e}");
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
    let sql = match crate::vars::substitute(sql, &context.variables) {
        Ok(sql) => sql,
        Err(e) => {
            errln!("error: {shown}: {e}");
            return ExitCode::from(2);
        }
    };
    let sql = sql.as_str();
    let mut session = Session::new(context.registry.clone());
    if let Err(e) = session.set_checkpoint_defaults(context.state_dir.clone(), context.from_scratch) {
        errln!("streamsql: --state-dir: {}", e.message());
        return ExitCode::from(2);
    }
    if let Some(n) = parallelism
        && let Err(e) = session.execute(&format!("SET 'parallelism.default' = '{n}'"))
    {
        errln!("streamsql: --parallelism: {}", e.message());
        return ExitCode::from(2);
    }
    let report_error = |e: SqlError| {
        let snippet = e.snippet().map(|s| format!("\n{s}")).unwrap_or_default();
        match e.location() {
            Some((line, column)) => errln!("error: {shown}:{line}:{column}: {}{snippet}", e.message()),
            None => errln!("error: {shown}: {}{snippet}", e.message()),
        }
        ExitCode::FAILURE
    };
    let statements = match session.parse(sql) {
        Ok(statements) => statements,
        Err(e) => return report_error(e),
    };
    let mut pipelines = Vec::new();
    let mut starts = Vec::new();
    // Per pipeline: its SQL and EXPLAIN's text, for the console.
    let mut infos = Vec::new();
    let mut printed = false;
    for statement in statements {
        let kind = statement.statement.kind();
        let start = statement.start;
        let text = statement.text.trim().to_string();
        let outcome = match session.execute_statement(sql, statement) {
            Ok(outcome) => outcome,
            Err(e) => return report_error(e),
        };
        match outcome {
            Outcome::Done(_) => {}
            Outcome::Insert(spec) => {
                infos.push(pipeline_info(&spec, text, false));
                pipelines.push(spec);
                starts.push(start);
            }
            Outcome::Query(mut spec) => {
                if let Some(format) = format {
                    show_on_terminal(&mut spec, format);
                }
                infos.push(pipeline_info(&spec, text, true));
                pipelines.push(spec);
                starts.push(start);
            }
            Outcome::Table(table) => {
                out!("{}", render_result(&table));
                printed = true;
            }
            Outcome::Text(text) => {
                out!("{text}");
                printed = true;
            }
            // Live tables are filled by the pipelines this script starts, which have not run
            // yet: their rows are only there for a shell or a Flight SQL client.
            Outcome::LiveQuery(_) => {
                errln!(
                    "error: {shown}: {kind} reads live tables, which this script's pipelines fill only once they run; \
                     query them from the streamsql shell or over Flight SQL (--flight)"
                );
                return ExitCode::FAILURE;
            }
            // A query over no table answers at once, in the script's order.
            Outcome::Constant(plan, state) => {
                let shown_rows = match run_constant(*plan, *state).await {
                    Ok((schema, batches)) => {
                        show_batches(format.unwrap_or(OutputFormat::Table), schema, &batches).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.strip_backtrace()),
                };
                if let Err(message) = shown_rows {
                    errln!("error: {shown}:{}:{}: {message}", start.line, start.column);
                    return ExitCode::FAILURE;
                }
                printed = true;
            }
            Outcome::Control(_) => {
                errln!(
                    "error: {shown}: {kind} is about the pipelines of an interactive session; run it in the streamsql shell (streamsql with no -f or -e)"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some((index, message)) = shared_file(&pipelines) {
        return report_error(SqlError::at(message, starts[index]).with_source(sql));
    }
    let server = match context.start_server() {
        Ok(server) => server,
        Err(code) => return code,
    };
    if server.is_none() && context.http.is_none() && pipelines.iter().any(|p| p.sink.connector.name() == "live") {
        errln!(
            "streamsql: note: live tables are kept in memory for Flight SQL clients and the web console; add --flight \
             or --http to see them"
        );
    }
    let board = Arc::new(crate::console::Board::default());
    let console = match context.http {
        Some(address) => match crate::console::start(address, console_config(&context, board.clone())).await {
            Ok(console) => {
                errln!("streamsql: console on http://{0}/ · metrics on http://{0}/metrics", console.address);
                Some(console)
            }
            Err(e) => {
                errln!("streamsql: cannot serve the HTTP console on {address}: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    if pipelines.is_empty() && server.is_none() && console.is_none() {
        if !printed {
            errln!("streamsql: {shown} has no INSERT INTO or SELECT statement; nothing to run");
        }
        return ExitCode::SUCCESS;
    }

    let names: Vec<String> = pipelines.iter().map(|p| p.name.clone()).collect();
    let running: Vec<_> = pipelines.into_iter().map(runtime::start).collect();
    let controls: Vec<_> = running.iter().map(|p| p.control()).collect();
    for ((name, info), control) in names.into_iter().zip(infos).zip(&controls) {
        board.add(name, info, control.clone());
    }
    let status = context.status_line.then(|| tokio::spawn(crate::status::refresh(board.clone())));
    let mut joins = tokio::task::JoinSet::new();
    for (index, pipeline) in running.into_iter().enumerate() {
        joins.spawn(async move { (index, pipeline.join().await) });
    }

    let mut reports: Vec<PipelineReport> = Vec::new();
    let mut failed = false;
    let mut stopped = None;
    loop {
        tokio::select! {
            next = joins.join_next() => {
                let Some(joined) = next else { break };
                match &joined {
                    Ok((index, Ok(report))) if report.cancelled => board.stopped(*index),
                    Ok((index, _)) => board.ended(*index),
                    Err(_) => {}
                }
                match joined {
                    Ok((_, Ok(report))) => reports.push(report),
                    Ok((index, Err(e))) => {
                        errln!("error: pipeline {} failed: {e}", index + 1);
                        failed = true;
                        controls.iter().for_each(|c| c.cancel());
                    }
                    Err(e) => {
                        errln!("error: a pipeline task failed: {e}");
                        failed = true;
                        controls.iter().for_each(|c| c.cancel());
                    }
                }
            }
            signal = interrupted(), if stopped.is_none() => {
                stopped = Some(signal);
                if controls.iter().any(|c| c.checkpoints()) {
                    // A final checkpoint first, so a restart resumes here and replays nothing.
                    errln!("streamsql: stopping ({}) after a final checkpoint", signal.name());
                    for control in &controls {
                        let epoch = control.stop_with_savepoint(SAVEPOINT_TIMEOUT).await;
                        if control.checkpoints() && epoch.is_none() {
                            errln!("streamsql: the final checkpoint did not complete; a restart resumes from the one before");
                        }
                    }
                } else {
                    errln!("streamsql: stopping ({}); open windows are not emitted", signal.name());
                    controls.iter().for_each(|c| c.cancel());
                }
            }
        }
    }
    if let Some(status) = status {
        status.abort();
        crate::stdio::clear_status();
    }
    for report in &reports {
        let m = report.metrics;
        errln!(
            "{}: {} rows in, {} rows out, {} late rows dropped{}, {} bad records skipped{}{}{}",
            report.name,
            m.rows_in,
            m.rows_out,
            m.late_rows,
            if m.late_rows_routed > 0 {
                format!(" ({} written to the late-rows sink)", m.late_rows_routed)
            } else {
                String::new()
            },
            m.bad_records,
            if m.rows_missing_fields > 0 {
                format!(", {} rows missing JSON fields (read as NULL)", m.rows_missing_fields)
            } else {
                String::new()
            },
            if m.source_errors > 0 {
                format!(", {} source requests failed after retries", m.source_errors)
            } else {
                String::new()
            },
            if report.cancelled { " (stopped)" } else { "" }
        );
        for operator in &report.operators {
            errln!("  {operator}");
        }
        if let Some(epoch) = report.restored_from {
            errln!("  resumed from checkpoint {epoch}");
        }
        if let Some(last) = report.last_checkpoint {
            errln!("  last {last}");
        }
    }
    if let Some(console) = &console
        && server.is_none()
        && !failed
        && stopped.is_none()
    {
        errln!(
            "streamsql: {}; serving metrics on http://{}/metrics until Ctrl-C or SIGTERM",
            if reports.is_empty() { "no pipelines" } else { "pipelines finished" },
            console.address
        );
        interrupted().await;
    }
    if let Some(server) = server {
        if !failed && stopped.is_none() {
            errln!(
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
    match stopped {
        _ if failed => ExitCode::FAILURE,
        Some(signal) => ExitCode::from(signal.exit_code()),
        None => ExitCode::SUCCESS,
    }
}

/// What the console shows of `spec` besides its counters; `query` when its sink is the terminal.
pub fn pipeline_info(spec: &PipelineSpec, sql: String, query: bool) -> crate::console::PipelineInfo {
    crate::console::PipelineInfo {
        sql,
        plan: streamsql_sql::explain::explain(spec, query),
        graph: spec.graph(),
        parallelism: spec.parallelism,
    }
}

/// The console over `board` and this context's live tables.
pub fn console_config(context: &Context, board: Arc<crate::console::Board>) -> crate::console::ConsoleConfig {
    crate::console::ConsoleConfig {
        board,
        catalog: context.catalog.clone(),
        queries: streamsql_flight::QueryEngine::new(context.catalog.clone(), context.query_limits)
            .with_functions(crate::serve::flink_functions()),
        token: context.http_token.clone(),
    }
}

/// How long a stop waits for the final checkpoint before stopping without it.
const SAVEPOINT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The first pipeline writing a file an earlier one writes, and why that cannot run: both would
/// replace the file with their own output, and the last to finish would win.
fn shared_file(pipelines: &[PipelineSpec]) -> Option<(usize, String)> {
    let mut writers: Vec<(std::path::PathBuf, &str)> = Vec::new();
    for (index, spec) in pipelines.iter().enumerate() {
        let Some(file) = streamsql_connectors::file::written_file(&spec.sink.table) else { continue };
        if let Some((_, first)) = writers.iter().find(|(f, _)| *f == file) {
            return Some((
                index,
                format!(
                    "{} writes '{}', which {first} writes too; a file has one writer at a time, so write to \
                     another path",
                    spec.name,
                    file.display()
                ),
            ));
        }
        writers.push((file, &spec.name));
    }
    None
}
