//! Spoofing attempts against `server.trusted_proxies`, over HTTP: the real
//! router driven with `oneshot`, each request given the TCP peer of the
//! test's choosing (`ConnectInfo`) and forwarding headers of its own. What
//! is checked is what an operator sees: the client address in a key's usage,
//! and who is answered 429 by the failed-auth limiter.

mod support;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Utc;
use plexmcp::admin::{self, KeyRequest};
use plexmcp::config::Cidr;
use plexmcp::domain::{Actor, McpAccess, Org};
use plexmcp::keys::ApiKey;
use plexmcp::server::Gateway;
use plexmcp::server::client_addr::TrustedProxies;
use plexmcp::server::limiter::MAX_FAILURES;
use plexmcp::server::mcp_proxy::ProxySettings;
use plexmcp::store::Store;
use serde_json::{Value, json};
use support::bad_tag;
use tempfile::TempDir;
use tower::ServiceExt;

/// The reverse proxy, trusted in every fixture.
const PROXY: &str = "10.0.0.1";
/// A client connecting directly, not trusted.
const DIRECT: &str = "203.0.113.50";
const CLIENT_A: &str = "198.51.100.7";
const CLIENT_B: &str = "198.51.100.8";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

struct Fixture {
    _dir: TempDir,
    admin: Store,
    org: Org,
    gateway: Gateway,
    router: Router,
}

/// Which endpoint a request goes to: REST/JSON-RPC `/mcp` or the MCP proxy.
#[derive(Clone, Copy, Debug)]
enum Endpoint {
    Mcp,
    McpProxy,
}

const ENDPOINTS: [Endpoint; 2] = [Endpoint::Mcp, Endpoint::McpProxy];

