//! Reading a rate limit as operators write it: `120/min` with an optional
//! burst, or `none`. One reader for the CLI and anything else that takes
//! one, so every front end accepts and refuses the same spellings.

use super::{Field, RuleError};
use crate::domain::{RateLimit, RatePeriod};

/// The largest count a limit or burst may name: far above what one
/// gateway serves, low enough that no arithmetic on it can overflow.
pub const RATE_MAX: u32 = 1_000_000;

/// What `--rate-limit` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitSpec {
    /// `none`: no limit of its own (a key then follows its org's default).
    None,
    /// `N/s`, `N/min`, `N/h` with the burst (default: N, one period's worth).
    Limit(RateLimit),
}

impl RateLimitSpec {
    pub fn limit(self) -> Option<RateLimit> {
        match self {
            RateLimitSpec::None => None,
            RateLimitSpec::Limit(limit) => Some(limit),
        }
    }
}

/// Parses `spec` (`120/min`, `2/s`, `1000/h`, `none`) and `burst`. A burst
/// without a limit to apply it to is refused rather than ignored.
pub fn rate_limit(spec: &str, burst: Option<&str>) -> Result<RateLimitSpec, RuleError> {
    let spec = spec.trim();
    let err = |message: String| RuleError::new(Field::RateLimit, message);
    if spec.eq_ignore_ascii_case("none") {
        return match burst {
            Some(_) => Err(err("--burst needs a rate limit, not none".into())),
            None => Ok(RateLimitSpec::None),
        };
    }
    let bad = || {
        err(format!(
            "cannot read rate limit '{spec}': use <requests>/s, /min or /h (e.g. 120/min), or none"
        ))
    };
    let (count, unit) = spec.split_once('/').ok_or_else(bad)?;
    let requests: u64 = count.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" => RatePeriod::Second,
        "m" | "min" | "minute" => RatePeriod::Minute,
        "h" | "hour" => RatePeriod::Hour,
        _ => return Err(bad()),
    };
    let requests = bounded(requests, "rate limit").map_err(err)?;
    let burst = match burst.map(str::trim) {
        Some(b) => {
            let n = b.parse().map_err(|_| {
                err(format!(
                    "cannot read burst '{b}': use a whole number of requests, e.g. 20"
                ))
            })?;
            bounded(n, "burst").map_err(err)?
        }
        None => requests,
    };
    Ok(RateLimitSpec::Limit(RateLimit {
        requests,
        per,
        burst,
    }))
}

fn bounded(n: u64, what: &str) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n @ 1..=RATE_MAX) => Ok(n),
        Ok(0) => Err(format!("{what} must be at least 1")),
        _ => Err(format!("{what} {n} is over the maximum of {RATE_MAX}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, per: RatePeriod, burst: u32) -> RateLimitSpec {
        RateLimitSpec::Limit(RateLimit {
            requests,
            per,
            burst,
        })
    }

    #[test]
    fn reads_each_unit_and_the_default_burst() {
        assert_eq!(
            rate_limit("120/min", Some(" 20")),
            Ok(limit(120, RatePeriod::Minute, 20))
        );
        assert_eq!(
            rate_limit(" 120 / Minute ", None),
            Ok(limit(120, RatePeriod::Minute, 120))
        );
        assert_eq!(rate_limit("2/s", None), Ok(limit(2, RatePeriod::Second, 2)));
        assert_eq!(
            rate_limit("1000/h", Some("1")),
            Ok(limit(1000, RatePeriod::Hour, 1))
        );
        assert_eq!(rate_limit("NONE", None), Ok(RateLimitSpec::None));
    }

    #[test]
    fn refuses_what_it_cannot_read_in_one_line() {
        for bad in [
            "",
            "120",
            "min",
            "120/day",
            "-1/min",
            "1.5/s",
            "120/min/s",
            "x/min",
        ] {
            let e = rate_limit(bad, None).unwrap_err();
            assert_eq!(e.field, Field::RateLimit);
            assert!(
                e.message.starts_with("cannot read rate limit"),
                "{bad}: {e}"
            );
            assert!(!e.message.contains('\n'));
        }
        assert_eq!(
            rate_limit("0/min", None).unwrap_err().message,
            "rate limit must be at least 1"
        );
        assert_eq!(
            rate_limit("10/min", Some("0")).unwrap_err().message,
            "burst must be at least 1"
        );
        assert_eq!(
            rate_limit("99999999999999999999/s", None)
                .unwrap_err()
                .message,
            format!(
                "cannot read rate limit '99999999999999999999/s': use <requests>/s, /min or /h (e.g. 120/min), or none"
            )
        );
        assert_eq!(
            rate_limit("1000001/s", None).unwrap_err().message,
            "rate limit 1000001 is over the maximum of 1000000"
        );
        assert!(rate_limit("none", Some("5")).is_err());
        assert_eq!(
            rate_limit("10/min", Some("lots")).unwrap_err().message,
            "cannot read burst 'lots': use a whole number of requests, e.g. 20"
        );
    }
}
