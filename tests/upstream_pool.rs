//! The gateway and its upstreams over time, end to end with `plexmcp serve`:
//! a removed MCP's process stops; `tools/list` of the aggregate endpoint asks
//! every MCP at once and does not keep re-trying broken ones; and what fails
//! upstream reaches callers as "MCP 'x' failed", never as the gateway's
//! command lines, URLs or transport errors (those go to the log, redacted).
//!
//! The fake upstream is `tests/fixtures/fake_mcp.py` (python3); tests fail,
//! never skip, without it.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Env, Reply, Server};

/// The real python3 executable (not a version manager's shim) and the fake
/// upstream's script; fails the test without python3.
fn python_and_fake() -> (String, String) {
    support::require_python3();
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output();
    let python = match out {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout)
            .expect("UTF-8 path")
            .trim()
            .to_string(),
        _ => panic!("python3 is needed for the fake MCP upstream: install it"),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_mcp.py");
    (python, script.to_str().expect("UTF-8 path").to_string())
}

/// `--stdio` command line of the fake upstream with `options`.
fn fake_command(options: &[&str]) -> String {
    let (python, script) = python_and_fake();
    let mut words = vec![python.as_str(), script.as_str()];
    words.extend_from_slice(options);
    shlex::try_join(words).expect("quotable command")
}

/// `--stdio` command line of an upstream that records each start in
/// `started` and then never speaks.
fn hanging_command(started: &Path) -> String {
    let script = format!("echo $$ >> '{}'; exec sleep 600", started.display());
    shlex::try_join(["sh", "-c", &script]).expect("quotable command")
}

fn starts(file: &Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |text| text.lines().count())
}

/// Whether a process is running (zombies count as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// Live child processes of `pid` (all its threads' children).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut found: Vec<u32> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .filter(|child| alive(*child))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

