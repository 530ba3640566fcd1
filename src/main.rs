//! The `mvgen` binary: parses arguments, hands off to the library, and decides the exit code.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use mvgen::cli::{Cli, Command, NegativeAnswer, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve { addr: None, configs: None });
    exit_code(mvgen::cli::run(command))
}

/// The one place exit codes are decided (clap's own usage errors aside, which also exit 2):
/// 0 success, 1 a negative answer (configs invalid, flavors differ, server unhealthy, a drain that
/// cut requests), 2 a usage or I/O error. Errors are printed once, here, with their whole context.
fn exit_code(result: anyhow::Result<Outcome>) -> ExitCode {
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Negative) => ExitCode::from(1),
        // The reader stopped early (`mvgen show mv1 | head`): nobody is left to tell, as in ripgrep.
        Err(err) if mvgen::cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // stderr may be closed too; the exit code still says what happened.
            let _ = writeln!(std::io::stderr(), "mvgen: {err:#}");
            let negative = err.chain().any(|cause| cause.is::<NegativeAnswer>());
            ExitCode::from(if negative { 1 } else { 2 })
        }
    }
}