impl Fixture {
    /// A gateway that trusts `trusted` as reverse proxies.
    fn trusting(trusted: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("plexmcp.db")).expect("open store");
        let admin = store.reopen().expect("second connection");
        let org = admin.org("default").expect("default org");
        let cidrs: Vec<Cidr> = trusted.iter().map(|s| s.parse().expect("CIDR")).collect();
        let settings = ProxySettings {
            trusted_proxies: TrustedProxies::new(&cidrs),
            ..ProxySettings::default()
        };
        let gateway = Gateway::with_proxy_settings(store, settings).expect("gateway");
        let router = gateway.router();
        Fixture {
            _dir: dir,
            admin,
            org,
            gateway,
            router,
        }
    }

    fn key(&mut self) -> (i64, ApiKey) {
        let req = KeyRequest {
            name: "proxied".into(),
            description: None,
            expires: "90d".into(),
            access: McpAccess::All,
        };
        let (record, key) =
            admin::create_key(&mut self.admin, &self.org, &req, &actor(), Utc::now())
                .expect("create key");
        (record.row_id, key)
    }

    /// A request to `endpoint` with `key` from TCP peer `peer`, with `headers`.
    async fn send(
        &self,
        endpoint: Endpoint,
        peer: &str,
        key: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let (uri, body) = match endpoint {
            Endpoint::Mcp => (
                "/mcp",
                json!({"mcp_id": "nothing-here", "tool": "echo", "arguments": {}}),
            ),
            Endpoint::McpProxy => (
                "/mcp/nothing-here",
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            ),
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::AUTHORIZATION, format!("ApiKey {key}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Body::from(body.to_string())).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip(peer), 40_000)));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible router");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("response body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The client address of the key's most recent request, as usage shows it.
    async fn last_client(&self, key_row: i64) -> Option<String> {
        self.gateway.state().usage.flush().await;
        let usage = self
            .admin
            .key_usage(key_row, Utc::now(), 1)
            .expect("key usage");
        usage
            .recent
            .first()
            .expect("a recorded request")
            .client_ip
            .clone()
    }

    /// `MAX_FAILURES` refused attempts from `peer` with `headers`.
    async fn fail_until_limited(
        &self,
        endpoint: Endpoint,
        key: &ApiKey,
        peer: &str,
        headers: &[(&str, &str)],
    ) {
        for i in 0..MAX_FAILURES as usize {
            let (status, body) = self
                .send(endpoint, peer, &bad_tag(key.expose(), i), headers)
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}: {body:#}");
        }
    }
}

fn actor() -> Actor {
    Actor {
        user: "tester".into(),
        addr: None,
    }
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_change_nothing() {
    for endpoint in ENDPOINTS {
        let mut fx = Fixture::trusting(&[PROXY]);
        let (row, key) = fx.key();
        let spoof = [("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")];
        let (status, body) = fx.send(endpoint, DIRECT, key.expose(), &spoof).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{endpoint:?}: {body:#}");
        assert_eq!(
            fx.last_client(row).await.as_deref(),
            Some(DIRECT),
            "{endpoint:?}"
        );

        // Its failures are its own, whichever client it claims to be each time.
        for i in 0..MAX_FAILURES as usize {
            let claimed = format!("1.2.3.{i}");
            let headers = [("x-forwarded-for", claimed.as_str())];
            let (status, _) = fx
                .send(endpoint, DIRECT, &bad_tag(key.expose(), i), &headers)
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{endpoint:?} attempt {i}");
        }
        let headers = [("x-forwarded-for", "1.2.3.250")];
        let (status, body) = fx
            .send(endpoint, DIRECT, &bad_tag(key.expose(), 99), &headers)
            .await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "{endpoint:?}: {body:#}"
        );
    }
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_in_usage() {
    for endpoint in ENDPOINTS {
        let mut fx = Fixture::trusting(&["10.0.0.0/8"]);
        let (row, key) = fx.key();
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("x-forwarded-for", CLIENT_A)], CLIENT_A),
            (
                &[("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")],
                "2001:db8::7",
            ),
            // Nothing usable forwarded: the proxy itself.
            (&[("x-forwarded-for", "unknown")], PROXY),
            (&[], PROXY),
        ];
        for (headers, expected) in cases {
            let (status, body) = fx.send(endpoint, PROXY, key.expose(), headers).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{endpoint:?}: {body:#}");
            assert_eq!(
                fx.last_client(row).await.as_deref(),
                Some(expected),
                "{endpoint:?} {headers:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_forged_left_most_entry_is_ignored() {
    for endpoint in ENDPOINTS {
        let mut fx = Fixture::trusting(&["10.0.0.0/8"]);
        let (row, key) = fx.key();
        // The client sent `X-Forwarded-For: 127.0.0.1`; two proxies appended.
        let forged = [("x-forwarded-for", "127.0.0.1, 198.51.100.7, 10.0.0.9")];
        let (status, body) = fx.send(endpoint, PROXY, key.expose(), &forged).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{endpoint:?}: {body:#}");
        assert_eq!(
            fx.last_client(row).await.as_deref(),
            Some(CLIENT_A),
            "{endpoint:?}"
        );

        // Forging a new left-most address per attempt does not escape the limit.
        for i in 0..MAX_FAILURES as usize {
            let xff = format!("192.0.2.{i}, {CLIENT_A}");
            let headers = [("x-forwarded-for", xff.as_str())];
            let (status, _) = fx
                .send(endpoint, PROXY, &bad_tag(key.expose(), i), &headers)
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{endpoint:?} attempt {i}");
        }
        let headers = [("x-forwarded-for", "192.0.2.250, 198.51.100.7")];
        let (status, body) = fx
            .send(endpoint, PROXY, &bad_tag(key.expose(), 99), &headers)
            .await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "{endpoint:?}: {body:#}"
        );
    }
}

#[tokio::test]
async fn clients_behind_one_trusted_proxy_are_limited_separately() {
    for endpoint in ENDPOINTS {
        let mut fx = Fixture::trusting(&[PROXY]);
        let (_, key) = fx.key();
        let from_a = [("x-forwarded-for", CLIENT_A)];
        let from_b = [("x-forwarded-for", CLIENT_B)];
        fx.fail_until_limited(endpoint, &key, PROXY, &from_a).await;

        let (status, body) = fx
            .send(endpoint, PROXY, &bad_tag(key.expose(), 99), &from_a)
            .await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "{endpoint:?} A: {body:#}"
        );
        // B, behind the same proxy, is not locked out: its key works, a wrong one is 401.
        let (status, body) = fx.send(endpoint, PROXY, key.expose(), &from_b).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{endpoint:?} B: {body:#}");
        let (status, body) = fx
            .send(endpoint, PROXY, &bad_tag(key.expose(), 98), &from_b)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{endpoint:?} B: {body:#}");
        // Nor is the proxy's own address (requests that forward nothing usable).
        let (status, body) = fx
            .send(endpoint, PROXY, &bad_tag(key.expose(), 97), &[])
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{endpoint:?} proxy: {body:#}"
        );
    }
}
