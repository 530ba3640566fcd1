//! Writing command output to stdout. A reader that stops early (`mvgen show mv1 | head`) closes the
//! pipe; that ends the command successfully, as in ripgrep, instead of panicking as `println!` does.

use std::fmt;
use std::io::{self, Write};

/// `print!` for command output.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*)) };
}

/// `println!` for command output.
macro_rules! outln {
    () => { $crate::cli::output::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes and flushes, so a closed pipe is noticed here rather than in the silent flush at exit.
/// When the reader is gone there is nobody left to tell anything, so the process ends with 0; any
/// other write failure is an I/O error (exit 2).
pub fn write(args: fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        // stderr may be closed too; there is nothing better to do than exit with the I/O status.
        let _ = writeln!(io::stderr(), "mvgen: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}
