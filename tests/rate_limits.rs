//! Per-key rate limits, end to end: `keys create|edit --rate-limit`, the
//! org's default (`org set-rate-limit`), and a running `plexmcp serve`
//! refusing a key over its limit with 429 over REST, one-shot JSON-RPC and
//! an MCP session on `/mcp/{id}`, while other keys go on, and picking up
//! every change on its next request.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mcp_session::Target;
use support::{Env, Reply, Server, expect_fail, expect_usage, run_cmd};

/// A REST call to an MCP no key may use: 403 until the key is limited,
/// then 429. The rate limit comes first, so no upstream is needed.
async fn knock(server: &Server, key: &str) -> Reply {
    server
        .call(
            Some(key),
            &json!({"mcp_id": "nowhere", "tool": "echo", "arguments": {}}),
        )
        .await
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After on {:?}: {:#}", reply.status, reply.body))
}

fn header_secs(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds")
}

fn assert_limited(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:#}",
        reply.body
    );
    assert_eq!(reply.code(), Some("rate_limited"), "{:#}", reply.body);
    assert_eq!(
        reply.body["error"]["retry_after"].as_u64(),
        Some(retry_after(reply)),
        "the body says what the header says"
    );
}

fn assert_not_limited(reply: &Reply) {
    assert_ne!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:#}",
        reply.body
    );
}

#[tokio::test]
async fn a_limited_key_is_refused_at_its_limit_and_recovers_while_another_key_is_untouched() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (limited_id, limited) = env.create_key("limited", &["--rate-limit", "1/s", "--burst", "3"]);
    let (_, other) = env.create_key("other", &[]);
    let server = Server::start(&env).await;
    // Start the upstream first, so the limited key's calls follow each
    // other within milliseconds (its bucket refills one a second).
    let warm = server.echo(&other, "everything", "warm").await;
    assert_eq!(warm.status, StatusCode::OK, "{:#}", warm.body);

    for n in 0..3 {
        let reply = server
            .echo(&limited, "everything", &format!("hi {n}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    }
    let refused = server.echo(&limited, "everything", "one too many").await;
    assert_limited(&refused);
    assert_eq!(
        retry_after(&refused),
        1,
        "under a second to the next token, rounded up"
    );
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1/s, burst 3")),
        "{:#}",
        refused.body
    );
    for _ in 0..10 {
        let reply = server.echo(&other, "everything", "unaffected").await;
        assert_eq!(reply.status, StatusCode::OK, "another key is untouched");
    }

    // The window passes: the key works again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = server.echo(&limited, "everything", "back").await;
    assert_eq!(again.status, StatusCode::OK, "{:#}", again.body);
    assert_eq!(again.text(), "Echo: back");
    // A graceful stop writes every usage event.
    assert!(server.terminate().success());

    // The refusal is a usage event like any other, with its status.
    let store = plexmcp::store::Store::open(&env.db).unwrap();
    let (record, _) = store.key_for_auth(&limited_id).unwrap().unwrap();
    let usage = store
        .key_usage(record.row_id, chrono::Utc::now(), 20)
        .unwrap();
    let outcomes: Vec<(&str, u16)> = usage
        .recent
        .iter()
        .rev()
        .map(|r| (r.outcome.as_str(), r.http_status))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("ok", 200),
            ("ok", 200),
            ("ok", 200),
            ("rate_limited", 429),
            ("ok", 200)
        ]
    );
}

