//! `/mcp/{mcp_id}`: the reference server (`@modelcontextprotocol/server-everything`)
//! behind plexmcp, driven by the rmcp client as an MCP client would drive
//! it: the upstream's own names, every kind of request, notifications and
//! server-to-client requests relayed to the client that caused them, and
//! the key's checks (scope, session binding, revoke) in front of it all.

#![allow(deprecated)] // sampling, elicitation and logging belong to the revisions tested here

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::mcp_session::{Target, call, connect, text_of, until};
use support::{Env, Server};

#[tokio::test]
async fn an_mcp_client_gets_the_upstream_as_it_is() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let (client, seen) = connect(&server, "everything", &key, "first").await;

    let info = client.peer_info().expect("server info");
    let server_info = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(server_info.name, "mcp-servers/everything");
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or("")
            .contains("Everything")
    );
    assert!(info.capabilities.resources.is_some() && info.capabilities.prompts.is_some());

    // The upstream's own names, schemas untouched, the conditional tools too.
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.contains(&"echo") && names.contains(&"get-sum"),
        "{names:?}"
    );
    assert!(names.contains(&"trigger-sampling-request"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("__")), "{names:?}");
    let sum = tools.iter().find(|t| t.name == "get-sum").unwrap();
    assert_eq!(sum.input_schema["properties"]["a"]["type"], "number");

    let echoed = client
        .call_tool(call("echo", json!({"message": "hi"})))
        .await
        .expect("echo");
    assert!(
        text_of(&echoed).contains("Echo: hi"),
        "{}",
        text_of(&echoed)
    );

    let resources = client.list_resources(None).await.expect("resources/list");
    let first = resources.resources.first().expect("a resource").uri.clone();
    let read = client
        .read_resource(serde_json::from_value(json!({ "uri": first })).unwrap())
        .await
        .expect("resources/read");
    assert!(!read.contents.is_empty());
    let templates = client
        .list_resource_templates(None)
        .await
        .expect("templates");
    assert!(
        templates
            .resource_templates
            .iter()
            .any(|t| t.uri_template == "demo://resource/dynamic/text/{resourceId}"),
        "{templates:?}"
    );

    let prompts = client.list_prompts(None).await.expect("prompts/list");
    assert!(prompts.prompts.iter().any(|p| p.name == "args-prompt"));
    let prompt = client
        .get_prompt(
            serde_json::from_value(json!({"name": "args-prompt", "arguments": {"city": "Lyon"}}))
                .unwrap(),
        )
        .await
        .expect("prompts/get");
    assert!(
        serde_json::to_string(&prompt.messages)
            .unwrap()
            .contains("Lyon")
    );

    let completion = client
        .complete(
            serde_json::from_value(json!({
                "ref": {"type": "ref/prompt", "name": "completable-prompt"},
                "argument": {"name": "department", "value": "E"}
            }))
            .unwrap(),
        )
        .await
        .expect("completion/complete");
    assert!(
        completion
            .completion
            .values
            .iter()
            .any(|v| v == "Engineering"),
        "{completion:?}"
    );

    // Log messages at the level this client set reach this client.
    client
        .set_level(serde_json::from_value(json!({"level": "debug"})).unwrap())
        .await
        .expect("logging/setLevel");
    client
        .call_tool(call("toggle-simulated-logging", json!({})))
        .await
        .expect("toggle logging");
    until(&seen, "a log message", |s| !s.logs.is_empty()).await;

    // Progress of a long-running tool arrives with the client's own token
    // (the last step may race the result, so not every step is awaited).
    let done = client
        .call_tool(call(
            "trigger-long-running-operation",
            json!({"duration": 2, "steps": 4}),
        ))
        .await
        .expect("long-running tool");
    assert!(text_of(&done).contains("completed"), "{}", text_of(&done));
    until(&seen, "progress", |s| s.progress.len() >= 2).await;

    client.cancel().await.expect("close the session");
}

