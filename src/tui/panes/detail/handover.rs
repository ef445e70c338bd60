//! A rotated key's side of the hand-over in the details: which key
//! replaced it, its idle limit, and — while it still works — the client
//! addresses that used it in the last hour, so the operator can watch the
//! cutover finish before the grace ends.

use chrono::TimeDelta;
use ratatui::text::{Line, Span};

use super::field;
use crate::domain::{KeyRecord, KeyStatus, Timestamp};
use crate::rules::{self, visible};
use crate::store::ClientIp;
use crate::tui::action::Detail;
use crate::tui::panes::{ago, date_time};
use crate::tui::theme::Theme;

/// How far back "still used by" looks.
pub const RECENT_USE: TimeDelta = TimeDelta::hours(1);

/// The lines for a replaced key; none for any other.
pub fn lines<'a>(
    key: &'a KeyRecord,
    detail: Option<&'a Detail>,
    now: Timestamp,
    theme: &Theme,
) -> Vec<Line<'a>> {
    let s = &key.succession;
    let Some(by) = &s.replaced_by else {
        return Vec::new();
    };
    let when = s
        .replaced_at
        .map(|at| format!(" on {}", date_time(at)))
        .unwrap_or_default();
    let mut out = vec![field(
        "Replaced by",
        format!("pmcp_{}{when}", visible(by)),
        theme,
    )];
    if let (Some(limit), Some(end)) = (s.idle_limit, s.idle_end()) {
        let state = if end <= now {
            format!("ended {}", date_time(end))
        } else {
            format!("ends in {} unless used", rules::time_left(now, end))
        };
        out.push(field(
            "Idle limit",
            format!("{} unused ({state})", rules::span_words(limit)),
            theme,
        ));
    }
    // Once the old key has stopped, nobody can still be using it.
    if key.status(now) == KeyStatus::Active {
        let used = match detail {
            None => Span::styled("loading…", theme.dim()),
            Some(detail) => used_by(&recent_clients(&detail.usage.clients, now), now, theme),
        };
        out.push(field("Used by 1h", used, theme));
    }
    out
}

/// The clients seen within `RECENT_USE` of `now`, most recent first (the
/// usage read keeps them in that order).
pub fn recent_clients(clients: &[ClientIp], now: Timestamp) -> Vec<&ClientIp> {
    clients
        .iter()
        .filter(|c| now - c.last_seen <= RECENT_USE)
        .collect()
}

fn used_by<'a>(clients: &[&ClientIp], now: Timestamp, theme: &Theme) -> Span<'a> {
    if clients.is_empty() {
        // The cutover looks done: the operator may revoke the old key.
        return Span::styled("no client in the last hour", theme.ok());
    }
    let names: Vec<String> = clients
        .iter()
        .map(|c| format!("{} ({})", visible(&c.ip), ago(now, c.last_seen)))
        .collect();
    Span::styled(names.join(", "), theme.warn())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn recent_clients_are_the_ones_seen_within_the_hour() {
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        let seen = |ip: &str, mins| ClientIp {
            ip: ip.into(),
            first_seen: now - TimeDelta::days(3),
            last_seen: now - TimeDelta::minutes(mins),
            requests: 1,
        };
        let clients = [
            seen("10.0.0.1", 2),
            seen("10.0.0.2", 60),
            seen("10.0.0.3", 61),
        ];
        let recent: Vec<&str> = recent_clients(&clients, now)
            .iter()
            .map(|c| c.ip.as_str())
            .collect();
        assert_eq!(recent, ["10.0.0.1", "10.0.0.2"]);
    }
}
