//! Popups: the show-once key dialog, confirmations, rotation choice, the
//! organization picker and the help overlay.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::with_more_marks;
use crate::rules::visible;
use crate::tui::action::{BINDINGS, HELP_NOTES, OrgChoice};
use crate::tui::app::{App, GraceField, Pending, RotateDialog, RotateStep, ShowKey};
use crate::tui::layout;
use crate::tui::scroll::ListPosition;
use crate::tui::theme::Theme;
use crate::tui::ui::{centered, clear};

fn popup<'a>(title: &'a str, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .title(Line::styled(format!(" {title} "), theme.bold()))
        .border_style(theme.border(true))
}

fn draw(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    lines: Vec<Line<'_>>,
    width: u16,
    theme: &Theme,
) {
    draw_in(frame, area, popup(title, theme), lines, width);
}

/// A dialog as tall as its lines (and its border), centered.
fn draw_in(frame: &mut Frame, area: Rect, block: Block<'_>, lines: Vec<Line<'_>>, width: u16) {
    let height = u16::try_from(lines.len())
        .unwrap_or(u16::MAX)
        .saturating_add(2);
    let rect = centered(area, width, height);
    clear(frame, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        rect,
    );
}

pub fn show_key(show: &ShowKey, frame: &mut Frame, area: Rect, theme: &Theme) {
    let title = if show.replaced.is_some() {
        "Key rotated"
    } else {
        "Key created"
    };
    let mut lines = vec![
        Line::from(vec![
            Span::raw("Name: "),
            Span::styled(visible(&show.record.name), theme.bold()),
            Span::raw(format!("   Prefix: {}", visible(&show.record.prefix()))),
        ]),
        Line::default(),
        // Borrowed, not formatted: no extra heap copy of the key per frame.
        Line::from(vec![
            Span::styled(" ", theme.selected()),
            Span::styled(show.key.expose(), theme.selected()),
            Span::styled(" ", theme.selected()),
        ]),
        Line::default(),
        Line::styled(
            "⚠ This key is shown only once. Copy it now and store it securely.",
            theme.warn(),
        ),
    ];
    if let Some(old) = &show.replaced {
        lines.push(Line::from(old.as_str()));
    }
    lines.push(Line::default());
    match &show.copied {
        None => lines.push(Line::styled(
            "c copy to clipboard · Enter/Esc close",
            theme.dim(),
        )),
        Some(report) => {
            let osc = if report.osc52 {
                "copied via OSC 52 (your terminal)"
            } else {
                "OSC 52 failed"
            };
            let system = match &report.system {
                Ok(()) => "system clipboard: copied".to_string(),
                Err(why) => format!("system clipboard: {why}"),
            };
            let (mark, style) = if report.osc52 || report.system.is_ok() {
                ("✓", theme.ok())
            } else {
                ("✗", theme.error())
            };
            lines.push(Line::styled(format!("{mark} {osc} · {system}"), style));
            lines.push(Line::styled("Enter/Esc close", theme.dim()));
        }
    }
    draw(frame, area, title, lines, 76, theme);
}

pub fn confirm(pending: &Pending, frame: &mut Frame, area: Rect, theme: &Theme) {
    let (title, lines) = match pending {
        Pending::RevokeKey { id, name } => (
            "Revoke key",
            vec![
                Line::from(vec![
                    Span::raw("Revoke "),
                    Span::styled(format!("\"{}\"", visible(name)), theme.bold()),
                    Span::raw(format!(" (pmcp_{})?", visible(id))),
                ]),
                Line::default(),
                Line::from("It stops working immediately and can never be reactivated."),
                Line::from("It stays listed for audit."),
                Line::default(),
                Line::styled("y revoke · n/Esc cancel", theme.accent()),
            ],
        ),
        Pending::RemoveMcp { slug } => (
            "Remove MCP",
            vec![
                Line::from(vec![
                    Span::raw("Remove MCP "),
                    Span::styled(visible(slug), theme.bold()),
                    Span::raw("?"),
                ]),
                Line::default(),
                Line::from("Keys lose access to it at once; its past usage stays."),
                Line::default(),
                Line::styled("y remove · n/Esc cancel", theme.accent()),
            ],
        ),
    };
    draw(frame, area, title, lines, 64, theme);
}

/// Quit asked for while a new key is shown: it would be gone for good.
pub fn confirm_quit(show: &ShowKey, frame: &mut Frame, area: Rect, theme: &Theme) {
    let lines = vec![
        Line::from(vec![
            Span::raw("Quitting closes the new key "),
            Span::styled(visible(&show.record.prefix()).into_owned(), theme.bold()),
            Span::raw(format!(" (\"{}\").", visible(&show.record.name))),
        ]),
        Line::default(),
        Line::styled(
            "The key will not be shown again. Quit anyway?",
            theme.warn(),
        ),
        Line::default(),
        Line::styled("y quit · n/Esc back to the key", theme.accent()),
    ];
    draw(frame, area, "Quit?", lines, 64, theme);
}

