//! The parent side: worker processes, their counts, and the three kinds of finding.
//!
//! ```text
//!             "start i"                "ok i" / "panic i"
//!  waiting ─────────────▶ in case i ────────────────────▶ waiting
//!                          │    │
//!     child's stdout ends  │    │  no answer for case_timeout
//!                          ▼    ▼
//!                       abort  hang (child killed)
//!                          └──┬─┘
//!                             ▼
//!                restarted after case i (with what is left of its budget)
//! ```
//!
//! [`run_generated`] drives workers over generated cases; [`Probe`] runs one given script at a
//! time in a worker, for replaying regression files and reducing findings.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::worker::write_frame;

/// What went wrong in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A panic, caught in the worker.
    Panic,
    /// The worker process died: stack overflow, `abort`, a kill by the OOM killer.
    Abort,
    /// No answer within the case timeout.
    Hang,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Panic => "panic",
            Kind::Abort => "abort",
            Kind::Hang => "hang",
        }
    }
}

/// A case that panicked, aborted or hung.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: Kind,
    /// The case index (with the run's seed, enough to regenerate it).
    pub index: u64,
    /// The panic message and location, or the exit status and the end of stderr.
    pub detail: String,
}

impl Finding {
    /// What makes two findings the same bug: a panic's location, an abort's cause.
    pub fn signature(&self) -> String {
        signature(self.kind, &self.detail)
    }
}

/// The bug behind a finding's `detail`, for telling findings apart.
pub fn signature(kind: Kind, detail: &str) -> String {
    match kind {
        Kind::Panic => {
            format!("panic {}", detail.rsplit_once(" at ").map_or(detail, |(_, location)| location))
        }
        Kind::Abort if detail.contains("overflowed its stack") => "abort: stack overflow".into(),
        Kind::Abort => format!("abort: {}", detail.lines().next().unwrap_or("")),
        Kind::Hang => "hang".into(),
    }
}

/// How workers are started.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The `sql-fuzz` binary (the running one).
    pub exe: PathBuf,
    pub stack_mb: usize,
}

impl WorkerCommand {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.exe);
        command.arg("--worker").arg("--stack-mb").arg(self.stack_mb.to_string());
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    }
}

/// A line of a worker's stdout, or its end.
enum Event {
    Line(String),
    End,
}

/// A running worker: its process, its lines, and the tail of its stderr once it ends.
struct Worker {
    process: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
}

impl Worker {
    fn spawn<T: Copy + Send + 'static>(
        mut command: Command,
        tag: T,
        events: Sender<(T, Event)>,
        with_stdin: bool,
    ) -> std::io::Result<Worker> {
        command.stdin(if with_stdin { Stdio::piped() } else { Stdio::null() });
        let mut process = command.spawn()?;
        let stdout = process.stdout.take().ok_or_else(|| std::io::Error::other("worker has no stdout"))?;
        let stderr = process.stderr.take().ok_or_else(|| std::io::Error::other("worker has no stderr"))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if events.send((tag, Event::Line(line))).is_err() {
                    return;
                }
            }
            let _ = events.send((tag, Event::End));
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            tail(&text, 2_000)
        });
        Ok(Worker { stdin: process.stdin.take(), process, stderr: Some(stderr) })
    }

    /// Waits for the process; its exit status and the end of its stderr.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let status = self.process.wait().map(|s| s.to_string()).unwrap_or_else(|e| format!("wait failed: {e}"));
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        format!("{status}\n{stderr}").trim_end().to_string()
    }

    fn kill(mut self) {
        let _ = self.process.kill();
        let _ = self.finish();
    }
}

fn tail(text: &str, bytes: usize) -> String {
    let mut from = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    text[from..].to_string()
}

/// What to run in [`run_generated`].
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    /// Stop after this many generated statements (over all workers)...
    pub statements: u64,
    /// ... or after this long, whichever comes first.
    pub time: Option<Duration>,
    pub jobs: u64,
    /// A case running longer than this is a hang.
    pub case_timeout: Duration,
    /// Print a progress line this often (to stderr).
    pub progress_every: Option<Duration>,
}

/// Counts of a run.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Scripts run, each in a fresh session.
    pub scripts: u64,
    /// Statements generated.
    pub statements: u64,
    /// Statements the parser found in the scripts (mutated scripts often do not parse).
    pub parsed: u64,
    /// Statements that planned without an error.
    pub planned: u64,
    pub findings: Vec<Finding>,
    pub elapsed: Duration,
}

