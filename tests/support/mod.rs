//! Helpers for the end-to-end server tests (`tests/server.rs`): the real
//! `plexmcp` binary as a server process and as a CLI, the reference MCP
//! server (`@modelcontextprotocol/server-everything`) and a deliberately
//! broken MCP server. Every child process is killed when its guard drops,
//! so a failing test leaves nothing running.

#![allow(dead_code)] // not every test binary uses every helper

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub mod tmux;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// How long anything may take to become ready on a loaded machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The message a test fails with when the reference upstream is absent.
pub const EVERYTHING_MISSING: &str =
    "server-everything not installed: run scripts/install-test-deps.sh";

/// The reference MCP server's entry point. Fails the test (never skips it)
/// when it has not been installed.
pub fn server_everything() -> PathBuf {
    let entry = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-deps/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(entry.is_file(), "{EVERYTHING_MISSING}");
    entry
}

/// `node <server-everything> stdio`, quoted for `mcps add --stdio`.
pub fn everything_stdio_command() -> String {
    let entry = server_everything();
    let entry = entry.to_str().expect("UTF-8 path to server-everything");
    shlex::try_join(["node", entry, "stdio"]).expect("quotable command")
}

/// A port nobody listens on right now (the OS picks it; we let it go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Kills (the process group of) a child when dropped.
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Wraps a child spawned with `process_group(0)`, so that dropping the
    /// guard also reaches the processes it started (stdio upstreams).
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child: Some(child) }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("child still owned").id()
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .expect("child still owned")
            .try_wait()
            .expect("try_wait on child")
    }

    /// Sends `signal` (e.g. "TERM") to the child itself, not its group.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.id());
    }

    /// Waits for the child to exit by itself, up to `limit`.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The whole group: the child and anything it spawned.
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg("--")
                .arg(format!("-{}", child.id()))
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temp dir holding one database; the CLI and the server run against it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("plexmcp.db");
        Env { dir, db }
    }

    /// The binary with a controlled environment and `--db` set.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plexmcp"));
        for var in [
            "PLEXMCP_DB",
            "PLEXMCP_ORG",
            "PLEXMCP_LISTEN",
            "PLEXMCP_LOG",
            "SSH_CONNECTION",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("USER", "tester").arg("--db").arg(&self.db);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs a CLI command to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run plexmcp")
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "plexmcp {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 stdout")
    }

    /// `keys create --json` with extra arguments; returns (id, full key).
    pub fn create_key(&self, name: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["keys", "create", "--name", name, "--json"];
        args.extend_from_slice(extra);
        let json: Value = serde_json::from_str(&self.cli_ok(&args)).expect("keys create JSON");
        let id = json["id"]
            .as_str()
            .expect("id in keys create JSON")
            .to_string();
        let key = json["key"]
            .as_str()
            .expect("key in keys create JSON")
            .to_string();
        (id, key)
    }

    /// Registers the reference server over stdio as `slug`.
    pub fn add_everything_stdio(&self, slug: &str) {
        self.cli_ok(&["mcps", "add", slug, "--stdio", &everything_stdio_command()]);
    }

    /// The key's entry in `keys list --json`.
    pub fn key_json(&self, id: &str) -> Value {
        let list: Value = serde_json::from_str(&self.cli_ok(&["keys", "list", "--json"]))
            .expect("keys list JSON");
        list.as_array()
            .expect("keys list --json is an array")
            .iter()
            .find(|k| k["id"] == id)
            .unwrap_or_else(|| panic!("key {id} not in keys list: {list:#}"))
            .clone()
    }

    /// Usage events stored so far, read through a separate connection.
    pub fn usage_event_count(&self) -> i64 {
        plexmcp::store::Store::open(&self.db)
            .expect("open store")
            .usage_event_count()
            .expect("count usage events")
    }
}

