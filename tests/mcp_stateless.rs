//! 2026-07-28 (stateless) clients on `/mcp/{mcp_id}`, on the wire: the
//! bridge to upstreams that speak the session revisions. Sampling asked by
//! the upstream mid-call comes back as an input request of the call's
//! answer and the client's retry finishes the call (bound to the key that
//! started it); log messages inside a request follow its `_meta` level;
//! `subscriptions/listen` relays the upstream's resource updates and ends
//! when the key is revoked. The Python SDK's own 2026-07-28 mode is in
//! `sdk_clients.rs`.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Env, Server};

const REVISION: &str = "2026-07-28";

/// The `_meta` every 2026-07-28 request carries, with the client's
/// capabilities and extra keys.
fn meta(capabilities: Value, extra: &[(&str, Value)]) -> Value {
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": REVISION,
        "io.modelcontextprotocol/clientInfo": {"name": "wire-client", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    });
    for (k, v) in extra {
        meta[*k] = v.clone();
    }
    meta
}

fn call(id: u64, name: &str, arguments: Value, meta: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": meta}})
}

async fn post(server: &Server, path: &str, key: &str, body: &Value) -> reqwest::Response {
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    let mut request = server
        .client
        .post(format!("{}{path}", server.base))
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("ApiKey {key}"))
        .header("mcp-protocol-version", REVISION)
        .header("mcp-method", &method)
        .json(body);
    if let Some(name) = body["params"]["name"].as_str() {
        request = request.header("mcp-name", name);
    }
    request.send().await.unwrap()
}

/// Every JSON-RPC message of a (JSON or SSE) answer, in order.
async fn messages(response: reqwest::Response) -> (StatusCode, Vec<Value>) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let mut found: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect();
    if found.is_empty() {
        found.push(serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}")));
    }
    (status, found)
}

/// The answer (the message with an id) among `messages`.
fn answer(messages: &[Value]) -> &Value {
    messages
        .iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no answer among {messages:#?}"))
}

#[tokio::test]
async fn sampling_mid_call_comes_back_as_an_input_request_and_the_retry_finishes_the_call() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("client", &[]);
    let (_, other_key) = env.create_key("someone-else", &[]);
    let server = Server::start(&env).await;
    let path = "/mcp/everything";
    let can_sample = json!({"sampling": {}});
    let ask = call(
        1,
        "trigger-sampling-request",
        json!({"prompt": "name a colour", "maxTokens": 20}),
        meta(can_sample.clone(), &[]),
    );
    let (status, first) = messages(post(&server, path, &key, &ask).await).await;
    assert_eq!(status, StatusCode::OK, "{first:#?}");
    let result = &answer(&first)["result"];
    assert_eq!(result["resultType"], "input_required", "{result:#}");
    let requests = result["inputRequests"].as_object().expect("inputRequests");
    assert_eq!(requests.len(), 1, "{result:#}");
    let (input_id, input) = requests.iter().next().unwrap();
    assert_eq!(input["method"], "sampling/createMessage", "{input:#}");
    assert!(
        input.to_string().contains("name a colour"),
        "the upstream's own request: {input:#}"
    );
    let state = result["requestState"].as_str().expect("requestState");

    let sampled = json!({"role": "assistant", "model": "wire-model", "stopReason": "endTurn",
        "content": {"type": "text", "text": "teal, from the wire client"}});
    let retry = |id: u64| {
        let mut retry = ask.clone();
        retry["id"] = json!(id);
        retry["params"]["inputResponses"] = json!({ input_id.as_str(): sampled.clone() });
        retry["params"]["requestState"] = json!(state);
        retry
    };
    // Another key cannot pick up the call (nor learn that it exists).
    let (_, stolen) = messages(post(&server, path, &other_key, &retry(2)).await).await;
    let refusal = &answer(&stolen)["error"];
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("requestState is unknown or has expired"),
        "{stolen:#?}"
    );
    // The key that started it finishes it: the upstream got the answer.
    let (status, done) = messages(post(&server, path, &key, &retry(3)).await).await;
    assert_eq!(status, StatusCode::OK);
    let result = &answer(&done)["result"];
    assert_ne!(result["resultType"], "input_required", "{result:#}");
    assert!(
        result.to_string().contains("teal, from the wire client"),
        "{result:#}"
    );
    // A call is finished once: the same state again is refused.
    let (_, again) = messages(post(&server, path, &key, &retry(4)).await).await;
    assert!(answer(&again).get("error").is_some(), "{again:#?}");
    // The upstream connection went back to be reused: plain calls work on.
    let echo = call(
        5,
        "echo",
        json!({"message": "after"}),
        meta(can_sample, &[]),
    );
    let (_, echoed) = messages(post(&server, path, &key, &echo).await).await;
    assert!(
        answer(&echoed).to_string().contains("Echo: after"),
        "{echoed:#?}"
    );
}

/// The fake upstream of `upstream_pool.rs`, with its logging tool and
/// resource subscriptions.
fn add_fake(env: &Env, slug: &str) {
    let command = support::fake_stdio_command(&[]);
    env.cli_ok(&["mcps", "add", slug, "--stdio", &command]);
}

