//! The MCPs view: the org's upstream servers, with add and remove.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

use super::{ago, one_line, view_block, with_more_marks};
use crate::domain::Mcp;
use crate::rules::visible;
use crate::store::PinSummary;
use crate::tui::app::App;
use crate::tui::layout;
use crate::tui::scroll::ListPosition;
use crate::tui::theme::Theme;
use crate::tui::ui::clear;
use crate::upstream::{Health, UpstreamHealth};

pub fn render(app: &App, at: &ListPosition, frame: &mut Frame, area: Rect, theme: &Theme) {
    let rect = layout::mcps_dialog(area);
    clear(frame, rect);
    let mut block = view_block(
        format!(" MCP servers of {} ", visible(&app.org)),
        " a add · d remove · p pin/unpin · t withheld tools · Esc back ",
        theme,
    );
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
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let [table_area, detail_area] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(layout::MCP_DETAIL_LINES),
    ])
    .areas(inner);
    let rows = app.mcps[shown.start..shown.end]
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let pins = app.pin_summary(&m.slug);
            let (health, style) = health_cell(app.health_of(m), theme);
            let row = Row::new(vec![
                Cell::from(visible(&m.slug).into_owned()),
                Cell::from(visible(&m.name).into_owned()),
                Cell::from(m.transport.kind().to_string()),
                Cell::from(visible(&m.transport.target()).into_owned()),
                Cell::from(tools_cell(pins)),
                Cell::from(health).style(style),
                Cell::from(pinned_cell(pins)),
                Cell::from(
                    pins.last_changed
                        .map_or_else(|| "never".to_owned(), |at| ago(app.now, at)),
                ),
            ]);
            if shown.start + i == at.selected {
                row.style(theme.selected())
            } else {
                row
            }
        });
    // The narrow columns leave the target some room at 80 columns; the
    // selected MCP's whole target is shown under the table.
    let widths = [
        Constraint::Length(14),
        Constraint::Length(12),
        Constraint::Length(5),
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(8),
    ];
    let header = Row::new([
        "ID", "Name", "Kind", "Target", "Tools", "Health", "Pinned", "Changed",
    ])
    .style(theme.accent());
    frame.render_widget(Table::new(rows, widths).header(header), table_area);
    if let Some(mcp) = app.mcps.get(at.selected) {
        frame.render_widget(
            Paragraph::new(selected_lines(app, mcp, detail_area.width, theme)),
            detail_area,
        );
    }
}

/// The selected MCP in full: its target (cut with `…` only if even the
/// whole width cannot hold it), timeout, and why its upstream is failing.
fn selected_lines<'a>(app: &App, mcp: &Mcp, width: u16, theme: &Theme) -> Vec<Line<'a>> {
    let width = usize::from(width);
    let target = format!(
        "{}: {}",
        visible(&mcp.slug),
        visible(&mcp.transport.target())
    );
    let health = app.health_of(mcp);
    let state = match health.map(|h| &h.state) {
        None => "not started (nothing has called it yet)".to_owned(),
        Some(Health::Connected) => "connected".to_owned(),
        Some(Health::Connecting) => "connecting…".to_owned(),
        Some(Health::Failing(why)) => format!("failing: {}", visible(&scrubbed(why, mcp))),
    };
    let status = format!(
        "timeout {}s · {state} · restarts {}",
        mcp.timeout.as_secs(),
        health.map_or(0, |h| h.restarts)
    );
    vec![
        Line::styled("─".repeat(width), theme.dim()),
        one_line(Line::from(target), width),
        one_line(Line::styled(status, theme.dim()), width),
    ]
}

/// An upstream's error as the operator may see it: the error text of an
/// HTTP client can quote the URL, so every URL in it is redacted as the
/// target is, and the MCP's header values are masked.
fn scrubbed(why: &str, mcp: &Mcp) -> String {
    let mut text = why
        .split(' ')
        .map(|word| {
            if word.contains("://") {
                let url = word
                    .trim_matches(|c: char| matches!(c, '(' | ')' | ',' | ':' | ';' | '\'' | '"'));
                word.replace(url, &crate::redact::redacted_url(url))
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    if let crate::domain::McpTransport::Http { headers, .. } = &mcp.transport {
        for (_, value) in headers {
            if !value.is_empty() {
                text = text.replace(value.as_str(), "***");
            }
        }
    }
    text
}

/// `up`, `failing`, `starting` or `idle` (never called), coloured.
fn health_cell(health: Option<&UpstreamHealth>, theme: &Theme) -> (&'static str, Style) {
    match health.map(|h| &h.state) {
        None => ("idle", theme.dim()),
        Some(Health::Connected) => ("up", theme.ok()),
        Some(Health::Connecting) => ("starting", theme.dim()),
        Some(Health::Failing(_)) => ("failing", theme.warn()),
    }
}

/// The tools its upstream listed last (recorded by every listing), or `-`.
fn tools_cell(pins: PinSummary) -> String {
    if pins.last_changed.is_none() {
        "-".to_owned()
    } else {
        pins.tools.to_string()
    }
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

    /// An app whose org has one HTTP MCP `remote` in row `row`.
    fn app_with_remote(row: i64, url: &str, header: (&str, &str)) -> App {
        let at = Utc.with_ymd_and_hms(2026, 2, 1, 9, 0, 0).unwrap();
        let mut app = App::new("acme", at, ServerStatus::Off);
        app.mcps = vec![Mcp {
            row_id: row,
            org_id: 1,
            slug: "remote".into(),
            name: "Remote".into(),
            transport: McpTransport::Http {
                url: url.into(),
                headers: vec![(header.0.into(), header.1.into())],
            },
            timeout: Duration::from_secs(30),
            created_at: at,
        }];
        app
    }

    /// The MCPs view of `app`, `width` columns wide, as text.
    fn screen_of(app: &App, width: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, 20)).unwrap();
        terminal
            .draw(|f| {
                render(
                    app,
                    &ListPosition::default(),
                    f,
                    f.area(),
                    &Theme { color: false },
                )
            })
            .unwrap();
        terminal.backend().to_string()
    }

    #[test]
    fn an_upstream_error_quoting_its_url_or_header_is_shown_redacted() {
        let mut app = app_with_remote(
            7,
            "http://h.example/mcp?token=abc9",
            ("X-Key", "s3cret-value"),
        );
        app.upstream_health = vec![crate::upstream::UpstreamHealth {
            name: "remote#7".into(),
            state: crate::upstream::Health::Failing(
                "error sending request for url (http://h.example/mcp?token=abc9): refused s3cret-value"
                    .into(),
            ),
            restarts: 2,
        }];
        let screen = screen_of(&app, 160);
        for secret in ["abc9", "s3cret"] {
            assert!(!screen.contains(secret), "'{secret}' on screen:\n{screen}");
        }
        assert!(
            screen.contains(
                "failing: error sending request for url (http://h.example/mcp?token=***)"
            ),
            "{screen}"
        );
        assert!(screen.contains("restarts 2"), "{screen}");
    }

    #[test]
    fn url_credentials_never_reach_the_screen() {
        let app = app_with_remote(
            1,
            "http://user:hunter2@h.example/mcp?token=abc9",
            ("Authorization", "Bearer s3cret"),
        );
        let screen = screen_of(&app, 120);
        for secret in ["hunter2", "abc9", "s3cret"] {
            assert!(!screen.contains(secret), "'{secret}' on screen:\n{screen}");
        }
        assert!(
            screen.contains("http://user:***@h.example/mcp?token=***"),
            "{screen}"
        );
    }
}
