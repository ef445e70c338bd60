//! Who the client is. Behind a reverse proxy every request comes from the
//! proxy's address, so the failed-auth limiter and usage would see one
//! client; the proxy says who it forwarded for in `X-Forwarded-For` or
//! `Forwarded` (RFC 7239), but anyone can send those headers. So they are
//! read only when the TCP peer is a configured trusted proxy, and walked
//! from the right: each trusted hop appended the address it saw, and the
//! first address that is not a trusted proxy is the client. What a client
//! wrote further left is its own claim and never believed.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::FORWARDED;

use crate::config::Cidr;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The peers whose forwarding headers are believed (`server.trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    pub fn new(cidrs: &[Cidr]) -> TrustedProxies {
        TrustedProxies {
            networks: cidrs.iter().map(Cidr::network).collect(),
        }
    }

    /// Whether `ip` lies in one of the networks (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks
            .iter()
            .any(|&(net, len)| in_network(ip, canonical(net), len))
    }
}

/// The client's address: `peer` unless `peer` is a trusted proxy that
/// names the client in its forwarding headers.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let forwarded = hops(headers, FORWARDED.as_str(), forwarded_for);
    let xff = hops(headers, X_FORWARDED_FOR, |list| {
        list.split(',').map(|s| parse_node(s.trim())).collect()
    });
    let walk = |hops: Vec<Option<IpAddr>>| right_most_untrusted(&hops, trusted);
    match (forwarded, xff) {
        (None, None) => peer,
        (Some(hops), None) | (None, Some(hops)) => walk(hops).unwrap_or(peer),
        // Which of the two the proxy wrote is unknown: only agreement counts.
        (Some(a), Some(b)) => match (walk(a), walk(b)) {
            (Some(a), Some(b)) if a == b => a,
            _ => peer,
        },
    }
}

/// The client of an axum request: its peer (`ConnectInfo`) resolved through
/// the trusted proxies; `None` when the request came without a peer address.
pub fn request_client(
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|axum::extract::ConnectInfo(addr)| client_addr(addr.ip(), headers, trusted))
}

/// Every value of header `name` in order, parsed into hops; `None` when
/// the header is absent. A hop that is not an address is `None`.
fn hops(
    headers: &HeaderMap,
    name: &str,
    parse: impl Fn(&str) -> Vec<Option<IpAddr>>,
) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        match value.to_str() {
            Ok(text) => hops.extend(parse(text)),
            Err(_) => hops.push(None),
        }
    }
    Some(hops)
}

/// From the right, the first hop that is not a trusted proxy; `None` when
/// a hop on the way is not an address (`unknown`, obfuscated, garbage) or
/// there are no hops. When every hop is trusted, the left-most one.
fn right_most_untrusted(hops: &[Option<IpAddr>], trusted: &TrustedProxies) -> Option<IpAddr> {
    let mut last = None;
    for hop in hops.iter().rev() {
        let ip = canonical((*hop)?);
        if !trusted.contains(ip) {
            return Some(ip);
        }
        last = Some(ip);
    }
    last
}

/// The `for=` node of each element of a `Forwarded` value, in order.
fn forwarded_for(value: &str) -> Vec<Option<IpAddr>> {
    split_unquoted(value, ',')
        .into_iter()
        .map(|element| {
            let mut node = None;
            for pair in split_unquoted(element, ';') {
                if let Some((name, value)) = pair.trim().split_once('=')
                    && name.trim().eq_ignore_ascii_case("for")
                {
                    node = Some(parse_node(unquote(value.trim())));
                }
            }
            // An element without `for=` names no client: it cannot be walked past.
            node.flatten()
        })
        .collect()
}

/// `s` split at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// A node as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:80`. `unknown`, obfuscated names
/// (`_hidden`) and anything else are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = node.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        let cidrs: Vec<Cidr> = list.iter().map(|s| s.parse().unwrap()).collect();
        TrustedProxies::new(&cidrs)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.1";

    fn client(pairs: &[(&str, &str)]) -> IpAddr {
        client_addr(ip(PROXY), &headers(pairs), &trusted(&["10.0.0.0/8"]))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")]);
        assert_eq!(
            client_addr(ip("203.0.113.9"), &h, &trusted(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_addr(ip(PROXY), &h, &TrustedProxies::default()),
            ip(PROXY)
        );
    }

    #[test]
    fn x_forwarded_for_lists_with_spaces_and_repeated_headers() {
        assert_eq!(client(&[("x-forwarded-for", "1.2.3.4")]), ip("1.2.3.4"));
        assert_eq!(
            client(&[("x-forwarded-for", " 9.9.9.9 ,  1.2.3.4 ")]),
            ip("1.2.3.4")
        );
        assert_eq!(
            client(&[
                ("x-forwarded-for", "9.9.9.9"),
                ("x-forwarded-for", "1.2.3.4, 10.0.0.7")
            ]),
            ip("1.2.3.4")
        );
        assert_eq!(
            client(&[("x-forwarded-for", "1.2.3.4:5555")]),
            ip("1.2.3.4")
        );
        assert_eq!(
            client(&[("x-forwarded-for", "[2001:db8::7]:443")]),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn a_forged_left_most_entry_is_ignored() {
        assert_eq!(
            client(&[("x-forwarded-for", "127.0.0.1, 1.2.3.4")]),
            ip("1.2.3.4")
        );
        assert_eq!(
            client(&[("forwarded", "for=127.0.0.1, for=1.2.3.4")]),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn several_trusted_hops_are_walked_past() {
        let h = headers(&[("x-forwarded-for", "5.6.7.8, 1.2.3.4, 10.1.1.1, 192.168.0.2")]);
        let t = trusted(&["10.0.0.0/8", "192.168.0.0/16"]);
        assert_eq!(client_addr(ip(PROXY), &h, &t), ip("1.2.3.4"));
        // Every hop trusted: the client is the left-most (an internal caller).
        assert_eq!(
            client(&[("x-forwarded-for", "10.9.9.9, 10.0.0.2")]),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn forwarded_ipv6_brackets_ports_quotes_and_other_parameters() {
        assert_eq!(
            client(&[("forwarded", "for=\"[2001:db8:cafe::17]:4711\"")]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            client(&[("forwarded", "for=\"[2001:db8::1]\"")]),
            ip("2001:db8::1")
        );
        assert_eq!(
            client(&[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")]),
            ip("192.0.2.60")
        );
        assert_eq!(
            client(&[(
                "forwarded",
                "proto=https; FOR=\"192.0.2.43:80\"; host=\"a,b\""
            )]),
            ip("192.0.2.43")
        );
        assert_eq!(
            client(&[("forwarded", "for=9.9.9.9"), ("forwarded", "for=192.0.2.1")]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn unknown_obfuscated_and_garbage_fall_back_to_the_peer() {
        for bad in [
            "unknown",
            "_hidden",
            "",
            "not-an-ip",
            "1.2.3.4.5",
            "[1.2.3.4]",
            "1.2.3.4, garbage",
            "1.2.3.4,",
        ] {
            assert_eq!(
                client(&[("x-forwarded-for", bad)]),
                ip(PROXY),
                "XFF {bad:?}"
            );
        }
        for bad in [
            "for=unknown",
            "for=_gazonk",
            "for=\"_SEVKISEK\"",
            "proto=http",
            "for=",
            "for=\"[2001:db8::1\"",
            "garbage",
            "for=1.2.3.4, for=unknown",
        ] {
            assert_eq!(
                client(&[("forwarded", bad)]),
                ip(PROXY),
                "Forwarded {bad:?}"
            );
        }
        // Past a trusted hop a malformed one still stops the walk.
        assert_eq!(
            client(&[("x-forwarded-for", "1.2.3.4, junk, 10.0.0.3")]),
            ip(PROXY)
        );
    }

    #[test]
    fn the_two_headers_must_agree() {
        let both = |f: &str, x: &str| client(&[("forwarded", f), ("x-forwarded-for", x)]);
        assert_eq!(both("for=1.2.3.4", "1.2.3.4"), ip("1.2.3.4"));
        assert_eq!(both("for=6.6.6.6", "1.2.3.4"), ip(PROXY));
    }

    #[test]
    fn networks_match_by_prefix_and_ipv4_mapped_addresses() {
        let t = trusted(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]);
        assert!(t.contains(ip("10.255.0.1")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("2001:db8:ffff::1")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(trusted(&["0.0.0.0/0"]).contains(ip("8.8.8.8")));
        assert!(!trusted(&["0.0.0.0/0"]).contains(ip("2001:db8::1")));
    }
}
