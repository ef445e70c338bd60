//! Where things go on a terminal of a given size, and when it is too small
//! to show the console at all. Pure geometry, shared by the state machine
//! (which must ignore input it cannot show) and the drawing code.

use ratatui::layout::{Constraint, Direction, Layout, Rect};

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Where the panes go in a terminal of `area`: side by side when wide,
/// stacked otherwise.
pub struct Areas {
    pub status: Rect,
    pub list: Rect,
    pub detail: Rect,
    pub footer: Rect,
}

pub fn areas(area: Rect) -> Areas {
    let [status, main, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let (direction, split) = if area.width >= 120 {
        (
            Direction::Horizontal,
            [Constraint::Percentage(58), Constraint::Percentage(42)],
        )
    } else {
        (
            Direction::Vertical,
            [Constraint::Percentage(45), Constraint::Percentage(55)],
        )
    };
    let [list, detail] = Layout::default()
        .direction(direction)
        .constraints(split)
        .areas(main);
    Areas {
        status,
        list,
        detail,
        footer,
    }
}

/// Below this the console shows only a "Terminal too small" message.
pub fn too_small(area: Rect) -> bool {
    area.width < MIN_WIDTH || area.height < MIN_HEIGHT
}

/// A centered rectangle for dialogs, clamped to the screen.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

/// The MCPs view: nearly the whole screen.
pub fn mcps_dialog(area: Rect) -> Rect {
    centered(
        area,
        area.width.saturating_sub(8).max(60),
        area.height.saturating_sub(4).max(10),
    )
}

/// Rows of MCPs the MCPs view shows at once (inside its border, below the
/// header row).
pub fn mcps_rows(area: Rect) -> usize {
    usize::from(
        mcps_dialog(area)
            .height
            .saturating_sub(3 + MCP_DETAIL_LINES),
    )
    .max(1)
}

/// Lines under the MCPs table about the selected MCP: a rule, its whole
/// target, its timeout and health.
pub const MCP_DETAIL_LINES: u16 = 3;

/// Lines of the help screen: one per binding, a blank and the notes.
pub const HELP_LINES: usize =
    crate::tui::action::BINDINGS.len() + 1 + crate::tui::action::HELP_NOTES.len();

/// Lines around the organization picker's list: border, blank, hint.
pub const PICKER_CHROME: u16 = 4;

/// Rows of organizations the picker shows at once.
pub fn picker_rows(area: Rect) -> usize {
    usize::from(area.height.saturating_sub(PICKER_CHROME)).max(1)
}

/// Rows of commands the palette shows at once: the picker's, less the typed
/// line and the blank under it.
pub fn palette_rows(area: Rect) -> usize {
    picker_rows(area).saturating_sub(2).max(1)
}
