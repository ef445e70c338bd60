//! `plexmcp completions SHELL` and `plexmcp man`: generated from the same
//! clap definition as the parser, so they can never list a flag that does
//! not exist.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::format::clean;
use super::{Cli, CliError, CliResult};

pub fn completions(shell: clap_complete::Shell) -> CliResult {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "plexmcp", &mut out);
    out.flush()?;
    Ok(())
}

/// The man page in roff, for `man -l -`.
pub fn man() -> CliResult {
    let page = clap_mangen::Man::new(man_root());
    let mut out = std::io::stdout().lock();
    page.render(&mut out)?;
    out.flush()?;
    Ok(())
}

/// plexmcp.1 and the pages it refers to (plexmcp-keys.1,
/// plexmcp-keys-create.1, …) into `dir`, created if missing.
pub fn man_pages(dir: &Path) -> CliResult {
    let shown = clean(&dir.display().to_string());
    let failed = |e: std::io::Error| CliError::Failed(format!("{shown}: {e}"));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut pending = vec![man_root()];
    let mut written = 0;
    while let Some(command) = pending.pop() {
        pending.extend(
            command
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .cloned(),
        );
        clap_mangen::Man::new(command)
            .generate_to(dir)
            .map_err(failed)?;
        written += 1;
    }
    println!("Wrote {written} man pages to {shown}; read them with `man plexmcp`.");
    Ok(())
}

/// The command tree the pages describe: without clap's `help` subcommand,
/// which has no page of its own (`--help` is on every page).
fn man_root() -> clap::Command {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    root
}
