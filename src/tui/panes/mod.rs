//! One module per pane or dialog; each draws from `&App` (or a part of it).

pub mod audit;
pub mod chart;
pub mod detail;
pub mod dialogs;
pub mod forms;
pub mod key_list;
pub mod mcps;
pub mod palette;
pub mod status_bar;
pub mod withheld;

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Block;
use unicode_width::UnicodeWidthChar;

use crate::domain::Timestamp;
use crate::tui::scroll::Window;
use crate::tui::theme::Theme;

/// The border of a view over most of the screen (MCPs, withheld tools,
/// the usage chart): its title, and its keys along the bottom.
pub fn view_block<'a>(title: String, hint: &'a str, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .title(Line::styled(title, theme.bold()))
        .title_bottom(Line::styled(hint, theme.dim()))
        .border_style(theme.border(true))
}

/// Marks on a list's border that say it goes on past its window:
/// `↑ 3 more` at the top right, `↓ 12 more` at the bottom right.
pub fn with_more_marks<'a>(block: Block<'a>, shown: &Window, theme: &Theme) -> Block<'a> {
    let mut block = block;
    if shown.above > 0 {
        block = block.title_top(
            Line::styled(format!(" ↑ {} more ", shown.above), theme.accent()).right_aligned(),
        );
    }
    if shown.below > 0 {
        block = block.title_bottom(
            Line::styled(format!(" ↓ {} more ", shown.below), theme.accent()).right_aligned(),
        );
    }
    block
}

/// `line` cut to `width` columns, ending in `…` when something was cut, so
/// a long value takes one line instead of pushing the rest down.
pub fn one_line(line: Line<'_>, width: usize) -> Line<'_> {
    if line.width() <= width {
        return line;
    }
    let room = width.saturating_sub(1); // the ellipsis
    let mut used = 0;
    let mut spans = Vec::with_capacity(line.spans.len() + 1);
    for span in line.spans {
        let mut kept = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > room {
                break;
            }
            used += w;
            kept.push(c);
        }
        let full = kept.len() == span.content.len();
        spans.push(Span::styled(kept, span.style));
        if !full {
            break;
        }
    }
    if width > 0 {
        spans.push(Span::raw("…"));
    }
    Line::from(spans).style(line.style)
}

