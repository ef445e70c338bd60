//! The status bar: org, plan and key count on the left, the server on the
//! right. When the line is too narrow it gives up whole pieces, the least
//! useful first (the rates, a usage loss's detail, the plan name, the word
//! "serving", the title, the count of keys expiring soon), and only then
//! cuts the org name with `…`; the key count stays, the halves never
//! overlap and no piece is cut mid-word.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{one_line, plural};
use crate::rules::visible;
use crate::server::usage_writer::Losses;
use crate::tui::action::ServerStatus;
use crate::tui::app::App;
use crate::tui::theme::Theme;

/// One piece of the bar, with what it may become when room runs out.
struct Piece<'a> {
    span: Span<'a>,
    /// A shorter form, taken at rank `shorten`.
    short: Option<(u8, Span<'a>)>,
    /// Left out entirely at this rank; `None` is kept to the end.
    drop: Option<u8>,
    right: bool,
    /// Cut with `…` when even the fewest pieces do not fit (the org name).
    squeeze: bool,
}

impl<'a> Piece<'a> {
    fn kept(span: Span<'a>, right: bool) -> Piece<'a> {
        Piece {
            span,
            short: None,
            drop: None,
            right,
            squeeze: false,
        }
    }

    fn dropped_at(mut self, rank: u8) -> Piece<'a> {
        self.drop = Some(rank);
        self
    }

    fn shortened_at(mut self, rank: u8, short: Span<'a>) -> Piece<'a> {
        self.short = Some((rank, short));
        self
    }
}

/// The pieces in order, left half then right half.
fn pieces<'a>(app: &'a App, theme: &Theme) -> Vec<Piece<'a>> {
    let mut out = vec![
        Piece::kept(Span::styled(" plexmcp ", theme.title()), false).dropped_at(7),
        Piece::kept(Span::raw(" "), false).dropped_at(7),
        Piece {
            squeeze: true,
            ..Piece::kept(Span::styled(visible(&app.org), theme.bold()), false)
        },
    ];
    if app.loaded {
        out.push(Piece::kept(Span::raw(format!(" ({})", app.plan)), false).dropped_at(4));
        // The count matters most on a limited plan; unlimited needs no "/∞".
        let count = match app.plan.key_limit() {
            Some(limit) => format!(" · {}/{limit} keys", app.active_keys),
            None => format!(" · {}", plural(u64::from(app.active_keys), "key")),
        };
        out.push(Piece::kept(Span::raw(count), false));
        // Something to act on, so it outlasts the plan name, the word
        // "serving" and the title; the key list marks each key as well.
        let expiring = app.expiring_count();
        if expiring > 0 {
            out.push(
                Piece::kept(
                    Span::styled(format!(" · {expiring} expiring"), theme.warn()),
                    false,
                )
                .dropped_at(8),
            );
        }
    }
    match &app.server {
        ServerStatus::Running {
            addr,
            per_minute,
            errors_per_minute,
            usage_lost,
        } => {
            out.push(
                Piece::kept(Span::styled(format!("serving {addr}"), theme.ok()), true)
                    .shortened_at(5, Span::styled(addr.clone(), theme.ok())),
            );
            out.push(
                Piece::kept(Span::raw(format!(" · {per_minute} req/min")), true).dropped_at(1),
            );
            let errors = Span::raw(format!(" · {}", plural(*errors_per_minute, "error")));
            let errors = if *errors_per_minute > 0 {
                errors.style(theme.error())
            } else {
                errors
            };
            // The rates go together; a usage loss, in full, matters more.
            out.push(Piece::kept(errors, true).dropped_at(2));
            if *usage_lost != Losses::default() {
                out.push(
                    Piece::kept(
                        Span::styled(format!(" · {}", usage_lost_text(usage_lost)), theme.warn()),
                        true,
                    )
                    .shortened_at(
                        3,
                        Span::styled(
                            format!(" · usage: {} lost", usage_lost.events()),
                            theme.warn(),
                        ),
                    ),
                );
            }
        }
        ServerStatus::Off => out.push(Piece::kept(
            Span::styled("server off (--no-server)", theme.dim()),
            true,
        )),
        ServerStatus::Failed(why) => out.push(Piece::kept(
            Span::styled(format!("not serving: {}", visible(why)), theme.error()),
            true,
        )),
    }
    out
}

/// Two spaces between the halves and one at the end.
const GAPS: usize = 3;

pub fn render(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let width = usize::from(area.width);
    let mut pieces = pieces(app, theme);
    let used = |pieces: &[Piece]| pieces.iter().map(|p| p.span.width()).sum::<usize>() + GAPS;
    for rank in 1..=8 {
        if used(&pieces) <= width {
            break;
        }
        pieces.retain(|p| p.drop != Some(rank));
        for piece in &mut pieces {
            if let Some((at, short)) = &piece.short
                && *at == rank
            {
                piece.span = short.clone();
                piece.short = None;
            }
        }
    }
    let (right, left): (Vec<Piece>, Vec<Piece>) = pieces.into_iter().partition(|p| p.right);
    let mut right: Vec<Span> = right.into_iter().map(|p| p.span).collect();
    right.push(Span::raw(" "));
    let right = one_line(Line::from(right), width);
    // Whatever is still too long is the org name's: it is cut with `…`
    // rather than the key count after it, or run under the right half.
    let room = width.saturating_sub(right.width() + 2);
    let fixed: usize = left
        .iter()
        .filter(|p| !p.squeeze)
        .map(|p| p.span.width())
        .sum();
    let spans: Vec<Span> = left
        .into_iter()
        .map(|p| {
            if p.squeeze {
                let cut = one_line(Line::from(p.span), room.saturating_sub(fixed));
                Span::styled(
                    cut.to_string(),
                    cut.spans.first().map(|s| s.style).unwrap_or_default(),
                )
            } else {
                p.span
            }
        })
        .collect();
    let left = one_line(Line::from(spans), room);
    frame.render_widget(Paragraph::new(left).style(theme.bar()), area);
    let right_width = u16::try_from(right.width())
        .unwrap_or(area.width)
        .min(area.width);
    let right_area = Rect::new(
        area.x + area.width - right_width,
        area.y,
        right_width,
        area.height,
    );
    frame.render_widget(
        Paragraph::new(right).right_aligned().style(theme.bar()),
        right_area,
    );
}

/// `usage: 120 events dropped, 3 batches failed (30 events)`.
fn usage_lost_text(lost: &Losses) -> String {
    let mut parts = Vec::new();
    if lost.dropped > 0 {
        parts.push(format!("{} dropped", plural(lost.dropped, "event")));
    }
    if lost.failed_batches > 0 {
        let batches = match lost.failed_batches {
            1 => "1 batch".to_string(),
            n => format!("{n} batches"),
        };
        parts.push(format!(
            "{batches} failed ({})",
            plural(lost.failed_events, "event")
        ));
    }
    format!("usage: {}", parts.join(", "))
}
