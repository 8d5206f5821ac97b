//! Pipelines started by `INSERT INTO` in the shell: they run in the background until their
//! input ends, they fail, or `STOP PIPELINE` (or quitting) stops them.
//!
//! ```text
//!  start ─▶ running ──input ends──▶ finished
//!              │ ├───error────────▶ failed      (a notice is printed at once)
//!              └─STOP PIPELINE────▶ stopping ─▶ stopped
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamsql_engine::pipeline::PipelineSpec;
use streamsql_engine::runtime::{self, PipelineControl};
use streamsql_engine::time::{WATERMARK_MAX, WATERMARK_MIN, format_millis};
use streamsql_sql::ResultTable;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::notice::Notices;
use crate::console::Board;

/// How a pipeline stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Running,
    Finished,
    Failed(String),
    Stopped,
}

struct Entry {
    id: u64,
    statement: String,
    control: PipelineControl,
    state: Arc<Mutex<State>>,
    stop_requested: AtomicBool,
    /// Waits for the pipeline and records how it ended; aborted (with the pipeline) on drop.
    task: JoinHandle<()>,
}

impl Entry {
    fn state(&self) -> State {
        self.state.lock().map(|s| s.clone()).unwrap_or(State::Failed("state unavailable".into()))
    }
}

/// The shell's background pipelines, numbered from 1 in the order they started.
pub struct Pipelines {
    runtime: Handle,
    notices: Notices,
    entries: Vec<Entry>,
    /// The web console's (with --http): every pipeline is shown there too.
    board: Option<Arc<Board>>,
}

impl Drop for Pipelines {
    fn drop(&mut self) {
        for entry in &self.entries {
            entry.task.abort();
        }
    }
}

impl Pipelines {
    pub fn new(runtime: Handle, notices: Notices) -> Self {
        Self { runtime, notices, entries: Vec::new(), board: None }
    }

    /// Shows every pipeline started from now on in the web console too.
    pub fn with_board(mut self, board: Arc<Board>) -> Self {
        self.board = Some(board);
        self
    }

    /// Starts `spec` in the background; returns its id.
    pub fn start(&mut self, spec: PipelineSpec, statement: String) -> u64 {
        let id = self.entries.len() as u64 + 1;
        let _context = self.runtime.enter();
        let info = self.board.as_ref().map(|_| crate::run::pipeline_info(&spec, statement.clone(), false));
        let name = spec.name.clone();
        let running = runtime::start(spec);
        let control = running.control();
        // The board numbers pipelines as the shell does: it has every one the shell started.
        let board = self.board.clone();
        if let (Some(board), Some(info)) = (&board, info) {
            board.add(name, info, control.clone());
        }
        let state = Arc::new(Mutex::new(State::Running));
        let task = {
            let state = state.clone();
            let notices = self.notices.clone();
            self.runtime.spawn(async move {
                let joined = running.join().await;
                if let Some(board) = &board {
                    match &joined {
                        Ok(report) if report.cancelled => board.stopped(id as usize - 1),
                        _ => board.ended(id as usize - 1),
                    }
                }
                let ended = match joined {
                    Ok(report) if report.cancelled => State::Stopped,
                    Ok(report) => {
                        let m = report.metrics;
                        notices.print(format!(
                            "pipeline {id} finished: {} rows in, {} rows out, {} late rows dropped",
                            m.rows_in, m.rows_out, m.late_rows
                        ));
                        State::Finished
                    }
                    Err(e) => {
                        notices.print(format!("pipeline {id} failed: {e}"));
                        State::Failed(e.to_string())
                    }
                };
                if let Ok(mut slot) = state.lock() {
                    *slot = ended;
                }
            })
        };
        self.entries.push(Entry { id, statement, control, state, stop_requested: AtomicBool::new(false), task });
        id
    }

