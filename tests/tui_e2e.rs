//! The console end to end: the real binary inside a private tmux server
//! (with `set-clipboard on`, so OSC 52 lands in tmux's paste buffer), its
//! own `/mcp` server in front of the reference MCP server over stdio.
//! Create a key through the form, copy it with `c`, call `/mcp` with it,
//! revoke it with `r` `y`, call again, quit with `q`. And the guards around
//! what cannot be seen: keys pressed on the "too small" screen do nothing,
//! and `Ctrl-C` over a new key asks before it is lost.
//!
//! Needs tmux, node and the reference server: `scripts/install-test-deps.sh`
//! (the guard test needs only tmux).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const INSTALL_HINT: &str =
    "run scripts/install-test-deps.sh to install the console's test dependencies";

fn reference_server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-deps/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// Fails (never skips) when something the test needs is not installed.
fn require_dependencies() -> PathBuf {
    let works = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(works("tmux", "-V"), "tmux is not installed: {INSTALL_HINT}");
    assert!(
        works("node", "--version"),
        "node is not installed: {INSTALL_HINT}"
    );
    let server = reference_server();
    assert!(
        server.is_file(),
        "the reference MCP server is missing at {}: {INSTALL_HINT}",
        server.display()
    );
    server
}

/// Single quotes for `sh`, which tmux runs the session's command with.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().unwrap().port()
}

/// A tmux server of our own on a unique socket; dropping it kills the
/// server, and with it the console if the test failed half way.
struct Tmux {
    socket: String,
    /// The socket file, which tmux leaves behind when its server exits.
    socket_path: Option<PathBuf>,
}

impl Tmux {
    fn start(command: &str, width: u16, height: u16) -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let mut tmux = Tmux {
            socket: format!("plexmcp-e2e-{}-{nanos}", std::process::id()),
            socket_path: None,
        };
        let (w, h) = (width.to_string(), height.to_string());
        tmux.ok(&[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            &w,
            "-y",
            &h,
            command,
        ]);
        // Before the console can write OSC 52: tmux then stores it as a buffer.
        tmux.ok(&["set", "-g", "set-clipboard", "on"]);
        let path = tmux.ok(&["display-message", "-p", "#{socket_path}"]);
        tmux.socket_path = Some(PathBuf::from(path.trim()));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "console"])
    }

    /// Keys by tmux name (`Enter`, `Escape`) or single characters.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    fn type_text(&self, text: &str) {
        self.ok(&["send-keys", "-t", "console", "-l", text]);
    }

    /// The newest paste buffer, if there is one yet.
    fn paste_buffer(&self) -> Option<String> {
        let out = self.run(&["show-buffer"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn wait_for_screen(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen is:\n{screen}"
            );
            std::thread::sleep(POLL);
        }
    }

    fn wait_for_text(&self, text: &str) -> String {
        self.wait_for_screen(&format!("{text:?}"), |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Already gone when the console exited and closed the only session.
        let _ = self.run(&["kill-server"]);
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(POLL);
    }
}

async fn call_echo(client: &reqwest::Client, port: u16, key: &str) -> (u16, Value) {
    let response = client
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("Authorization", format!("ApiKey {key}"))
        .json(&json!({
            "mcp_id": "everything",
            "tool": "echo",
            "arguments": { "message": "hi" },
        }))
        .send()
        .await
        .expect("POST /mcp");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_copy_call_revoke_and_quit_in_the_real_console() {
    let server = require_dependencies();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("plexmcp.db");
    let exit_file = dir.path().join("exit.txt");
    let bin = env!("CARGO_BIN_EXE_plexmcp");

    // The reference MCP server, registered with the CLI.
    let stdio = format!("node {} stdio", server.display());
    let added = Command::new(bin)
        .arg("--db")
        .arg(&db)
        .args(["mcps", "add", "everything", "--stdio", &stdio])
        .env("USER", "tester")
        .env_remove("PLEXMCP_ORG")
        .env_remove("PLEXMCP_DB")
        .output()
        .expect("run plexmcp mcps add");
    assert!(
        added.status.success(),
        "mcps add failed: {}",
        String::from_utf8_lossy(&added.stderr)
    );

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let console = format!(
        "env -u PLEXMCP_DB -u PLEXMCP_ORG -u PLEXMCP_LISTEN -u DISPLAY -u WAYLAND_DISPLAY \
         USER=tester XDG_STATE_HOME={state} XDG_CACHE_HOME={state} \
         {bin} --db {db} --listen {listen}; echo EXIT=$? > {exit}",
        state = sh_quote(&dir.path().join("state").to_string_lossy()),
        bin = sh_quote(bin),
        db = sh_quote(&db.to_string_lossy()),
        exit = sh_quote(&exit_file.to_string_lossy()),
    );
    let tmux = Tmux::start(&console, 120, 40);
    tmux.wait_for_text(&format!("serving {listen}"));
    tmux.wait_for_text("No API keys yet");

    // Create a key through the form.
    tmux.keys(&["n"]);
    tmux.wait_for_text("Create API key");
    tmux.type_text("e2e-key");
    tmux.keys(&["Enter"]);
    tmux.wait_for_text("shown only once");

    // c: OSC 52 reaches tmux, which keeps it as a paste buffer.
    tmux.keys(&["c"]);
    tmux.wait_for_text("copied via OSC 52");
    let deadline = Instant::now() + TIMEOUT;
    let key = loop {
        if let Some(buffer) = tmux.paste_buffer().filter(|b| b.starts_with("pmcp_")) {
            break buffer;
        }
        assert!(Instant::now() < deadline, "no paste buffer after c");
        std::thread::sleep(POLL);
    };
    assert_eq!(key.len(), 51, "a whole key: {key:?}");
    assert!(
        key[5..].bytes().all(|b| b.is_ascii_alphanumeric()),
        "{key:?}"
    );
    let prefix = &key[..13];
    let secret = &key[13..];
    assert!(
        tmux.screen().contains(&key),
        "the dialog shows the key copied"
    );

    // The console's own server accepts it.
    let client = reqwest::Client::new();
    let (status, body) = call_echo(&client, port, &key).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("Echo: hi"), "{body}");

    // Closing the dialog takes the key off the screen for good.
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for_screen("the dialog to close", |s| !s.contains("shown only once"));
    assert!(!screen.contains(secret), "key still on screen:\n{screen}");
    assert!(screen.contains(prefix), "the key is listed:\n{screen}");

    // Revoke: r asks, y confirms.
    tmux.keys(&["r"]);
    tmux.wait_for_text("Revoke key");
    tmux.keys(&["y"]);
    let screen = tmux.wait_for_text("Revoked");
    assert!(!screen.contains(secret));
    let (status, body) = call_echo(&client, port, &key).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["reason"], "revoked", "{body}");

    // q quits cleanly.
    tmux.keys(&["q"]);
    let exit = wait_for_file(&exit_file);
    assert_eq!(exit.trim(), "EXIT=0");
}

