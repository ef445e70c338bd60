//! Drawing: `render(&App, &mut Frame)` lays out the status bar, the key
//! list, the detail pane, the footer and whatever dialog the mode opens.
//! Reads state only; it never touches the store.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use unicode_width::UnicodeWidthStr;

use super::app::{App, Focus, Mode, RotateStep};
use super::panes::{
    audit, chart, detail, dialogs, forms, key_list, mcps, palette, status_bar, withheld, wrap,
};
use super::theme::Theme;
use crate::rules::visible;

pub use super::layout::{Areas, MIN_HEIGHT, MIN_WIDTH, areas, centered, too_small};

pub fn render(app: &App, frame: &mut Frame, theme: &Theme) {
    let area = frame.area();
    if too_small(area) {
        return too_small_screen(app, frame, area, theme);
    }
    let areas = areas(area);
    status_bar::render(app, frame, areas.status, theme);
    key_list::render(app, frame, areas.list, theme);
    detail::render(app, frame, areas.detail, theme);
    frame.render_widget(footer(app, theme, areas.footer.width), areas.footer);

    match &app.mode {
        Mode::Normal | Mode::Filter(_) => {}
        Mode::Help(offset) => dialogs::help(frame, area, *offset, theme),
        Mode::KeyForm(form) => forms::key_form(form, frame, area, theme),
        Mode::ShowKey(show) => dialogs::show_key(show, frame, area, theme),
        Mode::ConfirmQuit(show) => dialogs::confirm_quit(show, frame, area, theme),
        Mode::Confirm(pending) => dialogs::confirm(pending, frame, area, theme),
        Mode::Rotate(dialog) => dialogs::rotate(dialog, frame, area, theme),
        Mode::Mcps(at) => mcps::render(app, at, frame, area, theme),
        Mode::McpForm(form) => forms::mcp_form(form, frame, area, theme),
        Mode::Orgs(at) => dialogs::orgs(app, at, frame, area, theme),
        Mode::Audit(view) => audit::render(app, view, frame, area, theme),
        Mode::Palette(p) => palette::render(p, frame, area, theme),
        Mode::Withheld(view) => withheld::render(app, view, frame, area, theme),
        Mode::Chart => chart::render(app, frame, area, theme),
    }
    long_message(app, frame, areas.footer, theme);
}

/// A status message too long for the footer is shown whole, wrapped, in a
/// message area that rises from the footer over the panes' last rows.
fn long_message(app: &App, frame: &mut Frame, footer: Rect, theme: &Theme) {
    let Some(flash) = &app.flash else { return };
    if matches!(app.mode, Mode::Filter(_)) || fits_footer(&flash.text, footer.width) {
        return;
    }
    let width = footer.width.saturating_sub(2);
    let lines: Vec<Line> = wrap(&visible(&flash.text), usize::from(width))
        .into_iter()
        .map(|part| Line::from(format!(" {part}")))
        .collect();
    // At most half the screen above the footer, with a rule above it.
    let room = footer.y.saturating_add(1) / 2;
    let height = u16::try_from(lines.len() + 1).unwrap_or(u16::MAX).min(room);
    let rect = Rect::new(
        footer.x,
        footer.y.saturating_add(1).saturating_sub(height),
        footer.width,
        height,
    );
    let style = if flash.error {
        theme.error()
    } else {
        theme.ok()
    };
    clear(frame, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .style(style)
            .block(Block::default().borders(Borders::TOP).border_style(style)),
        rect,
    );
}

/// Whether a status message fits the footer's one line (after its margin).
fn fits_footer(text: &str, width: u16) -> bool {
    visible(text).width() < usize::from(width)
}

/// Only a message fits: what is needed, how to quit, and whether a new
/// key is waiting to be seen (quitting would lose it, so that asks first).
fn too_small_screen(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let mut text = vec![
        Line::from("Terminal too small"),
        Line::from(format!(
            "{}×{} — plexmcp needs at least {MIN_WIDTH}×{MIN_HEIGHT}",
            area.width, area.height
        )),
    ];
    match &app.mode {
        Mode::ShowKey(_) => {
            text.push(Line::from(
                "A new key is waiting: enlarge the window to see it",
            ));
            text.push(Line::from("(it is shown only once), or press q to quit"));
        }
        Mode::ConfirmQuit(_) => {
            text.push(Line::from("The new key will not be shown again."));
            text.push(Line::from("Quit anyway? y quit · n/Esc back"));
        }
        _ => text.push(Line::from("Enlarge the window, or press q to quit")),
    }
    let height = u16::try_from(text.len()).unwrap_or(u16::MAX);
    let y = area.height.saturating_sub(height) / 2;
    let message = Rect::new(area.x, area.y + y, area.width, height.min(area.height));
    frame.render_widget(
        Paragraph::new(text)
            .centered()
            .wrap(ratatui::widgets::Wrap { trim: true })
            .style(theme.warn()),
        message,
    );
}

/// Footer hints given up first, in this order, when the footer is too
/// narrow: each is in the help screen, and the sort column is in the list's
/// title already.
const DROP_FIRST: [&str; 6] = ["sort", "rotate", "MCPs", "edit", "revoke", "filter"];

