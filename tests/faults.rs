//! Faults around the gateway, end to end: upstream MCP servers that crash,
//! hang, flood stderr or write garbage (stdio), or that are down, slow or
//! answer garbage (HTTP); and clients that hold connections open without
//! finishing a request (slow-loris, idle connections).
//!
//! Tests that need `server-everything` install it on first use
//! (`support::install`) and fail, never skip, when that is impossible.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plexmcp::server::Gateway;
use plexmcp::server::connections::{self, Limits};
use plexmcp::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Env, Server};

// ---------------------------------------------------------------------------
// Slow-loris and idle connections (in-process server)
// ---------------------------------------------------------------------------

/// The gateway on 127.0.0.1:0 inside this process, with `limits`.
struct InProcess {
    addr: std::net::SocketAddr,
    cancel: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// The usage writer and verifier live as long as the server.
    _gateway: Gateway,
    _env: Env,
}

impl InProcess {
    /// Also returns a valid key (its MCP access is `all`; no MCP exists,
    /// so an authenticated call answers 403 without reaching an upstream).
    async fn start(limits: Limits) -> (InProcess, String) {
        let env = Env::new();
        let (_, key) = env.create_key("loris", &[]);
        let gateway = Gateway::new(Store::open(&env.db).expect("open store")).expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(connections::serve(
            listener,
            gateway.router(),
            cancel.clone(),
            limits,
        ));
        let server = InProcess {
            addr,
            cancel,
            task,
            _gateway: gateway,
            _env: env,
        };
        (server, key)
    }