/// `plexmcp serve` on an OS-chosen port of 127.0.0.1, with its log captured.
pub struct Server {
    child: ChildGuard,
    pub addr: SocketAddr,
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

const SERVING: &str = "plexmcp serving POST /mcp on http://";

impl Server {
    /// Starts the server and waits until `/healthz` answers.
    pub async fn start(env: &Env) -> Server {
        Server::start_with_vars(env, &[]).await
    }

    /// Like `start`, with these variables added to the server's environment.
    pub async fn start_with_vars(env: &Env, vars: &[(&str, &str)]) -> Server {
        use std::os::unix::process::CommandExt;
        let mut cmd = env.command();
        cmd.envs(vars.iter().copied());
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn plexmcp serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let child = ChildGuard::new(child);

        // One thread drains stderr for the server's whole life (a full pipe
        // would stall it) and reports the bound address once.
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let thread_logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(SERVING) {
                    let addr = line[at + SERVING.len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(addr);
                }
                thread_logs.lock().unwrap().push(line);
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(READY_TIMEOUT))
            .await
            .expect("join address reader");
        let addr: SocketAddr = match addr {
            Ok(addr) => addr.parse().expect("address in the serving log line"),
            Err(_) => panic!(
                "plexmcp serve did not report its address; log:\n{}",
                logs.lock().unwrap().join("\n")
            ),
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("HTTP client");
        let server = Server {
            child,
            addr,
            base: format!("http://{addr}"),
            logs,
            client,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let answer = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await;
            if let Ok(response) = answer
                && response.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server never became healthy; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// `POST /mcp` with the key in `Authorization: ApiKey` (or no key).
    pub async fn call(&self, key: Option<&str>, body: &Value) -> Reply {
        let mut request = self.client.post(format!("{}/mcp", self.base)).json(body);
        if let Some(key) = key {
            request = request.header("Authorization", format!("ApiKey {key}"));
        }
        Reply::from(request.send().await.expect("POST /mcp")).await
    }

    /// `echo` on `mcp`; returns the reply.
    pub async fn echo(&self, key: &str, mcp: &str, message: &str) -> Reply {
        let body = serde_json::json!({
            "mcp_id": mcp, "tool": "echo", "arguments": { "message": message }
        });
        self.call(Some(key), &body).await
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.child.signal("TERM");
        match self.child.wait_timeout(READY_TIMEOUT) {
            Some(status) => status,
            None => panic!(
                "plexmcp serve did not exit after SIGTERM; log:\n{}",
                self.logs()
            ),
        }
    }
}

/// A `/mcp` answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("non-JSON body ({e}) with status {status}: {text}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The error `code`, if this is an error answer.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    pub fn reason(&self) -> Option<&str> {
        self.body["error"]["reason"].as_str()
    }

    /// The first text content of a `CallToolResult`.
    pub fn text(&self) -> &str {
        self.body["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text content in {:#}", self.body))
    }

    /// Asserts a 401 with `reason` and the `WWW-Authenticate` challenge.
    pub fn assert_invalid_key(&self, reason: &str) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{:#}", self.body);
        assert_eq!(self.code(), Some("invalid_api_key"), "{:#}", self.body);
        assert_eq!(self.reason(), Some(reason), "{:#}", self.body);
        assert_eq!(
            self.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("ApiKey")
        );
    }
}

/// `node <server-everything> streamableHttp` on a free port.
pub struct HttpEverything {
    _child: ChildGuard,
    pub port: u16,
}

impl HttpEverything {
    pub fn start() -> HttpEverything {
        use std::os::unix::process::CommandExt;
        let entry = server_everything();
        // The port is free when picked but could be taken before node binds
        // it; node then exits, and we try another.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("node")
                .arg(&entry)
                .arg("streamableHttp")
                .env("PORT", port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("spawn node (is Node.js installed?)");
            let mut child = ChildGuard::new(child);
            let deadline = Instant::now() + READY_TIMEOUT;
            while Instant::now() < deadline {
                if child.try_wait().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return HttpEverything {
                        _child: child,
                        port,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("server-everything (streamableHttp) never started listening");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

/// A stdio MCP server that completes the handshake and lists one tool,
/// `hang`, but never answers a `tools/call`. Written into `dir`; returns
/// the `--stdio` command line that runs it.
pub fn hanging_mcp(dir: &Path) -> String {
    let script = dir.join("hanging-mcp.cjs");
    std::fs::write(&script, HANGING_MCP).expect("write hanging MCP script");
    let script = script.to_str().expect("UTF-8 temp path");
    shlex::try_join(["node", script]).expect("quotable command")
}

const HANGING_MCP: &str = r#"
const readline = require("readline");
const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");
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
        serverInfo: { name: "hanging", version: "0.0.0" },
      });
      break;
    case "tools/list":
      reply({ tools: [{ name: "hang", description: "never answers", inputSchema: { type: "object" } }] });
      break;
    case "ping":
      reply({});
      break;
    case "tools/call":
      break; // never answered
    default:
      send({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "method not found" } });
  }
});
"#;