fn footer<'a>(app: &'a App, theme: &Theme, width: u16) -> Paragraph<'a> {
    if let Mode::Filter(input) = &app.mode {
        let line = Line::from(vec![
            Span::styled(" / ", theme.title()),
            Span::raw(visible(input.value())),
            Span::styled("▏", theme.accent()),
            Span::styled("   Enter keep · Esc clear", theme.dim()),
        ]);
        return Paragraph::new(line);
    }
    if let Some(flash) = &app.flash {
        let style = if flash.error {
            theme.error()
        } else {
            theme.ok()
        };
        return Paragraph::new(Line::from(Span::styled(
            format!(" {}", visible(&flash.text)),
            style,
        )));
    }
    let hints: &[(&str, &str)] = match &app.mode {
        Mode::Normal if app.focus == Focus::Detail => &[
            ("j/k", "scroll"),
            (
                "w",
                if app.detail_wrap {
                    "cut lines"
                } else {
                    "wrap lines"
                },
            ),
            ("Tab", "key list"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Mode::Normal => &[
            ("n", "new"),
            ("e", "edit"),
            ("r", "revoke"),
            ("R", "rotate"),
            ("/", "filter"),
            ("s", "sort"),
            ("m", "MCPs"),
            ("o", "org"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Mode::KeyForm(form) if form.picker.is_some() => &[
            ("↑/↓", "move"),
            ("Space", "tick"),
            ("Enter", "done"),
            ("Esc", "cancel"),
        ],
        Mode::KeyForm(_) => &[
            ("Tab/S-Tab", "field"),
            ("←/→", "choose"),
            ("Space", "tick"),
            ("t", "MCP's tools"),
            ("Enter", "save"),
            ("Esc", "cancel"),
        ],
        Mode::McpForm(_) => &[
            ("Tab/S-Tab", "field"),
            ("←/→", "choose"),
            ("Enter", "save"),
            ("Esc", "cancel"),
        ],
        Mode::ShowKey(_) => &[("c", "copy"), ("Enter/Esc", "close")],
        Mode::ConfirmQuit(_) => &[("y", "quit"), ("n/Esc", "back to the key")],
        Mode::Confirm(_) => &[("y", "confirm"), ("n/Esc", "cancel")],
        Mode::Rotate(dialog) if dialog.expired => &[("y", "rotate"), ("n/Esc", "cancel")],
        Mode::Rotate(dialog) if dialog.step == RotateStep::Grace => {
            &[("Enter", "rotate"), ("Tab", "field"), ("Esc", "back")]
        }
        Mode::Rotate(_) => &[
            ("k", "keep old"),
            ("r", "revoke old"),
            ("g", "grace"),
            ("Esc", "cancel"),
        ],
        Mode::Mcps(_) => &[
            ("a", "add"),
            ("d", "remove"),
            ("p", "pin/unpin"),
            ("t", "withheld tools"),
            ("j/k", "move"),
            ("Esc", "back"),
        ],
        Mode::Withheld(_) => &[("j/k", "move"), ("a/Enter", "approve"), ("Esc", "back")],
        Mode::Orgs(_) => &[("j/k", "move"), ("Enter", "switch"), ("Esc", "back")],
        Mode::Audit(view) if view.typing => &[("Enter", "keep filter"), ("Esc", "clear")],
        Mode::Audit(_) => &[
            ("j/k", "move"),
            ("/", "filter by key"),
            ("f", "selected key"),
            ("Esc", "back"),
        ],
        Mode::Palette(_) => &[("↑/↓", "choose"), ("Enter", "run"), ("Esc", "close")],
        Mode::Help(_) => &[("j/k", "scroll"), ("any other key", "close")],
        Mode::Chart => &[("any key", "close")],
        Mode::Filter(_) => &[("any key", "close")],
    };
    let filter = (!app.filter.is_empty() && matches!(app.mode, Mode::Normal)).then(|| {
        Span::styled(
            format!(" filter: {} (Esc clears)", visible(&app.filter)),
            theme.dim(),
        )
    });
    // When the hints do not fit, give up the least needed first (those in
    // DROP_FIRST, then from the middle): help and quit (the last two)
    // always stay, and `?` lists the rest.
    let mut hints = hints.to_vec();
    let used = |hints: &[(&str, &str)]| {
        hints
            .iter()
            .map(|(key, does)| key.width() + does.width() + 3)
            .sum::<usize>()
            + filter.as_ref().map_or(0, Span::width)
    };
    while hints.len() > 2 && used(&hints) > usize::from(width) {
        let least = DROP_FIRST
            .iter()
            .find_map(|does| hints.iter().position(|(_, d)| d == does))
            .unwrap_or(hints.len() - 3);
        hints.remove(least);
    }
    let mut spans = Vec::with_capacity(hints.len() * 2 + 1);
    for (key, does) in hints {
        spans.push(Span::styled(format!(" {key}"), theme.accent()));
        spans.push(Span::raw(format!(" {does} ")));
    }
    spans.extend(filter);
    Paragraph::new(Line::from(spans))
}

/// Clears a dialog's area so the panes below do not show through.
pub fn clear(frame: &mut Frame, area: Rect) {
    frame.render_widget(Clear, area);
}

pub fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}
