//! Hostile clients: floods of forged keys (wrong integrity tag) and of
//! wrong-secret keys (a real id and a valid tag, refused only by argon2),
//! the per-address limit on failed authentication (also with its table
//! full, and under concurrent attempts), clients that hang up mid-request,
//! a database another process leaves stuck, and the warning for a
//! non-loopback listen address.
//!
//! The router-level tests drive the real `/mcp` handler with `oneshot`,
//! inserting `ConnectInfo` so that each request comes from an address of
//! the test's choosing. The socket-level tests run the real binary and bind
//! their clients to different 127.0.0.0/8 addresses. No test asserts a
//! timing; latencies are printed for information.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::Utc;
use plexmcp::admin::{self, KeyRequest};
use plexmcp::auth::ARGON2_CONCURRENCY;
use plexmcp::domain::{Actor, McpAccess, Org};
use plexmcp::keys::{ApiKey, ServerSecret};
use plexmcp::server::Gateway;
use plexmcp::server::limiter::{MAX_FAILURES, MAX_TRACKED, WINDOW};
use plexmcp::store::Store;
use serde_json::{Value, json};
use support::{Env, Server, bad_tag, client_from, same_id_wrong_secret};
use tempfile::TempDir;
use tower::ServiceExt;

/// Upper bound on waiting for something that must happen (not a timing
/// assertion: only a guard against hanging forever).
const PATIENCE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Router level
// ---------------------------------------------------------------------------

struct Fixture {
    _dir: TempDir,
    admin: Store,
    org: Org,
    gateway: Gateway,
    router: Router,
    secret: ServerSecret,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn reason(&self) -> Option<&str> {
        self.body["error"]["reason"].as_str()
    }

    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// Authenticated, then refused the MCP: the key itself was accepted.
    /// (These tests register no MCP, so a good key can get no further.)
    fn assert_key_accepted(&self) {
        assert_eq!(self.status, StatusCode::FORBIDDEN, "{:#}", self.body);
        assert_eq!(self.code(), Some("unauthorized_mcp"), "{:#}", self.body);
    }

    fn assert_refused(&self, reason: &str) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{:#}", self.body);
        assert_eq!(self.code(), Some("invalid_api_key"), "{:#}", self.body);
        assert_eq!(self.reason(), Some(reason), "{:#}", self.body);
    }

    /// 429 with a `Retry-After` within the limiter's window; returns it.
    fn assert_rate_limited(&self) -> u64 {
        assert_eq!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{:#}",
            self.body
        );
        assert_eq!(self.code(), Some("rate_limited"), "{:#}", self.body);
        let retry: u64 = self
            .headers
            .get(header::RETRY_AFTER)
            .expect("Retry-After on a 429")
            .to_str()
            .unwrap()
            .parse()
            .expect("Retry-After in seconds");
        assert!(
            (1..=WINDOW.as_secs()).contains(&retry),
            "Retry-After {retry}"
        );
        retry
    }
}

fn actor() -> Actor {
    Actor {
        user: "tester".into(),
        addr: None,
    }
}

/// 10.x.y.z addresses, one per `n`.
fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (n & 0x00FF_FFFF)))
}

fn body() -> Value {
    json!({"mcp_id": "nothing-here", "tool": "echo", "arguments": {"message": "hi"}})
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("plexmcp.db")).expect("open store");
        let admin = store.reopen().expect("second connection");
        let org = admin.org("default").expect("default org");
        let secret = admin.server_secret().expect("server secret");
        let gateway = Gateway::new(store).expect("gateway");
        let router = gateway.router();
        Fixture {
            _dir: dir,
            admin,
            org,
            gateway,
            router,
            secret,
        }
    }

    fn key(&mut self, name: &str) -> ApiKey {
        let req = KeyRequest {
            name: name.into(),
            description: None,
            expires: "90d".into(),
            access: McpAccess::All,
        };
        admin::create_key(&mut self.admin, &self.org, &req, &actor(), Utc::now())
            .expect("create key")
            .1
    }

    fn verified_count(&self) -> usize {
        self.gateway.state().verifier.verified_count()
    }
}

