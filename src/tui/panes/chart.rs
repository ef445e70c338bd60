//! The usage chart (`u`): the selected key's requests and errors per UTC
//! day over the last 30 days, with dated and counted axes — what the
//! details' sparkline shows, readable.

use chrono::TimeDelta;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph};

use crate::rules::visible;
use crate::tui::app::App;
use crate::tui::layout;
use crate::tui::theme::Theme;
use crate::tui::ui::clear;

pub fn render(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let rect = layout::mcps_dialog(area);
    clear(frame, rect);
    let Some(key) = app.selected_key() else {
        return;
    };
    let block = super::view_block(
        format!(
            " {} ({}) · requests and errors per day, 30 days ",
            visible(&key.name),
            key.prefix()
        ),
        " any key closes ",
        theme,
    );
    let usage = app
        .detail
        .as_ref()
        .filter(|d| d.key_row == key.row_id)
        .map(|d| &d.usage);
    let Some(usage) = usage else {
        frame.render_widget(
            Paragraph::new("loading…").style(theme.dim()).block(block),
            rect,
        );
        return;
    };
    let points = |counts: &[u64]| -> Vec<(f64, f64)> {
        counts
            .iter()
            .enumerate()
            .map(|(day, n)| (day as f64, *n as f64))
            .collect()
    };
    let requests = points(&usage.per_day);
    let errors = points(&usage.errors_per_day);
    let days = usage.per_day.len().max(1);
    let top = usage.per_day.iter().copied().max().unwrap_or(0).max(1);
    // A round top (1, 2, 5 × 10^n) so the middle label is a whole number too.
    let top = nice_ceiling(top);
    let date = |back: usize| {
        let day = app.now - TimeDelta::days(i64::try_from(back).unwrap_or(0));
        day.format("%m-%d").to_string()
    };
    let x_labels = vec![
        Span::raw(date(days - 1)),
        Span::raw(date(days / 2)),
        Span::raw(format!("{} today", date(0))),
    ];
    let y_labels = vec![
        Span::raw("0"),
        Span::raw((top / 2).to_string()),
        Span::raw(top.to_string()),
    ];
    let total_errors: u64 = usage.errors_per_day.iter().sum();
    let total: u64 = usage.per_day.iter().sum();
    let datasets = vec![
        Dataset::default()
            .name(format!("requests ({total})"))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.accent())
            .data(&requests),
        Dataset::default()
            .name(format!("errors ({total_errors})"))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme.warn())
            .data(&errors),
    ];
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .title(Span::styled("day", theme.dim()))
                .style(Style::default())
                .bounds([0.0, (days - 1) as f64])
                .labels(x_labels),
        )
        .y_axis(
            Axis::default()
                .title(Span::styled("requests", theme.dim()))
                .bounds([0.0, top as f64])
                .labels(y_labels),
        );
    frame.render_widget(chart, rect);
}

/// The smallest 1, 2 or 5 × 10^n at least `n`.
fn nice_ceiling(n: u64) -> u64 {
    let mut scale = 1u64;
    loop {
        for step in [1u64, 2, 5] {
            let candidate = step.saturating_mul(scale);
            if candidate >= n {
                return candidate;
            }
        }
        match scale.checked_mul(10) {
            Some(next) => scale = next,
            None => return n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nice_ceiling;

    #[test]
    fn the_axis_top_is_round_and_covers_the_busiest_day() {
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(96), 100);
        assert_eq!(nice_ceiling(101), 200);
        assert_eq!(nice_ceiling(1190), 2000);
        assert_eq!(nice_ceiling(u64::MAX), u64::MAX);
    }
}
