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