#[tokio::test]
async fn log_messages_inside_a_request_follow_the_level_its_meta_asks_for() {
    let env = Env::new();
    add_fake(&env, "fake");
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let logs = |messages: &[Value]| -> Vec<String> {
        messages
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .map(|m| m["params"]["level"].as_str().unwrap().to_owned())
            .collect()
    };
    let at_error = call(
        1,
        "log",
        json!({}),
        meta(
            json!({}),
            &[("io.modelcontextprotocol/logLevel", json!("error"))],
        ),
    );
    let (_, seen) = messages(post(&server, "/mcp/fake", &key, &at_error).await).await;
    assert_eq!(answer(&seen)["result"]["content"][0]["text"], "logged");
    assert_eq!(logs(&seen), ["error"], "{seen:#?}");

    let at_debug = call(
        2,
        "log",
        json!({}),
        meta(
            json!({}),
            &[("io.modelcontextprotocol/logLevel", json!("debug"))],
        ),
    );
    let (_, seen) = messages(post(&server, "/mcp/fake", &key, &at_debug).await).await;
    // Both, in either order: rmcp hands each upstream notification to a
    // task of its own, so two sent back to back may be passed on swapped.
    let mut levels = logs(&seen);
    levels.sort();
    assert_eq!(levels, ["debug", "error"], "{seen:#?}");

    // A request that asks for no level gets no log messages.
    let quiet = call(3, "log", json!({}), meta(json!({}), &[]));
    let (_, seen) = messages(post(&server, "/mcp/fake", &key, &quiet).await).await;
    assert_eq!(answer(&seen)["result"]["content"][0]["text"], "logged");
    assert_eq!(logs(&seen), Vec::<String>::new(), "{seen:#?}");

    // logging/setLevel has nothing to set without a session, and says so.
    let set = json!({"jsonrpc": "2.0", "id": 4, "method": "logging/setLevel",
        "params": {"level": "debug", "_meta": meta(json!({}), &[])}});
    let (_, refused) = messages(post(&server, "/mcp/fake", &key, &set).await).await;
    assert!(
        answer(&refused)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("io.modelcontextprotocol/logLevel"),
        "{refused:#?}"
    );
}

/// Reads SSE messages off `stream` until one satisfies `wanted`.
async fn until_message(
    stream: &mut reqwest::Response,
    buffer: &mut String,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                    if let Ok(message) = serde_json::from_str::<Value>(data.trim())
                        && wanted(&message)
                    {
                        return message;
                    }
                }
            }
            match stream.chunk().await {
                Ok(Some(bytes)) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
                other => panic!("the stream ended first: {other:?}; left: {buffer}"),
            }
        }
    })
    .await
    .expect("the awaited message never came")
}

#[tokio::test]
async fn a_listen_stream_relays_resource_updates_and_ends_when_the_key_is_revoked() {
    let env = Env::new();
    add_fake(&env, "fake");
    let (id, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let listen = json!({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
        "params": {"_meta": meta(json!({}), &[]), "notifications": {
            "resourceSubscriptions": ["file:///watched.txt"], "toolsListChanged": true}}});
    let mut stream = post(&server, "/mcp/fake", &key, &listen).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let mut buffer = String::new();
    let ack = until_message(&mut stream, &mut buffer, |m| {
        m["method"] == "notifications/subscriptions/acknowledged"
    })
    .await;
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!(["file:///watched.txt"]),
        "{ack:#}"
    );
    // The fake upstream reports an update as soon as it is subscribed to.
    let updated = until_message(&mut stream, &mut buffer, |m| {
        m["method"] == "notifications/resources/updated"
    })
    .await;
    assert_eq!(
        updated["params"]["uri"], "file:///watched.txt",
        "{updated:#}"
    );
    assert_eq!(
        updated["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 9,
        "{updated:#}"
    );

    env.cli_ok(&["keys", "revoke", &id, "--yes"]);
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the revoked key's listen stream stayed open");
}

#[tokio::test]
async fn the_aggregate_endpoint_serves_a_stateless_client_under_the_same_names() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    add_fake(&env, "fake");
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": meta(json!({}), &[])}});
    let (status, found) = messages(post(&server, "/mcp", &key, &discover).await).await;
    assert_eq!(status, StatusCode::OK, "{found:#?}");
    let result = &answer(&found)["result"];
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "plexmcp",
        "{result:#}"
    );
    // The union: server-everything's prompts, the fake's logging.
    assert!(result["capabilities"]["prompts"].is_object(), "{result:#}");
    assert!(result["capabilities"]["logging"].is_object(), "{result:#}");
    let instructions = result["instructions"].as_str().unwrap_or_default();
    assert!(instructions.contains("everything, fake"), "{instructions}");

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list",
        "params": {"_meta": meta(json!({}), &[])}});
    let (_, listed) = messages(post(&server, "/mcp", &key, &list).await).await;
    let result = &answer(&listed)["result"];
    assert_eq!(result["resultType"], "complete", "{result:#}");
    let names: Vec<&str> = result["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"everything__echo"), "{names:?}");
    assert!(names.contains(&"fake__ok"), "{names:?}");

    let echo = call(
        3,
        "everything__echo",
        json!({"message": "both"}),
        meta(json!({}), &[]),
    );
    let (_, echoed) = messages(post(&server, "/mcp", &key, &echo).await).await;
    assert!(
        answer(&echoed).to_string().contains("Echo: both"),
        "{echoed:#?}"
    );

    // A subscription names the aggregate's URI; the update comes back under it.
    let listen = json!({"jsonrpc": "2.0", "id": 4, "method": "subscriptions/listen",
        "params": {"_meta": meta(json!({}), &[]), "notifications": {
            "resourceSubscriptions": ["plexmcp://fake/file:///watched.txt"]}}});
    let mut stream = post(&server, "/mcp", &key, &listen).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let mut buffer = String::new();
    let updated = until_message(&mut stream, &mut buffer, |m| {
        m["method"] == "notifications/resources/updated"
    })
    .await;
    assert_eq!(
        updated["params"]["uri"], "plexmcp://fake/file:///watched.txt",
        "{updated:#}"
    );
}
