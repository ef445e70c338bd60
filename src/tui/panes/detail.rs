//! The selected key in full: details, permissions, usage statistics with
//! sparklines, busiest tools, client addresses (new ones flagged) and the
//! activity log mixing lifecycle events and recent requests.

mod handover;

use chrono::{DateTime, TimeDelta};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::{ago, date, date_time, one_line, plural, short_time, sparkline, wrap_line};
use crate::access_preview::Callable;
use crate::domain::{KeyRecord, KeyStatus, LimitSource, McpAccess};
use crate::rules::{self, visible};
use crate::store::KeyUsage;
use crate::tui::action::{DETAIL_RECENT, Detail};
use crate::tui::app::{App, Focus};
use crate::tui::theme::Theme;

pub fn render(app: &App, frame: &mut Frame, area: Rect, theme: &Theme) {
    let block = Block::bordered()
        .title(Line::styled(" Details ", theme.bold()))
        .border_style(theme.border(app.focus == Focus::Detail));
    let Some(key) = app.selected_key() else {
        frame.render_widget(
            Paragraph::new("Select a key to see its details.")
                .style(theme.dim())
                .block(block),
            area,
        );
        return;
    };
    let lines = shown_lines(app, key, usize::from(area.width.saturating_sub(2)), theme);
    // The state clamps its scroll too; this keeps a stale one from blanking the pane.
    let rows = usize::from(area.height.saturating_sub(2));
    let last_top = u16::try_from(lines.len().saturating_sub(rows)).unwrap_or(u16::MAX);
    let paragraph = Paragraph::new(lines)
        .block(block)
        .scroll((app.detail_scroll.min(last_top), 0));
    frame.render_widget(paragraph, area);
}

/// The details as drawn `width` columns wide: each line cut with `…`, or
/// wrapped under its value when the user asked for whole lines (`w`).
fn shown_lines<'a>(app: &'a App, key: &'a KeyRecord, width: usize, theme: &Theme) -> Vec<Line<'a>> {
    let lines = lines(app, key, app.selected_detail(), theme);
    if app.detail_wrap {
        lines
            .into_iter()
            .flat_map(|line| {
                // Fields continue under their value, list items under their text.
                let indent = if line.to_string().starts_with(' ') {
                    4
                } else {
                    LABEL
                };
                wrap_line(line, width, indent)
            })
            .collect()
    } else {
        lines
            .into_iter()
            .map(|line| one_line(line, width))
            .collect()
    }
}

/// How many lines the selected key's details take in the detail pane as
/// it is now, so scrolling can stop at the last one.
pub fn line_count(app: &App) -> usize {
    match app.selected_key() {
        None => 1,
        Some(key) => {
            let width = usize::from(app.detail_area.width.saturating_sub(2));
            shown_lines(app, key, width, &Theme { color: false }).len()
        }
    }
}

/// Width of a field's label column.
const LABEL: usize = 12;

fn field<'a>(label: &'a str, value: impl Into<Span<'a>>, theme: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<LABEL$}"), theme.dim()),
        value.into(),
    ])
}

fn heading<'a>(text: &'a str, theme: &Theme) -> Line<'a> {
    Line::styled(text, theme.accent())
}

