//! The child process: runs cases and says on stdout what it is doing, one line each.
//!
//! ```text
//!  start <index>                                  before a case (flushed)
//!  ok <index> <statements> <parsed> <planned>     after it
//!  panic <index> <statements> <message>           a caught panic (message on one line)
//!  end                                            no more cases
//! ```
//!
//! A case that aborts the process or never finishes leaves `start` as the last line: the
//! supervisor knows which one it was.

use std::io::{BufRead, Write};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamsql_engine::connector::ConnectorRegistry;

use super::case::{CaseStats, run_script};

/// Where the worker's cases come from.
#[derive(Debug, Clone)]
pub enum Cases {
    /// `case(seed, from)`, `case(seed, from + stride)`, ... until `statements` statements were
    /// run or `time` has passed.
    Generated { seed: u64, from: u64, stride: u64, statements: u64, time: Option<Duration> },
    /// Scripts sent on stdin, each as `<length in bytes>\n<script>`, numbered from 0.
    Stdin,
}

/// The last panic's message and location, as the panic hook saw it.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// With this variable set, a worker prints each panic's backtrace to stderr (run it by hand:
/// `sql-fuzz --worker --stdin < frames`, frames as [`write_frame`] writes them).
pub const BACKTRACE: &str = "SQL_FUZZ_BACKTRACE";

fn install_panic_hook() {
    let backtrace = std::env::var_os(BACKTRACE).is_some();
    std::panic::set_hook(Box::new(move |info| {
        if backtrace {
            eprintln!("{info}\n{}", std::backtrace::Backtrace::force_capture());
        }
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".into());
        let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = format!("{} at {location}", payload.replace(['\n', '\r'], " "));
        }
    }));
}

/// Runs the worker loop on a thread with `stack_bytes` of stack (as much as the shell's planning
/// thread has, for a fair verdict on deep statements); returns when the cases run out.
pub fn run(cases: Cases, stack_bytes: usize) -> std::io::Result<()> {
    install_panic_hook();
    let handle = std::thread::Builder::new().name("fuzz-worker".into()).stack_size(stack_bytes).spawn(move || {
        let registry = super::case::offline_registry();
        let self_test = std::env::var_os(SELF_TEST).is_some();
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        match cases {
            Cases::Generated { seed, from, stride, statements, time } => {
                let started = Instant::now();
                let mut done = 0u64;
                let mut index = from;
                while done < statements && time.is_none_or(|t| started.elapsed() < t) {
                    let case = super::case(seed, index);
                    one(&mut out, index, &case.sql, case.statements, &registry, self_test)?;
                    done += case.statements as u64;
                    index += stride.max(1);
                }
            }
            Cases::Stdin => {
                let stdin = std::io::stdin();
                let mut input = stdin.lock();
                let mut index = 0u64;
                while let Some(sql) = read_frame(&mut input)? {
                    one(&mut out, index, &sql, 1, &registry, self_test)?;
                    index += 1;
                }
            }
        }
        writeln!(out, "end")?;
        out.flush()
    })?;
    handle.join().unwrap_or_else(|_| Err(std::io::Error::other("the fuzz worker thread panicked")))
}

fn one(
    out: &mut impl Write,
    index: u64,
    sql: &str,
    statements: usize,
    registry: &Arc<dyn ConnectorRegistry>,
    self_test: bool,
) -> std::io::Result<()> {
    writeln!(out, "start {index}")?;
    out.flush()?;
    let run = || {
        if self_test {
            misbehave(sql);
        }
        run_script(sql, registry)
    };
    match std::panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(CaseStats { parsed, planned }) => writeln!(out, "ok {index} {statements} {parsed} {planned}"),
        Err(_) => {
            let message = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
            writeln!(out, "panic {index} {statements} {message}")
        }
    }
}

/// With this variable set, scripts starting `-- sql-fuzz self-test: <what>` make the worker
/// panic, overflow its stack, abort or hang, so the harness's own test can check it notices.
pub const SELF_TEST: &str = "SQL_FUZZ_SELF_TEST";

fn misbehave(sql: &str) {
    match sql.strip_prefix("-- sql-fuzz self-test: ").map(str::trim) {
        Some("panic") => panic!("self-test panic"),
        Some("overflow") => {
            std::hint::black_box(recurse(0));
        }
        Some("abort") => std::process::abort(),
        Some("hang") => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        _ => {}
    }
}

/// Recursion that runs out of stack long before it could return.
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    if depth == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1).wrapping_add(frame[1])
}

/// One `<length>\n<bytes>` frame, or `None` at the end of input.
fn read_frame(input: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut header = String::new();
    if input.read_line(&mut header)? == 0 {
        return Ok(None);
    }
    let length: usize =
        header.trim().parse().map_err(|_| std::io::Error::other(format!("bad frame header {header:?}")))?;
    let mut bytes = vec![0; length];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map(Some).map_err(std::io::Error::other)
}

/// Writes `sql` as one frame for a [`Cases::Stdin`] worker.
pub fn write_frame(output: &mut impl Write, sql: &str) -> std::io::Result<()> {
    write!(output, "{}\n{sql}", sql.len())?;
    output.flush()
}
