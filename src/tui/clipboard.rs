//! Copying a new key to the operator's clipboard. OSC 52 asks the terminal
//! itself to set the clipboard, so it reaches the *local* machine through
//! SSH and tmux; the system clipboard (arboard) is tried as well when a
//! display is present. Nothing is ever written to a file.

use std::io::Write;

use crossterm::clipboard::CopyToClipboard;
use ratatui::crossterm::execute;

/// Sends `text` by OSC 52 to `terminal`: on the UI task, in between two
/// frames, so the sequence never lands inside one.
pub fn osc52(terminal: &mut impl Write, text: &str) -> bool {
    execute!(terminal, CopyToClipboard::to_clipboard_from(text)).is_ok()
}

/// The system clipboard, when a display is present. It talks to the
/// display server, which may be slow or remote: the console calls it off
/// the UI task (`Executor::finish_copy`).
pub fn system_clipboard(text: &str) -> Result<(), String> {
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
