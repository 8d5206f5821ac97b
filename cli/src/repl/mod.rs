//! The interactive shell: `streamsql` on a terminal.
//!
//! ```text
//!  rustyline (main thread) ─ lines until `;` ─▶ Session::parse / execute_statement ─▶ Outcome
//!     Done, Table, Text      → printed
//!     Insert                 → pipelines.rs: started in the background on the tokio runtime
//!     Query                  → query.rs: rows stream to the terminal until the end or Ctrl-C
//!     Control                → pipelines.rs: SHOW PIPELINES / STOP PIPELINE
//! ```
//!
//! At the prompt the terminal is in raw mode and Ctrl-C is a key that clears the input. While a
//! query runs the terminal is in its normal mode and Ctrl-C is SIGINT, which the runtime's
//! handler (installed once, at start) turns into cancelling the query; the shell never dies of
//! it.

mod helper;
mod input;
mod notice;
mod pipelines;
mod query;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};
use streamsql_sql::{Control, Outcome, Session, run_constant};
use tokio::runtime::Runtime;

use self::helper::{Names, SqlHelper};
use self::input::Command;
use self::notice::Notices;
use self::pipelines::Pipelines;
use crate::output::{OutputFormat, render_result};
use crate::run::Context;
use crate::terminal_sink::show_batches;
use streamsql_flight::QueryEngine;

const PROMPT: &str = "streamsql> ";
const CONTINUATION: &str = "        -> ";
/// How long quitting waits for stopped pipelines to flush their sinks.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

const HELP: &str = "\
Statements end with ';' and may span lines.
  CREATE TABLE t (col TYPE, ..., WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = ...);
  CREATE [OR REPLACE] VIEW v AS SELECT ...;
  SELECT ...;                    rows stream here until the query ends; Ctrl-C cancels it
  SELECT ... LIMIT 10;           stops after the first 10 rows
  SELECT 1 + 1; SELECT now();    a query over no table answers at once
  INSERT INTO t SELECT ...;      starts a pipeline in the background
  SHOW TABLES; SHOW VIEWS; SHOW PIPELINES;
  STOP PIPELINE n;               stops a background pipeline
  STOP PIPELINE n WITH SAVEPOINT; stops it after a final checkpoint
  DESCRIBE t;                    columns, watermark, connector and options
  EXPLAIN SELECT ...;            the dataflow a query would run
  SET 'parallelism.default' = '4';
Shell: \\d lists tables and views, \\dt tables, \\dv views, \\d name describes one;
  \\q, exit or Ctrl-D quits; Ctrl-C clears the input; Tab completes names and keywords.";

/// Where history is kept: `$STREAMSQL_HISTORY`, else `~/.streamsql_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STREAMSQL_HISTORY") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".streamsql_history"))
}

/// The shell's state between inputs.
struct Shell {
    runtime: Runtime,
    /// Runs queries over the live tables the shell's pipelines fill.
    live: QueryEngine,
    session: Session,
    pipelines: Pipelines,
    names: Arc<Mutex<Names>>,
    format: OutputFormat,
}

/// Runs the shell until the user quits.
pub fn run(runtime: Runtime, context: Context, parallelism: Option<usize>, format: OutputFormat) -> ExitCode {
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .max_history_size(1000)
        .map(|b| b.build());
    let mut editor: Editor<SqlHelper, DefaultHistory> = match config.and_then(Editor::with_config) {
        Ok(editor) => editor,
        Err(e) => {
            errln!("streamsql: cannot open the terminal: {e}");
            return ExitCode::FAILURE;
        }
    };
    let names = Arc::new(Mutex::new(Names::default()));
    editor.set_helper(Some(SqlHelper::new(names.clone())));
    let history = history_path();
    if let Some(path) = &history
        && path.exists()
        && let Err(e) = editor.load_history(path)
    {
        errln!("streamsql: cannot read history from {}: {e}", path.display());
    }
    let notices = match editor.create_external_printer() {
        Ok(printer) => Notices::with_printer(Box::new(printer)),
        Err(_) => Notices::default(),
    };
    install_interrupt_handler(&runtime);

    // The Flight SQL server (with --flight) serves the shell's live tables while it runs.
    let server = {
        let _entered = runtime.enter();
        match context.start_server() {
            Ok(server) => server,
            Err(code) => return code,
        }
    };
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
    let mut pipelines = Pipelines::new(runtime.handle().clone(), notices);
    // The web console (with --http) shows the shell's pipelines and live tables while it runs.
    let _console = match context.http {
        Some(address) => {
            let board = Arc::new(crate::console::Board::default());
            let config = crate::run::console_config(&context, board.clone());
            match runtime.block_on(crate::console::start(address, config)) {
                Ok(console) => {
                    errln!("streamsql: console on http://{0}/ · metrics on http://{0}/metrics", console.address);
                    pipelines = pipelines.with_board(board);
                    Some(console)
                }
                Err(e) => {
                    errln!("streamsql: cannot serve the HTTP console on {address}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        None => None,
    };
    let live =
        QueryEngine::new(context.catalog.clone(), context.query_limits).with_functions(crate::serve::flink_functions());
    let mut shell = Shell { runtime, live, session, pipelines, names, format };

    outln!("streamsql {} — streaming SQL. Type help for help, \\q to quit.", env!("CARGO_PKG_VERSION"));
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { PROMPT } else { CONTINUATION };
        match editor.readline(prompt) {
            Ok(line) => {
                if buffer.is_empty() {
                    match input::command(&line) {
                        Some(Command::Quit) => break,
                        Some(Command::Help) => {
                            outln!("{HELP}");
                            continue;
                        }
                        Some(Command::Sql(sql)) => {
                            let _ = editor.add_history_entry(line.trim_end());
                            if let Some(path) = &history {
                                let _ = editor.save_history(path);
                            }
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shell.execute(&sql))).is_err() {
                                errln!("error: internal error while running that statement (a bug; please report it)");
                            }
                            continue;
                        }
                        Some(Command::Unknown(command)) => {
                            errln!("unknown command {command}; \\q quits, help lists what you can type");
                            continue;
                        }
                        None => {}
                    }
                    if input::is_blank(&line) {
                        continue;
                    }
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if !input::is_complete(&buffer) {
                    continue;
                }
                let sql = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(sql.trim_end());
                if let Some(path) = &history {
                    let _ = editor.save_history(path);
                }
                // A bug in planning must not take the shell (and its pipelines) down with it;
                // the panic hook has already printed what happened.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shell.execute(&sql))).is_err() {
                    errln!("error: internal error while running that statement (a bug; please report it)");
                }
            }
            // Ctrl-C at the prompt abandons what was typed, as in psql.
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                errln!("streamsql: cannot read input: {e}");
                break;
            }
        }
    }
    shell.pipelines.stop_all(STOP_TIMEOUT);
    if let Some(server) = server
        && let Err(e) = shell.runtime.block_on(server.stop())
    {
        errln!("streamsql: {e}");
    }
    ExitCode::SUCCESS
}