/// `POST /mcp` from `from` (no `ConnectInfo`, so no limiter, when `None`).
async fn post(router: &Router, from: Option<IpAddr>, key: Option<&str>) -> Answer {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("ApiKey {key}"));
    }
    let mut request = request.body(Body::from(body().to_string())).unwrap();
    if let Some(ip) = from {
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    }
    send(router, request).await
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("response body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "non-JSON body ({e}) with {status}: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Answer {
        status,
        headers,
        body,
    }
}

async fn healthz(router: &Router) -> StatusCode {
    let request = Request::get("/healthz").body(Body::empty()).unwrap();
    router.clone().oneshot(request).await.unwrap().status()
}

/// Mean, median, 95th percentile and maximum, for printing.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(n).unwrap();
    format!(
        "n={n} mean={mean:?} p50={:?} p95={:?} max={:?}",
        samples[n / 2],
        samples[(n * 95 / 100).min(n - 1)],
        samples[n - 1]
    )
}

/// Counts of what a flood task got back.
#[derive(Default)]
struct Tally {
    refused: AtomicUsize,
    limited: AtomicUsize,
}

impl Tally {
    fn total(&self) -> usize {
        self.refused.load(Ordering::Relaxed) + self.limited.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_keys_keep_working_through_a_flood_of_forged_and_wrong_secret_keys() {
    const VALID: usize = 40;
    /// Forged-key tasks share this many addresses, so each address soon
    /// exceeds its failure budget and gets 429s as well.
    const FORGED_ADDRESSES: u32 = 16;
    let mut fx = Fixture::new();
    let good = fx.key("good");
    let late = fx.key("late");
    let router = fx.router.clone();

    // The good key is verified once before anything else (steady state).
    post(&router, Some(ip(1)), Some(good.expose()))
        .await
        .assert_key_accepted();
    assert_eq!(fx.verified_count(), 1);
    let mut unloaded = Vec::new();
    for _ in 0..VALID {
        let started = Instant::now();
        post(&router, Some(ip(1)), Some(good.expose()))
            .await
            .assert_key_accepted();
        unloaded.push(started.elapsed());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let forged_tally = Arc::new(Tally::default());
    let wrong_tally = Arc::new(Tally::default());
    let mut flood = Vec::new();

    // Forged: the real ids of both keys, a changed secret, so a wrong tag.
    for task in 0..2u32 {
        let forged: Vec<String> = (0..64)
            .map(|i| {
                bad_tag(
                    if i % 2 == 0 {
                        good.expose()
                    } else {
                        late.expose()
                    },
                    i,
                )
            })
            .collect();
        let (router, stop, tally) = (router.clone(), stop.clone(), forged_tally.clone());
        flood.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let from = ip(0x10_0000 + task * FORGED_ADDRESSES + n % FORGED_ADDRESSES);
                let key = &forged[n as usize % forged.len()];
                let answer = post(&router, Some(from), Some(key)).await;
                if answer.status == StatusCode::TOO_MANY_REQUESTS {
                    answer.assert_rate_limited();
                    tally.limited.fetch_add(1, Ordering::Relaxed);
                } else {
                    // A real id, yet "malformed": refused by the tag, before
                    // the key was even looked up, let alone hashed.
                    answer.assert_refused("malformed");
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
                // In-process requests for forged keys never wait on I/O;
                // without this the task would hog its worker thread.
                tokio::task::yield_now().await;
            }
        }));
    }
    // Wrong secret, right id and tag: each one costs an argon2 run. Every
    // request comes from a new address so the limiter never stops them.
    for task in 0..4u32 {
        let wrong: Vec<ApiKey> = (0..16)
            .map(|i| same_id_wrong_secret(&fx.secret, good.expose(), task * 100 + i))
            .collect();
        let (router, stop, tally) = (router.clone(), stop.clone(), wrong_tally.clone());
        flood.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let from = ip(0x20_0000 + task * 0x1_0000 + n);
                let key = wrong[n as usize % wrong.len()].expose();
                post(&router, Some(from), Some(key))
                    .await
                    .assert_refused("not_found");
                tally.refused.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }

