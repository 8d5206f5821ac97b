//! Writing to standard output and standard error without panicking when they are closed.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`streamsql -f job.sql | head`),
//! and so does `eprintln!` with `2>&1 | head`. Like other Unix tools we then stop talking: what
//! cannot be written is dropped, and the job ends as it would have (its sinks are not the
//! terminal). `out!`, `outln!` and `errln!` are the binary's `print!`, `println!` and
//! `eprintln!` (declared first in `main.rs`, so every module has them).

use std::fmt::Arguments;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Writes to standard output; a closed or failing stdout is ignored.
pub fn write_out(args: Arguments<'_>) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// Whether the status line ([`write_status`]) is on the terminal now: other output clears it
/// first, and the next refresh draws it again below.
static STATUS_SHOWN: AtomicBool = AtomicBool::new(false);

/// Clears the status line, if it is shown, on the locked stderr.
fn clear_status_on(stderr: &mut impl Write) {
    if STATUS_SHOWN.swap(false, Ordering::Relaxed) {
        let _ = stderr.write_all(b"\r\x1b[2K");
    }
}

/// Writes to standard error; a closed or failing stderr is ignored.
pub fn write_err(args: Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    clear_status_on(&mut stderr);
    let _ = stderr.write_fmt(args);
}

/// Draws `line` as the status line: on the terminal's last line, replaced by the next one.
pub fn write_status(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "\r\x1b[2K{line}");
    let _ = stderr.flush();
    STATUS_SHOWN.store(true, Ordering::Relaxed);
}

/// Removes the status line.
pub fn clear_status() {
    let mut stderr = std::io::stderr().lock();
    clear_status_on(&mut stderr);
    let _ = stderr.flush();
}

/// Standard error for the log: clears the status line before a log line.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        clear_status_on(&mut stderr);
        stderr.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().lock().flush()
    }
}

/// `print!` that never panics.
macro_rules! out {
    ($($arg:tt)*) => { $crate::stdio::write_out(format_args!($($arg)*)) };
}

/// `println!` that never panics.
macro_rules! outln {
    () => { $crate::stdio::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::stdio::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::stdio::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}
