//! A `SELECT` typed in the shell: rows stream to the terminal until the query ends or Ctrl-C.

use streamsql_engine::pipeline::PipelineSpec;
use streamsql_engine::runtime;
use tokio::runtime::Handle;

use crate::output::OutputFormat;
use crate::terminal_sink::show_on_terminal;

/// Runs `spec` in the foreground, showing its rows in `format`; Ctrl-C cancels it. Returns a
/// line saying how it ended.
pub fn run_query(runtime: &Handle, mut spec: PipelineSpec, format: OutputFormat) -> Result<String, String> {
    show_on_terminal(&mut spec, format);
    runtime.block_on(async {
        let running = runtime::start(spec);
        let control = running.control();
        let join = running.join();
        tokio::pin!(join);
        let result = tokio::select! {
            result = &mut join => result,
            _ = tokio::signal::ctrl_c() => {
                control.cancel();
                join.await
            }
        };
        match result {
            Ok(report) => {
                let m = report.metrics;
                let how = if report.cancelled { "cancelled (Ctrl-C)" } else { "finished" };
                let late = if m.late_rows > 0 { format!(", {} late rows dropped", m.late_rows) } else { String::new() };
                Ok(format!("query {how}: {} rows shown, {} rows read{late}", m.rows_out, m.rows_in))
            }
            Err(e) => Err(format!("the query failed: {e}")),
        }
    })
}