/// The console with `--no-server` on a fresh database in `dir`, in tmux.
fn console_without_server(dir: &Path) -> (Tmux, PathBuf, PathBuf) {
    let works = Command::new("tmux").arg("-V").output();
    assert!(
        works.is_ok_and(|o| o.status.success()),
        "tmux is not installed: {INSTALL_HINT}"
    );
    let db = dir.join("plexmcp.db");
    let exit_file = dir.join("exit.txt");
    let bin = env!("CARGO_BIN_EXE_plexmcp");
    let console = format!(
        "env -u PLEXMCP_DB -u PLEXMCP_ORG -u DISPLAY -u WAYLAND_DISPLAY \
         USER=tester XDG_STATE_HOME={state} XDG_CACHE_HOME={state} \
         {bin} --db {db} --no-server; echo EXIT=$? > {exit}",
        state = sh_quote(&dir.join("state").to_string_lossy()),
        bin = sh_quote(bin),
        db = sh_quote(&db.to_string_lossy()),
        exit = sh_quote(&exit_file.to_string_lossy()),
    );
    (Tmux::start(&console, 120, 40), db, exit_file)
}

fn key_status(db: &Path, key: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_plexmcp"))
        .arg("--db")
        .arg(db)
        .args(["keys", "show", key, "--json"])
        .env("USER", "tester")
        .env_remove("PLEXMCP_ORG")
        .env_remove("PLEXMCP_DB")
        .output()
        .expect("run plexmcp keys show");
    let json: Value = serde_json::from_slice(&out.stdout).expect("keys show --json");
    json["status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_too_small_terminal_ignores_keys_and_ctrl_c_asks_before_losing_a_new_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (tmux, db, exit_file) = console_without_server(dir.path());
    tmux.wait_for_text("No API keys yet");

    // A key made in the form, then closed: it is listed and active.
    tmux.keys(&["n"]);
    tmux.wait_for_text("Create API key");
    tmux.type_text("keep-me");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for_text("shown only once");
    let prefix = screen
        .split("Prefix: ")
        .nth(1)
        .map(|rest| rest[..13].to_string())
        .expect("the dialog shows the prefix");
    tmux.keys(&["Enter"]);
    tmux.wait_for_screen("the dialog to close", |s| !s.contains("shown only once"));

    // Too small: r y (revoke, confirm) and n Enter (a new key) do nothing.
    tmux.ok(&["resize-window", "-t", "console", "-x", "60", "-y", "20"]);
    tmux.wait_for_text("Terminal too small");
    tmux.keys(&["r", "y", "n", "Enter"]);
    tmux.ok(&["resize-window", "-t", "console", "-x", "120", "-y", "40"]);
    let screen = tmux.wait_for_text("API Keys (1)");
    assert!(!screen.contains("Revoke key"), "{screen}");
    assert!(!screen.contains("Create API key"), "{screen}");
    assert_eq!(key_status(&db, &prefix), "active");

    // Ctrl-C with a new key on screen asks; n goes back to the key.
    tmux.keys(&["n"]);
    tmux.wait_for_text("Create API key");
    tmux.type_text("second");
    tmux.keys(&["Enter"]);
    tmux.wait_for_text("shown only once");
    tmux.keys(&["C-c"]);
    tmux.wait_for_text("The key will not be shown again. Quit anyway?");
    assert!(
        std::fs::read_to_string(&exit_file).is_err(),
        "quit without asking"
    );
    tmux.keys(&["n"]);
    tmux.wait_for_text("shown only once");
    // Asked again, y quits.
    tmux.keys(&["C-c"]);
    tmux.wait_for_text("Quit anyway?");
    tmux.keys(&["y"]);
    let exit = wait_for_file(&exit_file);
    assert_eq!(exit.trim(), "EXIT=0");
}
