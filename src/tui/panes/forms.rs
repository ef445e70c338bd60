//! Drawing the key form (create / edit) and the MCP form. Each field shows
//! its own validation error beneath it.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use tui_input::Input;

use unicode_width::UnicodeWidthStr;

use crate::access_preview::{ToolList, change_lines, tools};
use crate::rules::{Field, visible};
use crate::tui::forms::{EXPIRY_CHOICES, KeyField, KeyForm, McpField, McpForm, ToolPicker};
use crate::tui::panes::wrap;
use crate::tui::scroll;
use crate::tui::theme::Theme;
use crate::tui::ui::{centered, clear};

const LABEL: usize = 14;

/// Lines being built plus where the text cursor belongs.
struct FormLines<'a> {
    lines: Vec<Line<'a>>,
    cursor: Option<(u16, u16)>,
}

impl<'a> FormLines<'a> {
    fn label(name: &str, focused: bool, theme: &Theme) -> Span<'a> {
        let marker = if focused { "▶ " } else { "  " };
        let style = if focused { theme.accent() } else { theme.dim() };
        Span::styled(format!("{marker}{name:<width$}", width = LABEL - 2), style)
    }

    fn text(&mut self, name: &str, input: &Input, focused: bool, width: usize, theme: &Theme) {
        let room = width.saturating_sub(LABEL + 1).max(1);
        let (shown, cursor) = window(input, room);
        if focused {
            self.cursor = Some((
                u16::try_from(LABEL + cursor).unwrap_or(0),
                u16::try_from(self.lines.len()).unwrap_or(0),
            ));
        }
        let value = if focused {
            Span::styled(shown, theme.bold())
        } else {
            Span::raw(shown)
        };
        self.lines
            .push(Line::from(vec![Self::label(name, focused, theme), value]));
    }

    fn choice(&mut self, name: &str, value: String, focused: bool, theme: &Theme) {
        let value = if focused {
            Span::styled(format!("◀ {value} ▶"), theme.bold())
        } else {
            Span::raw(format!("  {value}"))
        };
        self.lines
            .push(Line::from(vec![Self::label(name, focused, theme), value]));
    }

    /// A field's error under it, aligned with the values and wrapped.
    fn error(&mut self, message: Option<&str>, width: usize, theme: &Theme) {
        if let Some(message) = message {
            for part in wrap(&visible(message), width.saturating_sub(LABEL)) {
                self.lines
                    .push(Line::styled(format!("{:LABEL$}{part}", ""), theme.error()));
            }
        }
    }

    fn finish(
        mut self,
        general: Option<&str>,
        busy: bool,
        help: &'a str,
        width: usize,
        theme: &Theme,
    ) -> Self {
        self.lines.push(Line::default());
        if let Some(general) = general {
            for part in wrap(&visible(general), width) {
                self.lines.push(Line::styled(part, theme.error()));
            }
        }
        if busy {
            self.lines.push(Line::styled("Saving…", theme.dim()));
        }
        self.lines.push(Line::styled(help, theme.dim()));
        self
    }

    fn draw(self, title: &str, frame: &mut Frame, area: Rect, width: u16, theme: &Theme) {
        let height = u16::try_from(self.lines.len())
            .unwrap_or(u16::MAX)
            .saturating_add(2);
        let rect = centered(area, width, height);
        clear(frame, rect);
        let block = Block::bordered()
            .title(Line::styled(format!(" {title} "), theme.bold()))
            .border_style(theme.border(true));
        frame.render_widget(Paragraph::new(self.lines).block(block), rect);
        if let Some((x, y)) = self.cursor {
            let position = Position::new(rect.x + 1 + x, rect.y + 1 + y);
            if rect.contains(position) {
                frame.set_cursor_position(position);
            }
        }
    }
}

