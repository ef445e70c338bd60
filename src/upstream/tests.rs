//! Tests against the real reference server (`@modelcontextprotocol/server-everything`,
//! installed on first use by `tests/support/install.rs`), plus a few tiny fake servers
//! for behaviour the reference server cannot show (dying, hanging, garbage).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Transport, UpstreamError, UpstreamSpec, Upstreams, one_line};

#[path = "../../tests/support/install.rs"]
mod install;

const GENEROUS: Duration = Duration::from_secs(30);

/// Routes tracing output to the test harness when `RUST_LOG` is set.
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Path of the reference server's entry point, installed on first use (the
/// integration tests' pinned install); fails the test when that is impossible.
fn everything_js() -> PathBuf {
    install::server_everything()
}

fn stdio_spec(name: &str, timeout: Duration) -> UpstreamSpec {
    UpstreamSpec {
        name: name.to_owned(),
        transport: Transport::Stdio {
            command: "node".to_owned(),
            args: vec![everything_js().display().to_string(), "stdio".to_owned()],
            env: vec![],
            inherit_env: vec![],
        },
        timeout,
    }
}

fn sh_spec(name: &str, script: &str, timeout: Duration) -> UpstreamSpec {
    UpstreamSpec {
        name: name.to_owned(),
        transport: Transport::Stdio {
            command: "sh".to_owned(),
            args: vec!["-c".to_owned(), script.to_owned()],
            env: vec![],
            inherit_env: vec![],
        },
        timeout,
    }
}

fn http_spec(name: &str, url: String, headers: Vec<(String, String)>) -> UpstreamSpec {
    UpstreamSpec {
        name: name.to_owned(),
        transport: Transport::Http { url, headers },
        timeout: GENEROUS,
    }
}

fn args(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => panic!("arguments must be an object"),
    }
}

fn text_of(result: &Value) -> String {
    serde_json::to_string(result).expect("result serializes")
}

async fn echo(up: &Upstreams, spec: &UpstreamSpec, message: &str) -> Result<Value, UpstreamError> {
    up.call(spec, "echo", args(json!({ "message": message })))
        .await
}

fn pid_of(up: &Upstreams, name: &str) -> u32 {
    up.current(name)
        .and_then(|c| c.pid())
        .expect("connected stdio upstream has a pid")
}

/// Whether a process is running (zombies count as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid} failed");
}

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// `node dist/index.js streamableHttp` on a free port; killed on drop.
struct HttpEverything {
    child: std::process::Child,
    port: u16,
}