fn lines<'a>(
    app: &'a App,
    key: &'a KeyRecord,
    detail: Option<&'a Detail>,
    theme: &Theme,
) -> Vec<Line<'a>> {
    let status = key.status(app.now);
    let status_style = match status {
        KeyStatus::Active => theme.ok(),
        KeyStatus::Expired => theme.warn(),
        KeyStatus::Revoked => theme.error(),
    };
    let mut status_text = status.label().to_string();
    if let (KeyStatus::Revoked, Some(at)) = (status, key.revoked_at) {
        status_text.push_str(&format!(
            " {} by {}",
            date_time(at),
            visible(key.revoked_by.as_deref().unwrap_or("?"))
        ));
    }
    let expires = expires_text(key, app.now);
    let mut out = vec![
        field(
            "Name",
            Span::styled(visible(&key.name), theme.bold()),
            theme,
        ),
        field(
            "Key",
            visible(&format!("{} (id {})", key.prefix(), key.id)).into_owned(),
            theme,
        ),
        field("Status", Span::styled(status_text, status_style), theme),
        field(
            "Description",
            visible(key.description.as_deref().unwrap_or("—")),
            theme,
        ),
        field(
            "Created",
            format!(
                "{} by {}",
                date_time(key.created_at),
                visible(&key.created_by)
            ),
            theme,
        ),
        field("Expires", expires, theme),
        field(
            "Last used",
            key.last_used_at
                .map_or_else(|| "Never".to_string(), |at| ago(app.now, at)),
            theme,
        ),
    ];
    if let Some(from) = &key.rotated_from {
        out.push(field("Replaces", format!("pmcp_{}", visible(from)), theme));
    }
    out.extend(handover::lines(key, detail, app.now, theme));
    out.push(field(
        "MCP access",
        match &key.access {
            McpAccess::All => "All MCPs (including ones added later)".to_string(),
            McpAccess::Only(grants) if grants.is_empty() => {
                "None (its MCPs were removed)".to_string()
            }
            McpAccess::Only(_) => visible(&key.access.describe()).into_owned(),
        },
        theme,
    ));
    if let Some(limit) = rate_limit_text(key, detail) {
        out.push(field("Rate limit", limit, theme));
    }
    out.push(Line::default());
    callable_lines(app, key, status, theme, &mut out);
    match detail {
        Some(detail) => {
            usage_lines(app, &detail.usage, theme, &mut out);
            activity_lines(detail, theme, &mut out);
        }
        None => out.push(Line::styled("Loading usage…", theme.dim())),
    }
    out
}

/// The expiry with the time left in words; under a day the hour matters
/// too ("in 3 h", never "in 0 days"). A replaced key that went unused past
/// its idle limit has ended although its date has not come.
fn expires_text(key: &KeyRecord, now: chrono::DateTime<chrono::Utc>) -> String {
    match key.expires_at {
        _ if key.idle_ended(now) && key.revoked_at.is_none() => {
            let at = key.expires_at.map_or_else(|| "Never".to_string(), date);
            format!("{at} (ended early: unused)")
        }
        None => "Never".to_string(),
        Some(at) if at <= now => format!("{} (expired)", date_time(at)),
        Some(at) if at - now < TimeDelta::days(1) => {
            format!("{} (in {})", date_time(at), rules::time_left(now, at))
        }
        Some(at) => format!("{} (in {})", date(at), rules::time_left(now, at)),
    }
}

/// "Can call now": the grant met with each upstream's live tool list (asked
/// for when the key is selected, at most once a minute per MCP).
fn callable_lines<'a>(
    app: &App,
    key: &KeyRecord,
    status: KeyStatus,
    theme: &Theme,
    out: &mut Vec<Line<'a>>,
) {
    out.push(heading("Can call now", theme));
    if status != KeyStatus::Active {
        out.push(Line::styled(
            format!("  nothing: the key is {}", status.as_str()),
            theme.warn(),
        ));
        out.push(Line::default());
        return;
    }
    let shown = app.access_now(key);
    if shown.is_empty() {
        out.push(Line::styled("  no MCPs", theme.dim()));
    }
    let width = shown.iter().map(|p| p.slug.len()).max().unwrap_or(0);
    for mcp in &shown {
        let style = match mcp.now {
            Callable::Tools { .. } => ratatui::style::Style::default(),
            Callable::Pending => theme.dim(),
            Callable::Unreachable(_) => theme.warn(),
        };
        out.push(Line::from(vec![
            Span::raw(format!("  {:width$}  ", visible(&mcp.slug))),
            Span::styled(visible(&mcp.summary()).into_owned(), style),
        ]));
    }
    out.push(Line::default());
}

/// The key's effective limit with this console's server's counts for it:
/// requests in the last minute and refusals since it started ("n/a" when
/// the console serves nothing: other processes count for themselves).
fn rate_limit_text(key: &KeyRecord, detail: Option<&Detail>) -> Option<String> {
    let (limit, from) = key.effective_rate_limit()?;
    let mut text = limit.to_string();
    if from == LimitSource::Org {
        text.push_str(" (org default)");
    }
    match detail.map(|d| d.rate) {
        Some(Some(rate)) => text.push_str(&format!(
            " · {} in the last minute · hit {}",
            rate.last_minute,
            plural(rate.hits, "time")
        )),
        Some(None) => text.push_str(" · current rate n/a (not serving)"),
        None => {}
    }
    Some(text)
}

