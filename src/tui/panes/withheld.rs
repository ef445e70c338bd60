//! The approval view of a pinned MCP (`t` in the MCPs view): its withheld
//! tools on top, and below the selected one's approved definition against
//! what its upstream lists now, `-` out and `+` in.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, Wrap};

use super::{ago, view_block, with_more_marks};
use crate::rules::visible;
use crate::tui::app::{App, WITHHELD_ROWS, WithheldView};
use crate::tui::layout;
use crate::tui::theme::Theme;
use crate::tui::tool_diff::DiffLine;
use crate::tui::ui::clear;

pub fn render(app: &App, view: &WithheldView, frame: &mut Frame, area: Rect, theme: &Theme) {
    let rect = layout::mcps_dialog(area);
    clear(frame, rect);
    let mut block = view_block(
        format!(" Withheld tools of {} ", visible(&view.slug)),
        " a/Enter approve the selected tool · j/k move · Esc back ",
        theme,
    );
    if view.tools.is_empty() {
        let text = if view.loaded {
            "No tools awaiting approval: clients see every tool this MCP lists."
        } else {
            "Loading…"
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.dim())
                .wrap(Wrap { trim: true })
                .block(block),
            rect,
        );
        return;
    }
    let shown = view.at.window(view.tools.len(), WITHHELD_ROWS);
    block = with_more_marks(block, &shown, theme);
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let list_height = u16::try_from(shown.end - shown.start).unwrap_or(1) + 1;
    let [list, diff] = Layout::vertical([Constraint::Length(list_height), Constraint::Fill(1)])
        .spacing(1)
        .areas(inner);
    let rows = view.tools[shown.start..shown.end]
        .iter()
        .enumerate()
        .map(|(i, (tool, _))| {
            let row = Row::new(vec![
                visible(&tool.name).into_owned(),
                tool.state.as_str().to_owned(),
                ago(app.now, tool.changed_at),
            ]);
            if shown.start + i == view.at.selected {
                row.style(theme.selected())
            } else {
                row
            }
        });
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(10),
    ];
    let header = Row::new(["Tool", "State", "Changed"]).style(theme.accent());
    frame.render_widget(Table::new(rows, widths).header(header), list);
    if let Some((tool, lines)) = view.selected() {
        let title = match tool.approved_tool {
            Some(_) => "approved (-) against listed now (+)",
            None => "new: never approved",
        };
        let mut text = vec![Line::styled(title, theme.dim())];
        text.extend(lines.iter().map(|line| match line {
            DiffLine::Same(s) => Line::raw(format!("  {}", visible(s))),
            DiffLine::Old(s) => Line::styled(format!("- {}", visible(s)), theme.error()),
            DiffLine::New(s) => Line::styled(format!("+ {}", visible(s)), theme.ok()),
        }));
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), diff);
    }
}