    /// `SHOW PIPELINES`.
    pub fn show(&self) -> ResultTable {
        let mut out = ResultTable::new(&[
            "id",
            "statement",
            "state",
            "rows in",
            "rows out",
            "watermark",
            "late rows",
            "bad records",
            "checkpoint",
            "operators",
        ]);
        for entry in &self.entries {
            let m = entry.control.metrics();
            let state = match entry.state() {
                State::Running if entry.stop_requested.load(Ordering::Relaxed) => "stopping".to_string(),
                State::Running => "running".to_string(),
                State::Finished => "finished".to_string(),
                State::Stopped => "stopped".to_string(),
                State::Failed(e) => format!("failed: {e}"),
            };
            let watermark = match m.watermark {
                WATERMARK_MIN => "-".to_string(),
                WATERMARK_MAX => "end of input".to_string(),
                w => format_millis(w),
            };
            out.rows.push(vec![
                entry.id.to_string(),
                shorten(&entry.statement, 50),
                state,
                m.rows_in.to_string(),
                m.rows_out.to_string(),
                watermark,
                m.late_rows.to_string(),
                m.bad_records.to_string(),
                match (entry.control.checkpoints(), entry.control.last_checkpoint()) {
                    (false, _) => "off".to_string(),
                    (true, None) => "none yet".to_string(),
                    (true, Some(last)) => last.to_string(),
                },
                entry.control.operators().iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
            ]);
        }
        if out.rows.is_empty() {
            out.notes.push("no pipelines yet; INSERT INTO a table starts one".into());
        }
        out
    }

    /// `STOP PIPELINE id [WITH SAVEPOINT]`: what to tell the user, or why it cannot be done.
    /// With a savepoint, waits for the final checkpoint (a pipeline without checkpoints cannot
    /// take one: refused).
    pub fn stop(&self, id: u64, savepoint: bool) -> Result<String, String> {
        let Some(entry) = self.entries.iter().find(|e| e.id == id) else {
            return Err(match self.entries.len() {
                0 => format!("there is no pipeline {id}: no pipeline has been started yet"),
                n => format!("there is no pipeline {id}; pipelines are numbered 1 to {n} (SHOW PIPELINES lists them)"),
            });
        };
        match entry.state() {
            State::Running if savepoint => {
                if !entry.control.checkpoints() {
                    return Err(format!(
                        "pipeline {id} takes no checkpoints, so it cannot stop with a savepoint; SET \
                         'execution.checkpointing.interval' before starting it, or STOP PIPELINE {id}"
                    ));
                }
                entry.stop_requested.store(true, Ordering::Relaxed);
                let control = entry.control.clone();
                match self.runtime.block_on(control.stop_with_savepoint(Duration::from_secs(60))) {
                    Some(epoch) => Ok(format!(
                        "stopped pipeline {id} after checkpoint {epoch}; started again with the same state \
                         directory, it resumes there"
                    )),
                    None => Ok(format!(
                        "stopped pipeline {id}, but its final checkpoint did not complete; it resumes from the one before"
                    )),
                }
            }
            State::Running => {
                entry.stop_requested.store(true, Ordering::Relaxed);
                entry.control.cancel();
                Ok(format!("stopping pipeline {id}; open windows are not emitted"))
            }
            State::Finished => Err(format!("pipeline {id} has already finished")),
            State::Stopped => Err(format!("pipeline {id} is already stopped")),
            State::Failed(_) => Err(format!("pipeline {id} has already failed")),
        }
    }

    /// Stops every running pipeline and waits (up to `timeout`) for their sinks to flush.
    pub fn stop_all(&mut self, timeout: Duration) {
        let running: Vec<&mut Entry> = self.entries.iter_mut().filter(|e| e.state() == State::Running).collect();
        if running.is_empty() {
            return;
        }
        errln!("stopping {} running pipeline(s)", running.len());
        let mut tasks = Vec::new();
        for entry in running {
            entry.control.cancel();
            tasks.push(&mut entry.task);
        }
        let waited = self.runtime.block_on(async {
            tokio::time::timeout(timeout, async {
                for task in tasks {
                    let _ = task.await;
                }
            })
            .await
        });
        if waited.is_err() {
            errln!("some pipelines did not stop within {} s; abandoning them", timeout.as_secs());
        }
    }
}

/// `text` on one line, cut to `max` characters.
fn shorten(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max { line } else { format!("{}…", line.chars().take(max - 1).collect::<String>()) }
}