    // Wait until the flood is demonstrably under way (argon2 busy too).
    let deadline = Instant::now() + PATIENCE;
    while wrong_tally.total() < 4 || forged_tally.total() < 200 {
        assert!(Instant::now() < deadline, "the flood never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wrong_before = wrong_tally.total();

    let mut loaded = Vec::new();
    for i in 0..VALID {
        let started = Instant::now();
        post(&router, Some(ip(1)), Some(good.expose()))
            .await
            .assert_key_accepted();
        loaded.push(started.elapsed());
        if i % 8 == 0 {
            assert_eq!(healthz(&router).await, StatusCode::OK);
        }
    }
    // A key never seen before queues for argon2 behind the flood, and is
    // verified all the same.
    let started = Instant::now();
    post(&router, Some(ip(2)), Some(late.expose()))
        .await
        .assert_key_accepted();
    let late_first = started.elapsed();
    // The flood was still running all along.
    assert!(!flood.iter().any(|t| t.is_finished()), "a flood task died");
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.expect("flood task");
    }

    assert!(wrong_tally.total() > wrong_before);
    assert!(
        forged_tally.limited.load(Ordering::Relaxed) > 0,
        "forged keys from reused addresses should have been rate-limited"
    );
    // Only the two real keys ever passed argon2.
    assert_eq!(fx.verified_count(), 2);
    assert_eq!(ARGON2_CONCURRENCY, 2);

    eprintln!("valid key, unloaded:    {}", summary(&mut unloaded));
    eprintln!("valid key, under flood: {}", summary(&mut loaded));
    eprintln!("new key's first request under flood (queues for argon2): {late_first:?}");
    eprintln!(
        "flood answered: forged {} (401 {}, 429 {}), wrong secret {} (all 401, each an argon2 run)",
        forged_tally.total(),
        forged_tally.refused.load(Ordering::Relaxed),
        forged_tally.limited.load(Ordering::Relaxed),
        wrong_tally.total()
    );
}

#[tokio::test]
async fn failed_authentication_is_limited_per_address() {
    let mut fx = Fixture::new();
    let known = fx.key("known");
    let fresh = fx.key("fresh");
    let router = fx.router.clone();
    let (attacker, bystander) = (ip(100), ip(200));

    // The known key is verified from elsewhere first.
    post(&router, Some(ip(1)), Some(known.expose()))
        .await
        .assert_key_accepted();

    // Every kind of failure counts: missing, malformed, forged, wrong secret.
    let wrong = same_id_wrong_secret(&fx.secret, known.expose(), 1);
    for i in 0..MAX_FAILURES as usize {
        let (key, reason) = match i % 4 {
            0 => (None, "missing"),
            1 => (Some("pmcp_short".to_string()), "malformed"),
            2 => (Some(bad_tag(known.expose(), i)), "malformed"),
            _ => (Some(wrong.expose().to_string()), "not_found"),
        };
        post(&router, Some(attacker), key.as_deref())
            .await
            .assert_refused(reason);
    }
    // Then 429, whatever the request, with Retry-After.
    post(&router, Some(attacker), None)
        .await
        .assert_rate_limited();
    post(&router, Some(attacker), Some(&bad_tag(known.expose(), 0)))
        .await
        .assert_rate_limited();
    post(&router, Some(attacker), Some(wrong.expose()))
        .await
        .assert_rate_limited();
    // A key not yet verified by this process is turned away too…
    post(&router, Some(attacker), Some(fresh.expose()))
        .await
        .assert_rate_limited();
    // …but one it already verified gets through from the same address.
    post(&router, Some(attacker), Some(known.expose()))
        .await
        .assert_key_accepted();

    // Other addresses are unaffected: their failures still get a 401 and
    // their good keys work (including a first verification).
    post(&router, Some(bystander), Some(&bad_tag(known.expose(), 3)))
        .await
        .assert_refused("malformed");
    post(&router, Some(bystander), Some(fresh.expose()))
        .await
        .assert_key_accepted();
    // Now `fresh` is known good, so it passes from the blocked address too.
    post(&router, Some(attacker), Some(fresh.expose()))
        .await
        .assert_key_accepted();
    assert_eq!(fx.verified_count(), 2);
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
    let mut fx = Fixture::new();
    let known = fx.key("known");
    let router = fx.router.clone();
    let forged = bad_tag(known.expose(), 0);
    let v6 = |s: &str| -> IpAddr { s.parse().unwrap() };

    // Failures spread over many addresses of one /64 share one budget.
    for i in 0..MAX_FAILURES {
        let from = v6(&format!("2001:db8:1:2:{i:x}::{:x}", i * 7 + 1));
        post(&router, Some(from), Some(&forged))
            .await
            .assert_refused("malformed");
    }
    post(&router, Some(v6("2001:db8:1:2:ffff::1")), Some(&forged))
        .await
        .assert_rate_limited();
    // The next /64 is another client.
    post(&router, Some(v6("2001:db8:1:3::1")), Some(&forged))
        .await
        .assert_refused("malformed");

    // An IPv4 client seen as an IPv4-mapped IPv6 address is the same client.
    let v4 = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    for _ in 0..MAX_FAILURES {
        post(&router, Some(v4), Some(&forged))
            .await
            .assert_refused("malformed");
    }
    post(&router, Some(v6("::ffff:198.51.100.7")), Some(&forged))
        .await
        .assert_rate_limited();
}

#[tokio::test]
async fn a_full_limiter_table_locks_out_no_new_client() {
    let mut fx = Fixture::new();
    let known = fx.key("known");
    let fresh = fx.key("fresh");
    let router = fx.router.clone();

    // Fill the server's own limiter with one failure from each of as many
    // addresses as it tracks (directly: 65,536 requests would only be slower).
    let limiter = &fx.gateway.state().limiter;
    let now = Instant::now();
    for n in 0..MAX_TRACKED as u32 {
        limiter.record_failure(ip(0x40_0000 + n), now);
    }

    // A new address with a good key this process never verified: accepted.
    let stranger = ip(0x80_0000);
    post(&router, Some(stranger), Some(fresh.expose()))
        .await
        .assert_key_accepted();
    // A new address that fails is counted like any other: its budget of
    // 401s, then 429, while the table stays bounded.
    let failing = ip(0x80_0001);
    for i in 0..MAX_FAILURES as usize {
        post(&router, Some(failing), Some(&bad_tag(known.expose(), i)))
            .await
            .assert_refused("malformed");
    }
    post(&router, Some(failing), Some(known.expose()))
        .await
        .assert_rate_limited();
    assert!(limiter.tracked() <= MAX_TRACKED, "{}", limiter.tracked());
    // Addresses of the flood that still have budget are not refused either.
    post(&router, Some(ip(0x40_0000 + 7)), Some(known.expose()))
        .await
        .assert_key_accepted();
    assert_eq!(fx.verified_count(), 2);
}

/// Wrong secrets (each a real id with a valid tag, so each needs argon2)
/// sent all at once from one address: the failure budget is spent before
/// hashing, so no more than `MAX_FAILURES` argon2 runs happen and the rest
/// are turned away with 429 without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_secrets_from_one_address_cost_at_most_the_failure_budget() {
    const ATTEMPTS: u32 = 100;
    let mut fx = Fixture::new();
    let good = fx.key("good");
    let attacker = ip(300);
    let attempts: Vec<_> = (0..ATTEMPTS)
        .map(|i| {
            let router = fx.router.clone();
            let key = same_id_wrong_secret(&fx.secret, good.expose(), i);
            tokio::spawn(async move { post(&router, Some(attacker), Some(key.expose())).await })
        })
        .collect();
    let (mut refused, mut limited) = (0usize, 0usize);
    for attempt in attempts {
        let answer = attempt.await.expect("request task");
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            answer.assert_rate_limited();
            limited += 1;
        } else {
            answer.assert_refused("not_found");
            refused += 1;
        }
    }
    let runs = fx.gateway.state().verifier.argon2_runs();
    eprintln!(
        "{ATTEMPTS} concurrent wrong secrets: {refused} × 401, {limited} × 429, {runs} argon2 runs"
    );
    assert!(
        runs <= MAX_FAILURES as usize,
        "{runs} argon2 runs for one address (budget {MAX_FAILURES})"
    );
    assert_eq!(refused, runs, "each 401 is one argon2 run");
    assert_eq!(limited, ATTEMPTS as usize - refused);
    // The good key still works from elsewhere, and the budget was not
    // taken from it when it passed.
    post(&fx.router, Some(ip(301)), Some(good.expose()))
        .await
        .assert_key_accepted();
    assert_eq!(fx.verified_count(), 1);
}

