//! Copying a new key to the operator's clipboard. OSC 52 asks the terminal
//! itself to set the clipboard, so it reaches the *local* machine through
//! SSH and tmux; the system clipboard (arboard) is tried as well when a
//! display is present. Nothing is ever written to a file.

use std::io::Write;

use crossterm::clipboard::CopyToClipboard;
use ratatui::crossterm::execute;

use super::action::CopyReport;

/// Sends `text` by OSC 52 to `terminal` and to the system clipboard.
pub fn copy(terminal: &mut impl Write, text: &str) -> CopyReport {
    let osc52 = execute!(terminal, CopyToClipboard::to_clipboard_from(text)).is_ok();
    CopyReport {
        osc52,
        system: system_clipboard(text),
    }
}

fn system_clipboard(text: &str) -> Result<(), String> {
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    if !has_display {
        return Err("no display".into());
    }
    arboard::Clipboard::new()
        .and_then(|mut clipboard| clipboard.set_text(text))
        .map_err(|e| e.to_string())
}
