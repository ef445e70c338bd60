//! Drawing: `render(&App, &mut Frame)` lays out the status bar, the key
//! list, the detail pane, the footer and whatever dialog the mode opens.
//! Reads state only; it never touches the store.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use unicode_width::UnicodeWidthStr;

use super::action::ServerStatus;
use super::app::{App, Focus, Mode};
use super::panes::{detail, dialogs, forms, key_list, mcps, plural};
use super::theme::Theme;

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

pub fn too_small(area: Rect) -> bool {
    area.width < MIN_WIDTH || area.height < MIN_HEIGHT
}

pub fn render(app: &App, frame: &mut Frame, theme: &Theme) {
    let area = frame.area();
    if too_small(area) {
        let text = vec![
            Line::from("Terminal too small"),
            Line::from(format!(
                "{}×{} — plexmcp needs at least {MIN_WIDTH}×{MIN_HEIGHT}",
                area.width, area.height
            )),
            Line::from("Enlarge the window, or press q to quit"),
        ];
        let y = area.height.saturating_sub(3) / 2;
        let message = Rect::new(area.x, area.y + y, area.width, 3.min(area.height));
        frame.render_widget(Paragraph::new(text).centered().style(theme.warn()), message);
        return;
    }
    let areas = areas(area);
    status_bar(app, frame, areas.status, theme);
    key_list::render(app, frame, areas.list, theme);
    detail::render(app, frame, areas.detail, theme);
    frame.render_widget(footer(app, theme, areas.footer.width), areas.footer);

    match &app.mode {
        Mode::Normal | Mode::Filter(_) => {}
        Mode::Help => dialogs::help(frame, area, theme),
        Mode::KeyForm(form) => forms::key_form(form, frame, area, theme),
        Mode::ShowKey(show) => dialogs::show_key(show, frame, area, theme),
        Mode::Confirm(pending) => dialogs::confirm(pending, frame, area, theme),
        Mode::Rotate { id, name } => dialogs::rotate(id, name, frame, area, theme),
        Mode::Mcps { selected } => mcps::render(app, *selected, frame, area, theme),
        Mode::McpForm(form) => forms::mcp_form(form, frame, area, theme),
        Mode::Orgs { selected } => dialogs::orgs(app, *selected, frame, area, theme),
    }
}

/// Org and plan on the left; the server on the right, kept whole so its
/// address (or why it is not running) shows even at 80 columns.
fn status_bar(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let mut left = vec![
        Span::styled(" plexmcp ", theme.title()),
        Span::raw(" "),
        Span::styled(app.org.as_str(), theme.bold()),
    ];
    if app.loaded {
        let limit = app
            .plan
            .key_limit()
            .map_or_else(|| "unlimited".to_string(), |l| l.to_string());
        left.push(Span::raw(format!(
            " ({}) · {}/{limit} keys",
            app.plan, app.active_keys
        )));
    }
    let mut right = Vec::new();
    match &app.server {
        ServerStatus::Running {
            addr,
            per_minute,
            errors_per_minute,
        } => {
            right.push(Span::styled(format!("serving {addr}"), theme.ok()));
            right.push(Span::raw(format!(" · {per_minute} req/min · ")));
            let errors = Span::raw(plural(*errors_per_minute, "error"));
            right.push(if *errors_per_minute > 0 {
                errors.style(theme.error())
            } else {
                errors
            });
        }
        ServerStatus::Off => right.push(Span::styled("server off (--no-server)", theme.dim())),
        ServerStatus::Failed(why) => {
            right.push(Span::styled(format!("not serving: {why}"), theme.error()))
        }
    }
    right.push(Span::raw(" "));
    let right = Line::from(right);
    let width = u16::try_from(right.width()).unwrap_or(u16::MAX);
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(width)]).areas(area);
    frame.render_widget(
        Paragraph::new(Line::from(left)).style(theme.bar()),
        left_area,
    );
    frame.render_widget(
        Paragraph::new(right).right_aligned().style(theme.bar()),
        right_area,
    );
}

fn footer<'a>(app: &'a App, theme: &Theme, width: u16) -> Paragraph<'a> {
    if let Mode::Filter(input) = &app.mode {
        let line = Line::from(vec![
            Span::styled(" / ", theme.title()),
            Span::raw(input.value()),
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
        return Paragraph::new(Line::from(Span::styled(format!(" {}", flash.text), style)));
    }
    let hints: &[(&str, &str)] = match &app.mode {
        Mode::Normal if app.focus == Focus::Detail => &[
            ("j/k", "scroll"),
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
        Mode::KeyForm(_) | Mode::McpForm(_) => &[
            ("Tab/S-Tab", "field"),
            ("←/→", "choose"),
            ("Space", "toggle"),
            ("Enter", "save"),
            ("Esc", "cancel"),
        ],
        Mode::ShowKey(_) => &[("c", "copy"), ("Enter/Esc", "close")],
        Mode::Confirm(_) => &[("y", "confirm"), ("n/Esc", "cancel")],
        Mode::Rotate { .. } => &[("k", "keep old"), ("r", "revoke old"), ("Esc", "cancel")],
        Mode::Mcps { .. } => &[
            ("a", "add"),
            ("d", "remove"),
            ("j/k", "move"),
            ("Esc", "back"),
        ],
        Mode::Orgs { .. } => &[("j/k", "move"), ("Enter", "switch"), ("Esc", "back")],
        Mode::Help | Mode::Filter(_) => &[("any key", "close")],
    };
    let filter = (!app.filter.is_empty() && matches!(app.mode, Mode::Normal))
        .then(|| Span::styled(format!(" filter: {}", app.filter), theme.dim()));
    // When the hints do not fit, drop them from the middle: help and quit
    // (the last two) always stay, and `?` lists the rest.
    let mut hints = hints.to_vec();
    let used = |hints: &[(&str, &str)]| {
        hints
            .iter()
            .map(|(key, does)| key.width() + does.width() + 3)
            .sum::<usize>()
            + filter.as_ref().map_or(0, Span::width)
    };
    while hints.len() > 2 && used(&hints) > usize::from(width) {
        hints.remove(hints.len() - 3);
    }
    let mut spans = Vec::with_capacity(hints.len() * 2 + 1);
    for (key, does) in hints {
        spans.push(Span::styled(format!(" {key}"), theme.accent()));
        spans.push(Span::raw(format!(" {does} ")));
    }
    spans.extend(filter);
    Paragraph::new(Line::from(spans))
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

/// Clears a dialog's area so the panes below do not show through.
pub fn clear(frame: &mut Frame, area: Rect) {
    frame.render_widget(Clear, area);
}

pub fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}