pub fn key_form(form: &KeyForm, frame: &mut Frame, area: Rect, theme: &Theme) {
    let width: u16 = 72;
    let inner = usize::from(width - 2);
    let mut f = FormLines {
        lines: Vec::new(),
        cursor: None,
    };
    f.text(
        "Name",
        &form.name,
        form.focus == KeyField::Name,
        inner,
        theme,
    );
    f.error(form.error_for(Field::Name), inner, theme);
    f.text(
        "Description",
        &form.description,
        form.focus == KeyField::Description,
        inner,
        theme,
    );
    f.error(form.error_for(Field::Description), inner, theme);
    if form.editing.is_none() {
        f.choice(
            "Expiration",
            EXPIRY_CHOICES[form.expiry].0.to_string(),
            form.focus == KeyField::Expiry,
            theme,
        );
        if form.expiry == EXPIRY_CHOICES.len() - 1 {
            f.text(
                "  Date",
                &form.custom_date,
                form.focus == KeyField::CustomDate,
                inner,
                theme,
            );
            if form.custom_date.value().is_empty() {
                f.lines.push(Line::styled(
                    format!("{:LABEL$}YYYY-MM-DD (end of day, UTC)", ""),
                    theme.dim(),
                ));
            }
        }
        f.error(form.error_for(Field::Expiry), inner, theme);
    }
    f.text(
        "Rate limit",
        &form.rate_limit,
        form.focus == KeyField::RateLimit,
        inner,
        theme,
    );
    if form.burst_shown() {
        f.text(
            "  Burst",
            &form.burst,
            form.focus == KeyField::Burst,
            inner,
            theme,
        );
        if form.burst.value().is_empty() {
            f.lines.push(Line::styled(
                format!("{:LABEL$}blank: as many as the rate's count", ""),
                theme.dim(),
            ));
        }
    } else {
        f.lines.push(Line::styled(
            format!(
                "{:LABEL$}120/min, 5/s or 1000/h; blank: the org's default",
                ""
            ),
            theme.dim(),
        ));
    }
    f.error(form.error_for(Field::RateLimit), inner, theme);
    let access = if form.all_mcps {
        "All MCPs (including ones added later)"
    } else {
        "Specific MCPs"
    };
    f.choice(
        "MCP Access",
        access.to_string(),
        form.focus == KeyField::Access,
        theme,
    );
    if !form.all_mcps && form.mcps.is_empty() {
        f.lines.push(Line::styled(
            format!("{:LABEL$}no MCPs yet: add them in the MCPs view (m)", ""),
            theme.warn(),
        ));
    }
    // The checklist goes in last, in whatever height the rest leaves.
    let checklist_at = f.lines.len();
    f.error(form.error_for(Field::McpAccess), inner, theme);
    // An edit says what saving it changes in what the key can call.
    if let Some(before) = form.access_before() {
        for line in change_lines(&before, &form.access_after()) {
            for part in wrap(&visible(&line), inner.saturating_sub(LABEL)) {
                f.lines
                    .push(Line::styled(format!("{:LABEL$}{part}", ""), theme.accent()));
            }
        }
    }
    let title = match &form.editing {
        Some(key) => format!("Edit key {}", visible(&key.prefix())),
        None => "Create API key".to_string(),
    };
    let mut f = f.finish(
        form.general_error.as_deref(),
        form.busy,
        "Tab move · ←/→ choose · Space tick · t tools · Enter save · Esc cancel",
        inner,
        theme,
    );
    if !form.all_mcps {
        let room = usize::from(area.height.saturating_sub(2)).saturating_sub(f.lines.len());
        let checklist = checklist(form, room, theme);
        f.lines.splice(checklist_at..checklist_at, checklist);
    }
    f.draw(&title, frame, area, width, theme);
    if let Some(picker) = &form.picker {
        tool_picker(picker, frame, area, theme);
    }
}

