//! Upstream MCP servers for the gateway to talk to: the reference server
//! (`@modelcontextprotocol/server-everything`, installed on first use by
//! [`super::install`]) over stdio or Streamable HTTP, and a deliberately
//! broken one that never answers a call.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{ChildGuard, READY_TIMEOUT, free_port};

/// The reference MCP server's entry point, installed on first use. Fails
/// the test (never skips it) with one line when that is impossible.
pub fn server_everything() -> PathBuf {
    super::install::server_everything()
}

/// `node <server-everything> stdio`, quoted for `mcps add --stdio`.
pub fn everything_stdio_command() -> String {
    let entry = server_everything();
    let entry = entry.to_str().expect("UTF-8 path to server-everything");
    shlex::try_join(["node", entry, "stdio"]).expect("quotable command")
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

/// `python3 tests/fixtures/fake_mcp.py EXTRA..`, quoted for `mcps add --stdio`.
pub fn fake_stdio_command(extra: &[&str]) -> String {
    crate::support::require_python3();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_mcp.py");
    let mut words = vec!["python3", script.to_str().expect("UTF-8 fixture path")];
    words.extend_from_slice(extra);
    shlex::try_join(words).expect("quotable command")
}

/// The tool list a `fake_mcp.py --tools-file` upstream serves, changed
/// under it while it runs.
pub struct ToolsFile {
    pub path: PathBuf,
}

impl ToolsFile {
    /// `tools` (a JSON array of tools) at `path`.
    pub fn new(path: PathBuf, tools: &serde_json::Value) -> ToolsFile {
        let file = ToolsFile { path };
        file.write(tools);
        file
    }

    /// Replaces the list in one rename, so the upstream never reads half of it.
    pub fn write(&self, tools: &serde_json::Value) {
        let next = self.path.with_extension("next");
        std::fs::write(&next, tools.to_string()).expect("write tools file");
        std::fs::rename(&next, &self.path).expect("replace tools file");
    }
}
