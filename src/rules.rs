//! The domain rules every front end shares: what a valid key name,
//! description, expiry, slug or MCP definition is. Pure functions of their
//! input and an injected `now`, so the CLI, the console and the tests agree
//! by construction.

mod invisible;
mod rate_limit;
mod since;
mod time_left;
mod tool_access;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Months, NaiveDate, NaiveTime, TimeDelta, Utc};

use crate::domain::{Plan, Timestamp};

use invisible::Unsafe;
pub use invisible::{is_unsafe_to_show, visible};
pub use rate_limit::{RATE_MAX, RateLimitSpec, rate_limit};
pub use since::{SinceError, since};
pub use time_left::{span, span_words, time_left};
pub use tool_access::{TOOL_NAME_MAX, TOOLS_PER_GRANT_MAX, mcp_grant, tool_list, tool_name};

pub const NAME_MAX: usize = 100;
pub const DESCRIPTION_MAX: usize = 1000;
pub const SLUG_MAX: usize = 63;
pub const TIMEOUT_MAX_SECS: u64 = 600;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The expiry used when none is given.
pub const DEFAULT_EXPIRY: &str = "90d";

/// Which input a rule rejected, so a form can show the error beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Description,
    Expiry,
    McpAccess,
    Slug,
    Command,
    Url,
    Env,
    Header,
    Timeout,
    RateLimit,
    /// A rotation's grace period or idle limit.
    Grace,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub field: Field,
    pub message: String,
}

impl RuleError {
    fn new(field: Field, message: impl Into<String>) -> Self {
        RuleError {
            field,
            message: message.into(),
        }
    }
}

/// Refuses text a person could be misled by: `what` names the field.
fn one_visible_line(text: &str, what: &str, field: Field) -> Result<(), RuleError> {
    match text.chars().find_map(|c| Unsafe::of(c).map(|u| (c, u))) {
        None => Ok(()),
        Some((c, why)) => Err(RuleError::new(
            field,
            format!(
                "{what} contains {} (U+{:04X})",
                why.describe(),
                u32::from(c)
            ),
        )),
    }
}

/// A key name: trimmed, 1–100 characters, one line of visible text.
pub fn key_name(raw: &str) -> Result<String, RuleError> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 {
        return Err(RuleError::new(Field::Name, "name must not be empty"));
    }
    if len > NAME_MAX {
        return Err(RuleError::new(
            Field::Name,
            format!("name is {len} characters; the limit is {NAME_MAX}"),
        ));
    }
    one_visible_line(name, "name", Field::Name)?;
    Ok(name.to_string())
}

/// A key description: optional (blank means none), at most 1,000
/// characters, one line of visible text.
pub fn key_description(raw: Option<&str>) -> Result<Option<String>, RuleError> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let len = text.chars().count();
    if len > DESCRIPTION_MAX {
        return Err(RuleError::new(
            Field::Description,
            format!("description is {len} characters; the limit is {DESCRIPTION_MAX}"),
        ));
    }
    one_visible_line(text, "description", Field::Description)?;
    Ok(Some(text.to_string()))
}

/// An expiry as the user wrote it, before it is anchored to a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    Days(u32),
    Years(u32),
    At(Timestamp),
}