#[tokio::test]
async fn server_requests_reach_only_the_client_whose_call_caused_them() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let (alice, alice_seen) = connect(&server, "everything", &key, "alice").await;
    let (bob, bob_seen) = connect(&server, "everything", &key, "bob").await;

    let sampled = alice
        .call_tool(call(
            "trigger-sampling-request",
            json!({"prompt": "say hello", "maxTokens": 20}),
        ))
        .await
        .expect("sampling tool");
    assert!(
        text_of(&sampled).contains("answer from alice"),
        "{}",
        text_of(&sampled)
    );
    assert_eq!(alice_seen.lock().unwrap().sampled.len(), 1);
    assert!(alice_seen.lock().unwrap().sampled[0].contains("say hello"));

    let elicited = bob
        .call_tool(call("trigger-elicitation-request", json!({})))
        .await
        .expect("elicitation tool");
    assert!(
        text_of(&elicited).contains("declined"),
        "{}",
        text_of(&elicited)
    );
    assert_eq!(bob_seen.lock().unwrap().elicited.len(), 1);

    // Neither saw the other's requests or progress.
    bob.call_tool(call(
        "trigger-long-running-operation",
        json!({"duration": 2, "steps": 4}),
    ))
    .await
    .expect("long-running tool");
    until(&bob_seen, "bob's progress", |s| s.progress.len() >= 2).await;
    {
        let alice_now = alice_seen.lock().unwrap();
        assert!(alice_now.elicited.is_empty(), "alice saw bob's elicitation");
        assert!(alice_now.progress.is_empty(), "alice saw bob's progress");
    }
    assert!(
        bob_seen.lock().unwrap().sampled.is_empty(),
        "bob saw alice's sampling"
    );
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}

/// A raw Streamable HTTP POST to `path`.
async fn post(
    server: &impl Target,
    path: &str,
    key: Option<&str>,
    session: Option<&str>,
    extra: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let mut request = server
        .http()
        .post(format!("{}{path}", server.base()))
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(key) = key {
        request = request.header("authorization", format!("ApiKey {key}"));
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let mut versioned = session.is_some();
    for (name, value) in extra {
        versioned &= !name.eq_ignore_ascii_case("mcp-protocol-version");
        request = request.header(*name, *value);
    }
    if versioned {
        request = request.header("mcp-protocol-version", "2025-11-25");
    }
    request.send().await.expect("POST")
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
}

fn tools_list() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
}

/// Opens a session on `/mcp/everything` with `key` and returns its id.
async fn open_session(server: &impl Target, key: &str) -> String {
    open_session_on(server, "/mcp/everything", key).await
}

