//! `streamsql -f FILE`: plan every statement, run the pipelines concurrently, report.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use streamsql_engine::runtime::{self, PipelineReport};
use streamsql_sql::Session;

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

pub async fn run_file(file: &Path, parallelism: Option<usize>) -> ExitCode {
    let shown = file.display();
    let sql = match read_script(file) {
        Ok(sql) => sql,
        Err(e) => {
            eprintln!("streamsql: cannot read {shown}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut session = Session::new(streamsql_connectors::registry());
    if let Some(n) = parallelism
        && let Err(e) = session.execute(&format!("SET 'parallelism.default' = '{n}'"))
    {
        eprintln!("streamsql: --parallelism: {}", e.message());
        return ExitCode::from(2);
    }
    let pipelines = match session.execute(&sql) {
        Ok(p) => p,
        Err(e) => {
            match e.location() {
                Some((line, column)) => eprintln!("error: {shown}:{line}:{column}: {e}"),
                None => eprintln!("error: {shown}: {e}"),
            }
            return ExitCode::FAILURE;
        }
    };
    if pipelines.is_empty() {
        eprintln!("streamsql: {shown} has no INSERT INTO or SELECT statement; nothing to run");
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
    let mut interrupted = false;
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
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                eprintln!("streamsql: stopping (Ctrl-C); open windows are not emitted");
                interrupted = true;
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
    if failed {
        ExitCode::FAILURE
    } else if interrupted {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}
