//! Drawing: `render(&App, &mut Frame)` lays out the status bar, the key
//! list, the detail pane, the footer and whatever dialog the mode opens.
//! Reads state only; it never touches the store.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::action::ServerStatus;
use super::app::{App, Focus, Mode};
use super::panes::{detail, dialogs, forms, key_list, mcps};
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
    frame.render_widget(status_bar(app, theme), areas.status);
    key_list::render(app, frame, areas.list, theme);
    detail::render(app, frame, areas.detail, theme);
    frame.render_widget(footer(app, theme), areas.footer);

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

fn status_bar<'a>(app: &'a App, theme: &Theme) -> Paragraph<'a> {
    let limit = app
        .plan
        .key_limit()
        .map_or_else(|| "unlimited".to_string(), |l| l.to_string());
    let mut spans = vec![
        Span::styled(" plexmcp ", theme.title()),
        Span::raw(" org "),
        Span::styled(app.org.as_str(), theme.bold()),
        Span::raw(format!(
            " · {} plan · {}/{limit} keys",
            app.plan, app.active_keys
        )),
        Span::raw(" · "),
    ];
    match &app.server {
        ServerStatus::Running {
            addr,
            per_minute,
            errors_per_minute,
        } => {
            spans.push(Span::styled(format!("serving {addr}"), theme.ok()));
            spans.push(Span::raw(format!(" · {per_minute} req/min")));
            let errors = Span::raw(format!(" · {errors_per_minute} errors"));
            spans.push(if *errors_per_minute > 0 {
                errors.style(theme.error())
            } else {
                errors
            });
        }
        ServerStatus::Off => spans.push(Span::styled("server off (--no-server)", theme.dim())),
        ServerStatus::Failed(why) => spans.push(Span::styled(
            format!("server not running: {why}"),
            theme.error(),
        )),
    }
    Paragraph::new(Line::from(spans)).style(theme.bar())
}

fn footer<'a>(app: &'a App, theme: &Theme) -> Paragraph<'a> {
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
    let mut spans = Vec::with_capacity(hints.len() * 3);
    for (key, does) in hints {
        spans.push(Span::styled(format!(" {key}"), theme.accent()));
        spans.push(Span::raw(format!(" {does} ")));
    }
    if !app.filter.is_empty() && matches!(app.mode, Mode::Normal) {
        spans.push(Span::styled(
            format!(" filter: {}", app.filter),
            theme.dim(),
        ));
    }
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