/// From here on SIGINT is the runtime's to handle (it cancels a running query), so a Ctrl-C
/// outside the prompt never kills the shell.
fn install_interrupt_handler(runtime: &Runtime) {
    #[cfg(unix)]
    {
        let _context = runtime.enter();
        if let Err(e) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
            errln!("streamsql: cannot handle Ctrl-C ({e}); it will end the shell");
        }
    }
    #[cfg(not(unix))]
    let _ = runtime;
}

impl Shell {
    /// Runs the statements of one input in order; the first error ends the input.
    fn execute(&mut self, sql: &str) {
        let statements = match self.session.parse(sql) {
            Ok(statements) => statements,
            Err(e) => return errln!("error: {e}"),
        };
        for statement in statements {
            let text = statement.text.clone();
            let outcome = self.session.execute_statement(sql, statement);
            self.refresh_names();
            match outcome {
                Ok(outcome) => {
                    if let Err(message) = self.show(outcome, text) {
                        errln!("error: {message}");
                        return;
                    }
                }
                Err(e) => {
                    errln!("error: {e}");
                    return;
                }
            }
        }
    }

    fn show(&mut self, outcome: Outcome, text: String) -> Result<(), String> {
        match outcome {
            Outcome::Done(message) => outln!("{message}"),
            Outcome::Table(table) => out!("{}", render_result(&table)),
            Outcome::Text(text) => out!("{text}"),
            Outcome::Insert(spec) => {
                let id = self.pipelines.start(spec, text);
                outln!(
                    "pipeline {id} started in the background (SHOW PIPELINES shows it, STOP PIPELINE {id} stops it)"
                );
            }
            Outcome::Query(spec) => {
                let ended = query::run_query(self.runtime.handle(), spec, self.format)?;
                errln!("{ended}");
            }
            Outcome::Constant(plan, state) => {
                let (schema, batches) =
                    self.runtime.block_on(run_constant(*plan, *state)).map_err(|e| e.strip_backtrace())?;
                show_batches(self.format, schema, &batches).map_err(|e| e.to_string())?;
            }
            Outcome::LiveQuery(sql) => {
                let result = self.runtime.block_on(self.live.run(&sql)).map_err(|e| e.strip_backtrace())?;
                show_batches(self.format, result.schema, &result.batches).map_err(|e| e.to_string())?;
            }
            Outcome::Control(Control::ShowPipelines) => out!("{}", render_result(&self.pipelines.show())),
            Outcome::Control(Control::StopPipeline { id, savepoint }) => {
                outln!("{}", self.pipelines.stop(id, savepoint)?)
            }
        }
        Ok(())
    }

    /// Hands the names now declared to completion.
    fn refresh_names(&self) {
        let mut relations = Vec::new();
        let mut columns = Vec::new();
        for (name, schema) in self.session.relations() {
            relations.push(name.to_string());
            columns.extend(schema.fields().iter().map(|f| f.name().clone()));
        }
        columns.sort();
        columns.dedup();
        if let Ok(mut names) = self.names.lock() {
            *names = Names { relations, columns };
        }
    }
}