async fn open_session_on(server: &impl Target, path: &str, key: &str) -> String {
    let response = post(server, path, Some(key), None, &[], &initialize()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let id = response
        .headers()
        .get("mcp-session-id")
        .expect("Mcp-Session-Id on initialize")
        .to_str()
        .unwrap()
        .to_owned();
    let _ = response.text().await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let acked = post(server, path, Some(key), Some(&id), &[], &initialized).await;
    assert_eq!(acked.status(), StatusCode::ACCEPTED);
    id
}

async fn rpc_error(response: reqwest::Response) -> Value {
    let body: Value = response.json().await.expect("JSON-RPC error body");
    assert_eq!(body["jsonrpc"], "2.0", "{body:#}");
    body["error"].clone()
}

#[tokio::test]
async fn sessions_belong_to_the_key_that_opened_them() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    env.add_everything_stdio("second");
    let (owner_id, owner) = env.create_key("owner", &[]);
    let (_, other) = env.create_key("other", &[]);
    let server = Server::start(&env).await;
    let session = open_session(&server, &owner).await;

    let path = "/mcp/everything";
    let listed = post(
        &server,
        path,
        Some(&owner),
        Some(&session),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert!(listed.text().await.unwrap().contains("\"echo\""));

    // Nor is it served on another MCP's path.
    let second = "/mcp/second";
    let elsewhere = post(
        &server,
        second,
        Some(&owner),
        Some(&session),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);

    // Another valid key cannot use it.
    let stolen = post(
        &server,
        path,
        Some(&other),
        Some(&session),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(stolen.status(), StatusCode::NOT_FOUND);
    assert_eq!(rpc_error(stolen).await["data"]["code"], "session_not_found");

    // Without a key: 401 with a JSON-RPC body and WWW-Authenticate.
    let anonymous = post(&server, path, None, Some(&session), &[], &tools_list()).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert_eq!(rpc_error(anonymous).await["data"]["reason"], "missing");

    // DELETE ends a session; it is then unknown.
    let second = open_session(&server, &owner).await;
    let deleted = server
        .client
        .delete(format!("{}{path}", server.base))
        .header("authorization", format!("ApiKey {owner}"))
        .header("mcp-session-id", &second)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    // 200, not rmcp's 202: the Python SDK logs anything else as a failure.
    assert_eq!(deleted.status(), StatusCode::OK);
    let after = post(
        &server,
        path,
        Some(&owner),
        Some(&second),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(after.status(), StatusCode::NOT_FOUND);

    // After a revoke the session is refused.
    env.cli_ok(&["keys", "revoke", &owner_id, "--yes"]);
    let revoked = post(
        &server,
        path,
        Some(&owner),
        Some(&session),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(rpc_error(revoked).await["data"]["reason"], "revoked");
}

#[tokio::test]
async fn what_a_key_may_not_use_never_starts() {
    let env = Env::new();
    let marker = env.dir.path().join("started");
    let script = format!(
        "touch '{}'; exec {}",
        marker.display(),
        support::everything_stdio_command()
    );
    let command = shlex::try_join(["sh", "-c", &script]).unwrap();
    env.cli_ok(&["mcps", "add", "guarded", "--stdio", &command]);
    env.add_everything_stdio("everything");
    let (_, scoped) = env.create_key("scoped", &["--mcp", "everything"]);
    let server = Server::start(&env).await;

    for path in ["/mcp/guarded", "/mcp/nonexistent", "/mcp/Not%20An%20Id"] {
        let refused = post(&server, path, Some(&scoped), None, &[], &initialize()).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            rpc_error(refused).await["data"]["code"],
            "unauthorized_mcp",
            "{path}"
        );
    }
    assert!(!marker.exists(), "the forbidden MCP's upstream was started");
}

#[tokio::test]
async fn transport_rules_are_enforced() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let path = "/mcp/everything";

    let origin = [("origin", "https://evil.example")];
    let foreign = post(&server, path, Some(&key), None, &origin, &initialize()).await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);

    // A name that is not this server's (DNS rebinding), even with a valid key.
    let host = [("host", "evil.example")];
    let rebound = post(&server, path, Some(&key), None, &host, &initialize()).await;
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);

    let session = open_session(&server, &key).await;
    // Garbage and answers to requests nobody made are refused or dropped;
    // the session keeps working.
    let garbage = server
        .client
        .post(format!("{}{path}", server.base))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("authorization", format!("ApiKey {key}"))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let stray = json!({"jsonrpc": "2.0", "id": 4242, "result": {}});
    let answered = post(&server, path, Some(&key), Some(&session), &[], &stray).await;
    assert!(answered.status().is_success(), "{}", answered.status());
    let still = post(
        &server,
        path,
        Some(&key),
        Some(&session),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(still.status(), StatusCode::OK);
    assert!(still.text().await.unwrap().contains("\"echo\""));

    let version = [("mcp-protocol-version", "1999-01-01")];
    let refused = post(
        &server,
        path,
        Some(&key),
        Some(&session),
        &version,
        &tools_list(),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-protected-resource/mcp/everything",
    ] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.expect("JSON 404");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

/// A gateway run in this process, so its proxy settings can be chosen.
struct InProcess {
    base: String,
    client: reqwest::Client,
    cancel: tokio_util::sync::CancellationToken,
    serving: tokio::task::JoinHandle<()>,
}

impl Target for InProcess {
    fn base(&self) -> &str {
        &self.base
    }
    fn http(&self) -> &reqwest::Client {
        &self.client
    }
}

impl InProcess {
    async fn start(env: &Env, settings: plexmcp::server::mcp_proxy::ProxySettings) -> InProcess {
        let store = plexmcp::store::Store::open(&env.db).expect("open store");
        let gateway =
            plexmcp::server::Gateway::with_proxy_settings(store, settings).expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let cancel = tokio_util::sync::CancellationToken::new();
        let serving = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                gateway.serve(listener, cancel).await.expect("serve");
            }
        });
        InProcess {
            base,
            client: reqwest::Client::new(),
            cancel,
            serving,
        }
    }

    /// Shuts the gateway down; every usage event is committed when this returns.
    async fn stop(self) {
        self.cancel.cancel();
        self.serving.await.expect("gateway task");
    }
}

