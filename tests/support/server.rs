//! `plexmcp serve` as a child process on an OS-chosen port, its `/mcp`
//! answers read whole, and HTTP clients from chosen loopback addresses.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::cli::Env;
use super::process::{ChildGuard, READY_TIMEOUT};

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
