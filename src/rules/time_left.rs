//! Spans of time as people read them — `3 h`, `2 days 4 h`, `45 min` —
//! for "expires in …" in the CLI and the console alike, and the spans
//! operators type (`--grace 24h`, `--revoke-when-idle 30m`,
//! `--expiring 7d`), read by one parser so every front end agrees.

use chrono::TimeDelta;

use super::{Field, RuleError};
use crate::domain::Timestamp;

/// The time from `now` to `at` in words, to the minute under a day and to
/// the hour under a month: never "0 days". `at` in the past reads "now".
pub fn time_left(now: Timestamp, at: Timestamp) -> String {
    span_words((at - now).max(TimeDelta::zero()))
}

/// `span` in words (see `time_left`).
pub fn span_words(span: TimeDelta) -> String {
    let secs = span.num_seconds();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let days_text = |n: i64| {
        if n == 1 {
            "1 day".to_owned()
        } else {
            format!("{n} days")
        }
    };
    match secs {
        i64::MIN..=0 => "now".to_owned(),
        1..60 => "less than a minute".to_owned(),
        60..3600 => format!("{mins} min"),
        3600..86_400 if mins == 0 => format!("{hours} h"),
        3600..86_400 => format!("{hours} h {mins} min"),
        _ if days >= 30 || hours == 0 => days_text(days),
        _ => format!("{} {hours} h", days_text(days)),
    }
}

/// The longest span `span` accepts: ten years, far past any sane grace or
/// window and far from any overflow.
const SPAN_MAX_SECS: i64 = 10 * 366 * 86_400;

/// Reads `30s`, `30m`, `24h`, `7d` (whole numbers, at least one second)
/// for the option or field `what`.
pub fn span(spec: &str, what: &str, field: Field) -> Result<TimeDelta, RuleError> {
    let spec = spec.trim();
    let bad = || {
        RuleError::new(
            field,
            format!(
                "cannot read {what} '{spec}': use a number and s, m, h or d, such as 30m or 24h"
            ),
        )
    };
    let unit_at = spec.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = spec.split_at(unit_at);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit.trim() {
        "s" | "sec" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_secs) {
        Some(0) => Err(RuleError::new(field, format!("{what} must be at least 1s"))),
        Some(secs) if secs <= SPAN_MAX_SECS => Ok(TimeDelta::seconds(secs)),
        _ => Err(RuleError::new(
            field,
            format!("{what} '{spec}' is too long (at most 3660d)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn time_left_says_hours_under_a_day_and_never_zero_days() {
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        let later = |secs| now + TimeDelta::seconds(secs);
        assert_eq!(time_left(now, later(3 * 3600)), "3 h");
        assert_eq!(time_left(now, later(3 * 3600 + 20 * 60 + 5)), "3 h 20 min");
        assert_eq!(
            time_left(now, later(2 * 86_400 + 4 * 3600 + 59)),
            "2 days 4 h"
        );
        assert_eq!(time_left(now, later(86_400)), "1 day");
        assert_eq!(time_left(now, later(86_400 + 3600)), "1 day 1 h");
        assert_eq!(time_left(now, later(45 * 60)), "45 min");
        assert_eq!(time_left(now, later(59)), "less than a minute");
        assert_eq!(time_left(now, later(364 * 86_400 + 5 * 3600)), "364 days");
        assert_eq!(time_left(now, later(-5)), "now");
        for secs in [1, 59, 60, 3599, 3600, 86_399] {
            assert!(!time_left(now, later(secs)).contains("day"), "{secs}");
        }
    }

    #[test]
    fn spans_read_each_unit_and_refuse_the_rest_in_one_line() {
        let f = Field::Grace;
        assert_eq!(span("2s", "grace", f), Ok(TimeDelta::seconds(2)));
        assert_eq!(span("30m", "grace", f), Ok(TimeDelta::minutes(30)));
        assert_eq!(span(" 24h ", "grace", f), Ok(TimeDelta::hours(24)));
        assert_eq!(span("7d", "grace", f), Ok(TimeDelta::days(7)));
        for bad in [
            "",
            "24",
            "h",
            "1.5h",
            "-1h",
            "1w",
            "2 days",
            "99999999999999999999d",
        ] {
            let e = span(bad, "grace", f).unwrap_err();
            assert_eq!(e.field, f);
            assert!(!e.message.contains('\n'), "{bad}: {e}");
        }
        assert_eq!(
            span("0m", "grace", f).unwrap_err().message,
            "grace must be at least 1s"
        );
        assert!(
            span("4000d", "grace", f)
                .unwrap_err()
                .message
                .contains("too long")
        );
    }
}