fn usage_lines<'a>(app: &App, usage: &KeyUsage, theme: &Theme, out: &mut Vec<Line<'a>>) {
    out.push(heading("Usage", theme));
    out.push(field(
        "Requests",
        format!(
            "{} total · {} 24h · {} 7d · {} 30d",
            usage.total, usage.last_24h, usage.last_7d, usage.last_30d
        ),
        theme,
    ));
    let errors = match usage.error_rate() {
        Some(rate) => format!("{:.1}% errors (30d)", rate * 100.0),
        None => "no requests in 30d".to_string(),
    };
    let latency = usage.avg_latency_us.map_or_else(String::new, |us| {
        format!(" · avg {:.1} ms", us as f64 / 1000.0)
    });
    let error_style = if usage.errors_30d > 0 {
        theme.warn()
    } else {
        theme.ok()
    };
    out.push(field(
        "Errors",
        Span::styled(format!("{errors}{latency}"), error_style),
        theme,
    ));
    out.push(field(
        "Daily 30d",
        Span::styled(sparkline(&usage.per_day), theme.accent()),
        theme,
    ));
    out.push(field(
        "Hourly 24h",
        Span::styled(sparkline(&usage.per_hour), theme.accent()),
        theme,
    ));
    if !usage.by_tool.is_empty() {
        out.push(Line::default());
        out.push(heading("By MCP / tool (30d)", theme));
        for t in &usage.by_tool {
            let errors = if t.errors > 0 {
                format!(" ({})", plural(t.errors, "error"))
            } else {
                String::new()
            };
            // Tool names come from clients: shown escaped like any stored text.
            out.push(Line::from(format!(
                "  {}  {}{errors}",
                target(Some(&t.mcp), Some(&t.tool)),
                plural(t.requests, "request")
            )));
        }
    }
    if !usage.clients.is_empty() {
        out.push(Line::default());
        out.push(heading("Client IPs", theme));
        for c in &usage.clients {
            let mut spans = vec![Span::raw(format!(
                "  {} · first {} · last {} · {}",
                visible(&c.ip),
                short_time(c.first_seen),
                ago(app.now, c.last_seen),
                plural(c.requests, "request")
            ))];
            // The guide's "requests from unexpected locations": an address first seen in the last day.
            if app.now - c.first_seen < TimeDelta::hours(24) {
                spans.push(Span::styled("  NEW", theme.warn()));
            }
            out.push(Line::from(spans));
        }
    }
}

fn activity_lines<'a>(detail: &'a Detail, theme: &Theme, out: &mut Vec<Line<'a>>) {
    out.push(Line::default());
    out.push(heading("Activity", theme));
    // Lifecycle events and requests, newest first.
    let mut items: Vec<(i64, Line<'a>)> = Vec::new();
    for e in &detail.audit {
        let who = match &e.actor_addr {
            Some(addr) => format!("{} ({addr})", e.actor),
            None => e.actor.clone(),
        };
        let who = visible(&who);
        let detail_text = e
            .detail
            .as_deref()
            .map(|d| format!(" — {}", visible(d)))
            .unwrap_or_default();
        items.push((
            e.at.timestamp_millis(),
            Line::from(vec![
                Span::styled(format!("  {} ", short_time(e.at)), theme.dim()),
                Span::styled(visible(&e.action).into_owned(), theme.bold()),
                Span::raw(format!(" by {who}{detail_text}")),
            ]),
        ));
    }
    for r in &detail.usage.recent {
        let at = DateTime::from_timestamp_millis(r.at_ms).unwrap_or_default();
        let style = if r.http_status >= 400 {
            theme.error()
        } else {
            theme.ok()
        };
        let target = target(r.mcp.as_deref(), r.tool.as_deref());
        // Who called: the user agent, when the client sent one.
        let agent = r
            .user_agent
            .as_deref()
            .map(|ua| format!(" · {}", visible(ua)))
            .unwrap_or_default();
        items.push((
            r.at_ms,
            Line::from(vec![
                Span::styled(format!("  {} ", short_time(at)), theme.dim()),
                Span::styled(format!("{} ", r.http_status), style),
                Span::raw(format!(
                    "{target}{} {:.1}ms {}{agent}",
                    if r.http_status >= 400 {
                        format!(" {}", visible(&r.outcome))
                    } else {
                        String::new()
                    },
                    r.latency_us as f64 / 1000.0,
                    visible(r.client_ip.as_deref().unwrap_or("-"))
                )),
            ]),
        ));
    }
    items.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    if items.is_empty() {
        out.push(Line::styled("  nothing yet", theme.dim()));
    }
    out.extend(items.into_iter().map(|(_, line)| line));
    // A short list must not read as the key's whole history; short enough
    // for the details' width at 120 columns.
    let capped = match (detail.more_requests, detail.more_events) {
        (true, true) => Some(format!(
            "  only the latest {DETAIL_RECENT} requests and {DETAIL_RECENT} events"
        )),
        (true, false) => Some(format!("  only the latest {DETAIL_RECENT} requests")),
        (false, true) => Some(format!(
            "  only the latest {DETAIL_RECENT} events · plexmcp audit"
        )),
        (false, false) => None,
    };
    out.extend(capped.map(|note| Line::styled(note, theme.dim())));
}