/// The tool picker over the key form: "All tools", then the upstream's
/// tools (and chosen names it does not list), then a field to type one.
fn tool_picker(picker: &ToolPicker, frame: &mut Frame, area: Rect, theme: &Theme) {
    let width: u16 = 64;
    let inner = usize::from(width - 2);
    let mut f = FormLines {
        lines: Vec::new(),
        cursor: None,
    };
    let state = match &picker.listed {
        ToolList::Pending => Line::styled("asking the upstream for its tools…", theme.dim()),
        ToolList::Listed { names, withheld } if names.is_empty() && withheld.is_empty() => {
            Line::styled("the upstream lists no tools now", theme.dim())
        }
        ToolList::Listed { names, withheld } if withheld.is_empty() => Line::styled(
            format!("the upstream lists {}", tools(names.len())),
            theme.dim(),
        ),
        // Withheld tools can still be granted (typed below); they become
        // callable once approved.
        ToolList::Listed { names, withheld } => Line::styled(
            format!(
                "the upstream lists {}; {} withheld by pinning",
                tools(names.len()),
                withheld.len()
            ),
            theme.dim(),
        ),
        ToolList::Unreachable(why) => Line::styled(
            format!("{}: type tool names below", visible(why)),
            theme.warn(),
        ),
    };
    f.lines.push(state);
    let names = picker.names();
    let rows: Vec<(String, bool, bool)> =
        std::iter::once(("All tools".to_owned(), picker.all, true))
            .chain(names.iter().map(|(name, listed)| {
                (
                    visible(name).into_owned(),
                    !picker.all && picker.is_ticked(name),
                    *listed,
                )
            }))
            .collect();
    // Room for the rows: the screen less the box, the state line, the add
    // field, its error, the help and the "more" marks.
    let room = usize::from(area.height.saturating_sub(2))
        .saturating_sub(8)
        .max(1);
    let window = scroll::window(
        picker.cursor.min(rows.len().saturating_sub(1)),
        0,
        rows.len(),
        room,
    );
    if window.start > 0 {
        f.lines.push(Line::styled(
            format!("  ↑ {} more", window.start),
            theme.accent(),
        ));
    }
    for (i, (name, ticked, listed)) in rows[window.start..window.end].iter().enumerate() {
        let text = format!(
            "  [{}] {name}{}",
            if *ticked { "x" } else { " " },
            if *listed { "" } else { "  (not listed now)" }
        );
        f.lines.push(if window.start + i == picker.cursor {
            Line::styled(text, theme.selected())
        } else if *listed {
            Line::from(text)
        } else {
            Line::styled(text, theme.dim())
        });
    }
    if window.end < rows.len() {
        f.lines.push(Line::styled(
            format!("  ↓ {} more", rows.len() - window.end),
            theme.accent(),
        ));
    }
    f.text(
        "Add tool",
        &picker.typed,
        picker.cursor == picker.add_row(),
        inner,
        theme,
    );
    f.error(picker.error.as_deref(), inner, theme);
    f.finish(
        None,
        false,
        "↑/↓ move · Space tick · Enter done · Esc cancel",
        inner,
        theme,
    )
    .draw(
        &format!("Tools of {}", visible(&picker.slug)),
        frame,
        area,
        width,
        theme,
    );
}

/// The MCP checklist in at most `room` lines: when it is longer, a window
/// that follows the cursor between lines saying how many are hidden.
fn checklist<'a>(form: &KeyForm, room: usize, theme: &Theme) -> Vec<Line<'a>> {
    let len = form.mcps.len();
    let scrolls = len > room;
    // Two lines go to the "more" marks, but at least one MCP always shows.
    let rows = if scrolls {
        room.saturating_sub(2).max(1)
    } else {
        len
    };
    let shown = scroll::window(form.mcp_cursor, 0, len, rows);
    // Ticked MCPs out of view are counted, so none is chosen unseen.
    let mark = |arrow: &str, hidden: &[(String, bool)]| {
        if hidden.is_empty() {
            return Line::default();
        }
        let ticked = hidden.iter().filter(|(_, on)| *on).count();
        let ticked = if ticked > 0 {
            format!(" ({ticked} ticked)")
        } else {
            String::new()
        };
        Line::styled(
            format!("{:LABEL$}{arrow} {} more{ticked}", "", hidden.len()),
            theme.accent(),
        )
    };
    let mut lines = Vec::with_capacity(rows + 2);
    if scrolls {
        lines.push(mark("↑", &form.mcps[..shown.start]));
    }
    for (i, (slug, on)) in form.mcps[shown.start..shown.end].iter().enumerate() {
        let focused = form.focus == KeyField::McpList && shown.start + i == form.mcp_cursor;
        // Which of its tools, once ticked: all, or the chosen names.
        let tools = match (on, form.tool_limits.get(slug)) {
            (false, _) => String::new(),
            (true, None) => "  all tools".to_owned(),
            (true, Some(names)) => format!("  only {}", names.join(", ")),
        };
        let text = format!(
            "{:LABEL$}[{}] {}{}",
            "",
            if *on { "x" } else { " " },
            visible(slug),
            visible(&tools)
        );
        lines.push(if focused {
            Line::styled(text, theme.selected())
        } else {
            Line::from(text)
        });
    }
    if scrolls {
        lines.push(mark("↓", &form.mcps[shown.end..]));
    }
    lines
}