#[tokio::test]
async fn sessions_are_capped_per_key_and_in_total_and_expire_when_idle() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, first) = env.create_key("first", &[]);
    let (_, second) = env.create_key("second", &[]);
    let settings = plexmcp::server::mcp_proxy::ProxySettings {
        max_sessions_per_key: 2,
        max_sessions: 3,
        session_idle: Duration::from_secs(2),
        ..Default::default()
    };
    let gateway = InProcess::start(&env, settings).await;
    let path = "/mcp/everything";

    let kept = open_session(&gateway, &first).await;
    open_session(&gateway, &first).await;
    let over = post(&gateway, path, Some(&first), None, &[], &initialize()).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let error = rpc_error(over).await;
    assert_eq!(error["data"]["code"], "too_many_sessions");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("this API key already has 2"),
        "{error:#}"
    );

    open_session(&gateway, &second).await;
    let full = post(&gateway, path, Some(&second), None, &[], &initialize()).await;
    assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        rpc_error(full).await["message"]
            .as_str()
            .unwrap()
            .contains("the gateway already has 3"),
    );

    // Idle sessions end (and give their places back).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let expired = post(
        &gateway,
        path,
        Some(&first),
        Some(&kept),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(expired.status(), StatusCode::NOT_FOUND);
    open_session(&gateway, &first).await;
    gateway.stop().await;
}

#[tokio::test]
async fn every_request_is_a_usage_event_named_by_what_it_used() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (id, key) = env.create_key("client", &[]);
    let gateway = InProcess::start(&env, Default::default()).await;
    let (client, _) = connect(&gateway, "everything", &key, "usage").await;
    client
        .call_tool(call("echo", json!({"message": "hi"})))
        .await
        .expect("echo");
    client
        .get_prompt(serde_json::from_value(json!({"name": "simple-prompt"})).unwrap())
        .await
        .expect("prompts/get");
    // Answered inside an HTTP 200, an error is still an error in the record.
    client
        .get_prompt(serde_json::from_value(json!({"name": "no-such-prompt"})).unwrap())
        .await
        .expect_err("an unknown prompt");
    client.cancel().await.unwrap();
    let refused = post(&gateway, "/mcp/other", Some(&key), None, &[], &initialize()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    gateway.stop().await;

    let store = plexmcp::store::Store::open(&env.db).unwrap();
    let (record, _) = store.key_for_auth(&id).unwrap().expect("the key");
    let usage = store
        .key_usage(record.row_id, chrono::Utc::now(), 50)
        .unwrap();
    let seen: Vec<(Option<&str>, Option<&str>, u16)> = usage
        .recent
        .iter()
        .map(|r| (r.mcp.as_deref(), r.tool.as_deref(), r.http_status))
        .collect();
    for expected in [
        (Some("everything"), Some("initialize"), 200),
        (Some("everything"), Some("echo"), 200),
        (Some("everything"), Some("simple-prompt"), 200),
        // An MCP that is not live is never named in the store, nor its method.
        (None, None, 403),
    ] {
        assert!(seen.contains(&expected), "{expected:?} not in {seen:?}");
    }
    let failed = usage
        .recent
        .iter()
        .find(|r| r.tool.as_deref() == Some("no-such-prompt"))
        .expect("the failed prompts/get is recorded");
    assert!(failed.http_status >= 400, "{failed:?}");
    assert_ne!(failed.outcome, "ok", "{failed:?}");
}

