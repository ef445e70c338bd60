//! The MCPs view: the org's upstream servers, with add and remove.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table, Wrap};

use super::{ago, with_more_marks};
use crate::rules::visible;
use crate::store::PinSummary;
use crate::tui::app::App;
use crate::tui::layout;
use crate::tui::scroll::ListPosition;
use crate::tui::theme::Theme;
use crate::tui::ui::clear;

pub fn render(app: &App, at: &ListPosition, frame: &mut Frame, area: Rect, theme: &Theme) {
    let rect = layout::mcps_dialog(area);
    clear(frame, rect);
    let mut block = Block::bordered()
        .title(Line::styled(
            format!(" MCP servers of {} ", visible(&app.org)),
            theme.bold(),
        ))
        .title_bottom(Line::styled(
            " a add · d remove · p pin/unpin · t withheld tools · Esc back ",
            theme.dim(),
        ))
        .border_style(theme.border(true));
    if app.mcps.is_empty() {
        let text =
            "No MCP servers yet. Press a to add one (a stdio command or a Streamable HTTP URL).";
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.dim())
                .wrap(Wrap { trim: true })
                .block(block),
            rect,
        );
        return;
    }
    let shown = at.window(app.mcps.len(), layout::mcps_rows(area));
    block = with_more_marks(block, &shown, theme);
    let rows = app.mcps[shown.start..shown.end]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let pins = app.pin_summary(&m.slug);
            let row = Row::new(vec![
                visible(&m.slug).into_owned(),
                visible(&m.name).into_owned(),
                m.transport.kind().to_string(),
                visible(&m.transport.target()).into_owned(),
                format!("{}s", m.timeout.as_secs()),
                pinned_cell(pins),
                pins.last_changed
                    .map_or_else(|| "never".to_owned(), |at| ago(app.now, at)),
            ]);
            if shown.start + i == at.selected {
                row.style(theme.selected())
            } else {
                row
            }
        });
    // The pinning columns are narrow so the target keeps some room at 80 columns.
    let widths = [
        Constraint::Length(16),
        Constraint::Length(14),
        Constraint::Length(5),
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(8),
    ];
    let header = Row::new([
        "ID", "Name", "Kind", "Target", "Timeout", "Pinned", "Changed",
    ])
    .style(theme.accent());
    frame.render_widget(Table::new(rows, widths).header(header).block(block), rect);
}

/// `yes (2)` (two tools withheld) / `yes` / `no`.
fn pinned_cell(pins: PinSummary) -> String {
    match (pins.pinned, pins.pending) {
        (false, _) => "no".to_owned(),
        (true, 0) => "yes".to_owned(),
        (true, n) => format!("yes ({n})"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::render;
    use crate::domain::{Mcp, McpTransport};
    use crate::tui::action::ServerStatus;
    use crate::tui::app::App;
    use crate::tui::scroll::ListPosition;
    use crate::tui::theme::Theme;

    #[test]
    fn url_credentials_never_reach_the_screen() {
        let at = Utc.with_ymd_and_hms(2026, 2, 1, 9, 0, 0).unwrap();
        let mut app = App::new("acme", at, ServerStatus::Off);
        app.mcps = vec![Mcp {
            row_id: 1,
            org_id: 1,
            slug: "remote".into(),
            name: "Remote".into(),
            transport: McpTransport::Http {
                url: "http://user:hunter2@h.example/mcp?token=abc9".into(),
                headers: vec![("Authorization".into(), "Bearer s3cret".into())],
            },
            timeout: Duration::from_secs(30),
            created_at: at,
        }];
        let mut terminal = Terminal::new(TestBackend::new(120, 20)).unwrap();
        terminal
            .draw(|f| {
                render(
                    &app,
                    &ListPosition::default(),
                    f,
                    f.area(),
                    &Theme { color: false },
                )
            })
            .unwrap();
        let screen = terminal.backend().to_string();
        for secret in ["hunter2", "abc9", "s3cret"] {
            assert!(!screen.contains(secret), "'{secret}' on screen:\n{screen}");
        }
        assert!(
            screen.contains("http://user:***@h.example/mcp?token=***"),
            "{screen}"
        );
    }
}