impl HttpEverything {
    async fn start() -> Self {
        let js = everything_js();
        let port = free_port();
        let child = std::process::Command::new("node")
            .arg(&js)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn node streamableHttp");
        let server = Self { child, port };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "streamableHttp server did not listen on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_echo_and_tool_list() {
    let up = Upstreams::new();
    let spec = stdio_spec("t/echo", GENEROUS);
    let result = echo(&up, &spec, "hi").await.expect("echo works");
    assert!(text_of(&result).contains("Echo: hi"), "got {result}");
    assert_eq!(result["content"][0]["type"], "text");

    let tools = up.tools(&spec).await.expect("tools listed");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in ["echo", "get-sum", "trigger-long-running-operation"] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_get_sum() {
    let up = Upstreams::new();
    let spec = stdio_spec("t/sum", GENEROUS);
    let result = up
        .call(&spec, "get-sum", args(json!({ "a": 2, "b": 40 })))
        .await
        .expect("get-sum works");
    assert!(text_of(&result).contains("is 42"), "got {result}");
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tool_is_rejected_locally() {
    let up = Upstreams::new();
    let spec = stdio_spec("t/unknown", GENEROUS);
    let err = up
        .call(&spec, "no-such-tool", None)
        .await
        .expect_err("unknown tool");
    assert!(
        matches!(&err, UpstreamError::UnknownTool(t) if t == "no-such-tool"),
        "got {err:?}"
    );
    assert_eq!(err.to_string(), "unknown tool 'no-such-tool'");
    // The connection made for the lookup stays up and serves real calls.
    let pid = pid_of(&up, &spec.name);
    echo(&up, &spec, "still here").await.expect("echo works");
    assert_eq!(pid_of(&up, &spec.name), pid);
    assert_eq!(up.opened(&spec.name), 1);
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_echo() {
    let server = HttpEverything::start().await;
    let up = Upstreams::new();
    let spec = http_spec(
        "t/http",
        server.url(),
        vec![("X-Plexmcp-Test".to_owned(), "yes".to_owned())],
    );
    let result = echo(&up, &spec, "hi").await.expect("echo over http");
    assert!(text_of(&result).contains("Echo: hi"), "got {result}");
    let sum = up
        .call(&spec, "get-sum", args(json!({ "a": 1, "b": 2 })))
        .await
        .expect("get-sum over http");
    assert!(text_of(&sum).contains("is 3"), "got {sum}");
    assert_eq!(up.opened(&spec.name), 1, "one session for both calls");
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_session_lost_is_reinitialized() {
    init_tracing();
    let mut server = HttpEverything::start().await;
    let up = Upstreams::new();
    let spec = http_spec("t/http-restart", server.url(), vec![]);
    echo(&up, &spec, "one").await.expect("first call");

    // Restart the server on the same port: the old session id is now unknown.
    let port = server.port;
    let _ = server.child.kill();
    let _ = server.child.wait();
    server.child = std::process::Command::new("node")
        .arg(everything_js())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("respawn server");
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(start.elapsed() < Duration::from_secs(20), "server restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The server answers the stale session id with 400 and an id-less error;
    // the transport re-initializes and the call goes through.
    let result = echo(&up, &spec, "two")
        .await
        .expect("call after a server restart succeeds");
    assert!(text_of(&result).contains("Echo: two"), "got {result}");
    assert_eq!(
        up.opened(&spec.name),
        1,
        "recovered inside the same connection"
    );
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_slow_call_times_out_and_session_survives() {
    let server = HttpEverything::start().await;
    let up = Upstreams::new();
    let mut spec = http_spec("t/http-slow", server.url(), vec![]);
    spec.timeout = Duration::from_secs(2);
    echo(&up, &spec, "warm up").await.expect("connects");
    let start = Instant::now();
    let err = up
        .call(
            &spec,
            "trigger-long-running-operation",
            args(json!({ "duration": 10, "steps": 1 })),
        )
        .await
        .expect_err("slow call");
    assert!(matches!(err, UpstreamError::Timeout(_)), "got {err:?}");
    assert!(start.elapsed() < Duration::from_secs(6));
    let result = echo(&up, &spec, "after")
        .await
        .expect("session still usable");
    assert!(text_of(&result).contains("Echo: after"));
    assert_eq!(up.opened(&spec.name), 1);
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_child_fails_in_flight_call_then_respawns() {
    let up = Upstreams::new();
    let spec = stdio_spec("t/kill", GENEROUS);
    echo(&up, &spec, "warm up").await.expect("first call");
    let pid = pid_of(&up, &spec.name);

    let slow = {
        let up = up.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let result = up
                .call(
                    &spec,
                    "trigger-long-running-operation",
                    args(json!({ "duration": 20, "steps": 2 })),
                )
                .await;
            (result, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill9(pid);

    let (result, elapsed) = slow.await.expect("task");
    let err = result.expect_err("call on a killed process");
    assert!(matches!(err, UpstreamError::Failed(_)), "got {err:?}");
    assert!(!err.to_string().contains('\n'));
    assert!(
        elapsed < Duration::from_secs(10),
        "in-flight call took {elapsed:?} to fail"
    );

    let result = echo(&up, &spec, "again").await.expect("respawned");
    assert!(text_of(&result).contains("Echo: again"));
    let new_pid = pid_of(&up, &spec.name);
    assert_ne!(new_pid, pid, "a new process serves the call");
    assert_eq!(up.opened(&spec.name), 2);
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_child_death_is_noticed_and_respawned() {
    let up = Upstreams::new();
    let spec = stdio_spec("t/idle-death", GENEROUS);
    echo(&up, &spec, "warm up").await.expect("first call");
    let pid = pid_of(&up, &spec.name);
    let connection = up.current(&spec.name).expect("connected");
    kill9(pid);
    wait_until(
        "the dead process to be noticed",
        Duration::from_secs(10),
        || !connection.is_usable(),
    )
    .await;
    drop(connection);

    let result = echo(&up, &spec, "after death").await.expect("respawned");
    assert!(text_of(&result).contains("Echo: after death"));
    assert_ne!(pid_of(&up, &spec.name), pid);
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_call_times_out_without_blocking_others() {
    let up = Upstreams::new();
    let slow_spec = stdio_spec("t/slow", Duration::from_secs(2));
    let other_spec = stdio_spec("t/other", GENEROUS);
    // Connect both first so the timings below are about calls, not start-up.
    echo(&up, &slow_spec, "warm up")
        .await
        .expect("slow spec connects");
    echo(&up, &other_spec, "warm up")
        .await
        .expect("other spec connects");
    let slow_pid = pid_of(&up, &slow_spec.name);

    let slow_call = up.call(
        &slow_spec,
        "trigger-long-running-operation",
        args(json!({ "duration": 10, "steps": 1 })),
    );
    let other_call = async {
        let start = Instant::now();
        let result = echo(&up, &other_spec, "meanwhile").await;
        (result, start.elapsed())
    };
    let start = Instant::now();
    let (slow_result, (other_result, other_elapsed)) = tokio::join!(slow_call, other_call);
    let slow_elapsed = start.elapsed();

    let err = slow_result.expect_err("slow call must time out");
    assert!(
        matches!(err, UpstreamError::Timeout(d) if d == Duration::from_secs(2)),
        "got {err:?}"
    );
    assert!(
        slow_elapsed < Duration::from_secs(6),
        "timeout took {slow_elapsed:?}"
    );
    assert!(text_of(&other_result.expect("other upstream works")).contains("Echo: meanwhile"));
    assert!(
        other_elapsed < Duration::from_secs(2),
        "other call waited {other_elapsed:?}"
    );

    // The timed-out call did not poison its connection.
    let result = echo(&up, &slow_spec, "after timeout")
        .await
        .expect("connection still usable");
    assert!(text_of(&result).contains("Echo: after timeout"));
    assert_eq!(pid_of(&up, &slow_spec.name), slow_pid);
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_share_one_process() {
    let up = Upstreams::new();
    let spec = stdio_spec("t/fifty", GENEROUS);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let up = up.clone();
        let spec = spec.clone();
        tasks.spawn(async move {
            let message = format!("n{i}");
            let result = echo(&up, &spec, &message).await;
            (message, result)
        });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        let (message, result) = joined.expect("task");
        let result = result.unwrap_or_else(|e| panic!("call {message} failed: {e}"));
        assert!(
            text_of(&result).contains(&format!("Echo: {message}\"")),
            "{message} got {result}"
        );
        ok += 1;
    }
    assert_eq!(ok, 50);
    assert_eq!(
        up.opened(&spec.name),
        1,
        "racing first calls made one connection"
    );
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_closed_port_fails() {
    let up = Upstreams::new();
    let port = free_port();
    let mut spec = http_spec("t/closed", format!("http://127.0.0.1:{port}/mcp"), vec![]);
    spec.timeout = Duration::from_secs(10);
    let start = Instant::now();
    let err = echo(&up, &spec, "hi").await.expect_err("nothing listens");
    assert!(matches!(err, UpstreamError::Failed(_)), "got {err:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let message = err.to_string();
    assert!(!message.contains('\n'));
    assert!(
        message.to_lowercase().contains("connect"),
        "message should say what went wrong: {message}"
    );
    // Each call is one attempt: no hidden retry loop.
    assert_eq!(up.opened(&spec.name), 1);
}

/// An HTTP "server" that records request heads and answers with HTML.
async fn garbage_http_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                record
                    .lock()
                    .expect("record")
                    .push(String::from_utf8_lossy(&head).to_lowercase());
                let body = "<html>definitely not MCP</html>";
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_garbage_fails_and_custom_headers_are_sent() {
    let (port, seen) = garbage_http_server().await;
    let up = Upstreams::new();
    let spec = http_spec(
        "t/garbage",
        format!("http://127.0.0.1:{port}/mcp"),
        vec![
            ("Authorization".to_owned(), "Bearer sekrit".to_owned()),
            ("X-Tenant".to_owned(), "acme".to_owned()),
        ],
    );
    let err = echo(&up, &spec, "hi").await.expect_err("garbage reply");
    assert!(matches!(err, UpstreamError::Failed(_)), "got {err:?}");
    assert!(!err.to_string().contains('\n'));
    let seen = seen.lock().expect("record").clone();
    assert!(!seen.is_empty(), "no request reached the server");
    assert!(
        seen[0].contains("authorization: bearer sekrit"),
        "{}",
        seen[0]
    );
    assert!(seen[0].contains("x-tenant: acme"), "{}", seen[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_reserved_or_invalid_headers_are_rejected() {
    let up = Upstreams::new();
    let spec = http_spec(
        "t/bad-header",
        "http://127.0.0.1:9/mcp".to_owned(),
        vec![("Mcp-Session-Id".to_owned(), "x".to_owned())],
    );
    let err = echo(&up, &spec, "hi").await.expect_err("reserved header");
    assert!(err.to_string().contains("mcp-session-id"), "got {err}");

    let spec = http_spec(
        "t/bad-header2",
        "http://127.0.0.1:9/mcp".to_owned(),
        vec![("bad header".to_owned(), "x".to_owned())],
    );
    let err = echo(&up, &spec, "hi").await.expect_err("invalid header");
    assert!(
        err.to_string().contains("invalid HTTP header name"),
        "got {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_failure_and_early_exit_fail_cleanly() {
    let up = Upstreams::new();
    let missing = UpstreamSpec {
        name: "t/missing".to_owned(),
        transport: Transport::Stdio {
            command: "/nonexistent/plexmcp-no-such-binary".to_owned(),
            args: vec![],
            env: vec![],
            inherit_env: vec![],
        },
        timeout: GENEROUS,
    };
    let err = up.tools(&missing).await.expect_err("no binary");
    assert!(
        matches!(&err, UpstreamError::Failed(m) if m.contains("could not start")),
        "got {err:?}"
    );

    let start = Instant::now();
    let exits = sh_spec(
        "t/exits",
        "echo 'not json' ; echo oops >&2 ; exit 3",
        GENEROUS,
    );
    let err = up.tools(&exits).await.expect_err("process exits at once");
    assert!(matches!(err, UpstreamError::Failed(_)), "got {err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(!err.to_string().contains('\n'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_times_out_at_connect() {
    let up = Upstreams::new();
    let spec = sh_spec("t/silent", "exec sleep 30", Duration::from_secs(1));
    let start = Instant::now();
    let err = echo(&up, &spec, "hi").await.expect_err("never answers");
    assert!(
        matches!(err, UpstreamError::Timeout(d) if d == Duration::from_secs(1)),
        "got {err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err.to_string(),
        "upstream did not answer within 1s",
        "message is one plain line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_spec_replaces_the_connection() {
    let up = Upstreams::new();
    let spec = stdio_spec("t/changing", GENEROUS);
    echo(&up, &spec, "v1").await.expect("first config");
    let old_pid = pid_of(&up, &spec.name);

    let mut changed = spec.clone();
    if let Transport::Stdio { env, .. } = &mut changed.transport {
        env.push(("PLEXMCP_TEST_MARKER".to_owned(), "2".to_owned()));
    }
    echo(&up, &changed, "v2").await.expect("second config");
    let new_pid = pid_of(&up, &changed.name);
    assert_ne!(old_pid, new_pid);
    wait_until("the old process to exit", Duration::from_secs(10), || {
        !alive(old_pid)
    })
    .await;

    // The env of the new spec reaches the child.
    let env = up
        .call(&changed, "get-env", None)
        .await
        .expect("get-env works");
    assert!(text_of(&env).contains("PLEXMCP_TEST_MARKER"), "got {env}");
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_children_and_refuses_new_calls() {
    let up = Upstreams::new();
    let a = stdio_spec("t/shut-a", GENEROUS);
    let b = stdio_spec("t/shut-b", GENEROUS);
    echo(&up, &a, "a").await.expect("a");
    echo(&up, &b, "b").await.expect("b");
    let pids = [pid_of(&up, &a.name), pid_of(&up, &b.name)];
    let start = Instant::now();
    up.shutdown().await;
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "shutdown took {:?}",
        start.elapsed()
    );
    for pid in pids {
        wait_until("child to exit", Duration::from_secs(5), || !alive(pid)).await;
    }
    let err = echo(&up, &a, "late").await.expect_err("after shutdown");
    assert!(matches!(err, UpstreamError::Failed(_)), "got {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_closes_one_upstream() {
    let up = Upstreams::new();
    let spec = stdio_spec("t/remove", GENEROUS);
    echo(&up, &spec, "x").await.expect("connects");
    let pid = pid_of(&up, &spec.name);
    up.remove(&spec.name).await;
    wait_until("child to exit", Duration::from_secs(5), || !alive(pid)).await;
    // Using the name again starts a fresh process.
    echo(&up, &spec, "y").await.expect("reconnects");
    assert_ne!(pid_of(&up, &spec.name), pid);
    up.shutdown().await;
}

/// Collects formatted tracing output for inspection.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn child_stderr_goes_to_tracing_with_the_upstream_name() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Single-threaded runtime: every task spawned below runs on this thread,
    // so the thread-local subscriber sees their events.
    let _guard = tracing::subscriber::set_default(subscriber);

    let up = Upstreams::new();
    let js = everything_js();
    let script = format!(
        "echo 'hello from stderr' >&2; exec node '{}' stdio",
        js.display()
    );
    let spec = sh_spec("t/stderr-name", &script, GENEROUS);
    echo(&up, &spec, "hi").await.expect("echo works");
    // The stderr reader is a separate task; give it a moment.
    let start = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&captured.0.lock().expect("capture")).into_owned();
        if text.contains("hello from stderr") && text.contains("Starting default (STDIO) server") {
            let line = text
                .lines()
                .find(|l| l.contains("hello from stderr"))
                .expect("line present");
            assert!(line.contains("plexmcp::upstream"), "target missing: {line}");
            assert!(line.contains("t/stderr-name"), "name missing: {line}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stderr not forwarded; captured:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    up.shutdown().await;
}

#[test]
fn one_line_squashes_and_bounds_messages() {
    assert_eq!(one_line("a\nb\r\n  c\t"), "a b c");
    let long = "x".repeat(1000);
    let squashed = one_line(&long);
    assert!(squashed.chars().count() <= 401);
    assert!(squashed.ends_with('…'));
}