/// A stdio MCP server with a tool `wait` that never answers (it writes
/// each call and each `notifications/cancelled` it receives to `cancelled`)
/// and a tool `exit` that ends the process.
fn cancel_recorder(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let cancelled = dir.join("cancelled");
    let script = dir.join("recorder.js");
    let source = r#"
const fs = require("fs");
const out = process.argv[2];
const send = (m) => process.stdout.write(JSON.stringify(m) + "\n");
require("readline").createInterface({ input: process.stdin }).on("line", (line) => {
  const m = JSON.parse(line);
  if (m.method === "initialize") {
    send({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: "recorder", version: "1" } } });
  } else if (m.method === "tools/list") {
    send({ jsonrpc: "2.0", id: m.id, result: { tools: [{ name: "wait",
      inputSchema: { type: "object" } }] } });
  } else if (m.method === "tools/call" && m.params.name === "exit") {
    process.exit(0);
  } else if (m.method === "tools/call") {
    fs.appendFileSync(out, "called " + JSON.stringify(m.id) + "\n");
  } else if (m.method === "notifications/cancelled") {
    fs.appendFileSync(out, "cancelled " + JSON.stringify(m.params.requestId) + "\n");
  }
});
"#;
    std::fs::write(&script, source).unwrap();
    let command = shlex::try_join([
        "node",
        script.to_str().unwrap(),
        cancelled.to_str().unwrap(),
    ])
    .unwrap();
    (command, cancelled)
}

#[tokio::test]
async fn a_cancelled_call_is_cancelled_upstream() {
    support::server_everything(); // node must be there
    let env = Env::new();
    let (command, record) = cancel_recorder(env.dir.path());
    env.cli_ok(&["mcps", "add", "recorder", "--stdio", &command]);
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let (client, _) = connect(&server, "recorder", &key, "canceller").await;

    let request = rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
        call("wait", json!({})),
    ));
    let handle = client
        .send_cancellable_request(request, Default::default())
        .await
        .expect("send tools/call");
    let read = || std::fs::read_to_string(&record).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read().contains("called") {
        assert!(
            Instant::now() < deadline,
            "the call never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.cancel(Some("changed my mind".into())).await.unwrap();
    while !read().contains("cancelled") {
        assert!(
            Instant::now() < deadline,
            "the cancellation never reached the upstream: {}",
            read()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The upstream is told which of its requests to drop.
    let lines = read();
    let called = lines
        .lines()
        .find_map(|l| l.strip_prefix("called "))
        .unwrap();
    assert!(lines.contains(&format!("cancelled {called}")), "{lines}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_http_upstream_is_passed_through_too() {
    let upstream = support::HttpEverything::start();
    let env = Env::new();
    env.cli_ok(&["mcps", "add", "remote", "--url", &upstream.url()]);
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let (client, seen) = connect(&server, "remote", &key, "http-client").await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "echo"));
    let sampled = client
        .call_tool(call(
            "trigger-sampling-request",
            json!({"prompt": "over http", "maxTokens": 20}),
        ))
        .await
        .expect("sampling over an HTTP upstream");
    assert!(text_of(&sampled).contains("answer from http-client"));
    assert!(seen.lock().unwrap().sampled[0].contains("over http"));
    client.cancel().await.unwrap();
}

/// The `_meta` every 2026-07-28 request carries.
fn meta_2026() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "new", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// The JSON-RPC message in a JSON or SSE answer.
async fn answer_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|d| d.starts_with('{'))
        .unwrap_or(text.trim());
    let value = serde_json::from_str(json).unwrap_or_else(|_| panic!("{status}: {text}"));
    (status, value)
}