#[tokio::test]
async fn json_rpc_refusals_carry_the_code_and_retry_after() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("session", &["--rate-limit", "1/min", "--burst", "3"]);
    let server = Server::start(&env).await;
    let rpc = |body: Value, session: Option<String>| {
        let mut request = server
            .http()
            .post(format!("{}/mcp/everything", server.base()))
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {key}"))
            .json(&body);
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-11-25");
        }
        request.send()
    };

    // 1: initialize. Notifications do not count.
    let opened = rpc(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(opened.status(), StatusCode::OK);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = opened.text().await;
    for _ in 0..3 {
        let ack = rpc(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            Some(session.clone()),
        )
        .await
        .unwrap();
        assert_eq!(ack.status(), StatusCode::ACCEPTED);
    }
    // 2 and 3: plain calls, which take the session's direct path.
    let echo = |id: u32| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "hi"}}})
    };
    for id in [2, 3] {
        let answer = rpc(echo(id), Some(session.clone())).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["result"]["content"][0]["text"], "Echo: hi", "{body:#}");
    }
    // 4: over the limit, on the same direct path.
    let refused = rpc(echo(4), Some(session.clone())).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let waits = header_secs(&refused);
    // A token a minute, counted from the first request (the initialize).
    assert!((55..=60).contains(&waits), "Retry-After {waits}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["data"]["code"], "rate_limited", "{body:#}");
    assert_eq!(body["error"]["data"]["retry_after"], waits, "{body:#}");
    assert!(body["error"]["message"].as_str().unwrap().contains("1/min"));

    // One-shot JSON-RPC on POST /mcp counts against the same bucket and
    // answers for the request's own id.
    let one_shot = server
        .http()
        .post(format!("{}/mcp", server.base()))
        .header("x-api-key", &key)
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(one_shot.status(), StatusCode::TOO_MANY_REQUESTS);
    let waits = header_secs(&one_shot);
    assert!((55..=60).contains(&waits), "Retry-After {waits}");
    let body: Value = one_shot.json().await.unwrap();
    assert_eq!(body["id"], 7, "{body:#}");
    assert_eq!(body["error"]["data"]["code"], "rate_limited");
    assert_eq!(body["error"]["data"]["retry_after"], waits);
}

#[tokio::test]
async fn an_edit_takes_effect_on_the_next_request_without_restarting_serve() {
    let env = Env::new();
    let (id, key) = env.create_key("edited", &["--rate-limit", "1/h", "--burst", "1"]);
    let server = Server::start(&env).await;
    assert_not_limited(&knock(&server, &key).await);
    let refused = knock(&server, &key).await;
    assert_limited(&refused);
    assert!((3599..=3600).contains(&retry_after(&refused)));

    // Raised from another process: the very next request passes.
    env.cli_ok(&[
        "keys",
        "edit",
        &id,
        "--rate-limit",
        "100/min",
        "--burst",
        "5",
    ]);
    for _ in 0..5 {
        assert_not_limited(&knock(&server, &key).await);
    }
    assert_limited(&knock(&server, &key).await);

    // No limit of its own (and no org default): never refused.
    env.cli_ok(&["keys", "edit", &id, "--rate-limit", "none"]);
    for _ in 0..20 {
        assert_not_limited(&knock(&server, &key).await);
    }
    let shown = env.show(&id);
    assert_eq!(shown["rate_limit"], Value::Null);
    assert_eq!(shown["effective_rate_limit"], Value::Null);
}

#[tokio::test]
async fn the_org_default_applies_to_keys_without_their_own() {
    let env = Env::new();
    let (plain_id, plain) = env.create_key("plain", &[]);
    let (_, own) = env.create_key("own", &["--rate-limit", "100/min"]);
    let server = Server::start(&env).await;
    for _ in 0..5 {
        assert_not_limited(&knock(&server, &plain).await);
    }

    let said = env.cli_ok(&["org", "set-rate-limit", "2/min", "--burst", "2"]);
    assert!(said.contains("2/min, burst 2 (was none)"), "{said}");
    assert_not_limited(&knock(&server, &plain).await);
    assert_not_limited(&knock(&server, &plain).await);
    let refused = knock(&server, &plain).await;
    assert_limited(&refused);
    assert!(
        (29..=30).contains(&retry_after(&refused)),
        "a token every 30 s"
    );
    for _ in 0..10 {
        assert_not_limited(&knock(&server, &own).await);
    }

    let shown = env.show(&plain_id);
    assert_eq!(shown["rate_limit"], Value::Null);
    assert_eq!(
        shown["effective_rate_limit"],
        json!({"requests": 2, "per": "min", "burst": 2, "from": "org"})
    );
    let org = env.json(["org", "show", "--json"]);
    assert_eq!(
        org["rate_limit"],
        json!({"requests": 2, "per": "min", "burst": 2})
    );

    env.cli_ok(&["org", "set-rate-limit", "none"]);
    assert_not_limited(&knock(&server, &plain).await);
}

#[test]
fn rate_limits_are_stored_shown_and_audited() {
    let env = Env::new();
    let created = env.create_key_json("api", &["--rate-limit", "120/min", "--burst", "20"]);
    let limit = json!({"requests": 120, "per": "min", "burst": 20});
    assert_eq!(created["rate_limit"], limit);
    let id = created["id"].as_str().unwrap().to_owned();
    let mut effective = limit.clone();
    effective["from"] = json!("key");
    assert_eq!(env.key_json(&id)["effective_rate_limit"], effective);

    // The burst defaults to the rate's count; other units read too.
    let per_second = env.create_key_json("fast", &["--rate-limit", "10/s"]);
    assert_eq!(
        per_second["rate_limit"],
        json!({"requests": 10, "per": "s", "burst": 10})
    );
    let hourly = env.create_key_json("slow", &["--rate-limit", "5000/hour"]);
    assert_eq!(hourly["rate_limit"]["per"], "h");

    env.cli_ok(&["keys", "edit", &id, "--rate-limit", "none"]);
    assert_eq!(env.key_json(&id)["rate_limit"], Value::Null);
    let shown = env.cli_ok(&["keys", "show", &id]);
    assert!(shown.contains("Rate limit   none"), "{shown}");
    env.cli_ok(&["org", "set-rate-limit", "600/min", "--burst", "100"]);
    let shown = env.cli_ok(&["keys", "show", &id]);
    assert!(
        shown.contains("Rate limit   600/min, burst 100 (org default)"),
        "{shown}"
    );

    let audit = env.cli_ok(&["audit", "list", "--json"]);
    for change in [
        "access: all; rate limit: 120/min, burst 20",
        "rate limit: 120/min, burst 20 -> none",
        "default rate limit: none -> 600/min, burst 100",
    ] {
        assert!(audit.contains(change), "audit lacks {change:?}:\n{audit}");
    }
    assert!(env.cli_ok(&["audit", "verify"]).starts_with("OK"));
}

#[test]
fn rate_limits_that_do_not_read_are_one_line_usage_errors() {
    let env = Env::new();
    let (id, _) = env.create_key("k", &[]);
    let cases: [(&[&str], &str); 9] = [
        (&["--rate-limit", "120"], "cannot read rate limit '120'"),
        (
            &["--rate-limit", "120/day"],
            "cannot read rate limit '120/day'",
        ),
        (
            &["--rate-limit", "lots/min"],
            "cannot read rate limit 'lots/min'",
        ),
        (&["--rate-limit", "0/min"], "rate limit must be at least 1"),
        (
            &["--rate-limit", "2000000/s"],
            "over the maximum of 1000000",
        ),
        (
            &["--rate-limit", "10/min", "--burst", "0"],
            "burst must be at least 1",
        ),
        (
            &["--rate-limit", "10/min", "--burst", "x"],
            "cannot read burst 'x'",
        ),
        (
            &["--rate-limit", "none", "--burst", "5"],
            "--burst needs a rate limit",
        ),
        (&["--burst", "5"], "--burst needs --rate-limit"),
    ];
    for (args, says) in cases {
        for mut command in [
            vec!["keys", "create", "--name", "bad"],
            vec!["keys", "edit", id.as_str()],
        ] {
            command.extend_from_slice(args);
            let error = expect_fail(run_cmd(env.cmd().args(&command)), 2);
            assert!(error.contains(says), "{command:?}: {error}");
        }
    }
    let error = expect_fail(
        run_cmd(env.cmd().args(["org", "set-rate-limit", "fast"])),
        2,
    );
    assert!(error.contains("cannot read rate limit 'fast'"), "{error}");
    expect_usage(run_cmd(env.cmd().args(["org", "set-rate-limit"])));
    // Nothing was made or changed by any of them.
    assert_eq!(
        env.json(["keys", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(env.key_json(&id)["rate_limit"], Value::Null);
}
