//! `/mcp` for MCP clients: every MCP the key may use behind one MCP server,
//! over sessions like `/mcp/{mcp_id}`. Driven by the rmcp client against
//! the reference server (`@modelcontextprotocol/server-everything`) over
//! stdio and over Streamable HTTP, with a broken upstream beside them.

#![allow(deprecated)] // subscribe and logging belong to the revisions tested here

mod support;

use reqwest::StatusCode;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use support::mcp_session::{call, connect_to, text_of, until};
use support::{Env, Server};

fn params<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("request params")
}

#[tokio::test]
async fn every_feature_of_every_mcp_behind_one_server() {
    let http = support::HttpEverything::start();
    let env = Env::new();
    env.add_everything_stdio("everything");
    env.cli_ok(&["mcps", "add", "remote", "--url", &http.url()]);
    // Exits at once: a member that cannot be reached is left out, not fatal.
    env.cli_ok(&["mcps", "add", "broken", "--stdio", "false"]);
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let (client, seen) = connect_to(&server, "/mcp", &key, "aggregate").await;

    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "plexmcp");
    let instructions = info.instructions.clone().unwrap_or_default();
    assert!(
        instructions.contains("everything") && instructions.contains("remote"),
        "{instructions}"
    );
    assert!(!instructions.contains("broken"), "{instructions}");
    // The union of what the members offer.
    let capabilities = &info.capabilities;
    assert!(capabilities.tools.is_some() && capabilities.prompts.is_some());
    assert_eq!(
        capabilities.resources.as_ref().and_then(|r| r.subscribe),
        Some(true)
    );
    assert!(capabilities.completions.is_some() && capabilities.logging.is_some());

    // Tools of both reachable members, each under its MCP id, schemas untouched.
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in ["everything__echo", "remote__echo", "everything__get-sum"] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    assert!(names.iter().all(|n| !n.starts_with("broken__")));
    let sum = tools
        .iter()
        .find(|t| t.name == "everything__get-sum")
        .unwrap();
    assert_eq!(sum.input_schema["properties"]["a"]["type"], "number");

    for (tool, text) in [("everything__echo", "one"), ("remote__echo", "two")] {
        let echoed = client
            .call_tool(call(tool, json!({ "message": text })))
            .await
            .expect("echo");
        assert!(text_of(&echoed).contains(&format!("Echo: {text}")));
    }
    // Names the aggregate never listed are unknown, whatever they look like.
    for unknown in ["echo", "broken__echo", "nope__echo", "everything__"] {
        let refused = client
            .call_tool(call(unknown, json!({})))
            .await
            .expect_err(unknown);
        assert!(refused.to_string().contains("Unknown tool"), "{refused}");
    }

    // Prompts under the MCP id; arguments reach the upstream.
    let prompts = client.list_all_prompts().await.expect("prompts/list");
    assert!(prompts.iter().any(|p| p.name == "remote__args-prompt"));
    let prompt = client
        .get_prompt(params(
            json!({"name": "everything__args-prompt", "arguments": {"city": "Lyon"}}),
        ))
        .await
        .expect("prompts/get");
    assert!(
        serde_json::to_string(&prompt.messages)
            .unwrap()
            .contains("Lyon")
    );

    // Resources under plexmcp://<mcp_id>/<uri>; read maps back and forth.
    let resources = client.list_all_resources().await.expect("resources/list");
    let uri = resources
        .iter()
        .map(|r| r.uri.clone())
        .find(|u| u.starts_with("plexmcp://everything/demo://"))
        .unwrap_or_else(|| panic!("no mapped resource: {resources:?}"));
    let read = client
        .read_resource(params(json!({ "uri": uri })))
        .await
        .expect("resources/read");
    let contents = serde_json::to_value(&read.contents).unwrap();
    assert_eq!(contents[0]["uri"], uri, "{contents:#}");

    // A template expands to a URI that finds its upstream.
    let templates = client
        .list_all_resource_templates()
        .await
        .expect("templates");
    let template = "plexmcp://remote/demo://resource/dynamic/text/{resourceId}";
    assert!(
        templates.iter().any(|t| t.uri_template == template),
        "{templates:?}"
    );
    let expanded = template.replace("{resourceId}", "3");
    let read = client
        .read_resource(params(json!({ "uri": expanded })))
        .await
        .expect("read an expanded template");
    assert_eq!(
        serde_json::to_value(&read.contents).unwrap()[0]["uri"],
        expanded
    );
    let unknown = client
        .read_resource(params(json!({ "uri": "demo://resource/dynamic/text/3" })))
        .await
        .expect_err("an unmapped URI");
    assert!(
        unknown.to_string().contains("Unknown resource"),
        "{unknown}"
    );

    // Completion goes where its reference points.
    let completion = client
        .complete(params(json!({
            "ref": {"type": "ref/prompt", "name": "everything__completable-prompt"},
            "argument": {"name": "department", "value": "E"}
        })))
        .await
        .expect("completion of a prompt argument");
    assert!(
        completion
            .completion
            .values
            .iter()
            .any(|v| v == "Engineering")
    );
    let completion = client
        .complete(params(json!({
            "ref": {"type": "ref/resource", "uri": template},
            "argument": {"name": "resourceId", "value": "7"}
        })))
        .await
        .expect("completion of a template argument");
    assert_eq!(completion.completion.values, vec!["7".to_string()]);

    // Subscriptions: updates arrive under the URI the client subscribed to.
    client
        .subscribe(params(json!({ "uri": uri })))
        .await
        .expect("resources/subscribe");
    client
        .call_tool(call("everything__toggle-subscriber-updates", json!({})))
        .await
        .expect("start updates");
    until(&seen, "a resource update", |s| s.updated.contains(&uri)).await;
    assert!(
        seen.lock()
            .unwrap()
            .updated
            .iter()
            .all(|u| u.starts_with("plexmcp://")),
        "an unmapped URI reached the client"
    );
    client
        .unsubscribe(params(json!({ "uri": uri })))
        .await
        .expect("resources/unsubscribe");

    // Logging level goes to every member; their messages reach this client.
    client
        .set_level(params(json!({"level": "debug"})))
        .await
        .expect("logging/setLevel");
    client
        .call_tool(call("remote__toggle-simulated-logging", json!({})))
        .await
        .expect("toggle logging");
    until(&seen, "a log message", |s| !s.logs.is_empty()).await;

    // Server-to-client requests and progress travel back through the aggregate.
    let sampled = client
        .call_tool(call(
            "remote__trigger-sampling-request",
            json!({"prompt": "through the aggregate", "maxTokens": 20}),
        ))
        .await
        .expect("sampling");
    assert!(text_of(&sampled).contains("answer from aggregate"));
    let done = client
        .call_tool(call(
            "everything__trigger-long-running-operation",
            json!({"duration": 2, "steps": 4}),
        ))
        .await
        .expect("long-running tool");
    assert!(text_of(&done).contains("completed"), "{}", text_of(&done));
    until(&seen, "progress", |s| s.progress.len() >= 2).await;
    client.cancel().await.expect("end the session");
}