impl Expiry {
    /// Parses `30d`, `90d`, `1y` (any `<n>d` up to 36500 or `<n>y` up to 100),
    /// `never`, a date `YYYY-MM-DD` (the end of that day, UTC) or an RFC 3339 time.
    pub fn parse(spec: &str) -> Result<Expiry, RuleError> {
        let spec = spec.trim();
        let bad = || {
            RuleError::new(
                Field::Expiry,
                format!(
                    "cannot read expiry '{spec}': use 30d, 90d, 1y, never, a date YYYY-MM-DD or an RFC 3339 time"
                ),
            )
        };
        if spec.eq_ignore_ascii_case("never") {
            return Ok(Expiry::Never);
        }
        if let Some(n) = spec.strip_suffix('d').and_then(|n| n.parse::<u32>().ok()) {
            return match n {
                1..=36500 => Ok(Expiry::Days(n)),
                _ => Err(RuleError::new(
                    Field::Expiry,
                    "expiry in days must be between 1d and 36500d",
                )),
            };
        }
        if let Some(n) = spec.strip_suffix('y').and_then(|n| n.parse::<u32>().ok()) {
            return match n {
                1..=100 => Ok(Expiry::Years(n)),
                _ => Err(RuleError::new(
                    Field::Expiry,
                    "expiry in years must be between 1y and 100y",
                )),
            };
        }
        if let Ok(date) = NaiveDate::parse_from_str(spec, "%Y-%m-%d") {
            let end = date.and_time(NaiveTime::from_hms_opt(23, 59, 59).ok_or_else(bad)?);
            return Ok(Expiry::At(end.and_utc()));
        }
        if let Ok(at) = DateTime::parse_from_rfc3339(spec) {
            return Ok(Expiry::At(truncate(at.with_timezone(&Utc))));
        }
        Err(bad())
    }

    /// Only a date `YYYY-MM-DD` (the end of that day, UTC): what a field
    /// that asks for a date accepts, so `30d` there is refused rather than
    /// taken for something its hint never offered.
    pub fn parse_date(spec: &str) -> Result<Expiry, RuleError> {
        let spec = spec.trim();
        let date = NaiveDate::parse_from_str(spec, "%Y-%m-%d").map_err(|_| {
            RuleError::new(
                Field::Expiry,
                format!("'{spec}' is not a date: write it as YYYY-MM-DD, such as 2027-01-31"),
            )
        })?;
        let end = NaiveTime::from_hms_opt(23, 59, 59).unwrap_or_default();
        Ok(Expiry::At(date.and_time(end).and_utc()))
    }

    /// The expiry time this spec means when a key is made at `now`; refuses the past.
    pub fn resolve(self, now: Timestamp) -> Result<Option<Timestamp>, RuleError> {
        let now = truncate(now);
        let too_far = || RuleError::new(Field::Expiry, "expiry is too far in the future");
        let at = match self {
            Expiry::Never => return Ok(None),
            Expiry::Days(n) => now
                .checked_add_signed(TimeDelta::days(i64::from(n)))
                .ok_or_else(too_far)?,
            Expiry::Years(n) => now
                .checked_add_months(Months::new(n.saturating_mul(12)))
                .ok_or_else(too_far)?,
            Expiry::At(at) => at,
        };
        if at <= now {
            return Err(RuleError::new(
                Field::Expiry,
                format!(
                    "expiry {} is in the past",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ));
        }
        Ok(Some(at))
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Never => f.write_str("never"),
            Expiry::Days(n) => write!(f, "{n}d"),
            Expiry::Years(n) => write!(f, "{n}y"),
            Expiry::At(at) => f.write_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        }
    }
}

