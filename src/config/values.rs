//! The typed values a setting can hold, each parsed from text in one place
//! so a flag, a variable and the file reject the same bad input with the
//! same words.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;

/// An address to listen on, like `127.0.0.1:8470`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ListenAddr(pub SocketAddr);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(ListenAddr)
            .map_err(|_| format!("'{s}' is not an address like 127.0.0.1:8470"))
    }
}

impl TryFrom<String> for ListenAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A tracing `EnvFilter` directive, checked when it is read rather than
/// when logging starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LogFilter(String);

impl LogFilter {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LogFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        tracing_subscriber::EnvFilter::builder()
            .parse(s)
            .map(|_| LogFilter(s.to_string()))
            .map_err(|e| format!("'{s}' is not a log filter like \"info,rmcp=warn\": {e}"))
    }
}

impl TryFrom<String> for LogFilter {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("'{s}' is not a log format: use text or json")),
        }
    }
}

impl TryFrom<String> for LogFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Whether each `POST /mcp` request gets its access line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum AccessLog {
    #[default]
    On,
    Off,
    /// One request in N (N ≥ 2; `sample:1` is `on`).
    Sample(u32),
}

impl FromStr for AccessLog {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not an access-log setting: use on, off or sample:N");
        match s {
            "on" => Ok(AccessLog::On),
            "off" => Ok(AccessLog::Off),
            _ => {
                let n: u32 = s
                    .strip_prefix("sample:")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(bad)?;
                match n {
                    0 => Err(bad()),
                    1 => Ok(AccessLog::On),
                    n => Ok(AccessLog::Sample(n)),
                }
            }
        }
    }
}

impl TryFrom<String> for AccessLog {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessLog::On => f.write_str("on"),
            AccessLog::Off => f.write_str("off"),
            AccessLog::Sample(n) => write!(f, "sample:{n}"),
        }
    }
}

/// How many days raw usage events are kept: 1 to 36,500 (a century). The
/// hourly roll-ups are kept regardless, so a short retention loses only
/// the per-request detail, never the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct RetentionDays(u32);

impl RetentionDays {
    pub const MAX: u32 = 36_500;

    pub fn days(self) -> u32 {
        self.0
    }

    fn checked(days: i64) -> Result<Self, String> {
        u32::try_from(days)
            .ok()
            .filter(|d| (1..=Self::MAX).contains(d))
            .map(RetentionDays)
            .ok_or_else(|| {
                format!(
                    "'{days}' is not a retention: give a number of days from 1 to {}",
                    Self::MAX
                )
            })
    }
}

impl FromStr for RetentionDays {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // `90d` reads as well as `90`, like the durations elsewhere.
        let digits = s.strip_suffix('d').unwrap_or(s);
        match digits.parse::<i64>() {
            Ok(days) => RetentionDays::checked(days),
            Err(_) => Err(format!(
                "'{s}' is not a retention: give a number of days from 1 to {}",
                Self::MAX
            )),
        }
    }
}

impl TryFrom<i64> for RetentionDays {
    type Error = String;
    fn try_from(days: i64) -> Result<Self, String> {
        RetentionDays::checked(days)
    }
}

impl fmt::Display for RetentionDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An IP address or a CIDR block such as `10.0.0.0/8`, kept as written
/// (for `config show`) and as the network it names (for matching).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    text: String,
    ip: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The network's address and prefix length; a bare address is a full-length prefix.
    pub fn network(&self) -> (IpAddr, u8) {
        (self.ip, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not an IP address or CIDR like 10.0.0.0/8");
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max,
            Some(len) => match len.parse::<u8>() {
                Ok(len) if len <= max => len,
                _ => return Err(bad()),
            },
        };
        Ok(Cidr {
            text: s.to_string(),
            ip,
            prefix_len,
        })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_forms() {
        assert_eq!("on".parse(), Ok(AccessLog::On));
        assert_eq!("off".parse(), Ok(AccessLog::Off));
        assert_eq!("sample:1".parse(), Ok(AccessLog::On));
        assert_eq!("sample:10".parse(), Ok(AccessLog::Sample(10)));
        for bad in ["sample:0", "sample:", "sample:x", "yes", ""] {
            assert!(bad.parse::<AccessLog>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_forms() {
        for good in ["10.0.0.0/8", "192.168.1.1", "::1", "fd00::/8", "0.0.0.0/0"] {
            assert!(good.parse::<Cidr>().is_ok(), "{good}");
        }
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "proxy", "1.2.3.4/"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn retention_days_forms() {
        assert_eq!(
            "90".parse::<RetentionDays>().map(RetentionDays::days),
            Ok(90)
        );
        assert_eq!(
            "7d".parse::<RetentionDays>().map(RetentionDays::days),
            Ok(7)
        );
        assert_eq!(
            "36500".parse::<RetentionDays>().map(RetentionDays::days),
            Ok(36_500)
        );
        for bad in ["0", "-1", "36501", "", "d", "1.5", "ninety", "99999999999"] {
            let e = bad.parse::<RetentionDays>().unwrap_err();
            assert!(e.contains("from 1 to 36500"), "{bad}: {e}");
        }
    }

    #[test]
    fn log_filter_is_checked() {
        assert!("info,rmcp=warn".parse::<LogFilter>().is_ok());
        assert!("info,[".parse::<LogFilter>().is_err());
    }
}