/// Splits `text` into lines of at most `width` characters at spaces; a word
/// longer than a line is cut.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..width).collect());
        }
        let used = line.chars().count();
        if used > 0 && used + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.extend(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `line` broken into lines of at most `width` columns, at spaces where
/// it can be (a word longer than a line is cut), the second and later
/// lines starting `indent` columns in, so wrapped text never runs back to
/// column 0 under its label.
pub fn wrap_line(line: Line<'_>, width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let indent = if indent * 2 > width { 0 } else { indent };
    let chars: Vec<(char, Style)> = line
        .spans
        .iter()
        .flat_map(|span| span.content.chars().map(move |c| (c, span.style)))
        .collect();
    let mut rows: Vec<Vec<(char, Style)>> = Vec::new();
    let mut row: Vec<(char, Style)> = Vec::new();
    let mut used = 0;
    let start = |rows: &Vec<Vec<(char, Style)>>| if rows.is_empty() { 0 } else { indent };
    for (c, style) in chars {
        let w = c.width().unwrap_or(0);
        let first = start(&rows);
        if used + w > width && row.len() > first {
            // Break after the row's last space past the indent (on the first
            // row that is the label's column, which keeps a value beside it).
            let from = indent.min(row.len());
            let cut = row[from..]
                .iter()
                .rposition(|(c, _)| *c == ' ')
                .map(|at| from + at + 1)
                .filter(|&at| at < row.len());
            let rest = cut.map(|at| row.split_off(at)).unwrap_or_default();
            rows.push(std::mem::take(&mut row));
            row = vec![(' ', Style::default()); indent];
            row.extend(rest);
            used = row.iter().map(|(c, _)| c.width().unwrap_or(0)).sum();
        }
        if row.len() == start(&rows) && !rows.is_empty() && c == ' ' {
            continue; // no line starts with the space it broke at
        }
        used += w;
        row.push((c, style));
    }
    rows.push(row);
    rows.into_iter()
        .map(|row| {
            let mut spans: Vec<Span<'static>> = Vec::new();
            for (c, style) in row {
                match spans.last_mut() {
                    Some(last) if last.style == style => last.content.to_mut().push(c),
                    _ => spans.push(Span::styled(c.to_string(), style)),
                }
            }
            Line::from(spans).style(line.style)
        })
        .collect()
}

/// A compact age such as `5m ago`, `3h ago`, `12d ago`.
pub fn ago(now: Timestamp, at: Timestamp) -> String {
    let secs = (now - at).num_seconds();
    match secs {
        i64::MIN..=-1 => "just now".to_string(),
        0..60 => "just now".to_string(),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// A compact time left such as `in 3d`, `in 5h`, `in 12m`.
pub fn until(now: Timestamp, at: Timestamp) -> String {
    let secs = (at - now).num_seconds();
    match secs {
        i64::MIN..60 => "in <1m".to_string(),
        60..3600 => format!("in {}m", secs / 60),
        3600..86_400 => format!("in {}h", secs / 3600),
        _ => format!("in {}d", secs / 86_400),
    }
}

pub fn date(at: Timestamp) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Month, day and time: enough for an activity log that spans weeks.
pub fn short_time(at: Timestamp) -> String {
    at.format("%m-%d %H:%M").to_string()
}

/// `1 error`, `3 errors`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn date_time(at: Timestamp) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A one-line sparkline of block characters, scaled to the largest value.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| match v {
            0 => '·',
            _ => {
                let level = (v.saturating_mul(7) + max - 1) / max.max(1);
                BARS[usize::try_from(level).unwrap_or(7).min(7)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_cuts_with_an_ellipsis_and_keeps_styles() {
        let bold = ratatui::style::Style::default().bold();
        let line = Line::from(vec![Span::styled("Name ", bold), Span::raw("abcdefgh")]);
        assert_eq!(one_line(line.clone(), 20), line);
        let cut = one_line(line.clone(), 8);
        assert_eq!(cut.to_string(), "Name ab…");
        assert_eq!(cut.spans[0].style, bold);
        assert_eq!(one_line(line.clone(), 3).to_string(), "Na…");
        assert_eq!(one_line(line, 0).to_string(), "");
        // Wide characters never overflow the width.
        let wide = one_line(Line::from("生产服务器"), 6);
        assert_eq!(wide.to_string(), "生产…");
        assert!(wide.width() <= 6);
    }

    #[test]
    fn wrap_line_continues_under_the_indent_and_keeps_styles() {
        let dim = ratatui::style::Style::default().dim();
        let line = Line::from(vec![Span::styled("Tool  ", dim), Span::raw("abcdefghij")]);
        let lines: Vec<String> = wrap_line(line.clone(), 12, 6)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lines, ["Tool  abcdef", "      ghij"]);
        // Words move to the next line whole when they can.
        let words: Vec<String> = wrap_line(Line::from("one two three four"), 9, 2)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(words, ["one two ", "  three ", "  four"]);
        assert_eq!(wrap_line(line.clone(), 8, 2)[0].spans[0].style, dim);
        assert_eq!(wrap_line(line.clone(), 40, 2).len(), 1);
        // An indent too big for the width is dropped rather than looping.
        assert_eq!(wrap_line(Line::from("abcdef"), 2, 5).len(), 3);
        for width in 0..4 {
            for l in wrap_line(line.clone(), width, 1) {
                assert!(l.width() <= width.max(1), "{width}: {l:?}");
            }
        }
    }

    #[test]
    fn sparkline_scales_to_the_peak() {
        assert_eq!(sparkline(&[0, 1, 4, 8]), "·▂▅█");
        assert_eq!(sparkline(&[0, 0]), "··");
        assert_eq!(sparkline(&[]), "");
    }
}