async fn wait_until(what: &str, server: &Server, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn call(mcp: &str, tool: &str) -> Value {
    json!({ "mcp_id": mcp, "tool": tool, "arguments": {} })
}

/// Calls the fake's `ok` tool; the pid of the process that answered.
async fn ok_pid(server: &Server, key: &str, mcp: &str) -> u32 {
    let reply = server.call(Some(key), &call(mcp, "ok")).await;
    assert_eq!(reply.status, StatusCode::OK, "{mcp}: {:#}", reply.body);
    reply
        .text()
        .rsplit("pid ")
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {:#}", reply.body))
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

fn listed_names(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    reply.body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool list in {:#}", reply.body))
        .iter()
        .filter_map(|tool| tool["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_mcp_stops_its_process_even_when_re_added_under_the_same_id() {
    let env = Env::new();
    let command = fake_command(&[]);
    env.cli_ok(&["mcps", "add", "stays", "--stdio", &command]);
    env.cli_ok(&["mcps", "add", "churn", "--stdio", &command]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;
    let stays = ok_pid(&server, &key, "stays").await;

    let mut previous = ok_pid(&server, &key, "churn").await;
    for round in 0..3 {
        env.cli_ok(&["mcps", "remove", "churn"]);
        wait_until(
            &format!("round {round}: the removed MCP's process {previous} to exit"),
            &server,
            || !alive(previous),
        )
        .await;
        env.cli_ok(&["mcps", "add", "churn", "--stdio", &command]);
        let next = ok_pid(&server, &key, "churn").await;
        assert_ne!(next, previous, "round {round}: the old process answered");
        previous = next;
    }
    assert!(
        alive(stays),
        "an MCP that stayed configured lost its process"
    );
    assert_eq!(
        ok_pid(&server, &key, "stays").await,
        stays,
        "the MCP that stayed kept its process"
    );
    // Only the two configured MCPs still have a process.
    let mut expected = vec![stays, previous];
    expected.sort_unstable();
    assert_eq!(
        children(server.pid()),
        expected,
        "the server's child processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_asks_every_mcp_at_once_and_does_not_retry_broken_ones_at_once() {
    let env = Env::new();
    let meet = env.dir.path().join("meet");
    let meet = meet.to_str().expect("UTF-8 temp path");
    // Each of these answers only while all three are being asked together.
    let meeting = fake_command(&["--rendezvous", meet, "3"]);
    for i in 0..3 {
        let slug = format!("meet{i}");
        env.cli_ok(&["mcps", "add", &slug, "--stdio", &meeting, "--timeout", "10"]);
    }
    let hang_files: Vec<PathBuf> = (0..2)
        .map(|i| env.dir.path().join(format!("hang{i}")))
        .collect();
    for (i, file) in hang_files.iter().enumerate() {
        let slug = format!("hang{i}");
        let command = hanging_command(file);
        env.cli_ok(&["mcps", "add", &slug, "--stdio", &command, "--timeout", "2"]);
    }
    let (_, key) = env.create_key("mcp-client", &[]);
    let server = Server::start(&env).await;

    for round in 0..3 {
        let reply = server
            .call(Some(&key), &rpc(round, "tools/list", json!({})))
            .await;
        let names = listed_names(&reply);
        for i in 0..3 {
            let tool = format!("meet{i}__ok");
            assert!(
                names.contains(&tool),
                "round {round}: {tool} missing from {names:?}; log:\n{}",
                server.logs()
            );
        }
        assert!(
            !names.iter().any(|n| n.starts_with("hang")),
            "round {round}: {names:?}"
        );
    }
    // Three listings within the back-off: one start of each broken MCP.
    for file in &hang_files {
        assert_eq!(starts(file), 1, "{}: processes started", file.display());
    }
}

/// The whole body of an upstream failure, as callers must see it.
fn generic_failure(reply: &Reply, status: StatusCode, code: &str, message: &str) {
    assert_eq!(reply.status, status, "{:#}", reply.body);
    assert_eq!(
        reply.body,
        json!({ "error": { "code": code, "message": message } })
    );
}

const SECRETS: [&str; 5] = ["/opt/secret-path", "hunter2", "abc", "user:", "could not"];

fn assert_no_detail(what: &str, reply: &Reply) {
    let text = reply.body.to_string();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what}: {secret:?} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_name_the_mcp_and_nothing_else() {
    let env = Env::new();
    env.cli_ok(&[
        "mcps",
        "add",
        "nope",
        "--stdio",
        "/opt/secret-path/bin/nope",
    ]);
    let closed = support::free_port();
    let leaky = format!("http://user:hunter2@127.0.0.1:{closed}/mcp?token=abc");
    env.cli_ok(&["mcps", "add", "leaky", "--url", &leaky]);
    let silent = shlex::try_join(["sh", "-c", "exec sleep 600"]).expect("quotable");
    env.cli_ok(&[
        "mcps",
        "add",
        "silent",
        "--stdio",
        &silent,
        "--timeout",
        "1",
    ]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;

    for mcp in ["nope", "leaky"] {
        let message = format!("Upstream MCP '{mcp}' failed");
        let reply = server.echo(&key, mcp, "hi").await;
        generic_failure(&reply, StatusCode::BAD_GATEWAY, "upstream_error", &message);
        let reply = server
            .call(
                Some(&key),
                &rpc(1, "tools/call", json!({ "name": format!("{mcp}__echo") })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        assert_eq!(reply.body["error"]["message"], message.as_str());
        assert_no_detail(mcp, &reply);
    }
    let reply = server.echo(&key, "silent", "hi").await;
    generic_failure(
        &reply,
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        "Upstream MCP 'silent' timed out",
    );
    let list = server
        .call(Some(&key), &rpc(2, "tools/list", json!({})))
        .await;
    assert!(listed_names(&list).is_empty(), "{:#}", list.body);
    assert_no_detail("tools/list", &list);

    // The detail is in the log, with the MCP it concerns, minus the secrets.
    let logs = server.logs();
    let detail = logs
        .lines()
        .find(|line| line.contains("/opt/secret-path/bin/nope"))
        .unwrap_or_else(|| panic!("the failed command is not in the log:\n{logs}"));
    assert!(
        detail.contains("WARN") && detail.contains("nope"),
        "{detail}"
    );
    assert!(
        logs.lines().any(|line| line.contains("WARN")
            && line.contains("leaky")
            && line.contains("connect")),
        "the HTTP failure is not in the log:\n{logs}"
    );
    for secret in ["hunter2", "token=abc"] {
        assert!(!logs.contains(secret), "{secret:?} in the log:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tools_own_error_reaches_the_caller_and_an_oversized_reply_is_502_at_once() {
    let env = Env::new();
    // A timeout longer than the test may take: only a quick 502 passes.
    env.cli_ok(&[
        "mcps",
        "add",
        "fake",
        "--stdio",
        &fake_command(&[]),
        "--timeout",
        "600",
    ]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;
    let first = ok_pid(&server, &key, "fake").await;

    // The tool's own error answer is passed on: it is the tool speaking.
    let reply = server.call(Some(&key), &call("fake", "fail")).await;
    generic_failure(
        &reply,
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "Upstream MCP 'fake' answered with an error: the tool says: quota used up",
    );
    let reply = server
        .call(
            Some(&key),
            &rpc(1, "tools/call", json!({ "name": "fake__fail" })),
        )
        .await;
    assert_eq!(
        reply.body["error"],
        json!({ "code": -32000, "message": "the tool says: quota used up" }),
        "{:#}",
        reply.body
    );
    assert_eq!(
        ok_pid(&server, &key, "fake").await,
        first,
        "the session survived"
    );

    // A 17 MiB reply line: 502 without waiting, then a fresh process.
    let reply = server.call(Some(&key), &call("fake", "huge")).await;
    generic_failure(
        &reply,
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "Upstream MCP 'fake' failed",
    );
    let next = ok_pid(&server, &key, "fake").await;
    assert_ne!(next, first, "the flooding process was replaced");
    assert!(
        server.logs().contains("longer than 16 MiB"),
        "the reason is logged:\n{}",
        server.logs()
    );
}
