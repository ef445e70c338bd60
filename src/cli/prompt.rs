//! Yes/no questions on the terminal for destructive commands; without a
//! terminal the command refuses rather than guessing.

use std::io::{BufRead, IsTerminal, Write};

use super::CliError;

/// Asks `question` on stderr and reads the answer from stdin; `action`
/// ("revoke pmcp_…", "restore") names what is refused without a terminal.
pub(super) fn confirm(action: &str, question: &str) -> Result<bool, CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage(format!(
            "refusing to {action} without confirmation: stdin is not a terminal; pass --yes"
        )));
    }
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
