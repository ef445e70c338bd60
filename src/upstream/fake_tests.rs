//! Tests against a fake stdio upstream (`tests/fixtures/fake_mcp.py`) that
//! misbehaves on request: endless or oversized tool lists, replies longer than
//! a line may be, connects that hang; and the pool rules those call for —
//! closing what is no longer configured, backing off failed connects, and
//! asking many upstreams at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Transport, UpstreamError, UpstreamSpec, Upstreams};

/// The real python3 executable (not a version manager's shim) and the fake
/// upstream's script; fails the test (never skips) without python3.
fn python_and_fake() -> (String, String) {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output();
    let python = match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => panic!("python3 is needed for the fake MCP upstream: install it"),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_mcp.py");
    (python, script.display().to_string())
}

fn fake_spec(name: &str, options: &[&str], timeout: Duration) -> UpstreamSpec {
    let (python, script) = python_and_fake();
    let mut args = vec![script];
    args.extend(options.iter().map(|o| (*o).to_owned()));
    UpstreamSpec {
        name: name.to_owned(),
        transport: Transport::Stdio {
            command: python,
            args,
            env: vec![],
            inherit_env: vec![],
        },
        timeout,
    }
}

/// A stdio "upstream" that records each start in `started` and never speaks.
fn hanging_spec(name: &str, started: &Path, timeout: Duration) -> UpstreamSpec {
    let script = format!("echo $$ >> '{}'; exec sleep 60", started.display());
    UpstreamSpec {
        name: name.to_owned(),
        transport: Transport::Stdio {
            command: "sh".to_owned(),
            args: vec!["-c".to_owned(), script],
            env: vec![],
            inherit_env: vec![],
        },
        timeout,
    }
}

fn starts(file: &Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |text| text.lines().count())
}

