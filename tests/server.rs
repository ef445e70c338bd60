//! End-to-end tests of `plexmcp serve`: the real binary on a real socket,
//! real upstream MCP servers (the reference `server-everything`, over stdio
//! and Streamable HTTP), and the CLI changing the database from another
//! process while the server runs.
//!
//! Tests that need `server-everything` install it on first use
//! (`support::install`) and fail, never skip, when that is impossible.

mod support;

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::json;
use support::{Env, HttpEverything, Server, hanging_mcp};

#[tokio::test]
async fn stdio_upstream_answers_tools_and_usage_counts_keyed_requests_only() {
    let env = Env::new();
    env.add_everything_stdio("ev");
    let (id, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;

    let echo = server.echo(&key, "ev", "hi").await;
    assert_eq!(echo.status, StatusCode::OK, "{:#}", echo.body);
    assert_eq!(echo.text(), "Echo: hi");

    let sum = server
        .call(
            Some(&key),
            &json!({"mcp_id": "ev", "tool": "get-sum", "arguments": {"a": 2, "b": 40}}),
        )
        .await;
    assert_eq!(sum.status, StatusCode::OK, "{:#}", sum.body);
    assert!(sum.text().contains("42"), "{:#}", sum.body);

    let unknown = server
        .call(Some(&key), &json!({"mcp_id": "ev", "tool": "no-such-tool"}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{:#}", unknown.body);
    assert_eq!(unknown.code(), Some("unknown_tool"));

    let forbidden = server
        .call(Some(&key), &json!({"mcp_id": "elsewhere", "tool": "echo"}))
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.code(), Some("unauthorized_mcp"));

    let bad = server.call(Some(&key), &json!({"mcp_id": "ev"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), Some("invalid_request"));

    // Not attributable to any key: never a usage event.
    server
        .call(None, &json!({"mcp_id": "ev", "tool": "echo"}))
        .await
        .assert_invalid_key("missing");
    server
        .call(Some("not-a-key"), &json!({"mcp_id": "ev", "tool": "echo"}))
        .await
        .assert_invalid_key("malformed");

    let logs = server.logs();
    let status = server.terminate();
    assert!(status.success(), "serve exited with {status}; log:\n{logs}");
    assert!(!logs.contains(&key), "a log line contains the full key");

    // 200, 200, 404, 403, 400: five requests made with the key, all counted.
    let listed = env.key_json(&id);
    assert_eq!(listed["request_count"], 5, "{listed:#}");
    assert!(listed["last_used_at"].is_string(), "{listed:#}");
    assert_eq!(env.usage_event_count(), 5);
}

#[tokio::test]
async fn http_upstream_answers_echo() {
    let upstream = HttpEverything::start();
    let env = Env::new();
    env.cli_ok(&["mcps", "add", "ev-http", "--url", &upstream.url()]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;

    let echo = server.echo(&key, "ev-http", "hi").await;
    assert_eq!(echo.status, StatusCode::OK, "{:#}", echo.body);
    assert_eq!(echo.text(), "Echo: hi");
    // The session is kept and reused.
    let again = server.echo(&key, "ev-http", "again").await;
    assert_eq!(again.status, StatusCode::OK, "{:#}", again.body);
    assert_eq!(again.text(), "Echo: again");
}

#[tokio::test]
async fn failing_upstreams_answer_502() {
    let env = Env::new();
    env.cli_ok(&["mcps", "add", "dies", "--stdio", "sh -c 'exit 1'"]);
    let closed = format!("http://127.0.0.1:{}/mcp", support::free_port());
    env.cli_ok(&["mcps", "add", "closed", "--url", &closed]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;

    for mcp in ["dies", "closed"] {
        let reply = server.echo(&key, mcp, "hi").await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_GATEWAY,
            "{mcp}: {:#}",
            reply.body
        );
        assert_eq!(reply.code(), Some("upstream_error"), "{mcp}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Still failing (and still answering) on a second attempt.
    let reply = server.echo(&key, "dies", "hi").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{:#}", reply.body);
}

#[tokio::test]
async fn upstream_that_never_answers_times_out_with_504() {
    let env = Env::new();
    let command = hanging_mcp(env.dir.path());
    env.cli_ok(&[
        "mcps",
        "add",
        "hangs",
        "--stdio",
        &command,
        "--timeout",
        "1",
    ]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;

    // Connect first (the 1 s limit also bounds the handshake, which a
    // loaded machine may miss, and a missed one is not retried for a few
    // seconds): an unknown tool answers 404 only once the tool list has
    // been fetched.
    let mut connected = false;
    for _ in 0..60 {
        let reply = server
            .call(Some(&key), &json!({"mcp_id": "hangs", "tool": "missing"}))
            .await;
        if reply.status == StatusCode::NOT_FOUND {
            connected = true;
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::GATEWAY_TIMEOUT,
            "{:#}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        connected,
        "never connected to the hanging MCP; log:\n{}",
        server.logs()
    );

    let reply = server
        .call(Some(&key), &json!({"mcp_id": "hangs", "tool": "hang"}))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{:#}",
        reply.body
    );
    assert_eq!(reply.code(), Some("upstream_timeout"));
}

#[tokio::test]
async fn key_expiring_while_the_server_runs_is_refused_from_then_on() {
    let env = Env::new();
    env.add_everything_stdio("ev");
    let (_, warm) = env.create_key("warm-up", &[]);
    let server = Server::start(&env).await;
    // Start the upstream first so the call below is quick.
    assert_eq!(server.echo(&warm, "ev", "hi").await.status, StatusCode::OK);

    let expires_at = chrono::DateTime::from_timestamp(Utc::now().timestamp() + 8, 0).unwrap();
    let spec = expires_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let (_, key) = env.create_key("short-lived", &["--expires", &spec]);

    let before = server.echo(&key, "ev", "hi").await;
    assert!(
        Utc::now() < expires_at,
        "inconclusive: the machine took more than 8 s to answer one call"
    );
    assert_eq!(before.status, StatusCode::OK, "{:#}", before.body);

    // Expiry needs no event in the database: the server notices by itself.
    let wait = (expires_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(1500)).await;
    server
        .echo(&key, "ev", "hi")
        .await
        .assert_invalid_key("expired");
    assert_eq!(server.echo(&warm, "ev", "hi").await.status, StatusCode::OK);
}

#[tokio::test]
async fn revoke_from_another_process_is_honoured_by_the_next_request() {
    let env = Env::new();
    env.add_everything_stdio("ev");
    let (id, key) = env.create_key("doomed", &[]);
    let (_, other) = env.create_key("other", &[]);
    let server = Server::start(&env).await;

    // Verified and cached in the server before the revoke.
    for _ in 0..3 {
        let reply = server.echo(&key, "ev", "hi").await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    }

    env.cli_ok(&["keys", "revoke", &id, "--yes"]);
    server
        .echo(&key, "ev", "hi")
        .await
        .assert_invalid_key("revoked");
    assert_eq!(server.echo(&other, "ev", "hi").await.status, StatusCode::OK);
}

#[tokio::test]
async fn forged_keys_are_refused_as_malformed_without_a_trace() {
    const FORGED: usize = 1000;
    /// Failed authentications one address may make per minute.
    const ALLOWED_FAILURES: usize = 20;
    let env = Env::new();
    let (id, key) = env.create_key("real", &[]);
    let server = Server::start(&env).await;
    let body = json!({"mcp_id": "ev", "tool": "echo"});

    // The real key, verified once (no MCP "ev" exists, so 403 after auth).
    let first = server.call(Some(&key), &body).await;
    assert_eq!(first.status, StatusCode::FORBIDDEN, "{:#}", first.body);

    // Valid format, wrong integrity tag: one character of the secret or
    // of the tag changed, as a mistyped or guessed key would be.
    let forged: Vec<String> = (0..FORGED)
        .map(|i| {
            let mut chars: Vec<char> = key.chars().collect();
            let at = 13 + i % (chars.len() - 13);
            chars[at] = if chars[at] == 'a' { 'b' } else { 'a' };
            chars.into_iter().collect()
        })
        .collect();
    let started = Instant::now();
    for (i, forged) in forged.iter().enumerate() {
        let reply = server.call(Some(forged), &body).await;
        if i < ALLOWED_FAILURES {
            reply.assert_invalid_key("malformed");
        } else {
            // Then the address is refused before any key work…
            assert_eq!(
                reply.status,
                StatusCode::TOO_MANY_REQUESTS,
                "request {i}: {:#}",
                reply.body
            );
            assert_eq!(reply.body["error"]["code"], "rate_limited");
            let retry: u64 = reply.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
        }
    }
    let mean = started.elapsed() / FORGED as u32;
    eprintln!(
        "forged key: mean round trip {mean:?} over {FORGED} sequential requests (information only)"
    );
    // …but a key already verified from that address still gets through.
    let again = server.call(Some(&key), &body).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{:#}", again.body);

    let status = server.terminate();
    assert!(status.success(), "serve exited with {status}");
    // Only the real key's two requests were recorded.
    assert_eq!(env.usage_event_count(), 2, "forged keys left usage events");
    assert_eq!(env.key_json(&id)["request_count"], 2);
}

#[tokio::test]
async fn concurrent_calls_are_all_answered_and_counted_after_sigterm() {
    const CALLS: usize = 100;
    let env = Env::new();
    env.add_everything_stdio("ev");
    let (id, key) = env.create_key("busy", &[]);
    let server = Server::start(&env).await;
    let warm = server.echo(&key, "ev", "warm").await;
    assert_eq!(warm.status, StatusCode::OK, "{:#}", warm.body);

    let server = std::sync::Arc::new(server);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let server = server.clone();
        let key = key.clone();
        calls.spawn(async move { (i, server.echo(&key, "ev", &format!("call {i}")).await) });
    }
    let mut answered = 0;
    while let Some(done) = calls.join_next().await {
        let (i, reply) = done.expect("call task");
        assert_eq!(reply.status, StatusCode::OK, "call {i}: {:#}", reply.body);
        assert_eq!(reply.text(), format!("Echo: call {i}"));
        answered += 1;
    }
    assert_eq!(answered, CALLS);

    let server = std::sync::Arc::into_inner(server).expect("no call holds the server");
    let logs = server.logs();
    let status = server.terminate();
    assert!(status.success(), "serve exited with {status}; log:\n{logs}");

    let listed = env.key_json(&id);
    assert_eq!(listed["request_count"], CALLS + 1, "{listed:#}");
    assert!(listed["last_used_at"].is_string(), "{listed:#}");
    assert_eq!(env.usage_event_count(), (CALLS + 1) as i64);
}

/// What a stdio upstream may see of the gateway's environment (README,
/// "Security model"), besides its own `--env` and `--inherit-env` names.
const STDIO_ALLOWLIST: [&str; 9] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

#[tokio::test]
async fn stdio_upstreams_see_only_the_allowlist_their_env_and_inherited_names() {
    let env = Env::new();
    let everything = support::everything_stdio_command();
    env.cli_ok(&[
        "mcps",
        "add",
        "ev",
        "--stdio",
        &everything,
        "--env",
        "OWN_SETTING=own-value",
        "--inherit-env",
        "SHARED_SETTING",
    ]);
    let (_, key) = env.create_key("contractor", &["--mcp", "ev"]);
    // As the README's quick start leaves it: the operator's key exported.
    let server = Server::start_with_vars(
        &env,
        &[
            ("PLEXMCP_API_KEY", &key),
            ("PLEXMCP_LISTEN", "127.0.0.1:1"),
            ("SECRET_X", "operator-secret-4e1d"),
            ("SHARED_SETTING", "shared-value"),
            ("LANG", "C.UTF-8"),
        ],
    )
    .await;

    let reply = server
        .call(
            Some(&key),
            &json!({"mcp_id": "ev", "tool": "get-env", "arguments": {}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    let seen: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(reply.text()).expect("get-env answers a JSON object");

    assert!(!reply.text().contains(&key), "the operator's key leaked");
    assert!(
        !reply.text().contains("operator-secret-4e1d"),
        "SECRET_X leaked"
    );
    for name in seen.keys() {
        assert!(
            STDIO_ALLOWLIST.contains(&name.as_str())
                || ["OWN_SETTING", "SHARED_SETTING"].contains(&name.as_str()),
            "{name} reached the upstream: {:#?}",
            seen.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(seen.get("OWN_SETTING"), Some(&json!("own-value")));
    assert_eq!(seen.get("SHARED_SETTING"), Some(&json!("shared-value")));
    assert_eq!(seen.get("LANG"), Some(&json!("C.UTF-8")), "allowlisted");
    assert!(seen.contains_key("PATH"), "PATH is passed on");
}

#[tokio::test]
async fn http_upstream_url_credentials_stay_out_of_logs_and_answers() {
    let port = support::free_port();
    let env = Env::new();
    let url = format!("http://user:hunter2@127.0.0.1:{port}/mcp?token=tok-9f3e1d");
    env.cli_ok(&["mcps", "add", "closed", "--url", &url]);
    let (_, key) = env.create_key("app", &[]);
    let server = Server::start(&env).await;

    let reply = server.echo(&key, "closed", "hi").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{:#}", reply.body);
    let logs = server.logs();
    for secret in ["hunter2", "tok-9f3e1d"] {
        assert!(!reply.body.to_string().contains(secret), "{:#}", reply.body);
        assert!(!logs.contains(secret), "'{secret}' logged:\n{logs}");
    }
}