/// A key with the id of `real` and a valid integrity tag under `secret`,
/// but a different secret part chosen by `seed`: it passes every cheap
/// check and is refused only by argon2.
pub fn same_id_wrong_secret(
    secret: &plexmcp::keys::ServerSecret,
    real: &str,
    seed: u32,
) -> plexmcp::keys::ApiKey {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let real = plexmcp::keys::parse(real).expect("a well-formed real key");
    // The generator turns a byte b below 248 into ALPHABET[b % 62]: feed it
    // the id's own characters, then secret characters from a small LCG.
    let mut bytes: Vec<u8> = real
        .id()
        .bytes()
        .map(|c| u8::try_from(ALPHABET.iter().position(|&a| a == c).expect("base62")).unwrap())
        .collect();
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    for _ in 0..plexmcp::keys::SECRET_LEN {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        bytes.push(u8::try_from((state >> 16) % 62).unwrap());
    }
    let mut fed = 0;
    let key = plexmcp::keys::generate_with(secret, |buf| {
        for b in buf.iter_mut() {
            *b = bytes.get(fed).copied().unwrap_or(0);
            fed += 1;
        }
    });
    assert_eq!(key.id(), real.id());
    assert_ne!(
        key.expose(),
        real.text(),
        "seed {seed} reproduced the real key"
    );
    plexmcp::keys::parse_and_check(key.expose(), secret).expect("tag-valid forgery");
    key
}

/// `key` with one character of its secret part changed: the right shape and
/// the real id, but an integrity tag that no longer matches.
pub fn bad_tag(key: &str, variant: usize) -> String {
    let start = plexmcp::keys::KEY_PREFIX.len() + plexmcp::keys::ID_LEN;
    let at = start + variant % plexmcp::keys::SECRET_LEN;
    let mut bytes = key.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).expect("ASCII key")
}

/// An HTTP client whose connections come from `ip` (any 127.0.0.0/8
/// address works on Linux loopback), so one test can be many clients.
pub fn client_from(ip: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip)
        .build()
        .expect("HTTP client")
}

impl Server {
    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `POST /mcp` through `client` with the key in `Authorization: ApiKey`.
    pub async fn call_via(
        &self,
        client: &reqwest::Client,
        key: Option<&str>,
        body: &Value,
    ) -> Reply {
        let mut request = client.post(format!("{}/mcp", self.base)).json(body);
        if let Some(key) = key {
            request = request.header("Authorization", format!("ApiKey {key}"));
        }
        Reply::from(request.send().await.expect("POST /mcp")).await
    }

    /// `GET /healthz` through `client`; true on 200.
    pub async fn healthy_via(&self, client: &reqwest::Client) -> bool {
        client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    }
}

impl Server {
    /// SIGKILL to the server and everything it started (its process
    /// group), as a crash or the OOM killer would; waits for it to die.
    pub fn kill_hard(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL failed");
        match self.child.wait_timeout(READY_TIMEOUT) {
            Some(status) => status,
            None => panic!("plexmcp serve survived SIGKILL"),
        }
    }
}
