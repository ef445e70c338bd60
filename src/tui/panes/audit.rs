//! The audit view: who changed what, when and from where, newest first,
//! with the selected event in full below the table (its old -> new values
//! can be longer than a column).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState, Wrap};

use super::{date_time, short_time};
use crate::domain::KeyRecord;
use crate::rules::visible;
use crate::store::AuditRecord;
use crate::tui::app::{App, AuditView};
use crate::tui::theme::Theme;
use crate::tui::ui::clear;

/// Lines of the selected event's box, borders included.
const EVENT_BOX: u16 = 7;
/// Table width from which who and from get columns of their own.
const WIDE: u16 = 100;

pub fn render(app: &App, view: &AuditView, frame: &mut Frame, area: Rect, theme: &Theme) {
    // Over both panes, between the status bar and the footer: the table
    // needs every column it can get.
    let rect = Rect::new(
        area.x,
        area.y.saturating_add(1),
        area.width,
        area.height.saturating_sub(2),
    );
    clear(frame, rect);
    let visible_events = view.visible(&app.keys);
    let mut block = Block::bordered()
        .title(Line::styled(
            format!(" Audit trail of {} ", visible(&app.org)),
            theme.bold(),
        ))
        .border_style(theme.border(true));
    if view.truncated() {
        block = block.title_bottom(Line::styled(
            " the latest events only · plexmcp audit export has them all ",
            theme.dim(),
        ));
    }
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let [filter_area, table_area, event_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(EVENT_BOX),
    ])
    .areas(inner);
    frame.render_widget(filter_line(view, visible_events.len(), theme), filter_area);

    let Some(events) = &view.events else {
        frame.render_widget(
            Paragraph::new("Loading the audit trail…").style(theme.dim()),
            table_area,
        );
        return;
    };
    if visible_events.is_empty() {
        let text = if events.is_empty() {
            "No audit events yet: every change to keys, MCPs and the plan is recorded here."
                .to_string()
        } else {
            format!(
                "No events about a key whose name or prefix contains '{}'.",
                visible(view.filter.value())
            )
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.dim())
                .wrap(Wrap { trim: true }),
            table_area,
        );
        return;
    }
    // Narrow screens drop who and from (the event box below has them), so
    // the change keeps room to be read.
    let wide = table_area.width >= WIDE;
    let rows = visible_events.iter().map(|r| {
        let e = &r.event;
        let mut cells = vec![short_time(e.at)];
        if wide {
            cells.push(visible(&e.actor).into_owned());
            cells.push(visible(e.actor_addr.as_deref().unwrap_or("local")).into_owned());
        }
        cells.push(visible(&e.action).into_owned());
        cells.push(target(r));
        cells.push(visible(e.detail.as_deref().unwrap_or("")).into_owned());
        Row::new(cells)
    });
    let (widths, header) = if wide {
        (
            vec![
                Constraint::Length(11),
                Constraint::Length(10),
                Constraint::Length(15),
                Constraint::Length(16),
                Constraint::Length(14),
                Constraint::Fill(1),
            ],
            Row::new(["When", "Who", "From", "What", "Target", "Change"]),
        )
    } else {
        (
            vec![
                Constraint::Length(11),
                Constraint::Length(16),
                Constraint::Length(14),
                Constraint::Fill(1),
            ],
            Row::new(["When", "What", "Target", "Change"]),
        )
    };
    let header = header.style(theme.accent());
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(theme.selected());
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, table_area, &mut state);

    if let Some(selected) = visible_events.get(view.selected) {
        frame.render_widget(event_box(selected, &app.keys, theme), event_area);
    }
}

fn filter_line<'a>(view: &'a AuditView, shown: usize, theme: &Theme) -> Line<'a> {
    let count = Span::styled(format!("{shown} events"), theme.dim());
    if view.typing {
        return Line::from(vec![
            Span::styled("Key: ", theme.accent()),
            Span::raw(visible(view.filter.value())),
            Span::styled("▏  ", theme.accent()),
            count,
        ]);
    }
    if view.filter.value().is_empty() {
        return Line::from(vec![
            Span::styled("All keys and changes · ", theme.dim()),
            count,
        ]);
    }
    Line::from(vec![
        Span::styled("Key: ", theme.accent()),
        Span::raw(visible(view.filter.value())),
        Span::raw("  "),
        count,
    ])
}

/// Keys by their display prefix, as in the list; other targets by id.
fn target(r: &AuditRecord) -> String {
    let e = &r.event;
    let shown = match e.target_kind.as_str() {
        "key" => format!("{}{}", crate::keys::KEY_PREFIX, e.target_id),
        _ => e.target_id.clone(),
    };
    visible(&shown).into_owned()
}

fn event_box<'a>(r: &'a AuditRecord, keys: &[KeyRecord], theme: &Theme) -> Paragraph<'a> {
    let e = &r.event;
    let label = |text: &'static str| Span::styled(format!("{text:<8}"), theme.dim());
    let from = e
        .actor_addr
        .as_deref()
        .map_or_else(|| "this machine".to_string(), |a| format!("ssh from {a}"));
    let name = (e.target_kind == "key")
        .then(|| keys.iter().find(|k| k.id == e.target_id))
        .flatten()
        .map(|k| format!(" \"{}\"", visible(&k.name)))
        .unwrap_or_default();
    // Stored text may be anything an outside tool wrote: cut by characters.
    let hash: String = r
        .hash
        .as_deref()
        .unwrap_or("none")
        .chars()
        .take(16)
        .collect();
    let lines = vec![
        Line::from(vec![
            label("When"),
            Span::raw(date_time(e.at)),
            Span::raw(format!("   by {} ({from})", visible(&e.actor))),
        ]),
        Line::from(vec![
            label("What"),
            Span::raw(visible(&e.action).into_owned()),
            Span::raw(format!(
                "   {} {}{name}",
                visible(&e.target_kind),
                target(r)
            )),
        ]),
        Line::from(vec![
            label("Change"),
            Span::raw(visible(e.detail.as_deref().unwrap_or("-")).into_owned()),
        ]),
        Line::from(vec![
            label("Chain"),
            Span::styled(format!("event {} · hash {hash}…", r.id), theme.dim()),
        ]),
    ];
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().border_style(theme.border(false)))
}
