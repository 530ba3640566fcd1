//! The `mvgen` binary: parses arguments and hands off to the library.

use std::process::ExitCode;

use clap::Parser;
use mvgen::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(command) => mvgen::cli::run(command),
        None => mvgen::cli::run(Command::Serve { addr: None, configs: None }),
    }
}
