//! Per-tool access, end to end against server-everything: a key limited to
//! some tools of an MCP sees only those in every `tools/list` it receives
//! (`/mcp/{id}` and `/mcp` sessions, one-shot JSON-RPC on `/mcp`,
//! 2026-07-28 stateless requests), is refused the others over REST (403
//! `unauthorized_tool`) and JSON-RPC (the same error as a tool that does
//! not exist, so nothing leaks), and an edit takes effect on the next
//! request with the server running. `keys access` shows what it can call.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mcp_session::{Client, call, connect, connect_to};
use support::{Env, Server};

fn names(tools: &[rmcp::model::Tool]) -> Vec<String> {
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

async fn rest(server: &Server, key: &str, tool: &str) -> support::Reply {
    let arguments = match tool {
        "get-sum" => json!({"a": 2, "b": 3}),
        _ => json!({"message": "hi"}),
    };
    server
        .call(
            Some(key),
            &json!({"mcp_id": "everything", "tool": tool, "arguments": arguments}),
        )
        .await
}

/// A JSON-RPC request without a session on `path`, as curl would send it;
/// the answer, whether it came as JSON or as an SSE event.
async fn one_shot(server: &Server, path: &str, key: &str, body: Value) -> Value {
    let response = server
        .client
        .post(format!("{}{path}", server.base))
        .header("Authorization", format!("ApiKey {key}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    answer_in(&text).unwrap_or_else(|| panic!("{path}: {status} {text}"))
}

/// The JSON-RPC answer in a JSON body or an SSE stream.
fn answer_in(text: &str) -> Option<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l.strip_prefix("data:").unwrap_or(l).trim()).ok())
        .find(|m: &Value| m.get("result").is_some() || m.get("error").is_some())
}

/// The JSON-RPC error of a refused call, without its request id.
fn rpc_error(answer: &Value) -> Value {
    assert!(
        answer.get("result").is_none(),
        "expected an error: {answer:#}"
    );
    answer["error"].clone()
}

/// Calls `granted_elsewhere` (a tool the key may not use) and
/// `missing` (one the upstream lacks) and requires the same error for both,
/// names aside: a refusal must not tell a hidden tool from a missing one.
async fn refused_like_missing(client: &Client, granted_elsewhere: &str, missing: &str) {
    let forbidden = client
        .call_tool(call(granted_elsewhere, json!({"a": 1, "b": 2})))
        .await
        .expect_err("not granted");
    let unknown = client
        .call_tool(call(missing, json!({})))
        .await
        .expect_err("no such tool");
    assert_eq!(
        forbidden.to_string().replace(granted_elsewhere, "T"),
        unknown.to_string().replace(missing, "T"),
        "a refused tool looks exactly like a missing one"
    );
}

#[tokio::test]
async fn a_key_limited_to_one_tool_sees_only_it_and_is_refused_the_others_everywhere() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (limited_id, limited) = env.create_key("limited", &["--mcp", "everything:echo"]);
    let (_, full) = env.create_key("full", &["--mcp", "everything"]);
    let server = Server::start(&env).await;

    // REST: the granted tool works, another is 403 unauthorized_tool, and
    // so is one the upstream does not have (nothing tells them apart).
    let ok = rest(&server, &limited, "echo").await;
    assert_eq!(ok.status, StatusCode::OK, "{:#}", ok.body);
    for tool in ["get-sum", "no-such-tool"] {
        let refused = rest(&server, &limited, tool).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{tool}: {:#}",
            refused.body
        );
        assert_eq!(
            refused.code(),
            Some("unauthorized_tool"),
            "{:#}",
            refused.body
        );
        assert_eq!(refused.body["error"]["message"], "Unauthorized tool");
    }
    let other = rest(&server, &full, "get-sum").await;
    assert_eq!(other.status, StatusCode::OK, "{:#}", other.body);

    // An MCP session on the upstream's own endpoint lists one tool.
    let (client, _) = connect(&server, "everything", &limited, "limited").await;
    assert_eq!(names(&client.list_all_tools().await.unwrap()), ["echo"]);
    let echoed = client
        .call_tool(call("echo", json!({"message": "session"})))
        .await
        .unwrap();
    assert!(support::mcp_session::text_of(&echoed).contains("Echo: session"));
    refused_like_missing(&client, "get-sum", "no-such-tool").await;
    client.cancel().await.unwrap();

    // The full key on the same MCP sees all of it.
    let (client, _) = connect(&server, "everything", &full, "full").await;
    let all = names(&client.list_all_tools().await.unwrap());
    assert!(
        all.len() > 5 && all.contains(&"get-sum".to_owned()),
        "{all:?}"
    );
    client.cancel().await.unwrap();

    // The aggregate: one tool, under its prefixed name.
    let (client, _) = connect_to(&server, "/mcp", &limited, "aggregate").await;
    assert_eq!(
        names(&client.list_all_tools().await.unwrap()),
        ["everything__echo"]
    );
    refused_like_missing(&client, "everything__get-sum", "everything__no-such-tool").await;
    client.cancel().await.unwrap();

    // One-shot JSON-RPC (no session) on `POST /mcp`.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let answer = one_shot(&server, "/mcp", &limited, list.clone()).await;
    let listed: Vec<&str> = answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer:#}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["everything__echo"]);
    let refusal = |name: &str| {
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": name, "arguments": {"a": 1, "b": 2}}})
    };
    let forbidden =
        rpc_error(&one_shot(&server, "/mcp", &limited, refusal("everything__get-sum")).await);
    let unknown =
        rpc_error(&one_shot(&server, "/mcp", &limited, refusal("everything__nope")).await);
    assert_eq!(
        forbidden["code"], unknown["code"],
        "{forbidden} / {unknown}"
    );

    // A 2026-07-28 stateless request lists the same one tool.
    let answer = server
        .client
        .post(format!("{}/mcp/everything", server.base))
        .header("Authorization", format!("ApiKey {limited}"))
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/list")
        .json(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "wire", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .send()
        .await
        .unwrap();
    let text = answer.text().await.unwrap();
    let body = answer_in(&text).unwrap_or_else(|| panic!("no answer in {text}"));
    let listed: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["echo"]);

    // An edit takes effect on the next request, the server still running,
    // in a session opened before it too.
    let (live, _) = connect(&server, "everything", &limited, "live").await;
    assert_eq!(names(&live.list_all_tools().await.unwrap()), ["echo"]);
    env.cli_ok(&[
        "keys",
        "edit",
        &limited_id,
        "--mcp",
        "everything:echo,get-sum",
    ]);
    assert_eq!(
        names(&live.list_all_tools().await.unwrap()),
        ["echo", "get-sum"]
    );
    let summed = live
        .call_tool(call("get-sum", json!({"a": 2, "b": 3})))
        .await
        .unwrap();
    assert!(support::mcp_session::text_of(&summed).contains('5'));
    live.cancel().await.unwrap();
    let now_ok = rest(&server, &limited, "get-sum").await;
    assert_eq!(now_ok.status, StatusCode::OK, "{:#}", now_ok.body);
    let answer = one_shot(&server, "/mcp", &limited, list.clone()).await;
    assert_eq!(
        answer["result"]["tools"].as_array().unwrap().len(),
        2,
        "{answer:#}"
    );
    assert!(server.terminate().success());

    // The refusals are in the key's usage with their own outcome.
    let store = plexmcp::store::Store::open(&env.db).unwrap();
    let (record, _) = store.key_for_auth(&limited_id).unwrap().unwrap();
    let usage = store
        .key_usage(record.row_id, chrono::Utc::now(), 50)
        .unwrap();
    let refused = usage
        .recent
        .iter()
        .filter(|r| r.outcome == "unauthorized_tool")
        .count();
    assert!(refused >= 6, "{refused} refusals recorded");
}