#[tokio::test]
async fn a_stateless_2026_client_is_served_without_a_session() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": meta_2026()}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "server/discover"),
    ];
    let response = post(
        &server,
        "/mcp/everything",
        Some(&key),
        None,
        &headers,
        &discover,
    )
    .await;
    assert!(response.headers().get("mcp-session-id").is_none());
    let (status, answer) = answer_of(response).await;
    assert_eq!(status, StatusCode::OK, "{answer:#}");
    let result = &answer["result"];
    let versions = result["supportedVersions"].as_array().expect("versions");
    assert!(versions.contains(&json!("2026-07-28")), "{result:#}");
    assert!(versions.contains(&json!("2025-11-25")), "{result:#}");
    // The upstream's own identity and capabilities, as over a session.
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcp-servers/everything",
        "{result:#}"
    );
    assert!(result["capabilities"]["tools"].is_object(), "{result:#}");

    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"message": "stateless"}, "_meta": meta_2026()}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    let response = post(
        &server,
        "/mcp/everything",
        Some(&key),
        None,
        &headers,
        &call,
    )
    .await;
    let (status, answer) = answer_of(response).await;
    assert_eq!(status, StatusCode::OK, "{answer:#}");
    assert!(
        answer["result"].to_string().contains("Echo: stateless"),
        "{answer:#}"
    );

    // The standard headers must agree with the body.
    let lying = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "get-sum"),
    ];
    let response = post(&server, "/mcp/everything", Some(&key), None, &lying, &call).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // The key is checked on every stateless request like any other.
    let response = post(&server, "/mcp/everything", None, None, &headers, &call).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revoking_a_key_ends_its_open_sessions_streams_and_all() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (id, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let session = open_session(&server, &key).await;
    let stream = open_stream(&server, "/mcp/everything", &key, &session).await;

    env.cli_ok(&["keys", "revoke", &id, "--yes"]);
    // The stream ends without the client sending anything more.
    assert!(
        ends(stream).await,
        "the revoked key's event stream stayed open"
    );
    let after = post(
        &server,
        "/mcp/everything",
        Some(&key),
        Some(&session),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn removing_the_mcp_or_the_keys_access_ends_its_sessions() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    env.add_everything_stdio("second");
    let (id, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let on_everything = open_session(&server, &key).await;
    let on_second = {
        let response = post(&server, "/mcp/second", Some(&key), None, &[], &initialize()).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let alive = |path: &'static str, session: String| {
        let server = &server;
        let key = &key;
        async move {
            let listed = post(server, path, Some(key), Some(&session), &[], &tools_list()).await;
            listed.status() == StatusCode::OK
        }
    };
    assert!(alive("/mcp/second", on_second.clone()).await);

    // The key loses `everything`: its session there ends, the other stays.
    env.cli_ok(&["keys", "edit", &id, "--mcp", "second"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive("/mcp/everything", on_everything.clone()).await {
        assert!(
            Instant::now() < deadline,
            "session outlived the key's access"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(alive("/mcp/second", on_second.clone()).await);

    // Removing the MCP ends its sessions too.
    env.cli_ok(&["mcps", "remove", "second"]);
    while alive("/mcp/second", on_second.clone()).await {
        assert!(Instant::now() < deadline, "session outlived its MCP");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens a session's `GET` event stream.
async fn open_stream(server: &Server, path: &str, key: &str, session: &str) -> reqwest::Response {
    let stream = server
        .client
        .get(format!("{}{path}", server.base))
        .header("accept", "text/event-stream")
        .header("authorization", format!("ApiKey {key}"))
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    stream
}

/// Whether the stream ends (within a generous limit) with nothing sent to it.
async fn ends(mut stream: reqwest::Response) -> bool {
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_session_whose_upstream_died_ends_so_the_client_can_start_over() {
    support::server_everything(); // node must be there
    let env = Env::new();
    let (command, _) = cancel_recorder(env.dir.path());
    env.cli_ok(&["mcps", "add", "recorder", "--stdio", &command]);
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let path = "/mcp/recorder";
    let session = open_session_on(&server, path, &key).await;
    let exit = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "exit", "arguments": {}}});
    let _ = post(&server, path, Some(&key), Some(&session), &[], &exit)
        .await
        .text()
        .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = post(
            &server,
            path,
            Some(&key),
            Some(&session),
            &[],
            &tools_list(),
        )
        .await;
        if listed.status() == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead upstream's session lived on"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A new session gets a new upstream.
    let fresh = open_session_on(&server, path, &key).await;
    let listed = post(&server, path, Some(&key), Some(&fresh), &[], &tools_list()).await;
    assert!(listed.text().await.unwrap().contains("\"wait\""));
}

#[tokio::test]
async fn a_failed_initialize_holds_no_session() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    env.cli_ok(&["mcps", "add", "broken", "--stdio", "sh -c 'exit 1'"]);
    let (_, key) = env.create_key("client", &[]);
    let settings = plexmcp::server::mcp_proxy::ProxySettings {
        max_sessions_per_key: 1,
        ..Default::default()
    };
    let gateway = InProcess::start(&env, settings).await;
    for _ in 0..3 {
        let failed = post(
            &gateway,
            "/mcp/broken",
            Some(&key),
            None,
            &[],
            &initialize(),
        )
        .await;
        assert_ne!(failed.status(), StatusCode::TOO_MANY_REQUESTS);
        let text = failed.text().await.unwrap();
        assert!(text.contains("Upstream MCP 'broken' failed"), "{text}");
    }
    // The failures took none of the key's one place.
    open_session(&gateway, &key).await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_plain_answer_comes_as_json_and_one_with_progress_keeps_its_stream() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let session = open_session(&server, &key).await;
    let path = "/mcp/everything";
    let echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "plain"}}});
    let response = post(&server, path, Some(&key), Some(&session), &[], &echo).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["result"]["content"][0]["text"], "Echo: plain");

    let long = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "trigger-long-running-operation",
            "arguments": {"duration": 1, "steps": 2}, "_meta": {"progressToken": "p"}}});
    let response = post(&server, path, Some(&key), Some(&session), &[], &long).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let progress = text
        .find("notifications/progress")
        .expect("progress on the stream");
    let result = text.find("\"id\":3").expect("the answer on the stream");
    assert!(progress < result, "{text}");
}