    async fn stop(self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// One raw HTTP/1.1 request on a fresh connection; the status line's code.
fn raw_request(addr: std::net::SocketAddr, request: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    status
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {status:?}")))
}

fn healthz_request() -> &'static str {
    "GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n"
}

fn mcp_request(key: &str) -> String {
    let body = r#"{"mcp_id":"nowhere","tool":"echo"}"#;
    format!(
        "POST /mcp HTTP/1.1\r\nHost: gateway\r\nAuthorization: ApiKey {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_slower_than_the_deadline_get_the_connection_closed() {
    let limits = Limits {
        header_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (server, _) = InProcess::start(limits).await;
    let addr = server.addr;
    let outcome = tokio::task::spawn_blocking(move || {
        let request = healthz_request().as_bytes();
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let started = Instant::now();
        // One byte every 400 ms: the whole head would take ~25 s.
        for (sent, byte) in request.iter().enumerate() {
            if stream.write_all(&[*byte]).is_err() {
                return (sent, started.elapsed(), "write failed".to_string());
            }
            let mut buf = [0u8; 256];
            match stream.read(&mut buf) {
                Ok(0) => return (sent + 1, started.elapsed(), "closed".to_string()),
                Ok(n) => {
                    return (
                        sent + 1,
                        started.elapsed(),
                        format!("answered {:?}", String::from_utf8_lossy(&buf[..n])),
                    );
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return (sent + 1, started.elapsed(), format!("read failed: {e}")),
            }
            std::thread::sleep(Duration::from_millis(350));
        }
        (request.len(), started.elapsed(), "completed".to_string())
    })
    .await
    .unwrap();
    let (sent, elapsed, how) = outcome;
    eprintln!("slow-loris: {how} after {sent} bytes and {elapsed:?} (information only)");
    assert!(
        sent < healthz_request().len(),
        "the slow client got its whole request head through: {how}"
    );
    assert!(
        how == "closed"
            || how.starts_with("read failed")
            || how == "write failed"
            || how.contains(" 408 "),
        "{how}"
    );
    server.stop().await;
}

/// Opens `count` TCP connections that never send a byte.
fn idle_connections(addr: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("idle connection {i}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_request_is_served_while_500_idle_connections_are_open() {
    // A header deadline long enough that all 500 are certainly still open
    // while the valid requests are made (checked afterwards).
    let limits = Limits {
        header_timeout: Duration::from_secs(120),
        ..Limits::default()
    };
    let (server, key) = InProcess::start(limits).await;
    let addr = server.addr;
    let (idle, health, mcp) = tokio::task::spawn_blocking(move || {
        let idle = idle_connections(addr, 500);
        let health = raw_request(addr, healthz_request());
        let mcp = raw_request(addr, &mcp_request(&key));
        (idle, health, mcp)
    })
    .await
    .unwrap();
    assert_eq!(health.expect("GET /healthz"), 200);
    assert_eq!(
        mcp.expect("POST /mcp"),
        403,
        "authenticated, MCP not allowed"
    );
    // Every idle connection is still open: a read finds nothing to read
    // rather than end-of-file.
    let open = idle
        .iter()
        .filter(|stream| {
            stream.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 1];
            matches!((&**stream).read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(open, 500, "idle connections still open");
    drop(idle);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_so_they_cannot_fill_the_connection_cap() {
    // Fewer slots than idle clients: only closing idle connections lets a
    // real request in.
    let limits = Limits {
        max_connections: 64,
        header_timeout: Duration::from_secs(1),
    };
    let (server, key) = InProcess::start(limits).await;
    let addr = server.addr;
    let (idle, health, mcp, closed) = tokio::task::spawn_blocking(move || {
        let idle = idle_connections(addr, 500);
        let started = Instant::now();
        let health = raw_request(addr, healthz_request());
        let mcp = raw_request(addr, &mcp_request(&key));
        eprintln!(
            "500 idle connections, cap 64: valid requests served after {:?} (information only)",
            started.elapsed()
        );
        // The first idle connections were accepted and then closed by the
        // server: a read sees end-of-file.
        let mut closed = 0;
        for stream in idle.iter().take(64) {
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut buf = [0u8; 64];
            if matches!((&*stream).read(&mut buf), Ok(0) | Err(_)) {
                closed += 1;
            }
        }
        (idle, health, mcp, closed)
    })
    .await
    .unwrap();
    assert_eq!(health.expect("GET /healthz"), 200);
    assert_eq!(
        mcp.expect("POST /mcp"),
        403,
        "authenticated, MCP not allowed"
    );
    assert_eq!(closed, 64, "idle connections the server kept open");
    drop(idle);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// stdio upstreams that crash, hang, flood stderr or write garbage
// ---------------------------------------------------------------------------

/// A stdio MCP server with one tool per fault. Every reply names the
/// process (`pid N`), so a test can tell a respawned server from the first.
const FAULTY_MCP: &str = r#"
const readline = require("readline");
const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const text = (t) => ({ content: [{ type: "text", text: t }] });
const tools = ["ok", "slow", "crash", "hang", "flood", "garbage"].map((name) => ({
  name, description: name, inputSchema: { type: "object" },
}));
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch { return; }
  if (msg.id === undefined || msg.id === null) return; // a notification
  const reply = (result) => send({ jsonrpc: "2.0", id: msg.id, result });
  switch (msg.method) {
    case "initialize":
      reply({
        protocolVersion: msg.params.protocolVersion,
        capabilities: { tools: {} },
        serverInfo: { name: "faulty", version: "0.0.0" },
      });
      break;
    case "tools/list":
      reply({ tools });
      break;
    case "ping":
      reply({});
      break;
    case "tools/call": {
      const args = msg.params.arguments || {};
      switch (msg.params.name) {
        case "ok":
          reply(text(`ok from pid ${process.pid}`));
          break;
        case "slow":
          process.stderr.write(`slow call started in pid ${process.pid}\n`);
          setTimeout(() => reply(text(`slow done in pid ${process.pid}`)), args.ms || 600000);
          break;
        case "crash":
          // Half a message, then gone.
          process.stdout.write('{"jsonrpc":"2.0","id":' + JSON.stringify(msg.id) + ',"res');
          process.exit(7);
          break;
        case "hang":
          break;
        case "flood": {
          // One line of `long_mb` MiB, then `lines` lines of 1 KiB.
          const mib = "x".repeat(1024 * 1024);
          for (let i = 0; i < (args.long_mb || 4); i++) process.stderr.write(mib);
          process.stderr.write("\n");
          const kib = "y".repeat(1023) + "\n";
          for (let i = 0; i < (args.lines || 2048); i++) process.stderr.write(kib);
          process.stderr.write("flood finished\n");
          reply(text(`flooded from pid ${process.pid}`));
          break;
        }
        case "garbage":
          process.stdout.write("this is not JSON\n");
          process.stdout.write("{\"unterminated\": \n");
          process.stdout.write(Buffer.from([0, 1, 2, 255, 254, 10]));
          process.stdout.write("<html><body>500</body></html>\n");
          process.stdout.write(JSON.stringify({ hello: "world" }) + "\n");
          send({ jsonrpc: "2.0", id: 987654321, result: text("an answer to nothing") });
          process.stdout.write("\n\n");
          reply(text(`garbage survived in pid ${process.pid}`));
          break;
        default:
          send({ jsonrpc: "2.0", id: msg.id, error: { code: -32602, message: "no such tool" } });
      }
      break;
    }
    default:
      send({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "method not found" } });
  }
});
"#;

/// Writes the faulty MCP into `dir`; returns its `--stdio` command line.
fn faulty_mcp(dir: &Path) -> String {
    let script = dir.join("faulty-mcp.cjs");
    std::fs::write(&script, FAULTY_MCP).expect("write faulty MCP script");
    let script = script.to_str().expect("UTF-8 temp path");
    shlex::try_join(["node", script]).expect("quotable command")
}

fn tool_call(mcp: &str, tool: &str, arguments: Value) -> Value {
    json!({ "mcp_id": mcp, "tool": tool, "arguments": arguments })
}

/// The `pid N` a faulty-MCP reply names.
fn pid_in(text: &str) -> u32 {
    text.rsplit("pid ")
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"))
}

/// Calls `ok` until the (possibly slow to start) MCP answers; its pid.
async fn connected(server: &Server, key: &str, mcp: &str) -> u32 {
    let deadline = Instant::now() + support::READY_TIMEOUT;
    loop {
        let reply = server
            .call(Some(key), &tool_call(mcp, "ok", json!({})))
            .await;
        if reply.status == StatusCode::OK {
            return pid_in(reply.text());
        }
        assert!(
            matches!(
                reply.status,
                StatusCode::GATEWAY_TIMEOUT | StatusCode::BAD_GATEWAY
            ),
            "{mcp}: {:#}",
            reply.body
        );
        assert!(
            Instant::now() < deadline,
            "{mcp} never answered; log:\n{}",
            server.logs()
        );
        // A failed connect is not retried for a few seconds anyway.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn assert_upstream_error(reply: &support::Reply, status: StatusCode, code: &str, mcp: &str) {
    assert_eq!(reply.status, status, "{mcp}: {:#}", reply.body);
    assert_eq!(reply.code(), Some(code), "{mcp}: {:#}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("'{mcp}'")) && !message.contains('\n'),
        "the message names the MCP on one line: {message:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_stdio_mcp_fails_in_flight_calls_with_502_and_is_respawned() {
    support::require_node();
    let env = Env::new();
    let command = faulty_mcp(env.dir.path());
    env.cli_ok(&[
        "mcps",
        "add",
        "crashy",
        "--stdio",
        &command,
        "--timeout",
        "120",
    ]);
    let (_, key) = env.create_key("app", &[]);
    let server = Arc::new(Server::start(&env).await);
    let first_pid = connected(&server, &key, "crashy").await;

    // Three calls in flight when it crashes.
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let server = server.clone();
        let key = key.clone();
        slow.spawn(async move {
            server
                .call(Some(&key), &tool_call("crashy", "slow", json!({})))
                .await
        });
    }
    let deadline = Instant::now() + support::READY_TIMEOUT;
    while server.logs().matches("slow call started").count() < 3 {
        assert!(Instant::now() < deadline, "slow calls never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let crash = server
        .call(Some(&key), &tool_call("crashy", "crash", json!({})))
        .await;
    assert_upstream_error(&crash, StatusCode::BAD_GATEWAY, "upstream_error", "crashy");
    while let Some(done) = slow.join_next().await {
        let reply = done.expect("slow call task");
        assert_upstream_error(&reply, StatusCode::BAD_GATEWAY, "upstream_error", "crashy");
    }

    // The next call starts a new process and succeeds.
    let next = server
        .call(Some(&key), &tool_call("crashy", "ok", json!({})))
        .await;
    assert_eq!(next.status, StatusCode::OK, "{:#}", next.body);
    let second_pid = pid_in(next.text());
    assert_ne!(
        first_pid, second_pid,
        "the same process answered after a crash"
    );
    eprintln!(
        "crash: message {:?} (information only)",
        crash.body["error"]["message"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_stdio_mcp_times_out_with_504_while_other_mcps_and_keys_are_served() {
    support::require_node();
    let env = Env::new();
    let command = faulty_mcp(env.dir.path());
    env.cli_ok(&[
        "mcps",
        "add",
        "hangs",
        "--stdio",
        &command,
        "--timeout",
        "1",
    ]);
    env.cli_ok(&["mcps", "add", "healthy", "--stdio", &command]);
    env.add_everything_stdio("ev");
    let (_, hang_key) = env.create_key("hanging-client", &[]);
    let (_, key_a) = env.create_key("client-a", &[]);
    let (_, key_b) = env.create_key("client-b", &[]);
    let server = Arc::new(Server::start(&env).await);
    connected(&server, &hang_key, "hangs").await;
    connected(&server, &key_a, "healthy").await;
    let warm = server.echo(&key_b, "ev", "warm").await;
    assert_eq!(warm.status, StatusCode::OK, "{:#}", warm.body);

    // Unloaded: the figure to compare with (information only).
    let mut unloaded = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let reply = server.echo(&key_a, "ev", &format!("before {i}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        unloaded.push(started.elapsed());
    }

    // Four clients keep calls hanging on `hangs` for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let timeouts = Arc::new(AtomicUsize::new(0));
    let mut hangers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (server, key, stop, timeouts) = (
            server.clone(),
            hang_key.clone(),
            stop.clone(),
            timeouts.clone(),
        );
        hangers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = server
                    .call(Some(&key), &tool_call("hangs", "hang", json!({})))
                    .await;
                assert_upstream_error(
                    &reply,
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "hangs",
                );
                timeouts.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // Let the hanging calls pile up first.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut during = Vec::new();
    let mut served = 0;
    while served < 60 || timeouts.load(Ordering::Relaxed) < 8 {
        let key = if served % 2 == 0 { &key_a } else { &key_b };
        let started = Instant::now();
        let reply = if served % 3 == 2 {
            server
                .call(Some(key), &tool_call("healthy", "ok", json!({})))
                .await
        } else {
            server.echo(key, "ev", &format!("during {served}")).await
        };
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "call {served}: {:#}",
            reply.body
        );
        during.push(started.elapsed());
        served += 1;
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = hangers.join_next().await {
        done.expect("hanging client");
    }
    unloaded.sort();
    during.sort();
    eprintln!(
        "hang: {} calls answered 504 meanwhile; other MCPs/keys median {:?} during vs {:?} before (information only)",
        timeouts.load(Ordering::Relaxed),
        during[during.len() / 2],
        unloaded[unloaded.len() / 2],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_floods_and_stdout_garbage_are_contained() {
    support::require_node();
    let env = Env::new();
    let command = faulty_mcp(env.dir.path());
    env.cli_ok(&[
        "mcps",
        "add",
        "noisy",
        "--stdio",
        &command,
        "--timeout",
        "120",
    ]);
    env.add_everything_stdio("ev");
    let (_, key) = env.create_key("app", &[]);
    let (_, other) = env.create_key("other", &[]);
    let server = Arc::new(Server::start(&env).await);
    let pid = connected(&server, &key, "noisy").await;
    let warm = server.echo(&other, "ev", "warm").await;
    assert_eq!(warm.status, StatusCode::OK, "{:#}", warm.body);

    // 6 MiB of stderr: one 4 MiB line and 2048 lines of 1 KiB; meanwhile
    // the server and the other MCP answer as usual.
    let flood = {
        let (server, key) = (server.clone(), key.clone());
        tokio::spawn(async move {
            server
                .call(
                    Some(&key),
                    &tool_call("noisy", "flood", json!({"long_mb": 4, "lines": 2048})),
                )
                .await
        })
    };
    let mut others = 0;
    while !flood.is_finished() || others < 5 {
        let reply = server
            .echo(&other, "ev", &format!("meanwhile {others}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        let health = server
            .client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .expect("GET /healthz");
        assert_eq!(health.status(), StatusCode::OK);
        others += 1;
    }
    let flooded = flood.await.expect("flood call");
    assert_eq!(flooded.status, StatusCode::OK, "{:#}", flooded.body);
    assert_eq!(pid_in(flooded.text()), pid, "the flood cost the process");

    // Logged, line by line, with over-long lines cut.
    let deadline = Instant::now() + support::READY_TIMEOUT;
    while !server.logs().contains("flood finished") {
        assert!(
            Instant::now() < deadline,
            "the end of the flood never logged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = server.logs();
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(
        longest < 16 * 1024,
        "a log line of {longest} bytes: over-long stderr lines must be cut"
    );
    let kib_lines = logs
        .lines()
        .filter(|l| l.contains(&"y".repeat(1023)))
        .count();
    assert_eq!(kib_lines, 2048, "each stderr line is logged once");
    eprintln!(
        "flood: {others} other calls answered during it; longest log line {longest} bytes (information only)"
    );

    // Garbage on stdout is skipped; the real reply still arrives, or at
    // worst the call fails, and the next call is served either way.
    let garbage = server
        .call(Some(&key), &tool_call("noisy", "garbage", json!({})))
        .await;
    assert!(
        garbage.status == StatusCode::OK || garbage.status == StatusCode::BAD_GATEWAY,
        "{:#}",
        garbage.body
    );
    eprintln!(
        "garbage: answered {} {} (information only)",
        garbage.status, garbage.body
    );
    let after = server
        .call(Some(&key), &tool_call("noisy", "ok", json!({})))
        .await;
    assert_eq!(after.status, StatusCode::OK, "{:#}", after.body);
    let echo = server.echo(&other, "ev", "after").await;
    assert_eq!(echo.status, StatusCode::OK, "{:#}", echo.body);
}

// ---------------------------------------------------------------------------
// HTTP upstreams that are down, slow, or answer garbage
// ---------------------------------------------------------------------------

/// How the test's HTTP upstream behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// A working MCP server whose `tools/call` never answers.
    SlowCalls,
    /// An HTML page (200, text/html) for every request.
    Html,
    /// A few bytes that are not HTTP at all, then the connection closes.
    Junk,
    /// A working MCP handshake, then HTML for `tools/call`.
    HtmlForCalls,
}

/// One HTTP request the upstream received: method and JSON-RPC method.
type Seen = (String, Option<String>);

/// A tiny HTTP/1.1 server on 127.0.0.1:0, one thread per connection, that
/// records every request it gets.
struct HttpUpstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl HttpUpstream {
    fn start(behaviour: Behaviour) -> HttpUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind HTTP upstream");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_seen, thread_stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (seen, stop) = (thread_seen.clone(), thread_stop.clone());
                std::thread::spawn(move || serve_http(stream, behaviour, &seen, &stop));
            }
        });
        HttpUpstream { port, seen, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests whose JSON-RPC method is `method`.
    fn count(&self, method: &str) -> usize {
        self.seen()
            .iter()
            .filter(|(_, m)| m.as_deref() == Some(method))
            .count()
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_http(stream: TcpStream, behaviour: Behaviour, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        // The request head.
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let method = request_line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let rpc_method = message["method"].as_str().map(str::to_string);
        seen.lock()
            .unwrap()
            .push((method.clone(), rpc_method.clone()));

        let html = |writer: &mut TcpStream| {
            let page = "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>";
            let _ = write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{page}",
                page.len()
            );
        };
        match behaviour {
            Behaviour::Html => {
                html(&mut writer);
                continue;
            }
            Behaviour::Junk => {
                let _ = writer.write_all(b"\x00\x01garbage \xff\xfe\r\n\r\n");
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Behaviour::SlowCalls | Behaviour::HtmlForCalls => {}
        }
        if method != "POST" {
            // No server-initiated stream; no session to delete.
            let _ = write!(
                writer,
                "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\nContent-Length: 0\r\n\r\n"
            );
            continue;
        }
        let Some(id) = message.get("id").cloned() else {
            // A notification or a response: accepted.
            let _ = write!(writer, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        let result = match rpc_method.as_deref() {
            Some("initialize") => json!({
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "test-upstream", "version": "0.0.0" },
            }),
            Some("tools/list") => json!({
                "tools": [{ "name": "echo", "inputSchema": { "type": "object" } }]
            }),
            Some("tools/call") => {
                if behaviour == Behaviour::HtmlForCalls {
                    html(&mut writer);
                    continue;
                }
                // Slow: answer nothing until the test ends.
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            _ => json!({}),
        };
        let reply = json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string();
        let _ = write!(
            writer,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: test-session\r\n\
             Content-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
    }
}

/// Calls `echo` on `mcp` until the gateway has a session (an unknown tool
/// then answers 404 without reaching the upstream).
async fn http_connected(server: &Server, key: &str, mcp: &str) {
    let deadline = Instant::now() + support::READY_TIMEOUT;
    loop {
        let reply = server
            .call(Some(key), &tool_call(mcp, "no-such-tool", json!({})))
            .await;
        if reply.status == StatusCode::NOT_FOUND {
            return;
        }
        assert_eq!(
            reply.status,
            StatusCode::GATEWAY_TIMEOUT,
            "{:#}",
            reply.body
        );
        assert!(Instant::now() < deadline, "never connected to {mcp}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_mcp_that_is_down_answers_502() {
    let env = Env::new();
    let closed = format!("http://127.0.0.1:{}/mcp", support::free_port());
    env.cli_ok(&["mcps", "add", "down", "--url", &closed, "--timeout", "5"]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;
    for _ in 0..3 {
        let reply = server.echo(&key, "down", "hi").await;
        assert_upstream_error(&reply, StatusCode::BAD_GATEWAY, "upstream_error", "down");
    }
    let reply = server.echo(&key, "down", "hi").await;
    eprintln!(
        "down: {} (information only)",
        reply.body["error"]["message"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http_mcp_answers_504_after_its_timeout_without_retries() {
    let upstream = HttpUpstream::start(Behaviour::SlowCalls);
    let env = Env::new();
    env.cli_ok(&[
        "mcps",
        "add",
        "slow",
        "--url",
        &upstream.url(),
        "--timeout",
        "1",
    ]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;
    http_connected(&server, &key, "slow").await;

    const CALLS: usize = 3;
    for i in 0..CALLS {
        let started = Instant::now();
        let reply = server.echo(&key, "slow", "hi").await;
        assert_upstream_error(
            &reply,
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "slow",
        );
        eprintln!(
            "slow call {i}: 504 after {:?} (information only)",
            started.elapsed()
        );
    }
    assert_eq!(
        upstream.count("tools/call"),
        CALLS,
        "tools/call requests the upstream received: {:?}",
        upstream.seen()
    );
    // The session was kept: one handshake for all the calls.
    assert_eq!(upstream.count("initialize"), 1, "{:?}", upstream.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mcps_answering_garbage_get_502_and_are_not_asked_again_and_again() {
    let html = HttpUpstream::start(Behaviour::Html);
    let junk = HttpUpstream::start(Behaviour::Junk);
    let html_calls = HttpUpstream::start(Behaviour::HtmlForCalls);
    let env = Env::new();
    env.cli_ok(&["mcps", "add", "html", "--url", &html.url()]);
    env.cli_ok(&["mcps", "add", "junk", "--url", &junk.url()]);
    env.cli_ok(&["mcps", "add", "html-calls", "--url", &html_calls.url()]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;

    const CALLS: usize = 5;
    for (mcp, upstream) in [("html", &html), ("junk", &junk)] {
        for _ in 0..CALLS {
            let reply = server.echo(&key, mcp, "hi").await;
            assert_upstream_error(&reply, StatusCode::BAD_GATEWAY, "upstream_error", mcp);
        }
        // The first call tried to connect, once; the others, within its
        // back-off, were answered with its failure instead of trying again.
        assert_eq!(
            upstream.seen().len(),
            1,
            "{mcp}: requests received for {CALLS} calls: {:?}",
            upstream.seen()
        );
        let reply = server.echo(&key, mcp, "hi").await;
        eprintln!(
            "{mcp}: {} (information only)",
            reply.body["error"]["message"]
        );
    }

    // Garbage only in answer to tools/call: one tools/call per call.
    http_connected(&server, &key, "html-calls").await;
    for _ in 0..CALLS {
        let reply = server.echo(&key, "html-calls", "hi").await;
        assert_upstream_error(
            &reply,
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "html-calls",
        );
    }
    assert_eq!(
        html_calls.count("tools/call"),
        CALLS,
        "tools/call requests received for {CALLS} calls: {:?}",
        html_calls.seen()
    );
    let reply = server.echo(&key, "html-calls", "hi").await;
    let mut kinds: Vec<String> = html_calls
        .seen()
        .iter()
        .map(|(method, rpc)| format!("{method} {}", rpc.as_deref().unwrap_or("-")))
        .collect();
    kinds.sort();
    kinds.dedup_by(|a, b| a == b);
    eprintln!(
        "html-calls: {}; {} requests in all for {} calls, of kinds {kinds:?} (information only)",
        reply.body["error"]["message"],
        html_calls.seen().len(),
        CALLS + 2,
    );
    // The server itself is fine.
    let health = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), StatusCode::OK);
}