/// A separate process that leaves the database the way a writer that
/// stopped mid-recovery would: the WAL index header damaged, and the locks
/// recovery needs held. Every reader then waits (for SQLite's busy timeout)
/// until it lets go; dropping the holder lets go. It has to be another
/// process: POSIX locks never conflict within one.
struct StuckDatabase {
    child: std::process::Child,
}

/// Byte offsets are SQLite's WAL-index format: the header's two copies at
/// 0 and 48, the write lock at byte 120, the recovery lock at 122.
const HOLD_WAL_INDEX: &str = r#"
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, 120)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, 122)
os.pwrite(fd, bytes([os.pread(fd, 1, 8)[0] ^ 0xFF]), 8)
print("held", flush=True)
sys.stdin.read()
"#;

impl StuckDatabase {
    fn hold(db: &std::path::Path) -> StuckDatabase {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let shm = format!("{}-shm", db.display());
        support::require_python3();
        let mut child = Command::new("python3")
            .args(["-c", HOLD_WAL_INDEX, &shm])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test needs python3 on PATH ({e}); install it, e.g. `apt-get install python3`")
            });
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read from the lock holder");
        assert_eq!(line.trim(), "held", "the lock holder failed");
        StuckDatabase { child }
    }
}

impl Drop for StuckDatabase {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// While the database makes readers wait, a request that must read it
/// waits too, on a blocking thread: the async thread (there is only one
/// here) keeps answering everything that needs no store.
#[tokio::test(flavor = "current_thread")]
async fn a_stuck_database_holds_up_only_the_requests_that_read_it() {
    let mut fx = Fixture::new();
    let known = fx.key("known");
    let router = fx.router.clone();
    post(&router, Some(ip(1)), Some(known.expose()))
        .await
        .assert_key_accepted();

    let stuck = StuckDatabase::hold(fx.admin.path());
    // Even a verified key must ask the store whether anything changed.
    let waiting = tokio::spawn({
        let (router, key) = (router.clone(), known.expose().to_string());
        async move { post(&router, Some(ip(1)), Some(&key)).await }
    });
    // Give the request its turn on the one thread, so it reaches the store.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(healthz(&router).await, StatusCode::OK);
    assert!(
        !waiting.is_finished(),
        "the request reading the stuck database held the only async thread until it gave up"
    );
    drop(stuck);
    // Once the database is free, the waiting request is answered normally.
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiting request was never answered")
        .expect("request task")
        .assert_key_accepted();
    // Nothing was lost or damaged by the wait.
    assert_eq!(fx.admin.integrity_check().unwrap(), "ok");
}

// ---------------------------------------------------------------------------
// Socket level: the real binary
// ---------------------------------------------------------------------------

fn lo(c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, c, d))
}