#[test]
fn keys_access_shows_what_a_key_can_call_now_and_after_an_edit() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    env.cli_ok(&[
        "mcps",
        "add",
        "broken",
        "--stdio",
        "/nonexistent/mcp-server",
    ]);
    let (id, _) = env.create_key(
        "k",
        &[
            "--mcp",
            "everything:echo,get-sum,retired",
            "--mcp",
            "broken",
        ],
    );

    let shown = env.cli_ok(&["keys", "access", &id, "--json"]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"], "active");
    assert_eq!(
        shown["tool_access"],
        json!({"broken": "all", "everything": ["echo", "get-sum", "retired"]})
    );
    let mcps = shown["mcps"].as_array().unwrap();
    let everything = mcps.iter().find(|m| m["mcp"] == "everything").unwrap();
    assert_eq!(everything["reachable"], true);
    assert_eq!(everything["tools"], json!(["echo", "get-sum"]));
    assert_eq!(everything["missing"], json!(["retired"]));
    assert!(everything["offered"].as_u64().unwrap() > 5);
    let broken = mcps.iter().find(|m| m["mcp"] == "broken").unwrap();
    assert_eq!(broken["reachable"], false);
    let why = broken["error"].as_str().unwrap();
    assert!(
        !why.contains("/nonexistent"),
        "no command in the text: {why}"
    );

    let text = env.cli_ok(&["keys", "access", &id]);
    assert!(text.contains("can call now:"), "{text}");
    assert!(
        text.contains("2 of ") && text.contains("echo, get-sum"),
        "{text}"
    );
    assert!(
        text.contains("granted but not listed by the upstream now: retired"),
        "{text}"
    );

    // What an edit would change, before it is saved.
    let text = env.cli_ok(&["keys", "access", &id, "--mcp", "everything:echo,get-env"]);
    assert!(
        text.contains("With access everything:echo,get-env (not saved):"),
        "{text}"
    );
    assert!(text.contains("gains: everything:get-env"), "{text}");
    assert!(text.contains("loses: everything:get-sum"), "{text}");
    let preview: Value = serde_json::from_str(&env.cli_ok(&[
        "keys",
        "access",
        &id,
        "--mcp",
        "everything",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        preview["after_edit"]["tool_access"],
        json!({"everything": "all"})
    );
    assert_eq!(
        preview["tool_access"], shown["tool_access"],
        "nothing was saved"
    );
    assert_eq!(env.show(&id)["tool_access"], shown["tool_access"]);
    let err = env.fail(1, ["keys", "access", &id, "--mcp", "nowhere"]);
    assert!(err.contains("unknown MCP 'nowhere'"), "{err}");

    // After a revoke it can call nothing, and says so.
    env.cli_ok(&["keys", "revoke", &id, "--yes"]);
    let text = env.cli_ok(&["keys", "access", &id]);
    assert!(
        text.contains("is revoked: it can call nothing now"),
        "{text}"
    );

    // An unknown key is one line, exit 1.
    env.fail(1, ["keys", "access", "nope"]);
}