pub fn mcp_form(form: &McpForm, frame: &mut Frame, area: Rect, theme: &Theme) {
    let width: u16 = 76;
    let inner = usize::from(width - 2);
    let mut f = FormLines {
        lines: Vec::new(),
        cursor: None,
    };
    f.text("ID", &form.id, form.focus == McpField::Id, inner, theme);
    f.error(form.error_for(Field::Slug), inner, theme);
    f.text(
        "Name",
        &form.name,
        form.focus == McpField::Name,
        inner,
        theme,
    );
    f.error(form.error_for(Field::Name), inner, theme);
    let kind = if form.stdio {
        "stdio command"
    } else {
        "Streamable HTTP URL"
    };
    f.choice(
        "Transport",
        kind.to_string(),
        form.focus == McpField::Transport,
        theme,
    );
    let target = if form.stdio { "Command" } else { "URL" };
    f.text(
        target,
        &form.target,
        form.focus == McpField::Target,
        inner,
        theme,
    );
    f.error(
        form.error_for(Field::Command)
            .or(form.error_for(Field::Url)),
        inner,
        theme,
    );
    f.text(
        "Timeout (s)",
        &form.timeout,
        form.focus == McpField::Timeout,
        inner,
        theme,
    );
    f.error(form.error_for(Field::Timeout), inner, theme);
    f.finish(
        form.general_error.as_deref(),
        form.busy,
        "Tab move · Enter save · Esc cancel · env/headers: CLI mcps add",
        inner,
        theme,
    )
    .draw("Add MCP server", frame, area, width, theme);
}

/// What of `input` fits in `room` columns around its cursor, and the
/// cursor's column in it. A character the rules refuse (an invisible or
/// direction-changing one, typed or in a name stored long ago) is shown
/// escaped by `visible`, as every pane shows it, so it can be seen and
/// deleted but never acts.
fn window(input: &Input, room: usize) -> (String, usize) {
    let pieces: Vec<String> = input
        .value()
        .chars()
        .map(|c| visible(c.encode_utf8(&mut [0; 4])).into_owned())
        .collect();
    let width = |piece: &String| piece.width();
    let cursor = input.cursor().min(pieces.len());
    let mut first = 0;
    let mut before: usize = pieces[..cursor].iter().map(width).sum();
    while before > room && first < cursor {
        before -= width(&pieces[first]);
        first += 1;
    }
    let mut shown = String::new();
    let mut used = 0;
    for piece in &pieces[first..] {
        if used + width(piece) > room {
            break;
        }
        used += width(piece);
        shown.push_str(piece);
    }
    (shown, before)
}

#[cfg(test)]
mod tests {
    use super::window;
    use crate::tui::panes::wrap;
    use tui_input::Input;

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij x", 4), ["abcd", "efgh", "ij x"]);
        assert_eq!(wrap("", 4), [""]);
        assert_eq!(wrap("fits", 10), ["fits"]);
    }

    #[test]
    fn a_field_scrolls_to_its_cursor_and_shows_refused_characters_as_marks() {
        assert_eq!(window(&Input::new("abc".into()), 10), ("abc".into(), 3));
        assert_eq!(window(&Input::new("abcdef".into()), 4), ("cdef".into(), 4));
        let raw = Input::new("evil\u{202E}gnp".into());
        assert_eq!(window(&raw, 30), ("evil\\u{202E}gnp".into(), 15));
        let wide = Input::new("生产服务器".into());
        assert_eq!(window(&wide, 6), ("服务器".into(), 6));
    }
}
