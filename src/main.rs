//! The `plexmcp` binary: parse the command line and dispatch.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = plexmcp::cli::Cli::parse();
    plexmcp::cli::run(cli)
}
