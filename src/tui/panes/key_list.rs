//! The key list. Only the rows in view are built, so 100,000 keys draw
//! as fast as ten.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::{ago, date, until};
use crate::domain::{KeyRecord, KeyStatus};
use crate::rules::visible;
use crate::tui::app::{App, Focus};
use crate::tui::theme::Theme;

pub fn render(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let focused = app.focus == Focus::List;
    let mut title = format!(" API Keys ({}", app.view.len());
    if app.view.len() != app.keys.len() {
        title.push_str(&format!(" of {}", app.keys.len()));
    }
    title.push_str(&format!(
        ") · sort: {} {} ",
        app.sort.label(),
        app.sort_arrow()
    ));
    let block = Block::bordered()
        .title(Line::styled(title, theme.bold()))
        .border_style(theme.border(focused));

    if app.view.is_empty() {
        let text = if !app.loaded {
            "Loading…".to_string()
        } else if app.keys.is_empty() {
            "No API keys yet. Press n to create one.".to_string()
        } else {
            format!(
                "No key matches \"{}\". Press / then Esc to clear the filter.",
                visible(&app.filter)
            )
        };
        frame.render_widget(Paragraph::new(text).style(theme.dim()).block(block), area);
        return;
    }

    let rows_fit = usize::from(area.height.saturating_sub(3));
    let end = (app.offset + rows_fit).min(app.view.len());
    // Where the window is in a list longer than the pane, as k9s shows it.
    let block = if app.view.len() > rows_fit {
        block.title_bottom(
            Line::styled(
                format!(" {}–{end} of {} ", app.offset + 1, app.view.len()),
                theme.accent(),
            )
            .right_aligned(),
        )
    } else {
        block
    };
    let rows = app.view[app.offset..end].iter().enumerate().map(|(i, &k)| {
        let key = &app.keys[k];
        let status = key.status(app.now);
        let cells = vec![
            Cell::from(visible(&key.name)),
            Cell::from(visible(&key.prefix()).into_owned()),
            Cell::from(date(key.created_at)),
            Cell::from(
                key.last_used_at
                    .map_or_else(|| "Never".to_string(), |at| ago(app.now, at)),
            ),
            expires_cell(app, key, theme),
            Cell::from(status.label()),
        ];
        let mut style = match status {
            KeyStatus::Active => ratatui::style::Style::default(),
            KeyStatus::Expired | KeyStatus::Revoked => theme.dim(),
        };
        if app.offset + i == app.selected {
            style = theme.selected();
        }
        Row::new(cells).style(style)
    });
    let header = Row::new([
        "Name",
        "Prefix",
        "Created",
        "Last Used",
        "Expires",
        "Status",
    ])
    .style(theme.accent());
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(13),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(7),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .column_spacing(1);
    frame.render_widget(table, area);
}

/// The expiry date, or for a key expiring soon the time left after a `!`,
/// so it stands out without colour too (`NO_COLOR`).
fn expires_cell<'a>(app: &App, key: &KeyRecord, theme: &Theme) -> Cell<'a> {
    let now = app.now;
    match key.expires_at {
        None => Cell::from("Never"),
        Some(at) if app.expiring_soon(key) => {
            Cell::from(format!("! {}", until(now, at))).style(theme.warn())
        }
        Some(at) => Cell::from(date(at)),
    }
}
