//! The `:` command palette: what is typed, then the matching commands with
//! the key that does the same, so the palette also teaches the keys.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::with_more_marks;
use crate::rules::visible;
use crate::tui::layout;
use crate::tui::palette::Palette;
use crate::tui::theme::Theme;
use crate::tui::ui::{centered, clear};

const WIDTH: u16 = 64;

pub fn render(palette: &Palette, frame: &mut Frame, area: Rect, theme: &Theme) {
    let matches = palette.matches();
    let shown = palette.at.window(matches.len(), layout::palette_rows(area));
    let mut lines = vec![
        Line::from(vec![
            Span::styled(":", theme.accent()),
            Span::raw(visible(palette.input.value()).into_owned()),
            Span::styled("█", theme.dim()),
        ]),
        Line::default(),
    ];
    let selected = palette.at.selected.min(matches.len().saturating_sub(1));
    for (i, command) in matches[shown.start..shown.end].iter().enumerate() {
        let line = Line::from(vec![
            Span::raw(format!(" {:<13}", command.name)),
            Span::styled(format!("{:<4}", command.key), theme.accent()),
            Span::raw(command.does),
        ]);
        lines.push(if shown.start + i == selected {
            line.style(theme.selected())
        } else {
            line
        });
    }
    if matches.is_empty() {
        lines.push(Line::styled(" no command matches", theme.dim()));
    }
    let height = u16::try_from(lines.len())
        .unwrap_or(u16::MAX)
        .saturating_add(2);
    let rect = centered(area, WIDTH, height);
    clear(frame, rect);
    let block = Block::bordered()
        .title(Line::styled(" Commands ", theme.bold()))
        .border_style(theme.border(true));
    let block = with_more_marks(block, &shown, theme);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}
