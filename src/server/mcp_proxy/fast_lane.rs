//! The checks rmcp's transport makes of a POST in a session, made cheaply
//! and more strictly, so that a plain tool call that passes them can be
//! answered without it (`session_manager::GatewaySessions::call_directly`).
//! Anything unusual — an `Origin` header, weighted `Accept` ranges, the
//! 2026-07-28 standard headers, an unknown protocol version — fails here
//! and takes the full path, where rmcp checks it and answers as it does.

use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderName, header};

use super::handler::SERVED_VERSIONS;

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The allowed `Host` values, parsed once.
pub struct FastLane {
    /// (host lower-cased without brackets, port if the entry names one)
    hosts: Vec<(String, Option<u16>)>,
}

fn normalized(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

impl FastLane {
    pub fn new(allowed_hosts: &[String]) -> FastLane {
        let hosts = allowed_hosts
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| match Authority::try_from(entry) {
                Ok(authority) => (normalized(authority.host()), authority.port_u16()),
                Err(_) => (normalized(entry), None),
            })
            .collect();
        FastLane { hosts }
    }

    /// Whether rmcp's transport would accept these headers for a request in
    /// a session (and nothing about them needs its answer).
    pub fn passes(&self, headers: &HeaderMap) -> bool {
        self.host_allowed(headers)
            && !headers.contains_key(header::ORIGIN)
            && !headers.contains_key(MCP_METHOD)
            && !headers.contains_key(MCP_NAME)
            && accepts_both(headers)
            && is_json(headers)
            && version_served(headers)
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some((host, port)) = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(split_host)
        else {
            return false;
        };
        if self.hosts.is_empty() {
            return true;
        }
        self.hosts.iter().any(|(allowed, allowed_port)| {
            allowed.eq_ignore_ascii_case(host) && allowed_port.is_none_or(|p| port == Some(p))
        })
    }
}

/// A `Host` value's host (without brackets) and port, for the plain shapes
/// only: a name or IPv4 address of letters, digits, `.`, `-` and `_`, or a
/// bracketed IPv6 address, then an optional decimal port. Parsed by hand
/// because this runs on every call (a full authority parse plus a
/// lower-cased copy cost more than the rest of the check); anything else is
/// `None` and takes the full path, where rmcp parses it properly.
fn split_host(value: &str) -> Option<(&str, Option<u16>)> {
    let (host, rest) = match value.strip_prefix('[') {
        Some(bracketed) => {
            let (host, rest) = bracketed.split_once(']')?;
            let ipv6 = |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.';
            (!host.is_empty() && host.chars().all(ipv6)).then_some(())?;
            (host, rest)
        }
        None => {
            let end = value.find(':').unwrap_or(value.len());
            let (host, rest) = value.split_at(end);
            let name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
            (!host.is_empty() && host.chars().all(name)).then_some(())?;
            (host, rest)
        }
    };
    let port = match rest {
        "" => None,
        _ => {
            let digits = rest.strip_prefix(':')?;
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            Some(digits.parse().ok()?)
        }
    };
    Some((host, port))
}

fn accepts_both(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if value.contains(';') {
            return false;
        }
        for range in value.split(',').map(str::trim) {
            json |= range.eq_ignore_ascii_case(JSON);
            sse |= range.eq_ignore_ascii_case(EVENT_STREAM);
        }
    }
    json && sse
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case(JSON)
        })
}

/// A session speaks one of the revisions with `initialize`; without the
/// header the request is of 2025-03-26, which is one of them.
fn version_served(headers: &HeaderMap) -> bool {
    match headers.get(MCP_PROTOCOL_VERSION) {
        None => true,
        Some(value) => value
            .to_str()
            .is_ok_and(|v| SERVED_VERSIONS.iter().any(|served| served.as_str() == v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    const PLAIN: [(&str, &str); 4] = [
        ("host", "127.0.0.1:8080"),
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
        ("mcp-protocol-version", "2025-11-25"),
    ];

    #[test]
    fn a_plain_session_post_passes() {
        let lane = FastLane::new(&["localhost".into(), "127.0.0.1".into(), "::1".into()]);
        assert!(lane.passes(&headers(&PLAIN)));
        let mut ipv6 = headers(&PLAIN);
        ipv6.insert("host", HeaderValue::from_static("[::1]:9"));
        assert!(lane.passes(&ipv6));
        let mut unversioned = headers(&PLAIN);
        unversioned.remove("mcp-protocol-version");
        assert!(lane.passes(&unversioned));
    }

    #[test]
    fn anything_rmcp_might_refuse_or_treat_otherwise_takes_the_full_path() {
        let lane = FastLane::new(&["localhost".into(), "127.0.0.1:8080".into()]);
        assert!(lane.passes(&headers(&PLAIN)));
        let changed = |name: &'static str, value: Option<&'static str>| {
            let mut map = headers(&PLAIN);
            match value {
                Some(value) => map.insert(name, HeaderValue::from_static(value)),
                None => map.remove(name),
            };
            lane.passes(&map)
        };
        assert!(!changed("host", Some("evil.example")));
        assert!(
            !changed("host", Some("127.0.0.1:9")),
            "another port than the entry's"
        );
        assert!(!changed("host", None));
        assert!(!changed("origin", Some("http://localhost:6274")));
        assert!(!changed("accept", Some("application/json")));
        assert!(!changed(
            "accept",
            Some("application/json, text/event-stream;q=0")
        ));
        assert!(!changed("content-type", Some("text/plain")));
        assert!(!changed("mcp-protocol-version", Some("2026-07-28")));
        assert!(!changed("mcp-protocol-version", Some("1999-01-01")));
        assert!(!changed("mcp-method", Some("tools/call")));
        assert!(
            changed("host", Some("LocalHost:8080")),
            "host names ignore case"
        );
    }

    #[test]
    fn only_plain_host_values_are_split_the_rest_go_to_rmcp() {
        assert_eq!(
            split_host("127.0.0.1:8080"),
            Some(("127.0.0.1", Some(8080)))
        );
        assert_eq!(split_host("localhost"), Some(("localhost", None)));
        assert_eq!(split_host("[::1]:9"), Some(("::1", Some(9))));
        assert_eq!(split_host("[::1]"), Some(("::1", None)));
        for odd in [
            "",
            ":80",
            "host:",
            "host:99999",
            "host:8080:1",
            "host:+80",
            "[::1",
            "[]:80",
            "[::1]x",
            "a b",
            "user@host",
            "h\u{e9}te",
        ] {
            assert_eq!(split_host(odd), None, "{odd:?}");
        }
    }
}