pub fn rotate(dialog: &RotateDialog, frame: &mut Frame, area: Rect, theme: &Theme) {
    let mut lines = vec![
        Line::from(vec![
            Span::raw("Rotate "),
            Span::styled(format!("\"{}\"", visible(&dialog.name)), theme.bold()),
            Span::raw(format!(" (pmcp_{})?", visible(&dialog.id))),
        ]),
        Line::default(),
        Line::from("A new key with the same name, description, MCP access"),
        Line::from("and a full term of its expiry length is created and shown once."),
        Line::default(),
    ];
    match (dialog.expired, dialog.step) {
        (true, _) => {
            lines.push(Line::styled(
                "This key has expired: it has nothing left to hand over",
                theme.warn(),
            ));
            lines.push(Line::from("and stays listed as expired."));
            lines.push(Line::default());
            lines.push(Line::styled("y rotate · n/Esc cancel", theme.accent()));
        }
        (false, RotateStep::Choose) => {
            lines.push(Line::styled(
                "k keep the old key working (revoke it later)",
                theme.accent(),
            ));
            lines.push(Line::styled("r revoke the old key now", theme.accent()));
            lines.push(Line::styled(
                "g keep it for a grace period, then it expires",
                theme.accent(),
            ));
            lines.push(Line::styled("Esc cancel", theme.dim()));
        }
        (false, RotateStep::Grace) => {
            let field = |label: &str, input: &tui_input::Input, focused: bool, hint: &str| {
                let marker = if focused { "▶ " } else { "  " };
                let style = if focused { theme.accent() } else { theme.dim() };
                let value = if focused {
                    Span::styled(format!("{:<8}", input.value()), theme.selected())
                } else {
                    Span::raw(format!("{:<8}", input.value()))
                };
                Line::from(vec![
                    Span::styled(format!("{marker}{label:<12}"), style),
                    value,
                    Span::styled(format!("  {hint}"), theme.dim()),
                ])
            };
            lines.push(field(
                "Grace",
                &dialog.grace,
                dialog.focus == GraceField::Grace,
                "the old key works this long (30m, 24h, 7d)",
            ));
            lines.push(field(
                "Idle limit",
                &dialog.idle,
                dialog.focus == GraceField::Idle,
                "optional: ends it once unused this long",
            ));
            if let Some(error) = &dialog.error {
                lines.push(Line::styled(
                    visible(&error.message).into_owned(),
                    theme.error(),
                ));
            }
            lines.push(Line::default());
            lines.push(Line::styled(
                "Enter rotate · Tab next field · Esc back",
                theme.accent(),
            ));
        }
    }
    draw(frame, area, "Rotate key", lines, 70, theme);
}

pub fn orgs(app: &App, at: &ListPosition, frame: &mut Frame, area: Rect, theme: &Theme) {
    let shown = at.window(app.orgs.len(), layout::picker_rows(area));
    let mut lines: Vec<Line> = app.orgs[shown.start..shown.end]
        .iter()
        .enumerate()
        .map(|(i, org)| {
            let line = Line::from(org_line(org, *org.slug == app.org));
            if shown.start + i == at.selected {
                line.style(theme.selected())
            } else {
                line
            }
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::styled(" no organizations", theme.dim()));
    }
    lines.push(Line::default());
    lines.push(Line::styled(
        "Enter switch · Esc back · new ones: plexmcp org create SLUG",
        theme.dim(),
    ));
    let block = with_more_marks(popup("Organizations", theme), &shown, theme);
    draw_in(frame, area, block, lines, 64);
}

/// One picker row: slug, plan and keys against the plan's limit, so an
/// operator sees where there is room before switching.
fn org_line(org: &OrgChoice, current: bool) -> String {
    let keys = match org.plan.key_limit() {
        Some(limit) if org.active_keys >= limit => {
            format!("{}/{limit} keys, full", org.active_keys)
        }
        Some(limit) => format!("{}/{limit} keys", org.active_keys),
        None => format!("{} keys", org.active_keys),
    };
    let marker = if current { " (current)" } else { "" };
    format!(
        " {:<24} {:<10} {keys}{marker}",
        visible(&org.slug),
        org.plan.as_str()
    )
}

/// The key bindings; a screen too short for them scrolls (`offset` lines
/// down, clamped so the last line stays at the bottom) and says where it is.
pub fn help(frame: &mut Frame, area: Rect, offset: u16, theme: &Theme) {
    let mut lines: Vec<Line> = BINDINGS
        .iter()
        .map(|b| {
            Line::from(vec![
                Span::styled(format!(" {:<13}", b.keys), theme.accent()),
                Span::raw(b.does),
            ])
        })
        .collect();
    lines.push(Line::default());
    for note in HELP_NOTES {
        lines.push(Line::styled(*note, theme.dim()));
    }
    let height = u16::try_from(lines.len())
        .unwrap_or(u16::MAX)
        .saturating_add(2);
    let rect = centered(area, 64, height);
    let inner_width = usize::from(rect.width.saturating_sub(2)).max(1);
    // Rows once wrapped: a line wider than the dialog takes more than one.
    let total: usize = lines
        .iter()
        .map(|l| l.width().div_ceil(inner_width).max(1))
        .sum();
    let shown = usize::from(rect.height.saturating_sub(2));
    let top = usize::from(offset).min(total.saturating_sub(shown));
    let mut block = popup("Keys", theme);
    if total > shown {
        block = block.title_bottom(Line::styled(
            format!(" {}–{} of {total} · j/k scroll ", top + 1, top + shown),
            theme.dim(),
        ));
    }
    clear(frame, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((u16::try_from(top).unwrap_or(0), 0))
            .block(block),
        rect,
    );
}
