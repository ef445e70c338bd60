//! `plexmcp completions SHELL` and `plexmcp man`: generated from the same
//! clap definition as the parser, so they can never list a flag that does
//! not exist.

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, CliResult};

pub fn completions(shell: clap_complete::Shell) -> CliResult {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "plexmcp", &mut out);
    out.flush()?;
    Ok(())
}

/// The man page in roff, for `man -l -` or `/usr/local/share/man/man1/plexmcp.1`.
pub fn man() -> CliResult {
    let page = clap_mangen::Man::new(Cli::command());
    let mut out = std::io::stdout().lock();
    page.render(&mut out)?;
    out.flush()?;
    Ok(())
}
