//! The console end to end: the real binary inside a private tmux server
//! (with `set-clipboard on`, so OSC 52 lands in tmux's paste buffer), its
//! own `/mcp` server in front of the reference MCP server over stdio.
//! Create a key through the form, copy it with `c`, call `/mcp` with it,
//! revoke it with `r` `y`, call again, quit with `q`. And the guards around
//! what cannot be seen: keys pressed on the "too small" screen do nothing,
//! and `Ctrl-C` over a new key asks before it is lost.
//!
//! Needs tmux, node and the reference server (the guard test needs only
//! tmux); the test support installs what is missing on first use.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::tmux::{Tmux, sh_quote};
use support::{free_port, plexmcp_command, server_everything};

const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

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
    let server = server_everything();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("plexmcp.db");
    let exit_file = dir.path().join("exit.txt");
    let bin = env!("CARGO_BIN_EXE_plexmcp");

    // The reference MCP server, registered with the CLI.
    let stdio = format!("node {} stdio", server.display());
    let added = plexmcp_command()
        .arg("--db")
        .arg(&db)
        .args(["mcps", "add", "everything", "--stdio", &stdio])
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
        "env -u PLEXMCP_DB -u PLEXMCP_CONFIG -u PLEXMCP_ORG -u PLEXMCP_LISTEN -u DISPLAY -u WAYLAND_DISPLAY \
         USER=tester XDG_STATE_HOME={state} XDG_CACHE_HOME={state} XDG_CONFIG_HOME={state} \
         {bin} --db {db} --listen {listen}; echo EXIT=$? > {exit}",
        state = sh_quote(&dir.path().join("state").to_string_lossy()),
        bin = sh_quote(bin),
        db = sh_quote(&db.to_string_lossy()),
        exit = sh_quote(&exit_file.to_string_lossy()),
    );
    let tmux = Tmux::start_sized(&console, 120, 40);
    // Before the console can write OSC 52: tmux then stores it as a buffer.
    tmux.capture_clipboard();
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
    let db = dir.join("plexmcp.db");
    let exit_file = dir.join("exit.txt");
    let bin = env!("CARGO_BIN_EXE_plexmcp");
    let console = format!(
        "env -u PLEXMCP_DB -u PLEXMCP_CONFIG -u PLEXMCP_ORG -u DISPLAY -u WAYLAND_DISPLAY \
         USER=tester XDG_STATE_HOME={state} XDG_CACHE_HOME={state} XDG_CONFIG_HOME={state} \
         {bin} --db {db} --no-server; echo EXIT=$? > {exit}",
        state = sh_quote(&dir.join("state").to_string_lossy()),
        bin = sh_quote(bin),
        db = sh_quote(&db.to_string_lossy()),
        exit = sh_quote(&exit_file.to_string_lossy()),
    );
    let tmux = Tmux::start_sized(&console, 120, 40);
    tmux.capture_clipboard();
    (tmux, db, exit_file)
}

fn key_status(db: &Path, key: &str) -> String {
    let out = plexmcp_command()
        .arg("--db")
        .arg(db)
        .args(["keys", "show", key, "--json"])
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

/// Issue 12 item 13: a database path the console cannot create is one
/// plain error line before the terminal is taken, its cause said once
/// (it was "…: Operation not permitted (os error 1): Operation not
/// permitted (os error 1)"). Root may write almost anywhere, so the path
/// is under /sys, where nobody may create a folder.
#[test]
fn an_unusable_database_path_is_reported_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err_file = dir.path().join("stderr.txt");
    let exit_file = dir.path().join("exit.txt");
    let db = "/sys/plexmcp-cannot-exist/plexmcp.db";
    let console = format!(
        "env -u PLEXMCP_DB -u PLEXMCP_CONFIG XDG_STATE_HOME={state} XDG_CONFIG_HOME={state} \
         {bin} --db {db} --no-server 2> {err}; echo EXIT=$? > {exit}",
        state = sh_quote(&dir.path().join("state").to_string_lossy()),
        bin = sh_quote(env!("CARGO_BIN_EXE_plexmcp")),
        err = sh_quote(&err_file.to_string_lossy()),
        exit = sh_quote(&exit_file.to_string_lossy()),
    );
    let _tmux = Tmux::start_sized(&console, 100, 30);
    let exit = wait_for_file(&exit_file);
    assert_eq!(exit.trim(), "EXIT=1");
    let stderr = std::fs::read_to_string(&err_file).expect("stderr");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains(db),
        "{stderr}"
    );
    let cause = "(os error";
    assert_eq!(first.matches(cause).count(), 1, "{stderr}");
}