fn pid_of(up: &Upstreams, name: &str) -> u32 {
    up.current(name)
        .and_then(|c| c.pid())
        .expect("connected stdio upstream has a pid")
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

async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn failed_message<T>(result: Result<T, UpstreamError>) -> String {
    match result {
        Err(UpstreamError::Failed(message)) => message,
        Err(other) => panic!("expected a Failed error, got {other:?}"),
        Ok(_) => panic!("expected a Failed error, got a success"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_tool_paging_fails_with_a_clear_error() {
    let up = Upstreams::new();
    // Long enough that only the page cap, not the timeout, can end it.
    let spec = fake_spec(
        "t/endless",
        &["--pages", "0", "--per-page", "1"],
        Duration::from_secs(15),
    );
    let message = failed_message(up.tools(&spec).await);
    assert!(
        message.contains("tools/list exceeded") && message.contains("100 pages"),
        "{message}"
    );
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_tools_fail_with_a_clear_error() {
    let up = Upstreams::new();
    let spec = fake_spec(
        "t/many-tools",
        &["--pages", "30", "--per-page", "500"],
        Duration::from_secs(30),
    );
    let message = failed_message(up.tools(&spec).await);
    assert!(
        message.contains("tools/list exceeded") && message.contains("10000 tools"),
        "{message}"
    );
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_tool_list_fails_with_a_clear_error() {
    let up = Upstreams::new();
    // Five pages of one tool with a 5 MiB description: 25 MiB in all.
    let spec = fake_spec(
        "t/large-tools",
        &["--pages", "5", "--per-page", "1", "--desc-bytes", "5242880"],
        Duration::from_secs(30),
    );
    let message = failed_message(up.tools(&spec).await);
    assert!(
        message.contains("tools/list exceeded") && message.contains("16 MiB"),
        "{message}"
    );
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_paged_list_is_listed_whole() {
    let up = Upstreams::new();
    let spec = fake_spec(
        "t/paged",
        &["--pages", "4", "--per-page", "5"],
        Duration::from_secs(30),
    );
    let tools = up.tools(&spec).await.expect("four pages listed");
    assert_eq!(tools.len(), 20);
    assert!(tools.iter().any(|t| t.name == "p3t4"));
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_reply_fails_the_call_at_once_and_the_next_call_reconnects() {
    let up = Upstreams::new();
    // Before the fix the dropped line left the call waiting out this timeout.
    let spec = fake_spec("t/huge", &[], Duration::from_secs(60));
    let first = up.call(&spec, "ok", None).await.expect("ok works");
    let first_pid = pid_of(&up, &spec.name);
    assert!(first.to_string().contains("ok from pid"), "{first}");

    let message = failed_message(
        up.call(&spec, "huge", json!({ "mib": 17 }).as_object().cloned())
            .await,
    );
    assert!(message.contains("16 MiB"), "{message}");

    let again = up.call(&spec, "ok", None).await.expect("reconnected");
    assert!(again.to_string().contains("ok from pid"), "{again}");
    assert_ne!(pid_of(&up, &spec.name), first_pid, "a new process serves");
    assert_eq!(up.opened(&spec.name), 2);
    wait_until(
        "the oversized upstream to exit",
        Duration::from_secs(10),
        || !alive(first_pid),
    )
    .await;
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_just_under_the_line_limit_is_delivered() {
    let up = Upstreams::new();
    let spec = fake_spec("t/big", &[], Duration::from_secs(60));
    let result = up
        .call(&spec, "huge", json!({ "mib": 15 }).as_object().cloned())
        .await
        .expect("a 15 MiB reply is within the limit");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert_eq!(text.len(), 15 * 1024 * 1024);
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_error_reply_is_the_tools_own_answer() {
    let up = Upstreams::new();
    let spec = fake_spec("t/fail", &[], Duration::from_secs(30));
    match up.call(&spec, "fail", None).await {
        Err(UpstreamError::Rejected { code, message }) => {
            assert_eq!(code, -32000);
            assert_eq!(message, "the tool says: quota used up");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // The session is fine afterwards.
    up.call(&spec, "ok", None).await.expect("ok works");
    assert_eq!(up.opened(&spec.name), 1);
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_closes_the_upstreams_that_are_no_longer_live() {
    let up = Upstreams::new();
    let keep = fake_spec("t/keep", &[], Duration::from_secs(30));
    let drop = fake_spec("t/drop", &[], Duration::from_secs(30));
    up.call(&keep, "ok", None).await.expect("keep connects");
    up.call(&drop, "ok", None).await.expect("drop connects");
    let (keep_pid, drop_pid) = (pid_of(&up, &keep.name), pid_of(&up, &drop.name));

    let live: HashSet<String> = [keep.name.clone()].into();
    up.retain(&live, Instant::now()).await;
    wait_until(
        "the dropped upstream to exit",
        Duration::from_secs(10),
        || !alive(drop_pid),
    )
    .await;
    assert!(alive(keep_pid), "the live upstream was closed too");
    up.call(&keep, "ok", None).await.expect("keep still works");
    assert_eq!(up.opened(&keep.name), 1, "the live one was not reconnected");
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_upstreams_first_used_after_the_live_list_was_read() {
    let up = Upstreams::new();
    let listed_at = Instant::now();
    let newer = fake_spec("t/newer", &[], Duration::from_secs(30));
    up.call(&newer, "ok", None).await.expect("connects");
    let pid = pid_of(&up, &newer.name);
    // A live list read before this upstream existed cannot judge it.
    up.retain(&HashSet::new(), listed_at).await;
    assert!(alive(pid), "an upstream newer than the list was closed");
    up.call(&newer, "ok", None).await.expect("still works");
    assert_eq!(up.opened(&newer.name), 1);
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connect_is_answered_from_the_back_off_instead_of_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = dir.path().join("started");
    let up = Upstreams::new();
    let spec = hanging_spec("t/backoff", &started, Duration::from_secs(1));
    for _ in 0..3 {
        let err = up.tools(&spec).await.expect_err("never answers");
        assert!(matches!(err, UpstreamError::Timeout(_)), "got {err:?}");
    }
    assert_eq!(up.opened(&spec.name), 1, "connect attempts in the back-off");
    assert_eq!(starts(&started), 1, "processes started");
    up.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_of_each_asks_every_upstream_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let meet = dir.path().join("meet");
    let meet = meet.to_str().expect("UTF-8 temp path");
    let up = Upstreams::new();
    // Each of these answers only while all three are being asked together.
    let meeting: Vec<UpstreamSpec> = (0..3)
        .map(|i| {
            fake_spec(
                &format!("t/meet{i}"),
                &["--rendezvous", meet, "3"],
                Duration::from_secs(10),
            )
        })
        .collect();
    let hang_files: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("hang{i}")))
        .collect();
    let hanging: Vec<UpstreamSpec> = hang_files
        .iter()
        .enumerate()
        .map(|(i, file)| hanging_spec(&format!("t/hang{i}"), file, Duration::from_secs(2)))
        .collect();
    let specs: Vec<UpstreamSpec> = meeting.iter().chain(&hanging).cloned().collect();

    for round in 0..2 {
        let results = up.tools_of_each(&specs).await;
        assert_eq!(results.len(), specs.len());
        for (spec, result) in specs.iter().zip(&results) {
            if spec.name.starts_with("t/meet") {
                let tools = result
                    .as_ref()
                    .unwrap_or_else(|e| panic!("round {round}: {} failed: {e}", spec.name));
                assert!(tools.iter().any(|t| t.name == "ok"));
            } else {
                assert!(
                    matches!(result, Err(UpstreamError::Timeout(_))),
                    "round {round}: {}: {result:?}",
                    spec.name
                );
            }
        }
    }
    for spec in &specs {
        assert_eq!(up.opened(&spec.name), 1, "{}: connect attempts", spec.name);
    }
    for file in &hang_files {
        assert_eq!(starts(file), 1, "{}: processes started", file.display());
    }
    up.shutdown().await;
}
