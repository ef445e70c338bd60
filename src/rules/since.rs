//! `--since T` of the audit (and later usage) commands: a moment in the
//! past, written the way `--expires` writes one in the future.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::domain::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot read time '{0}': use an age such as 30m, 24h or 7d, a date YYYY-MM-DD (from its start, UTC) or an RFC 3339 time"
)]
pub struct SinceError(String);

/// Parses `30m`, `24h`, `7d` (that long before `now`), a date `YYYY-MM-DD`
/// (its first second, UTC) or an RFC 3339 time.
pub fn since(spec: &str, now: Timestamp) -> Result<Timestamp, SinceError> {
    let spec = spec.trim();
    let bad = || SinceError(spec.to_owned());
    let age = |suffix: char, unit: fn(i64) -> Option<TimeDelta>| {
        spec.strip_suffix(suffix)
            .and_then(|n| n.parse::<u32>().ok())
            .map(|n| unit(i64::from(n)).and_then(|d| now.checked_sub_signed(d)))
    };
    for (suffix, unit) in [
        ('m', TimeDelta::try_minutes as fn(i64) -> Option<TimeDelta>),
        ('h', TimeDelta::try_hours),
        ('d', TimeDelta::try_days),
    ] {
        if let Some(at) = age(suffix, unit) {
            return at.map(super::truncate).ok_or_else(bad);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(spec, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(spec) {
        return Ok(super::truncate(at.with_timezone(&Utc)));
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ages_dates_and_times() {
        let now = Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap();
        let at = |h, m| Utc.with_ymd_and_hms(2026, 3, 15, h, m, 0).unwrap();
        assert_eq!(since("30m", now), Ok(at(11, 30)));
        assert_eq!(since("2h", now), Ok(at(10, 0)));
        assert_eq!(
            since("7d", now),
            Ok(Utc.with_ymd_and_hms(2026, 3, 8, 12, 0, 0).unwrap())
        );
        assert_eq!(since("2026-03-15", now), Ok(at(0, 0)));
        assert_eq!(since("2026-03-15T09:30:00+01:00", now), Ok(at(8, 30)));
        for bad in ["", "yesterday", "7w", "-3d", "99999999999d"] {
            assert!(since(bad, now).is_err(), "{bad:?} was accepted");
        }
    }
}
