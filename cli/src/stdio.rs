//! Writing to standard output and standard error without panicking when they are closed.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`streamsql -f job.sql | head`),
//! and so does `eprintln!` with `2>&1 | head`. Like other Unix tools we then stop talking: what
//! cannot be written is dropped, and the job ends as it would have (its sinks are not the
//! terminal). `out!`, `outln!` and `errln!` are the binary's `print!`, `println!` and
//! `eprintln!` (declared first in `main.rs`, so every module has them).

use std::fmt::Arguments;
use std::io::Write;

/// Writes to standard output; a closed or failing stdout is ignored.
pub fn write_out(args: Arguments<'_>) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// Writes to standard error; a closed or failing stderr is ignored.
pub fn write_err(args: Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
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