impl Totals {
    pub fn count(&self, kind: Kind) -> usize {
        self.findings.iter().filter(|f| f.kind == kind).count()
    }

    /// The summary line.
    pub fn summary(&self, seed: u64) -> String {
        let seconds = self.elapsed.as_secs_f64();
        format!(
            "sql-fuzz: seed {seed}: {} statements in {} scripts ({} parsed, {} planned); {} panics, {} aborts, {} hangs; {:.1} s, {:.0} statements/s",
            self.statements,
            self.scripts,
            self.parsed,
            self.planned,
            self.count(Kind::Panic),
            self.count(Kind::Abort),
            self.count(Kind::Hang),
            seconds,
            self.statements as f64 / seconds.max(1e-9)
        )
    }
}

struct Slot {
    worker: Option<Worker>,
    /// Tells this worker's events from those of the one before a restart.
    generation: u64,
    current: Option<(u64, Instant)>,
    next_from: u64,
    budget: u64,
    /// Times in a row the worker ended without starting a case.
    barren_starts: u32,
}

/// Runs generated cases in `plan.jobs` workers; returns the counts and findings.
pub fn run_generated(command: &WorkerCommand, plan: &Plan) -> std::io::Result<Totals> {
    let started = Instant::now();
    let (sender, events) = channel::<((usize, u64), Event)>();
    let jobs = plan.jobs.max(1);
    let mut slots: Vec<Slot> = (0..jobs)
        .map(|w| Slot {
            worker: None,
            generation: 0,
            current: None,
            next_from: w,
            budget: plan.statements / jobs + if w == 0 { plan.statements % jobs } else { 0 },
            barren_starts: 0,
        })
        .collect();
    let mut totals = Totals::default();
    let time_left = |started: Instant| plan.time.map(|t| t.saturating_sub(started.elapsed()));
    let spawn = |w: usize, slot: &mut Slot| -> std::io::Result<()> {
        slot.generation += 1;
        slot.current = None;
        let mut cmd = command.command();
        cmd.args(["--seed", &plan.seed.to_string(), "--from", &slot.next_from.to_string()]);
        cmd.args(["--stride", &jobs.to_string(), "--statements", &slot.budget.to_string()]);
        if let Some(left) = time_left(started) {
            cmd.args(["--seconds", &format!("{:.3}", left.as_secs_f64())]);
        }
        slot.worker = Some(Worker::spawn(cmd, (w, slot.generation), sender.clone(), false)?);
        Ok(())
    };
    for (w, slot) in slots.iter_mut().enumerate() {
        if slot.budget > 0 {
            spawn(w, slot)?;
        }
    }
    let mut last_progress = Instant::now();
    while slots.iter().any(|s| s.worker.is_some()) {
        let event = events.recv_timeout(Duration::from_millis(100));
        match event {
            Ok(((w, generation), event)) if slots[w].generation == generation && slots[w].worker.is_some() => {
                let slot = &mut slots[w];
                match event {
                    Event::Line(line) => handle_line(&line, slot, jobs, &mut totals),
                    Event::End => {
                        let Some(worker) = slot.worker.take() else { continue };
                        let detail = worker.finish();
                        if let Some((index, _)) = slot.current.take() {
                            slot.barren_starts = 0;
                            record(&mut totals, plan.seed, Kind::Abort, index, detail);
                            after_case(slot, index, plan.seed, jobs);
                        } else if !detail.lines().next().is_some_and(|status| status.contains("exit status: 0")) {
                            slot.barren_starts += 1;
                            if slot.barren_starts >= 3 {
                                return Err(std::io::Error::other(format!(
                                    "a fuzz worker keeps failing outside any case:\n{detail}"
                                )));
                            }
                        } else {
                            continue;
                        }
                        let time_is_left = time_left(started).is_none_or(|t| !t.is_zero());
                        if slot.budget > 0 && time_is_left {
                            spawn(w, slot)?;
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        for (w, slot) in slots.iter_mut().enumerate() {
            let Some((index, since)) = slot.current else { continue };
            if since.elapsed() < plan.case_timeout {
                continue;
            }
            if let Some(worker) = slot.worker.take() {
                worker.kill();
            }
            let detail = format!("no answer after {:.1} s", since.elapsed().as_secs_f64());
            record(&mut totals, plan.seed, Kind::Hang, index, detail);
            after_case(slot, index, plan.seed, jobs);
            if slot.budget > 0 && time_left(started).is_none_or(|t| !t.is_zero()) {
                spawn(w, slot)?;
            }
        }
        if let Some(every) = plan.progress_every
            && last_progress.elapsed() >= every
        {
            last_progress = Instant::now();
            totals.elapsed = started.elapsed();
            eprintln!("{}", totals.summary(plan.seed));
        }
    }
    totals.elapsed = started.elapsed();
    Ok(totals)
}

/// Counts a case that ended the worker (its statements were not reported).
fn after_case(slot: &mut Slot, index: u64, seed: u64, jobs: u64) {
    slot.next_from = index + jobs;
    slot.budget = slot.budget.saturating_sub(super::case(seed, index).statements as u64);
}

fn record(totals: &mut Totals, seed: u64, kind: Kind, index: u64, detail: String) {
    totals.scripts += 1;
    totals.statements += super::case(seed, index).statements as u64;
    eprintln!("sql-fuzz: {} in case {index} (seed {seed}): {}", kind.name(), first_lines(&detail, 6));
    totals.findings.push(Finding { kind, index, detail });
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join(" | ")
}

fn handle_line(line: &str, slot: &mut Slot, jobs: u64, totals: &mut Totals) {
    let mut parts = line.splitn(if line.starts_with("panic ") { 4 } else { 5 }, ' ');
    let word = parts.next().unwrap_or("");
    let index: Option<u64> = parts.next().and_then(|i| i.parse().ok());
    let number = |part: Option<&str>| part.and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
    match (word, index) {
        ("start", Some(index)) => {
            slot.current = Some((index, Instant::now()));
            slot.barren_starts = 0;
        }
        ("ok", Some(index)) => {
            let statements = number(parts.next());
            totals.scripts += 1;
            totals.statements += statements;
            totals.parsed += number(parts.next());
            totals.planned += number(parts.next());
            slot.current = None;
            slot.next_from = index + jobs;
            slot.budget = slot.budget.saturating_sub(statements);
        }
        ("panic", Some(index)) => {
            let statements = number(parts.next());
            let message = parts.next().unwrap_or("").to_string();
            totals.scripts += 1;
            totals.statements += statements;
            eprintln!("sql-fuzz: panic in case {index}: {message}");
            totals.findings.push(Finding { kind: Kind::Panic, index, detail: message });
            slot.current = None;
            slot.next_from = index + jobs;
            slot.budget = slot.budget.saturating_sub(statements);
        }
        _ => {}
    }
}

/// The outcome of one script in a [`Probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed(Kind, String),
}

/// Runs given scripts one at a time in a worker, restarting it after an abort or a hang.
pub struct Probe {
    command: WorkerCommand,
    timeout: Duration,
    worker: Option<(Worker, Receiver<(u64, Event)>)>,
}

impl Probe {
    pub fn new(command: WorkerCommand, timeout: Duration) -> Self {
        Self { command, timeout, worker: None }
    }

    /// Plans `sql` in the worker and says how that went.
    pub fn run(&mut self, sql: &str) -> std::io::Result<Verdict> {
        if self.worker.is_none() {
            let (sender, events) = channel();
            let mut command = self.command.command();
            command.arg("--stdin");
            self.worker = Some((Worker::spawn(command, 0u64, sender, true)?, events));
        }
        let Some((worker, events)) = self.worker.as_mut() else {
            return Err(std::io::Error::other("no worker"));
        };
        let sent = match worker.stdin.as_mut() {
            Some(stdin) => write_frame(stdin, sql),
            None => Err(std::io::Error::other("worker has no stdin")),
        };
        let started = Instant::now();
        loop {
            let left = self.timeout.saturating_sub(started.elapsed());
            match events.recv_timeout(left) {
                Ok((_, Event::Line(line))) => {
                    if line.starts_with("ok ") {
                        return Ok(Verdict::Passed);
                    }
                    if let Some(rest) = line.strip_prefix("panic ") {
                        let message = rest.splitn(3, ' ').nth(2).unwrap_or("").to_string();
                        return Ok(Verdict::Failed(Kind::Panic, message));
                    }
                }
                Ok((_, Event::End)) | Err(RecvTimeoutError::Disconnected) => {
                    let detail = self.worker.take().map(|(w, _)| w.finish()).unwrap_or_default();
                    sent?;
                    return Ok(Verdict::Failed(Kind::Abort, detail));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some((worker, _)) = self.worker.take() {
                        worker.kill();
                    }
                    let detail = format!("no answer after {:.1} s", self.timeout.as_secs_f64());
                    return Ok(Verdict::Failed(Kind::Hang, detail));
                }
            }
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some((worker, _)) = self.worker.take() {
            let _ = worker.finish();
        }
    }
}