/// Drops sub-second precision: the store keeps whole seconds.
pub fn truncate(at: Timestamp) -> Timestamp {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// A slug for an MCP id or an organization: 1–63 of `a-z`, `0-9`, `-`,
/// starting with a letter or digit. (`__` never occurs, so `<mcp>__<tool>`
/// names stay unambiguous.)
pub fn slug(raw: &str, what: &str) -> Result<String, RuleError> {
    if !is_slug(raw) {
        return Err(RuleError::new(
            Field::Slug,
            format!(
                "{what} '{}' is not valid: use 1-{SLUG_MAX} lowercase letters, digits or '-', starting with a letter or digit",
                raw.escape_debug()
            ),
        ));
    }
    Ok(raw.to_string())
}

/// Whether `raw` is a slug as [`slug`] defines it, without allocating:
/// for checking names that clients send before anything looks them up.
pub fn is_slug(raw: &str) -> bool {
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
    let bytes = raw.as_bytes();
    bytes.len() <= SLUG_MAX
        && bytes
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && bytes.iter().copied().all(ok_char)
}

/// A display name for an MCP: one line, 1–100 characters.
pub fn mcp_name(raw: &str) -> Result<String, RuleError> {
    key_name(raw)
        .map_err(|e| RuleError::new(Field::Name, e.message.replacen("name", "MCP name", 1)))
}

/// Splits a `--stdio` command line the way a POSIX shell would quote it.
pub fn stdio_command(raw: &str) -> Result<(String, Vec<String>), RuleError> {
    let words = shlex::split(raw).ok_or_else(|| {
        RuleError::new(
            Field::Command,
            "cannot split the command: unbalanced quotes",
        )
    })?;
    let mut words = words.into_iter();
    match words.next() {
        Some(cmd) if !cmd.is_empty() => Ok((cmd, words.collect())),
        _ => Err(RuleError::new(Field::Command, "the stdio command is empty")),
    }
}

/// A Streamable HTTP endpoint: an absolute http(s) URL with a host.
pub fn http_url(raw: &str) -> Result<String, RuleError> {
    let raw = raw.trim();
    // Errors are shown and may be logged: never with the URL's credentials.
    let shown = crate::redact::redacted_url(raw);
    let url = reqwest::Url::parse(raw)
        .map_err(|e| RuleError::new(Field::Url, format!("invalid URL '{shown}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(RuleError::new(
            Field::Url,
            format!("URL '{shown}' must start with http:// or https:// and name a host"),
        ));
    }
    Ok(url.to_string())
}

/// `K=V` for an environment variable of a stdio MCP.
pub fn env_pair(raw: &str) -> Result<(String, String), RuleError> {
    let (k, v) = raw
        .split_once('=')
        .ok_or_else(|| RuleError::new(Field::Env, format!("--env '{raw}' is not K=V")))?;
    if !is_env_name(k) {
        return Err(RuleError::new(
            Field::Env,
            format!("'{k}' is not a valid environment variable name"),
        ));
    }
    if v.contains('\0') {
        return Err(RuleError::new(
            Field::Env,
            format!("value of {k} contains a NUL byte"),
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// A portable environment variable name: a letter or `_`, then letters, digits or `_`.
fn is_env_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A variable of plexmcp's environment that a stdio MCP may inherit. Its own
/// `PLEXMCP_*` settings (the database path, an exported API key) never go.
pub fn inherit_env_name(raw: &str) -> Result<String, RuleError> {
    let name = raw.trim();
    if !is_env_name(name) {
        return Err(RuleError::new(
            Field::Env,
            format!("--inherit-env '{name}' is not a valid environment variable name"),
        ));
    }
    if name.to_ascii_uppercase().starts_with("PLEXMCP_") {
        return Err(RuleError::new(
            Field::Env,
            format!(
                "--inherit-env {name}: PLEXMCP_* variables configure plexmcp and are never passed to MCPs (give a value with --env instead)"
            ),
        ));
    }
    Ok(name.to_string())
}

/// `K=V` (or `K: V`) for an HTTP header sent to an HTTP MCP.
pub fn header_pair(raw: &str) -> Result<(String, String), RuleError> {
    let (k, v) = raw
        .split_once('=')
        .or_else(|| raw.split_once(':'))
        .ok_or_else(|| RuleError::new(Field::Header, format!("--header '{raw}' is not K=V")))?;
    let k = k.trim();
    let v = v.trim();
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if k.is_empty() || !k.chars().all(tchar) {
        return Err(RuleError::new(
            Field::Header,
            format!("'{k}' is not a valid header name"),
        ));
    }
    if v.chars().any(|c| c.is_control() && c != '\t') {
        return Err(RuleError::new(
            Field::Header,
            format!("value of header {k} contains control characters"),
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// A per-call timeout for an MCP, in whole seconds, 1–600.
pub fn timeout_secs(secs: u64) -> Result<Duration, RuleError> {
    if (1..=TIMEOUT_MAX_SECS).contains(&secs) {
        Ok(Duration::from_secs(secs))
    } else {
        Err(RuleError::new(
            Field::Timeout,
            format!("timeout must be between 1 and {TIMEOUT_MAX_SECS} seconds"),
        ))
    }
}

/// The sentence shown when a plan's key limit stops a new key. `active`
/// can exceed `limit` when the org moved to a smaller plan; `db`, when
/// known, goes into the suggested command so it changes this database.
pub fn plan_limit_message(
    plan: Plan,
    limit: u32,
    active: u32,
    org_slug: &str,
    db: Option<&std::path::Path>,
) -> String {
    let raise = match plan.next_up() {
        Some(up) => {
            let db = db.map_or_else(String::new, |path| {
                let path = path.to_string_lossy();
                let quoted = shlex::try_quote(&path).unwrap_or(path.clone());
                format!("--db {quoted} ")
            });
            format!("`plexmcp {db}--org {org_slug} org set-plan {up}`")
        }
        None => "a higher plan".to_string(),
    };
    let keys = if active == 1 { "key" } else { "keys" };
    format!(
        "the {plan} plan allows {limit} active API keys and organization '{org_slug}' has {active} active {keys}: revoke a key or raise the plan with {raise}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            key_name("  Production Server ").unwrap(),
            "Production Server"
        );
        assert_eq!(key_name("   ").unwrap_err().field, Field::Name);
        assert!(key_name(&"é".repeat(100)).is_ok());
        let long = key_name(&"x".repeat(101)).unwrap_err();
        assert!(long.message.contains("101"), "{long}");
        assert!(key_name("a\nb").is_err());
        assert!(key_name("a\u{1b}[31m").is_err());
    }

    #[test]
    fn look_alike_characters_are_refused_with_their_code_point_named() {
        for (c, message) in [
            (
                '\u{202E}',
                "name contains an invisible or direction-changing character (U+202E)",
            ),
            (
                '\u{200B}',
                "name contains an invisible or direction-changing character (U+200B)",
            ),
            (
                '\u{FEFF}',
                "name contains an invisible or direction-changing character (U+FEFF)",
            ),
            (
                '\u{2066}',
                "name contains an invisible or direction-changing character (U+2066)",
            ),
            (
                '\u{E0041}',
                "name contains an invisible or direction-changing character (U+E0041)",
            ),
            (
                '\u{2028}',
                "name contains a line or paragraph separator (U+2028)",
            ),
            (
                '\u{2029}',
                "name contains a line or paragraph separator (U+2029)",
            ),
            ('\n', "name contains a control character (U+000A)"),
            ('\u{1b}', "name contains a control character (U+001B)"),
            ('\u{85}', "name contains a control character (U+0085)"),
        ] {
            let err = key_name(&format!("prod{c}uction")).unwrap_err();
            assert_eq!((err.field, err.message.as_str()), (Field::Name, message));
            let err = key_description(Some(&format!("a{c}b"))).unwrap_err();
            assert_eq!(err.field, Field::Description);
            assert_eq!(err.message, message.replacen("name", "description", 1));
            let err = mcp_name(&format!("x{c}y")).unwrap_err();
            assert!(err.message.starts_with("MCP name contains"), "{err}");
        }
        // Visible text of any script stays welcome.
        for fine in [
            "Produktion – Köln",
            "生产服务器",
            "سرور اصلی",
            "🚀 deploy",
            "a\u{00A0}b",
        ] {
            assert!(key_name(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn descriptions_are_optional_and_bounded() {
        assert_eq!(key_description(None).unwrap(), None);
        assert_eq!(key_description(Some("  ")).unwrap(), None);
        assert_eq!(
            key_description(Some(" ci ")).unwrap().as_deref(),
            Some("ci")
        );
        assert!(key_description(Some(&"d".repeat(1000))).is_ok());
        assert_eq!(
            key_description(Some(&"d".repeat(1001))).unwrap_err().field,
            Field::Description
        );
    }

    #[test]
    fn expiry_specs_resolve_from_now() {
        let at = |s: &str| Expiry::parse(s).unwrap().resolve(now()).unwrap();
        assert_eq!(at("never"), None);
        assert_eq!(
            at("30d"),
            Some(Utc.with_ymd_and_hms(2026, 12, 26, 12, 0, 0).unwrap())
        );
        assert_eq!(
            at("90d"),
            Some(Utc.with_ymd_and_hms(2027, 2, 24, 12, 0, 0).unwrap())
        );
        assert_eq!(
            at("1y"),
            Some(Utc.with_ymd_and_hms(2027, 11, 26, 12, 0, 0).unwrap())
        );
        assert_eq!(
            at("2027-01-31"),
            Some(Utc.with_ymd_and_hms(2027, 1, 31, 23, 59, 59).unwrap())
        );
        assert_eq!(
            at("2027-01-31T10:00:00+02:00"),
            Some(Utc.with_ymd_and_hms(2027, 1, 31, 8, 0, 0).unwrap())
        );
        // Today's date still means the end of today.
        assert!(at("2026-11-26").is_some());
    }

    #[test]
    fn past_and_unreadable_expiries_are_refused() {
        let err = |s: &str| match Expiry::parse(s) {
            Ok(e) => e.resolve(now()).unwrap_err(),
            Err(e) => e,
        };
        assert!(err("2026-11-25").message.contains("in the past"));
        assert!(err("2026-11-26T11:59:59Z").message.contains("in the past"));
        for bad in ["", "0d", "soon", "90", "-5d", "2026-13-01", "1y2", "101y"] {
            assert_eq!(err(bad).field, Field::Expiry, "{bad}");
        }
    }

    #[test]
    fn slugs_are_restricted() {
        assert!(slug("github", "MCP id").is_ok());
        assert!(slug("my-mcp-2", "MCP id").is_ok());
        assert!(is_slug("my-mcp-2") && is_slug(&"a".repeat(63)));
        for bad in ["", "-x", "Git", "a_b", "a b", "é", &"a".repeat(64)] {
            assert!(slug(bad, "MCP id").is_err(), "{bad}");
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn stdio_commands_split_like_a_shell() {
        assert_eq!(
            stdio_command("node 'my dir/index.js' stdio").unwrap(),
            (
                "node".to_string(),
                vec!["my dir/index.js".to_string(), "stdio".to_string()]
            )
        );
        assert!(stdio_command("node 'oops").is_err());
        assert!(stdio_command("   ").is_err());
    }

    #[test]
    fn urls_env_and_headers() {
        assert!(http_url("http://127.0.0.1:3001/mcp").is_ok());
        assert!(http_url("ftp://x").is_err());
        assert!(http_url("not a url").is_err());
        assert_eq!(env_pair("A_1=x=y").unwrap(), ("A_1".into(), "x=y".into()));
        assert!(env_pair("1A=x").is_err());
        assert!(env_pair("novalue").is_err());
        assert_eq!(
            header_pair("Authorization: Bearer t").unwrap(),
            ("Authorization".into(), "Bearer t".into())
        );
        assert!(header_pair("Bad Name=x").is_err());
        assert!(header_pair("X=a\r\nInjected: 1").is_err());
    }

    #[test]
    fn plan_limit_message_names_plan_limit_and_remedy() {
        let m = plan_limit_message(Plan::Free, 5, 5, "default", None);
        assert!(m.contains("free plan allows 5"));
        assert!(m.contains("has 5 active keys"), "{m}");
        assert!(
            m.contains("`plexmcp --org default org set-plan pro`"),
            "{m}"
        );
        // Over the limit after a downgrade, and a path that needs quoting.
        let db = std::path::Path::new("/srv/my data/plexmcp.db");
        let m = plan_limit_message(Plan::Free, 5, 7, "acme", Some(db));
        assert!(m.contains("has 7 active keys"), "{m}");
        assert!(
            m.contains("`plexmcp --db '/srv/my data/plexmcp.db' --org acme org set-plan pro`"),
            "{m}"
        );
        assert!(timeout_secs(0).is_err());
        assert_eq!(timeout_secs(30).unwrap(), DEFAULT_TIMEOUT);
    }
}