/// A client that declared no capabilities, calling without a progress
/// token: its calls skip rmcp's session machinery in the gateway, and must
/// still meet every rule the full path does.
#[tokio::test]
async fn a_plain_call_of_a_client_that_can_be_asked_nothing_keeps_every_rule() {
    support::server_everything(); // node must be there
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (command, record) = cancel_recorder(env.dir.path());
    env.cli_ok(&["mcps", "add", "recorder", "--stdio", &command]);
    let (id, key) = env.create_key("client", &[]);
    let (_, other_key) = env.create_key("other", &[]);
    let gateway = InProcess::start(&env, Default::default()).await;
    let path = "/mcp/everything";
    let session = open_session(&gateway, &key).await;
    let echo = |id: u64, message: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": message}}})
    };

    let answered = post(
        &gateway,
        path,
        Some(&key),
        Some(&session),
        &[],
        &echo(2, "a"),
    )
    .await;
    assert_eq!(answered.status(), StatusCode::OK);
    assert_eq!(answered.headers()["content-type"], "application/json");
    let answer: Value = answered.json().await.unwrap();
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["result"]["content"][0]["text"], "Echo: a");

    // The transport's rules hold on this path too.
    for (header, value, status) in [
        ("host", "evil.example", StatusCode::FORBIDDEN),
        ("origin", "https://evil.example", StatusCode::FORBIDDEN),
        (
            "mcp-protocol-version",
            "1999-01-01",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let refused = post(
            &gateway,
            path,
            Some(&key),
            Some(&session),
            &[(header, value)],
            &echo(3, "b"),
        )
        .await;
        assert_eq!(refused.status(), status, "{header}: {value}");
    }
    let stolen = post(
        &gateway,
        path,
        Some(&other_key),
        Some(&session),
        &[],
        &echo(4, "c"),
    )
    .await;
    assert_eq!(stolen.status(), StatusCode::NOT_FOUND);
    // A tool the upstream does not have: its own answer (an isError result), in JSON.
    let unknown = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "no-such-tool", "arguments": {}}});
    let response = post(&gateway, path, Some(&key), Some(&session), &[], &unknown).await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["id"], 5);
    assert_eq!(answer["result"]["isError"], true, "{answer:#}");

    // The client's cancellation reaches the upstream.
    let path = "/mcp/recorder";
    let session = open_session_on(&gateway, path, &key).await;
    let wait = json!({"jsonrpc": "2.0", "id": "w", "method": "tools/call",
        "params": {"name": "wait", "arguments": {}}});
    let waiting = async {
        let response = post(&gateway, path, Some(&key), Some(&session), &[], &wait).await;
        response.text().await.unwrap()
    };
    let cancelling = async {
        let read = || std::fs::read_to_string(&record).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !read().contains("called") {
            assert!(
                Instant::now() < deadline,
                "the call never reached the upstream"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": "w", "reason": "changed my mind"}});
        let accepted = post(&gateway, path, Some(&key), Some(&session), &[], &cancel).await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
        while !read().contains("cancelled") {
            assert!(
                Instant::now() < deadline,
                "the cancellation never reached the upstream"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        read()
    };
    let (ended, lines) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(waiting, cancelling)
    })
    .await
    .expect("the cancelled call is answered");
    let called = lines
        .lines()
        .find_map(|l| l.strip_prefix("called "))
        .unwrap();
    assert!(lines.contains(&format!("cancelled {called}")), "{lines}");
    assert!(ended.contains("cancelled by the client"), "{ended}");
    gateway.stop().await;

    // Recorded like any call.
    let store = plexmcp::store::Store::open(&env.db).unwrap();
    let (row, _) = store.key_for_auth(&id).unwrap().expect("the key");
    let usage = store.key_usage(row.row_id, chrono::Utc::now(), 50).unwrap();
    assert!(
        usage
            .recent
            .iter()
            .any(|r| r.mcp.as_deref() == Some("everything")
                && r.tool.as_deref() == Some("echo")
                && r.http_status == 200),
        "{:?}",
        usage.recent
    );
}

#[tokio::test]
async fn a_session_listening_on_its_stream_is_not_idle() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("client", &[]);
    let settings = plexmcp::server::mcp_proxy::ProxySettings {
        session_idle: Duration::from_secs(2),
        ..Default::default()
    };
    let gateway = InProcess::start(&env, settings).await;
    let path = "/mcp/everything";
    let listening = open_session(&gateway, &key).await;
    let quiet = open_session(&gateway, &key).await;
    let stream = gateway
        .client
        .get(format!("{}{path}", gateway.base))
        .header("accept", "text/event-stream")
        .header("authorization", format!("ApiKey {key}"))
        .header("mcp-session-id", &listening)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let gone = post(&gateway, path, Some(&key), Some(&quiet), &[], &tools_list()).await;
    assert_eq!(
        gone.status(),
        StatusCode::NOT_FOUND,
        "the idle session ended"
    );
    let kept = post(
        &gateway,
        path,
        Some(&key),
        Some(&listening),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(kept.status(), StatusCode::OK, "the listening session lives");
    let _ = kept.text().await;

    // Once its stream is closed, it is idle like any other.
    drop(stream);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let gone = post(
        &gateway,
        path,
        Some(&key),
        Some(&listening),
        &[],
        &tools_list(),
    )
    .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    gateway.stop().await;
}