fn server_secret(env: &Env) -> ServerSecret {
    Store::open(&env.db)
        .expect("open store")
        .server_secret()
        .expect("server secret")
}

/// Threads of process `pid` right now.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("read /proc/PID/task")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_over_sockets_is_limited_and_valid_calls_still_succeed() {
    let env = Env::new();
    env.add_everything_stdio("ev");
    let (_, good) = env.create_key("good", &[]);
    let (_, other) = env.create_key("other", &[]);
    let secret = server_secret(&env);
    let server = Arc::new(Server::start(&env).await);
    let flooded = client_from(lo(0, 1));

    // Unloaded: the good key from 127.0.0.1, after its first verification.
    let first = server.echo(&good, "ev", "warm").await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.body);
    let mut unloaded = Vec::new();
    for i in 0..30 {
        let started = Instant::now();
        let reply = server.echo(&good, "ev", &format!("u{i}")).await;
        unloaded.push(started.elapsed());
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let forged_tally = Arc::new(Tally::default());
    let wrong_tally = Arc::new(Tally::default());
    let mut flood = Vec::new();
    // Forged keys from 127.0.0.1, the good client's own address: after its
    // failure budget, that address gets 429s.
    for task in 0..3usize {
        let (server, stop, tally) = (server.clone(), stop.clone(), forged_tally.clone());
        let client = flooded.clone();
        let good = good.clone();
        flood.push(tokio::spawn(async move {
            let body = json!({"mcp_id": "ev", "tool": "echo"});
            let mut n = task;
            while !stop.load(Ordering::Relaxed) {
                let reply = server
                    .call_via(&client, Some(&bad_tag(&good, n)), &body)
                    .await;
                if reply.status == StatusCode::TOO_MANY_REQUESTS {
                    assert_eq!(reply.code(), Some("rate_limited"));
                    let retry: u64 = reply.headers["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert!((1..=WINDOW.as_secs()).contains(&retry), "{retry}");
                    tally.limited.fetch_add(1, Ordering::Relaxed);
                } else {
                    reply.assert_invalid_key("malformed");
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                }
                n += 3;
            }
        }));
    }
    // Wrong secrets from a changing set of addresses (127.0.1x.y), each kept
    // under its budget, so argon2 stays busy throughout.
    for task in 0..4u8 {
        let (server, stop, tally) = (server.clone(), stop.clone(), wrong_tally.clone());
        let wrong: Vec<String> = (0..8)
            .map(|i| {
                same_id_wrong_secret(&secret, &good, u32::from(task) * 100 + i)
                    .expose()
                    .to_string()
            })
            .collect();
        flood.push(tokio::spawn(async move {
            let body = json!({"mcp_id": "ev", "tool": "echo"});
            let mut n = 0usize;
            let mut client = client_from(lo(10 + task, 1));
            while !stop.load(Ordering::Relaxed) {
                if n.is_multiple_of(10) {
                    let d = u8::try_from(n / 10 % 250).unwrap() + 1;
                    client = client_from(lo(10 + task, d));
                }
                server
                    .call_via(&client, Some(&wrong[n % wrong.len()]), &body)
                    .await
                    .assert_invalid_key("not_found");
                tally.refused.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }

    let deadline = Instant::now() + PATIENCE;
    while forged_tally.limited.load(Ordering::Relaxed) == 0 || wrong_tally.total() < 4 {
        assert!(Instant::now() < deadline, "the flood never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // 127.0.0.1 is now blocked, yet its already-verified key still works,
    // with a real upstream call behind it.
    let mut loaded = Vec::new();
    for i in 0..30 {
        let started = Instant::now();
        let reply = server.echo(&good, "ev", &format!("f{i}")).await;
        loaded.push(started.elapsed());
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        assert_eq!(reply.text(), format!("Echo: f{i}"));
        if i % 10 == 0 {
            assert!(server.healthy_via(&flooded).await);
        }
    }
    // A never-verified key is refused from the blocked address…
    let blocked = server
        .call_via(
            &flooded,
            Some(&other),
            &json!({"mcp_id": "ev", "tool": "echo", "arguments": {"message": "x"}}),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    // …and works from another client, argon2 queue and all.
    let elsewhere = client_from(lo(0, 2));
    let started = Instant::now();
    let reply = server
        .call_via(
            &elsewhere,
            Some(&other),
            &json!({"mcp_id": "ev", "tool": "echo", "arguments": {"message": "x"}}),
        )
        .await;
    let other_first = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    assert!(!flood.iter().any(|t| t.is_finished()), "a flood task died");
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.expect("flood task");
    }

    // The forged flood got its budget of 401s (plus at most what was in
    // flight when the limit was reached), then only 429s.
    let refused = forged_tally.refused.load(Ordering::Relaxed);
    assert!(
        (MAX_FAILURES as usize..=MAX_FAILURES as usize + 3).contains(&refused),
        "{refused} forged keys got a 401 before the limit"
    );
    eprintln!("valid echo, unloaded:    {}", summary(&mut unloaded));
    eprintln!("valid echo, under flood: {}", summary(&mut loaded));
    eprintln!("another key's first echo under flood, from another address: {other_first:?}");
    eprintln!(
        "flood answered: forged {} (401 {}, 429 {}), wrong secret {}",
        forged_tally.total(),
        refused,
        forged_tally.limited.load(Ordering::Relaxed),
        wrong_tally.total()
    );
    let server = Arc::into_inner(server).expect("flood tasks finished");
    assert!(server.terminate().success());
}

/// Sends a body-less `POST /mcp` with `key` from address `from`, waits
/// `linger`, then hangs up without reading the answer. The server has the
/// whole request (it was written before the close) and notices the hang-up
/// if it is still checking the key, which drops the request's handler.
async fn post_and_hang_up(server: SocketAddr, from: IpAddr, key: &str, linger: Duration) {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind a loopback address");
    let mut stream = socket.connect(server).await.expect("connect");
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: plexmcp\r\nAuthorization: ApiKey {key}\r\nContent-Length: 0\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    tokio::time::sleep(linger).await;
}

/// A client that sends a wrong-secret key and hangs up before the answer
/// must not get argon2 work for free: the verification keeps its slot
/// until it finishes (so at most `ARGON2_CONCURRENCY` run, whoever hangs
/// up), and the abandoned attempt still counts against the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hanging_up_mid_verification_get_nothing_for_free() {
    const ABANDONED: usize = 200;
    let env = Env::new();
    let (_, good) = env.create_key("good", &[]);
    let probes: Vec<String> = (0..4)
        .map(|i| env.create_key(&format!("probe {i}"), &[]).1)
        .collect();
    let secret = server_secret(&env);
    let server = Server::start(&env).await;
    let body = json!({"mcp_id": "ev", "tool": "echo"});
    let wrong: Vec<String> = (0..ABANDONED as u32)
        .map(|i| same_id_wrong_secret(&secret, &good, i).expose().to_string())
        .collect();

    // One full verification first, so the blocking pool has started.
    server
        .call(Some(&wrong[0]), &body)
        .await
        .assert_invalid_key("not_found");
    let baseline = threads(server.pid());

    // Abandoned requests, each from a fresh address so that the limiter
    // stays out of this part.
    let mut peak = baseline;
    for (i, key) in wrong.iter().enumerate() {
        let from = lo(
            3 + u8::try_from(i / 250).unwrap(),
            u8::try_from(i % 250).unwrap() + 1,
        );
        post_and_hang_up(server.addr, from, key, Duration::ZERO).await;
        peak = peak.max(threads(server.pid()));
    }
    // Watch a while longer as the abandoned work drains: until a fresh
    // verification, queued behind it, has been answered.
    let fresh = same_id_wrong_secret(&secret, &good, 9_999);
    let fresh_client = client_from(lo(8, 1));
    {
        let answered = server.call_via(&fresh_client, Some(fresh.expose()), &body);
        tokio::pin!(answered);
        loop {
            tokio::select! {
                reply = &mut answered => {
                    reply.assert_invalid_key("not_found");
                    break;
                }
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    peak = peak.max(threads(server.pid()));
                }
            }
        }
    }
    eprintln!(
        "server threads: {baseline} before, at most {peak} while {ABANDONED} clients hung up mid-verification"
    );
    // Blocking threads are spawned only for argon2; with the slot held to
    // the end, no more than ARGON2_CONCURRENCY of them are ever busy. As a
    // slot passes from a finishing thread to the next run, the runtime may
    // start a new thread before the old one is back in its pool: at most
    // one extra per slot. (Before the fix: one thread per abandoned run.)
    assert!(
        peak <= baseline + 2 * ARGON2_CONCURRENCY,
        "{peak} threads (from {baseline}): abandoned verifications escaped the argon2 cap"
    );

    // From one address, while others keep argon2 busy (so its attempts
    // wait in the queue when it hangs up): abandoned attempts count as
    // failures, so a probe soon meets a 429.
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for task in 0..4u8 {
        let (server, stop) = (server.clone(), stop.clone());
        let key = same_id_wrong_secret(&secret, &good, 10_000 + u32::from(task))
            .expose()
            .to_string();
        flood.push(tokio::spawn(async move {
            let body = json!({"mcp_id": "ev", "tool": "echo"});
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let from = lo(20 + task, u8::try_from(n / 10 % 250).unwrap() + 1);
                server
                    .call_via(&client_from(from), Some(&key), &body)
                    .await
                    .assert_invalid_key("not_found");
                n += 1;
            }
        }));
    }
    let hangs_up = lo(9, 1);
    for key in wrong.iter().take(MAX_FAILURES as usize + 5) {
        post_and_hang_up(server.addr, hangs_up, key, Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.expect("flood task");
    }
    // Probe with good keys never seen before: they cost no failure when
    // let through, and are refused only if the address is blocked.
    let client = client_from(hangs_up);
    let mut limited = false;
    for probe in &probes {
        let reply = server.call_via(&client, Some(probe), &body).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:#}", reply.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(limited, "hanging up made failed attempts free");
    let server = Arc::into_inner(server).expect("flood tasks finished");
    assert!(server.terminate().success());
}

#[test]
fn non_loopback_listen_warns_about_tls() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let env = Env::new();
    let mut child = env
        .command()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plexmcp serve");
    let stderr = child.stderr.take().unwrap();
    let mut child = support::ChildGuard::new(child);
    // Read stderr to the end: the server must never find it closed.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(support::READY_TIMEOUT) {
        let serving = line.contains("plexmcp serving POST /mcp");
        lines.push(line);
        if serving {
            break;
        }
    }
    child.signal("TERM");
    let log = lines.join("\n");
    let warning = lines
        .iter()
        .find(|l| l.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning for 0.0.0.0; stderr:\n{log}"));
    assert!(warning.contains("TLS"), "{warning}");
    assert!(warning.contains("0.0.0.0"), "{warning}");
    assert!(
        log.contains("plexmcp serving POST /mcp"),
        "server did not start; stderr:\n{log}"
    );
    assert!(child.wait_timeout(support::READY_TIMEOUT).is_some());
}

#[tokio::test]
async fn loopback_listen_does_not_warn() {
    let env = Env::new();
    let server = Server::start(&env).await;
    let logs = server.logs();
    assert!(!logs.contains("TLS"), "{logs}");
    assert!(!logs.contains("WARN"), "{logs}");
    assert!(server.terminate().success());
}
