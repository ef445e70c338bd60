//! Router-level tests of the pure HTTP behaviour of `/mcp`: every row of
//! the error table that needs no upstream, driven with `oneshot` against a
//! gateway over a fresh database. Upstream behaviour (200, 404 unknown
//! tool, 502, 504) is covered end to end in `tests/server.rs`.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use chrono::{TimeDelta, Utc};
use plexmcp::admin::{self, KeyRequest, McpRequest};
use plexmcp::domain::{Actor, KeyRecord, McpAccess, Org};
use plexmcp::keys::{self, ApiKey};
use plexmcp::server::{Gateway, MAX_BODY_BYTES};
use plexmcp::store::Store;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

struct Fixture {
    _dir: TempDir,
    admin: Store,
    org: Org,
    gateway: Gateway,
    router: Router,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn assert_invalid_key(&self, reason: &str) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{:#}", self.body);
        assert_eq!(
            self.body,
            json!({"error": {"code": "invalid_api_key", "message": "Invalid API Key", "reason": reason}})
        );
        assert_eq!(
            self.headers
                .get(header::WWW_AUTHENTICATE)
                .map(HeaderValue::as_bytes),
            Some(&b"ApiKey"[..])
        );
    }

    fn assert_unauthorized_mcp(&self) {
        assert_eq!(self.status, StatusCode::FORBIDDEN, "{:#}", self.body);
        assert_eq!(
            self.body,
            json!({"error": {"code": "unauthorized_mcp", "message": "Unauthorized MCP"}})
        );
        assert!(self.headers.get(header::WWW_AUTHENTICATE).is_none());
    }

    fn assert_invalid_request(&self, mentions: &str) {
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{:#}", self.body);
        assert_eq!(self.body["error"]["code"], "invalid_request");
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(mentions),
            "message {message:?} should mention {mentions:?}"
        );
    }
}

