//! Writing command output to stdout. A reader that stops early (`mvgen show mv1 | head`) closes the
//! pipe; the write error goes up to `main` like any other, and `main` treats a broken pipe as
//! success, as ripgrep does, instead of panicking as `println!` does.

use std::fmt;
use std::io::{self, Write};

use anyhow::Context as _;

/// `print!` for command output; use with `?`.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*)) };
}

/// `println!` for command output; use with `?`.
macro_rules! outln {
    () => { $crate::cli::output::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes and flushes, so a closed pipe is noticed here rather than in the silent flush at exit.
pub fn write(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_fmt(args).and_then(|()| stdout.flush()).context("cannot write to stdout")
}

/// Whether `err` is a closed stdout: the reader is gone, so there is nobody left to tell anything.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}