/// `mcp/tool` as the breakdown and the Activity list both show it: a part
/// the request never named (invalid JSON, no tool) is `-` in both.
fn target(mcp: Option<&str>, tool: Option<&str>) -> String {
    let part = |p: Option<&str>| match p {
        Some(p) if !p.is_empty() => visible(p).into_owned(),
        _ => "-".to_string(),
    };
    format!("{}/{}", part(mcp), part(tool))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RateLimit, RatePeriod};
    use crate::server::rate_limits::RateSnapshot;

    fn limited(own: Option<RateLimit>, org: Option<RateLimit>) -> KeyRecord {
        KeyRecord {
            row_id: 1,
            org_id: 1,
            id: "Ab3dE5fG".into(),
            name: "k".into(),
            description: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            created_by: "t".into(),
            expires_at: None,
            revoked_at: None,
            revoked_by: None,
            rotated_from: None,
            last_used_at: None,
            request_count: 0,
            access: McpAccess::All,
            rate_limit: own,
            org_rate_limit: org,
            succession: Default::default(),
        }
    }

    fn detail(rate: Option<RateSnapshot>) -> Detail {
        Detail {
            key_row: 1,
            usage: KeyUsage::default(),
            audit: Vec::new(),
            more_requests: false,
            more_events: false,
            rate,
        }
    }

    #[test]
    fn expiry_says_the_time_left_in_words_with_the_hour_under_a_day() {
        let now = chrono::DateTime::UNIX_EPOCH + TimeDelta::days(20_000);
        let mut key = limited(None, None);
        assert_eq!(expires_text(&key, now), "Never");
        key.expires_at = Some(now + TimeDelta::hours(3));
        let text = expires_text(&key, now);
        assert!(text.ends_with(" UTC (in 3 h)"), "{text}");
        key.expires_at = Some(now + TimeDelta::days(2) + TimeDelta::hours(4));
        assert!(expires_text(&key, now).ends_with(" (in 2 days 4 h)"));
        key.expires_at = Some(now - TimeDelta::minutes(1));
        assert!(expires_text(&key, now).ends_with(" UTC (expired)"));
        // Unused past its idle limit: ended although its date is ahead.
        key.expires_at = Some(now + TimeDelta::days(2));
        key.succession.replaced_at = Some(now - TimeDelta::hours(2));
        key.succession.idle_limit = Some(TimeDelta::minutes(30));
        assert!(expires_text(&key, now).ends_with(" (ended early: unused)"));
    }

    #[test]
    fn the_rate_limit_line_says_the_limit_its_source_and_this_servers_counts() {
        let limit = RateLimit {
            requests: 120,
            per: RatePeriod::Minute,
            burst: 20,
        };
        assert_eq!(
            rate_limit_text(&limited(None, None), None),
            None,
            "no limit: no line"
        );
        let serving = detail(Some(RateSnapshot {
            last_minute: 14,
            hits: 1,
        }));
        assert_eq!(
            rate_limit_text(&limited(Some(limit), None), Some(&serving)).as_deref(),
            Some("120/min, burst 20 · 14 in the last minute · hit 1 time")
        );
        assert_eq!(
            rate_limit_text(&limited(None, Some(limit)), Some(&detail(None))).as_deref(),
            Some("120/min, burst 20 (org default) · current rate n/a (not serving)")
        );
        assert_eq!(
            rate_limit_text(&limited(None, Some(limit)), None).as_deref(),
            Some("120/min, burst 20 (org default)"),
            "before the counts load"
        );
    }
}
