//! Upstream URLs made safe to show. Operators put credentials in URLs
//! (`https://user:pass@host/mcp?token=…`), and the URL is printed by the CLI,
//! the console, the audit trail and logs; only the MCP's own row and the
//! request to the upstream may carry the real thing. Pure: no I/O.

use reqwest::Url;

/// What replaces a hidden value.
pub const HIDDEN: &str = "***";

/// `url` with the userinfo password, every query value and the fragment
/// replaced by `***`. A user name is kept when a password follows it (it
/// names an account) and hidden when it stands alone (then it is usually a
/// token). Input that does not parse as a URL with a host is redacted by its
/// shape, hiding anything that could be userinfo, query or fragment.
pub fn redacted_url(url: &str) -> String {
    match Url::parse(url) {
        // Nothing to hide: shown as typed, not as the parser normalised it.
        Ok(parsed)
            if parsed.has_host()
                && parsed.username().is_empty()
                && parsed.password().is_none()
                && parsed.query().is_none()
                && parsed.fragment().is_none() =>
        {
            url.to_string()
        }
        Ok(parsed) if parsed.has_host() => from_parsed(&parsed),
        _ => by_shape(url),
    }
}

fn from_parsed(url: &Url) -> String {
    let mut out = format!("{}://", url.scheme());
    out.push_str(&userinfo(url.username(), url.password()));
    // `host_str` keeps the brackets of an IPv6 literal.
    out.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    if let Some(query) = url.query() {
        out.push('?');
        out.push_str(&redacted_query(query));
    }
    if url.fragment().is_some() {
        out.push('#');
        out.push_str(HIDDEN);
    }
    out
}

/// `user:***@`, `***@`, or nothing when there is no userinfo.
fn userinfo(user: &str, password: Option<&str>) -> String {
    match (user.is_empty(), password) {
        (true, None) => String::new(),
        (false, Some(_)) => format!("{user}:{HIDDEN}@"),
        _ => format!("{HIDDEN}@"),
    }
}

/// `a=1&b&c=` → `a=***&***&c=`: names stay (they say what is configured),
/// values go; a bare word could itself be a token, so it goes too.
fn redacted_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, "")) => format!("{name}="),
            Some((name, _)) => format!("{name}={HIDDEN}"),
            None if pair.is_empty() => String::new(),
            None => HIDDEN.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// For text that is not a URL with a host: `[scheme://][…@]rest[?query][#fragment]`.
/// Where userinfo would end is unknowable here (a `/`, `?` or `#` may sit
/// inside a password), so everything up to the last `@` is hidden.
fn by_shape(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme), rest),
        _ => (None, text),
    };
    let (credential, rest) = match rest.rsplit_once('@') {
        Some((_, after)) => (true, after),
        None => (false, rest),
    };
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((before, _)) => (before, true),
        None => (rest, false),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (before_fragment, None),
    };
    let mut out = String::new();
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if credential {
        out.push_str(HIDDEN);
        out.push('@');
    }
    out.push_str(before_query);
    if let Some(query) = query {
        out.push('?');
        out.push_str(&redacted_query(query));
    }
    if fragment {
        out.push('#');
        out.push_str(HIDDEN);
    }
    out
}

/// RFC 3986: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn plain_urls_are_unchanged() {
        for url in [
            "https://mcp.example.com/v1",
            "http://127.0.0.1:3001/mcp",
            "http://[::1]:8080/mcp",
            "https://h.example/",
        ] {
            assert_eq!(redacted_url(url), url);
        }
    }

    #[test]
    fn userinfo_password_is_hidden_and_a_lone_user_too() {
        assert_eq!(
            redacted_url("http://user:hunter2@h.example/mcp"),
            "http://user:***@h.example/mcp"
        );
        // A name alone is how tokens are usually passed (`https://TOKEN@host`).
        assert_eq!(
            redacted_url("https://ghp_abc123@github.example/mcp"),
            "https://***@github.example/mcp"
        );
        // An empty user with a password.
        assert_eq!(
            redacted_url("http://:hunter2@h.example/"),
            "http://***@h.example/"
        );
        // `@` inside the password, percent-encoded by the parser.
        assert_eq!(
            redacted_url("http://u:p@ss@h.example/"),
            "http://u:***@h.example/"
        );
    }

    #[test]
    fn every_query_value_and_the_fragment_are_hidden() {
        assert_eq!(
            redacted_url("http://h.example/mcp?token=abc&region=eu&debug&empty=#t=s3cret"),
            "http://h.example/mcp?token=***&region=***&***&empty=#***"
        );
        assert_eq!(
            redacted_url("http://h.example/mcp?"),
            "http://h.example/mcp?"
        );
        assert_eq!(
            redacted_url("http://h.example/mcp#only-a-fragment"),
            "http://h.example/mcp#***"
        );
    }

    #[test]
    fn ipv6_hosts_and_ports_are_kept() {
        assert_eq!(
            redacted_url("http://admin:pw@[2001:db8::1]:8443/mcp?key=v"),
            "http://admin:***@[2001:db8::1]:8443/mcp?key=***"
        );
    }

    #[test]
    fn text_without_a_scheme_is_redacted_by_shape() {
        assert_eq!(
            redacted_url("user:hunter2@h.example/mcp?token=abc#f"),
            "***@h.example/mcp?token=***#***"
        );
        assert_eq!(
            redacted_url("h.example/mcp?token=abc"),
            "h.example/mcp?token=***"
        );
    }

    #[test]
    fn unparseable_urls_are_redacted_conservatively() {
        // A bad port makes the parser give up; the credentials are still found.
        assert_eq!(
            redacted_url("http://user:hunter2@h.example:99999/mcp?token=abc"),
            "http://***@h.example:99999/mcp?token=***"
        );
        assert_eq!(
            redacted_url("http://user:pw@[::1/mcp?token=abc"),
            "http://***@[::1/mcp?token=***"
        );
        // A `/` in the password ends the authority early; the `@` after it
        // still marks everything before as a possible credential.
        assert_eq!(redacted_url("nonsense user:pa/ss@h?x=1"), "***@h?x=***");
        assert_eq!(redacted_url("not a url"), "not a url");
        assert_eq!(redacted_url(""), "");
        assert_eq!(redacted_url("://"), "://");
        assert_eq!(redacted_url("@"), "***@");
        assert_eq!(redacted_url("?"), "?");
        assert_eq!(redacted_url("#x"), "#***");
        // `?` or `#` inside a password: still hidden.
        assert_eq!(
            redacted_url("http://user:pa?s#s@h.example:99999/"),
            "http://***@h.example:99999/"
        );
        // `://` inside a query value is not a scheme.
        assert_eq!(
            redacted_url("h.example/mcp?next=http://x"),
            "h.example/mcp?next=***"
        );
    }

    #[test]
    fn urls_without_a_host_are_redacted_by_shape() {
        // `mailto:` and the like parse but have no host.
        assert_eq!(
            redacted_url("mailto:a@b.example?x=1"),
            "***@b.example?x=***"
        );
    }
}