fn actor() -> Actor {
    Actor {
        user: "tester".into(),
        addr: None,
    }
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("plexmcp.db")).expect("open store");
        let admin = store.reopen().expect("second connection");
        let org = admin.org("default").expect("default org");
        let gateway = Gateway::new(store).expect("gateway");
        let router = gateway.router();
        Fixture {
            _dir: dir,
            admin,
            org,
            gateway,
            router,
        }
    }

    /// An MCP that is never actually reached by these tests.
    fn add_mcp(&mut self, slug: &str) {
        let req = McpRequest {
            slug: slug.into(),
            stdio: Some("sh -c 'exit 1'".into()),
            ..McpRequest::default()
        };
        admin::add_mcp(&mut self.admin, &self.org, &req, &actor(), Utc::now()).expect("add MCP");
    }

    fn key_made_at(
        &mut self,
        access: McpAccess,
        expires: &str,
        now: chrono::DateTime<Utc>,
    ) -> (KeyRecord, ApiKey) {
        let req = KeyRequest {
            name: "test key".into(),
            description: None,
            expires: expires.into(),
            access,
        };
        admin::create_key(&mut self.admin, &self.org, &req, &actor(), now).expect("create key")
    }

    fn key(&mut self, access: McpAccess) -> (KeyRecord, ApiKey) {
        self.key_made_at(access, "90d", Utc::now())
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible router");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("response body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes)));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `POST /mcp` with `Authorization: ApiKey <key>` (when given).
    async fn call(&self, key: Option<&str>, body: impl Into<Body>) -> Reply {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/mcp")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("ApiKey {key}"));
        }
        self.send(request.body(body.into()).unwrap()).await
    }

    /// `POST /mcp` with one raw header carrying the key.
    async fn call_with_header(&self, name: &str, value: HeaderValue, body: &Value) -> Reply {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/mcp")
            .header(header::CONTENT_TYPE, "application/json")
            .header(name, value)
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    /// Commits queued usage events, then counts them.
    async fn usage_events(&self) -> i64 {
        self.gateway.state().usage.flush().await;
        self.admin.usage_event_count().expect("count usage events")
    }

    fn verified_count(&self) -> usize {
        self.gateway.state().verifier.verified_count()
    }

    /// A key with a valid tag and the id of `real`, but another secret.
    fn same_id_wrong_secret(&self, real: &ApiKey) -> ApiKey {
        const ALPHABET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let secret = self.admin.server_secret().expect("server secret");
        // The generator maps byte b (< 248) to ALPHABET[b % 62]: feed it the
        // id's own characters, then a secret of our choosing.
        let mut bytes: Vec<u8> = real
            .id()
            .chars()
            .map(|c| u8::try_from(ALPHABET.find(c).expect("base62 id")).unwrap())
            .collect();
        bytes.extend((0..40u32).map(|i| u8::try_from((i * 7 + 3) % 62).unwrap()));
        let forged = keys::generate_with(&secret, |buf| {
            let n = buf.len().min(bytes.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            buf[n..].fill(0);
        });
        assert_eq!(forged.id(), real.id());
        assert_ne!(forged.expose(), real.expose());
        keys::parse_and_check(forged.expose(), &secret).expect("tag-valid forgery");
        forged
    }
}

fn call_body(mcp: &str) -> Value {
    json!({"mcp_id": mcp, "tool": "echo", "arguments": {"message": "hi"}})
}

/// A key whose last (tag) character is changed: the right shape, a wrong tag.
fn bad_tag(key: &ApiKey) -> String {
    let mut text = key.expose().to_string();
    let last = text.pop().unwrap();
    text.push(if last == 'x' { 'y' } else { 'x' });
    text
}

#[tokio::test]
async fn healthz_answers_200() {
    let fx = Fixture::new();
    let request = Request::get("/healthz").body(Body::empty()).unwrap();
    let reply = fx.send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn unknown_paths_answer_404() {
    let fx = Fixture::new();
    for (method, path) in [
        (Method::GET, "/"),
        // `/mcp/{mcp_id}` is an MCP endpoint (tests/mcp_proxy.rs); deeper paths are not.
        (Method::POST, "/mcp/extra/more"),
        (Method::POST, "/v1/mcp"),
        (Method::GET, "/healthz/x"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let reply = fx.send(request).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body["error"]["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn missing_key_is_401_missing() {
    let fx = Fixture::new();
    fx.call(None, call_body("alpha").to_string())
        .await
        .assert_invalid_key("missing");
    assert_eq!(fx.usage_events().await, 0);
}

#[tokio::test]
async fn malformed_keys_are_401_malformed() {
    let mut fx = Fixture::new();
    fx.add_mcp("alpha");
    let (_, key) = fx.key(McpAccess::All);
    let body = call_body("alpha");
    let auth = |v: String| HeaderValue::from_str(&v).unwrap();

    let cases: Vec<(&str, &str, HeaderValue)> = vec![
        (
            "bad prefix",
            "authorization",
            auth(format!("ApiKey sk_{}", &key.expose()[5..])),
        ),
        (
            "bad tag",
            "authorization",
            auth(format!("ApiKey {}", bad_tag(&key))),
        ),
        ("bad tag in X-API-Key", "x-api-key", auth(bad_tag(&key))),
        (
            "bad tag as Bearer",
            "authorization",
            auth(format!("Bearer {}", bad_tag(&key))),
        ),
        (
            "too short",
            "authorization",
            auth(format!("ApiKey {}", &key.expose()[..40])),
        ),
        ("garbage", "x-api-key", auth("hunter2".into())),
        ("empty X-API-Key", "x-api-key", HeaderValue::from_static("")),
        (
            "non-ASCII Authorization",
            "authorization",
            HeaderValue::from_bytes(format!("ApiKey {}é", &key.expose()[..50]).as_bytes()).unwrap(),
        ),
        (
            "non-ASCII X-API-Key",
            "x-api-key",
            HeaderValue::from_bytes("pmcp_ü".as_bytes()).unwrap(),
        ),
        // The right key under a scheme we do not speak.
        (
            "Basic scheme",
            "authorization",
            auth(format!("Basic {}", key.expose())),
        ),
        ("scheme only", "authorization", auth("ApiKey".into())),
    ];
    for (what, name, value) in cases {
        let reply = fx.call_with_header(name, value, &body).await;
        assert_eq!(
            reply.body["error"]["reason"], "malformed",
            "{what}: {:#}",
            reply.body
        );
        reply.assert_invalid_key("malformed");
    }
    assert_eq!(fx.verified_count(), 0, "a malformed key reached argon2");
    assert_eq!(
        fx.usage_events().await,
        0,
        "a malformed key left a usage event"
    );
}

#[tokio::test]
async fn unknown_or_wrong_keys_are_401_not_found() {
    let mut fx = Fixture::new();
    fx.add_mcp("alpha");
    let (_, real) = fx.key(McpAccess::All);
    let secret = fx.admin.server_secret().unwrap();

    // Issued under this server's secret (the tag is right) but never stored.
    let never_stored = keys::generate(&secret);
    fx.call(Some(never_stored.expose()), call_body("alpha").to_string())
        .await
        .assert_invalid_key("not_found");
    assert_eq!(
        fx.usage_events().await,
        0,
        "an unknown id cannot be counted"
    );

    // A real id with the wrong secret looks exactly like an unknown key.
    let wrong = fx.same_id_wrong_secret(&real);
    fx.call(Some(wrong.expose()), call_body("alpha").to_string())
        .await
        .assert_invalid_key("not_found");
    assert_eq!(fx.verified_count(), 0);
    // That one did reach a key, so it is recorded against it.
    assert_eq!(fx.usage_events().await, 1);

    // A key from another database: its tag does not verify here.
    let foreign = keys::generate(&keys::ServerSecret::generate());
    fx.call(Some(foreign.expose()), call_body("alpha").to_string())
        .await
        .assert_invalid_key("malformed");
}

#[tokio::test]
async fn revoked_key_is_401_revoked_only_with_the_right_secret() {
    let mut fx = Fixture::new();
    let (record, key) = fx.key(McpAccess::All);
    // Used (and cached) while valid: 403 proves authentication passed.
    fx.call(Some(key.expose()), call_body("ghost").to_string())
        .await
        .assert_unauthorized_mcp();
    admin::revoke_key(&mut fx.admin, &record, &actor(), Utc::now()).expect("revoke");

    fx.call(Some(key.expose()), call_body("ghost").to_string())
        .await
        .assert_invalid_key("revoked");
    let wrong = fx.same_id_wrong_secret(&key);
    fx.call(Some(wrong.expose()), call_body("ghost").to_string())
        .await
        .assert_invalid_key("not_found");
}

#[tokio::test]
async fn expired_key_is_401_expired_only_with_the_right_secret() {
    let mut fx = Fixture::new();
    // Made two days ago for one day.
    let (_, key) = fx.key_made_at(McpAccess::All, "1d", Utc::now() - TimeDelta::days(2));

    fx.call(Some(key.expose()), call_body("ghost").to_string())
        .await
        .assert_invalid_key("expired");
    let wrong = fx.same_id_wrong_secret(&key);
    fx.call(Some(wrong.expose()), call_body("ghost").to_string())
        .await
        .assert_invalid_key("not_found");
}

#[tokio::test]
async fn key_is_accepted_in_every_supported_header() {
    let mut fx = Fixture::new();
    let (_, key) = fx.key(McpAccess::All);
    let k = key.expose();
    let body = call_body("ghost");
    for (name, value) in [
        ("authorization", format!("ApiKey {k}")),
        ("authorization", format!("apikey {k}")),
        ("authorization", format!("Bearer {k}")),
        ("authorization", format!("bearer {k}")),
        ("x-api-key", k.to_string()),
    ] {
        // 403 (not 401) shows the key was accepted.
        let reply = fx
            .call_with_header(name, HeaderValue::from_str(&value).unwrap(), &body)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{name}: {:#}",
            reply.body
        );
        reply.assert_unauthorized_mcp();
    }
    // argon2 ran once for the five requests.
    assert_eq!(fx.verified_count(), 1);
}

#[tokio::test]
async fn forbidden_missing_and_removed_mcps_all_answer_the_same_403() {
    let mut fx = Fixture::new();
    fx.add_mcp("alpha");
    fx.add_mcp("beta");
    fx.add_mcp("gamma");
    let (_, only_alpha) = fx.key(McpAccess::only_mcps(["alpha"]));
    let (_, all) = fx.key(McpAccess::All);

    // gamma exists and is reached (its command fails: 502)…
    let before = fx
        .call(Some(all.expose()), call_body("gamma").to_string())
        .await;
    assert_eq!(before.status, StatusCode::BAD_GATEWAY, "{:#}", before.body);
    // …until it is removed by another connection.
    admin::remove_mcp(&mut fx.admin, &fx.org, "gamma", &actor(), Utc::now()).expect("remove");

    let other = fx
        .call(Some(only_alpha.expose()), call_body("beta").to_string())
        .await;
    let missing = fx
        .call(Some(all.expose()), call_body("nowhere").to_string())
        .await;
    let removed = fx
        .call(Some(all.expose()), call_body("gamma").to_string())
        .await;
    for reply in [&other, &missing, &removed] {
        reply.assert_unauthorized_mcp();
    }
    assert_eq!(other.body, missing.body);
    assert_eq!(missing.body, removed.body);
    // Each of the four requests was made with a real key: all recorded.
    assert_eq!(fx.usage_events().await, 4);
}

#[tokio::test]
async fn bad_bodies_are_400_invalid_request() {
    let mut fx = Fixture::new();
    fx.add_mcp("alpha");
    let (_, key) = fx.key(McpAccess::All);
    let k = Some(key.expose());

    fx.call(k, "{not json")
        .await
        .assert_invalid_request("Invalid request body");
    fx.call(k, "")
        .await
        .assert_invalid_request("Invalid request body");
    fx.call(k, json!({"mcp_id": "alpha"}).to_string())
        .await
        .assert_invalid_request("tool");
    fx.call(k, json!({"tool": "echo"}).to_string())
        .await
        .assert_invalid_request("mcp_id");
    fx.call(
        k,
        json!({"mcp_id": "alpha", "tool": "echo", "arguments": [1]}).to_string(),
    )
    .await
    .assert_invalid_request("Invalid request body");
    fx.call(k, json!(["alpha", "echo"]).to_string())
        .await
        .assert_invalid_request("Invalid request body");
    assert_eq!(
        fx.usage_events().await,
        6,
        "requests with a valid key are all recorded"
    );
}

#[tokio::test]
async fn body_over_one_mebibyte_is_413() {
    let mut fx = Fixture::new();
    let (_, key) = fx.key(McpAccess::All);
    let k = Some(key.expose());

    // Exactly the limit is accepted (and then refused for the unknown MCP).
    let mut exact = call_body("ghost").to_string().into_bytes();
    exact.resize(MAX_BODY_BYTES, b' ');
    fx.call(k, exact).await.assert_unauthorized_mcp();

    let mut over = call_body("ghost").to_string().into_bytes();
    over.resize(MAX_BODY_BYTES + 1, b' ');
    let reply = fx.call(k, over.clone()).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:#}",
        reply.body
    );
    assert_eq!(reply.body["error"]["code"], "payload_too_large");

    // Without a key the body is never read: the key is refused first.
    fx.call(None, over).await.assert_invalid_key("missing");
    assert_eq!(fx.usage_events().await, 2);
}

#[tokio::test]
async fn forged_keys_never_reach_argon2_or_the_usage_log() {
    let mut fx = Fixture::new();
    let (_, key) = fx.key(McpAccess::All);
    let body = call_body("ghost").to_string();
    for i in 0..1000usize {
        // Change one character of the secret or tag: right shape, wrong tag.
        let mut chars: Vec<char> = key.expose().chars().collect();
        let at = keys::KEY_PREFIX.len() + keys::ID_LEN + i % (keys::SECRET_LEN + keys::TAG_LEN);
        chars[at] = if chars[at] == '0' { '1' } else { '0' };
        let forged: String = chars.into_iter().collect();
        fx.call(Some(&forged), body.clone())
            .await
            .assert_invalid_key("malformed");
    }
    assert_eq!(fx.verified_count(), 0, "a forged key reached argon2");
    assert_eq!(
        fx.usage_events().await,
        0,
        "a forged key left a usage event"
    );
}

/// `POST /mcp` with every header of `headers` (repeated names included).
async fn call_with_headers(fx: &Fixture, headers: &[(&str, String)]) -> Reply {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    fx.send(
        request
            .body(Body::from(call_body("ghost").to_string()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn ambiguous_credentials_are_401_malformed() {
    let mut fx = Fixture::new();
    let (_, a) = fx.key(McpAccess::All);
    let (_, b) = fx.key(McpAccess::All);
    let (a, b) = (a.expose(), b.expose());
    let auth = "authorization";
    let ambiguous: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "two Authorization headers, two keys",
            vec![(auth, format!("ApiKey {a}")), (auth, format!("ApiKey {b}"))],
        ),
        (
            "two Authorization headers, the second unusable",
            vec![(auth, format!("Bearer {a}")), (auth, format!("Basic {b}"))],
        ),
        (
            "Authorization and X-API-Key with different keys",
            vec![(auth, format!("ApiKey {a}")), ("x-api-key", b.to_string())],
        ),
        (
            "X-API-Key first, then Authorization with another key",
            vec![("x-api-key", b.to_string()), (auth, format!("Bearer {a}"))],
        ),
        (
            "two X-API-Key headers",
            vec![("x-api-key", a.to_string()), ("x-api-key", b.to_string())],
        ),
    ];
    for (what, headers) in ambiguous {
        let reply = call_with_headers(&fx, &headers).await;
        assert_eq!(
            reply.body["error"]["reason"], "malformed",
            "{what}: {:#}",
            reply.body
        );
        reply.assert_invalid_key("malformed");
    }
    assert_eq!(
        fx.verified_count(),
        0,
        "an ambiguous request reached argon2"
    );
    assert_eq!(
        fx.usage_events().await,
        0,
        "nor was it counted against a key"
    );

    // The same key said twice is not ambiguous (clients that set both
    // headers from one setting keep working).
    for headers in [
        vec![(auth, format!("ApiKey {a}")), (auth, format!("ApiKey {a}"))],
        vec![(auth, format!("Bearer {a}")), ("x-api-key", a.to_string())],
    ] {
        call_with_headers(&fx, &headers)
            .await
            .assert_unauthorized_mcp();
    }
}

fn rpc_call(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

/// A JSON-RPC answer (HTTP 200) carrying the error `message`.
fn assert_rpc_error(reply: &Reply, message: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    assert_eq!(reply.body["error"]["message"], message, "{:#}", reply.body);
}

#[tokio::test]
async fn client_chosen_mcp_names_do_not_grow_the_verifiers_memory() {
    let mut fx = Fixture::new();
    fx.add_mcp("alpha");
    let (_, scoped) = fx.key(McpAccess::only_mcps(["alpha"]));
    let (_, all) = fx.key(McpAccess::All);
    let (scoped, all) = (Some(scoped.expose()), Some(all.expose()));
    // Both keys verified and cached first.
    for key in [scoped, all] {
        fx.call(key, call_body("ghost").to_string())
            .await
            .assert_unauthorized_mcp();
    }
    let verifier = &fx.gateway.state().verifier;
    let baseline = verifier.cache_size();

    for i in 0..100 {
        // Not an MCP id at all: too long, or characters a slug cannot have.
        let long = format!("{i}{}", "m".repeat(10_000));
        let odd = format!("Ghost {i}");
        // An MCP id that could exist but does not.
        let absent = format!("ghost-{i}");
        for name in [&long, &odd, &absent] {
            for key in [scoped, all] {
                let reply = fx
                    .call(key, rpc_call(&format!("{name}__echo")).to_string())
                    .await;
                assert_rpc_error(&reply, "Unauthorized MCP");
            }
            fx.call(all, call_body(name).to_string())
                .await
                .assert_unauthorized_mcp();
        }
    }
    assert_eq!(
        verifier.cache_size(),
        baseline,
        "requests for MCPs that do not exist left entries behind"
    );
}

/// Bytes on disk for the database (with its WAL).
fn database_bytes(fx: &Fixture) -> u64 {
    let db = fx.admin.path().to_path_buf();
    let wal = db.with_extension("db-wal");
    [db, wal]
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

#[tokio::test]
async fn client_chosen_names_reach_the_usage_log_bounded() {
    const HUGE: usize = 400_000;
    let mut fx = Fixture::new();
    fx.add_mcp("alpha");
    let (all_record, all) = fx.key(McpAccess::All);
    let (scoped_record, scoped) = fx.key(McpAccess::only_mcps(["alpha"]));
    let (all, scoped) = (Some(all.expose()), Some(scoped.expose()));
    fx.usage_events().await;
    let before = database_bytes(&fx);

    let huge = "h".repeat(HUGE);
    let mut sent = 0usize;
    for round in 0..4 {
        let huge = format!("{round}{huge}");
        let bodies = [
            // REST: a huge MCP id; a real MCP with a huge tool; an absent one.
            json!({"mcp_id": huge, "tool": "echo"}),
            json!({"mcp_id": "alpha", "tool": huge}),
            json!({"mcp_id": "ghost", "tool": huge}),
            // JSON-RPC: the same through tools/call names, and huge methods.
            rpc_call(&format!("{huge}__echo")),
            rpc_call(&format!("alpha__{huge}")),
            rpc_call(&format!("ghost__{huge}")),
            json!({"jsonrpc": "2.0", "id": 1, "method": huge}),
            json!({"jsonrpc": "2.0", "method": huge}),
        ];
        for body in &bodies {
            let text = body.to_string();
            sent += 2 * text.len();
            for key in [all, scoped] {
                let request = Request::post("/mcp")
                    .header(header::AUTHORIZATION, format!("ApiKey {}", key.unwrap()))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(text.clone()))
                    .unwrap();
                let response = fx.router.clone().oneshot(request).await.unwrap();
                assert_ne!(response.status(), StatusCode::UNAUTHORIZED);
            }
        }
    }
    let events = fx.usage_events().await;
    assert_eq!(events, 64, "every request with a real key is recorded");
    let grown = database_bytes(&fx).saturating_sub(before);
    eprintln!("{sent} bytes of requests grew the database by {grown} bytes");
    assert!(
        grown < 4 * 1024 * 1024,
        "{sent} bytes of requests grew the database by {grown} bytes"
    );

    // What was kept: MCPs that exist, tool and method names of bounded length.
    for record in [&all_record, &scoped_record] {
        let usage = fx
            .admin
            .key_usage(record.row_id, Utc::now(), 100)
            .expect("key usage");
        assert_eq!(usage.recent.len(), 32);
        for r in &usage.recent {
            assert!(
                matches!(r.mcp.as_deref(), None | Some("alpha")),
                "stored MCP {:?}",
                r.mcp
                    .as_deref()
                    .map(|m| m.chars().take(20).collect::<String>())
            );
            let tool = r.tool.as_deref().unwrap_or_default();
            assert!(
                tool.chars().count() <= 128,
                "stored tool of {} chars",
                tool.len()
            );
        }
        for t in &usage.by_tool {
            assert!(matches!(t.mcp.as_str(), "" | "alpha"), "rolled-up MCP");
            assert!(
                t.tool.chars().count() <= 128,
                "rolled-up tool of {} chars",
                t.tool.len()
            );
        }
        // A long name is kept as a marked prefix, not silently as if whole.
        assert!(
            usage
                .recent
                .iter()
                .any(|r| r.mcp.as_deref() == Some("alpha")
                    && r.tool.as_deref().is_some_and(|t| t.ends_with('…'))),
            "the real MCP's call with a huge tool name was not recorded as a marked prefix"
        );
    }
}
