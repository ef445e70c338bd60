//! `/mcp` as an MCP server: a client built on the official Rust SDK (the
//! same rmcp client plexmcp uses for its own upstreams) connects over
//! Streamable HTTP with an API key, lists the tools of the MCPs that key
//! may use (`<mcp_id>__<tool>`), and calls one through to the reference
//! server.

mod support;

use std::time::Duration;

use plexmcp::upstream::{Transport, UpstreamError, UpstreamSpec, Upstreams};
use serde_json::json;
use support::{Env, Server};

fn spec(server: &Server, key: &str) -> UpstreamSpec {
    UpstreamSpec {
        name: format!("plexmcp-as-upstream-{key}", key = &key[..13]),
        transport: Transport::Http {
            url: format!("{}/mcp", server.base),
            headers: vec![("Authorization".into(), format!("ApiKey {key}"))],
        },
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn an_mcp_client_sees_and_calls_the_tools_its_key_allows() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    env.cli_ok(&["mcps", "add", "other", "--stdio", "sh -c 'exit 1'"]);
    let (_, all_key) = env.create_key("all", &[]);
    let (_, limited_key) = env.create_key("limited", &["--mcp", "other"]);
    let server = Server::start(&env).await;
    let client = Upstreams::new();

    let tools = client
        .tools(&spec(&server, &all_key))
        .await
        .expect("tools/list through plexmcp");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"everything__echo"), "{names:?}");
    assert!(names.contains(&"everything__get-sum"), "{names:?}");
    // The broken MCP is left out of the list instead of failing it.
    assert!(!names.iter().any(|n| n.starts_with("other__")), "{names:?}");

    let result = client
        .call(
            &spec(&server, &all_key),
            "everything__echo",
            json!({"message": "hi"}).as_object().cloned(),
        )
        .await
        .expect("tools/call through plexmcp");
    assert_eq!(result["content"][0]["text"], "Echo: hi", "{result:#}");

    // A key limited to another MCP sees none of `everything`'s tools.
    let limited = client
        .tools(&spec(&server, &limited_key))
        .await
        .expect("tools/list");
    assert!(
        limited.is_empty(),
        "{:?}",
        limited.iter().map(|t| &t.name).collect::<Vec<_>>()
    );

    // A bad key is refused at the HTTP layer, before any MCP exchange.
    let mut forged = spec(&server, &all_key);
    forged.name.push_str("-forged");
    forged.transport = Transport::Http {
        url: format!("{}/mcp", server.base),
        headers: vec![("Authorization".into(), "ApiKey pmcp_not-a-key".into())],
    };
    let refused = client.tools(&forged).await;
    assert!(
        matches!(refused, Err(UpstreamError::Failed(_))),
        "{refused:?}"
    );
    client.shutdown().await;

    let status = server.terminate();
    assert!(status.success(), "serve exited with {status}");
    // tools/list, tools/call and the handshake are counted against the key.
    let used = env.key_json(&all_key[5..13])["request_count"]
        .as_i64()
        .unwrap_or(0);
    assert!(used >= 3, "request_count {used}");
}

#[tokio::test]
async fn json_rpc_errors_and_notifications_follow_the_protocol() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("rpc", &[]);
    let server = Server::start(&env).await;
    let post = |body: serde_json::Value| {
        server
            .client
            .post(format!("{}/mcp", server.base))
            .header("Authorization", format!("ApiKey {key}"))
            .json(&body)
            .send()
    };

    let init = post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
    .await
    .unwrap();
    assert_eq!(init.status(), 200);
    let init: serde_json::Value = init.json().await.unwrap();
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "plexmcp");

    let note = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    assert_eq!(note.status(), 202);

    let unknown = post(json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}))
        .await
        .unwrap();
    let unknown: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(unknown["error"]["code"], -32601, "{unknown:#}");

    let denied = post(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "nope__echo", "arguments": {}}}))
    .await
    .unwrap();
    let denied: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(denied["id"], 3);
    assert_eq!(denied["error"]["message"], "Unauthorized MCP", "{denied:#}");

    // Without a key, an MCP client gets the HTTP 401 it knows how to handle.
    let anonymous = server
        .client
        .post(format!("{}/mcp", server.base))
        .json(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "ApiKey");

    // The server-to-client stream (GET) needs the key like everything else.
    let get = server
        .client
        .get(format!("{}/mcp", server.base))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 401);
    assert!(get.headers().contains_key("www-authenticate"));
    let get: serde_json::Value = get.json().await.unwrap();
    assert_eq!(get["error"]["data"]["code"], "invalid_api_key", "{get:#}");
    assert!(server.terminate().success());
}