#[tokio::test]
async fn a_key_sees_only_its_mcps_and_sessions_stay_on_their_endpoint() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    env.add_everything_stdio("second");
    let (_, scoped) = env.create_key("scoped", &["--mcp", "second"]);
    let server = Server::start(&env).await;
    let (client, _) = connect_to(&server, "/mcp", &scoped, "scoped").await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(
        tools.iter().all(|t| t.name.starts_with("second__")),
        "{tools:?}"
    );
    assert!(!tools.is_empty());
    let refused = client
        .call_tool(CallToolRequestParams::new("everything__echo"))
        .await
        .expect_err("another MCP's tool");
    assert!(refused.to_string().contains("Unknown tool"), "{refused}");
    client.cancel().await.unwrap();

    // A session opened on /mcp is not one on /mcp/{id}, nor the other way.
    let (_, key) = env.create_key("both", &[]);
    let open = |path: &'static str| {
        let server = &server;
        let key = key.clone();
        async move {
            let response = server
                .client
                .post(format!("{}{path}", server.base))
                .header("Authorization", format!("Bearer {key}"))
                .header("Accept", "application/json, text/event-stream")
                .json(
                    &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "1"}}}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            response.headers()["mcp-session-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let aggregate = open("/mcp").await;
    let single = open("/mcp/everything").await;
    for (path, session) in [("/mcp/everything", &aggregate), ("/mcp", &single)] {
        let response = server
            .client
            .post(format!("{}{path}", server.base))
            .header("Authorization", format!("Bearer {key}"))
            .header("Accept", "application/json, text/event-stream")
            .header("Mcp-Session-Id", session.as_str())
            .header("MCP-Protocol-Version", "2025-11-25")
            .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["data"]["code"], "session_not_found");
    }

    // Losing one of its MCPs ends an aggregate session (rmcp's client then
    // opens a new one by itself, which no longer has that MCP).
    let (client, _) = connect_to(&server, "/mcp", &key, "both").await;
    let listed = |tools: &[rmcp::model::Tool], prefix: &str| {
        tools.iter().any(|t| t.name.starts_with(prefix))
    };
    let before = client.list_all_tools().await.unwrap();
    assert!(listed(&before, "second__") && listed(&before, "everything__"));
    env.cli_ok(&["mcps", "remove", "second"]);
    let after = client.list_all_tools().await.expect("after removal");
    assert!(!listed(&after, "second__"), "{after:?}");
    assert!(listed(&after, "everything__"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn plain_clients_keep_the_rest_call_and_one_shot_json_rpc() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let post = |body: Value, accept: Option<&'static str>| {
        let mut request = server
            .client
            .post(format!("{}/mcp", server.base))
            .header("Authorization", format!("ApiKey {key}"))
            .json(&body);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        request.send()
    };
    // The seed's REST body, with or without Streamable HTTP's Accept.
    for accept in [None, Some("application/json, text/event-stream")] {
        let response = post(
            json!({"mcp_id": "everything", "tool": "echo", "arguments": {"message": "rest"}}),
            accept,
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{accept:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body.to_string().contains("Echo: rest"), "{body}");
    }
    // One-shot JSON-RPC without a session, as curl would send it.
    let response = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "everything__echo", "arguments": {"message": "once"}}}),
        None,
    )
    .await
    .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(body["result"].to_string().contains("Echo: once"), "{body}");
}

#[tokio::test]
async fn two_aggregate_clients_never_see_each_others_traffic() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let (alice, alice_seen) = connect_to(&server, "/mcp", &key, "alice").await;
    let (bob, bob_seen) = connect_to(&server, "/mcp", &key, "bob").await;

    let sampled = alice
        .call_tool(call(
            "everything__trigger-sampling-request",
            json!({"prompt": "for alice", "maxTokens": 20}),
        ))
        .await
        .expect("sampling tool");
    assert!(text_of(&sampled).contains("answer from alice"));
    bob.call_tool(call(
        "everything__trigger-long-running-operation",
        json!({"duration": 1, "steps": 4}),
    ))
    .await
    .expect("long-running tool");
    until(&bob_seen, "bob's progress", |s| s.progress.len() >= 2).await;
    assert!(
        alice_seen.lock().unwrap().progress.is_empty(),
        "alice saw bob's progress"
    );
    assert!(
        bob_seen.lock().unwrap().sampled.is_empty(),
        "bob saw alice's sampling"
    );
    assert_eq!(alice_seen.lock().unwrap().sampled.len(), 1);
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}
