//! One way to move through any list the console shows (the key list, the
//! MCPs view, the organization picker, the key form's MCP checklist):
//! the same keys, the same clamping, and a window that keeps the selection
//! on screen and says how much is hidden above and below. Pure arithmetic,
//! so every list behaves alike and is tested once.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A movement through a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    /// Mouse wheel notches: positive scrolls down.
    Wheel(i32),
}

/// Rows one wheel notch moves, as most terminals' own scrollback does.
pub const WHEEL_ROWS: i32 = 3;

/// The navigation keys every list shares: `j/k`, arrows, `g/G`, Home/End,
/// PgUp/PgDn and Ctrl-U/Ctrl-D.
pub fn step_for(key: &KeyEvent) -> Option<Step> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            KeyCode::Char('d') => Some(Step::PageDown),
            KeyCode::Char('u') => Some(Step::PageUp),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('j') | KeyCode::Down => Step::Down,
        KeyCode::Char('k') | KeyCode::Up => Step::Up,
        KeyCode::Char('g') | KeyCode::Home => Step::Top,
        KeyCode::Char('G') | KeyCode::End => Step::Bottom,
        KeyCode::PageUp => Step::PageUp,
        KeyCode::PageDown => Step::PageDown,
        _ => return None,
    })
}

/// Where the selection lands after `step` in a list of `len` items of
/// which `page` rows are visible; always inside the list (0 when empty).
pub fn moved(selected: usize, step: Step, len: usize, page: usize) -> usize {
    let page = isize::try_from(page.max(1)).unwrap_or(isize::MAX);
    let delta: isize = match step {
        Step::Up => -1,
        Step::Down => 1,
        Step::PageUp => -page,
        Step::PageDown => page,
        Step::Wheel(notches) => isize::try_from(notches.saturating_mul(WHEEL_ROWS)).unwrap_or(0),
        Step::Top => return 0,
        Step::Bottom => return len.saturating_sub(1),
    };
    selected
        .saturating_add_signed(delta)
        .min(len.saturating_sub(1))
}

/// The first row to draw so that `selected` is among the `rows` shown,
/// moving `offset` as little as possible and never past the list's end.
pub fn follow(selected: usize, offset: usize, len: usize, rows: usize) -> usize {
    let rows = rows.max(1);
    let offset = if selected < offset {
        selected
    } else if selected >= offset.saturating_add(rows) {
        selected + 1 - rows
    } else {
        offset
    };
    offset.min(len.saturating_sub(rows))
}

/// The part of a list that is drawn, and how much is hidden either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: usize,
    pub end: usize,
    pub above: usize,
    pub below: usize,
}

/// The rows of a `len`-item list to draw in `rows` lines with `selected`
/// visible; `offset` is where the list was scrolled to before.
pub fn window(selected: usize, offset: usize, len: usize, rows: usize) -> Window {
    let rows = rows.max(1);
    let start = follow(selected.min(len.saturating_sub(1)), offset, len, rows);
    let end = start.saturating_add(rows).min(len);
    Window {
        start,
        end,
        above: start,
        below: len - end,
    }
}

/// A list whose position is its own state (a dialog's list rather than the
/// key list, whose position lives in `App`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListPosition {
    pub selected: usize,
    pub offset: usize,
}

impl ListPosition {
    pub fn at(selected: usize) -> ListPosition {
        ListPosition {
            selected,
            offset: 0,
        }
    }

    /// Applies `step` in a list of `len` items showing `rows` at once.
    pub fn step(&mut self, step: Step, len: usize, rows: usize) {
        self.selected = moved(self.selected, step, len, rows);
        self.offset = follow(self.selected, self.offset, len, rows);
    }

    /// Keeps the position valid after the list or its height changed.
    pub fn clamp(&mut self, len: usize, rows: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
        self.offset = follow(self.selected, self.offset, len, rows);
    }

    pub fn window(&self, len: usize, rows: usize) -> Window {
        window(self.selected, self.offset, len, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stay_inside_the_list() {
        assert_eq!(moved(0, Step::Up, 10, 4), 0);
        assert_eq!(moved(9, Step::Down, 10, 4), 9);
        assert_eq!(moved(2, Step::PageDown, 10, 4), 6);
        assert_eq!(moved(8, Step::PageDown, 10, 4), 9);
        assert_eq!(moved(3, Step::PageUp, 10, 4), 0);
        assert_eq!(moved(3, Step::Bottom, 10, 4), 9);
        assert_eq!(moved(3, Step::Top, 10, 4), 0);
        assert_eq!(moved(0, Step::Wheel(2), 10, 4), 6);
        assert_eq!(moved(5, Step::Wheel(-1), 10, 4), 2);
        assert_eq!(moved(5, Step::Wheel(i32::MAX), 10, 4), 9);
        for step in [Step::Down, Step::Bottom, Step::PageDown, Step::Wheel(1)] {
            assert_eq!(moved(0, step, 0, 4), 0, "{step:?} in an empty list");
        }
    }

    #[test]
    fn the_window_follows_the_selection_and_counts_what_is_hidden() {
        assert_eq!(
            window(0, 0, 10, 4),
            Window {
                start: 0,
                end: 4,
                above: 0,
                below: 6
            }
        );
        // Down past the bottom scrolls by one; back up does not scroll.
        assert_eq!(window(4, 0, 10, 4).start, 1);
        assert_eq!(window(3, 1, 10, 4).start, 1);
        assert_eq!(window(0, 1, 10, 4).start, 0);
        let end = window(9, 0, 10, 4);
        assert_eq!((end.start, end.end, end.above, end.below), (6, 10, 6, 0));
        // A list shorter than the window, and an empty one.
        assert_eq!(
            window(2, 5, 3, 10),
            Window {
                start: 0,
                end: 3,
                above: 0,
                below: 0
            }
        );
        assert_eq!(
            window(0, 0, 0, 10),
            Window {
                start: 0,
                end: 0,
                above: 0,
                below: 0
            }
        );
        // A selection past the end (a list that shrank) is drawn at the end.
        assert_eq!(window(50, 0, 10, 4).start, 6);
        assert_eq!(window(3, 0, 10, 0).end, 4, "at least one row");
    }
}
