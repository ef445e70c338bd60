//! The official MCP client SDKs, TypeScript (`@modelcontextprotocol/sdk`)
//! and Python (`mcp`), as the downstream client of `/mcp/{mcp_id}` in front
//! of the reference server: what an MCP app built on them sees through
//! plexmcp, feature by feature, with nothing of the gateway's own in between.
//!
//! Each SDK runs a script of ours (`tests/fixtures/sdk/`) that connects with
//! the key in `Authorization: Bearer`, lists the tools, calls `echo`, reads a
//! resource, gets a prompt, answers a sampling and an elicitation request,
//! receives progress and log notifications, cancels a long call and prints
//! one JSON line of what it saw; the tests check that line. The scripts take
//! a tool-name prefix, so the same ones can drive the aggregate `/mcp`.
//!
//! The SDKs are installed on first use, pinned, under `test-deps/`
//! (`support::install`); a missing npm, python3 or registry fails the test
//! with one line saying how to get it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{ChildGuard, Env, HttpEverything, Server};

/// Generous: the scripts give up on their own well before this; it only
/// stops a wedged interpreter from hanging the test run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(600);

/// The revisions a client may end up on through `/mcp/{mcp_id}` with a session.
const HANDSHAKE_REVISIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// The stateless revision (no `initialize`, no session).
const STATELESS_REVISION: &str = "2026-07-28";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sdk")
        .join(name)
}

/// One of the official SDKs, and what its script answers the server with.
#[derive(Clone, Copy)]
enum Sdk {
    TypeScript,
    /// The Python SDK in one of its connect modes (`legacy` or `auto`).
    Python(&'static str),
}

impl Sdk {
    fn name(self) -> &'static str {
        match self {
            Sdk::TypeScript => "TypeScript",
            Sdk::Python(_) => "Python",
        }
    }

    fn command(self) -> Command {
        match self {
            Sdk::TypeScript => {
                let home = support::install::ts_sdk();
                let mut cmd = Command::new("node");
                cmd.arg(fixture("client.mjs")).env("TS_SDK_HOME", home);
                cmd
            }
            Sdk::Python(mode) => {
                let python = support::install::py_sdk();
                let mut cmd = Command::new(python);
                cmd.arg(fixture("client.py")).args(["--mode", mode]);
                cmd
            }
        }
    }

    /// Runs the SDK's script against `url` with `key`; returns its summary.
    async fn run(self, env: &Env, url: &str, key: &str, prefix: &str) -> Value {
        use std::os::unix::process::CommandExt;
        let tag = match self {
            Sdk::TypeScript => "ts".to_string(),
            Sdk::Python(mode) => format!("py-{mode}"),
        };
        let stdout = env.dir.path().join(format!("{tag}.out"));
        let stderr = env.dir.path().join(format!("{tag}.err"));
        let mut cmd = self.command();
        cmd.args(["--url", url, "--prefix", prefix])
            .env("PLEXMCP_KEY", key)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("script stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("script stderr file"))
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {} SDK client: {e}", self.name()));
        let mut child = ChildGuard::new(child);
        // A child still running when the guard drops is killed with its group.
        let status = tokio::task::spawn_blocking(move || child.wait_timeout(SCRIPT_LIMIT))
            .await
            .expect("join the SDK client");
        let out = std::fs::read_to_string(&stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&stderr).unwrap_or_default();
        let status =
            status.unwrap_or_else(|| panic!("the {} SDK client hung; stderr:\n{err}", self.name()));
        let line = out.lines().last().unwrap_or_default();
        let summary: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "the {} SDK client printed no summary ({e}); stdout:\n{out}\nstderr:\n{err}",
                self.name()
            )
        });
        assert!(
            status.success() && summary.get("error").is_none(),
            "the {} SDK client failed ({status}): {}\nstderr:\n{err}",
            self.name(),
            summary["error"]
                .as_str()
                .unwrap_or("no error in the summary"),
        );
        summary
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
        .collect()
}

fn text<'a>(summary: &'a Value, pointer: &str) -> &'a str {
    summary
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {summary:#}"))
}

/// What every SDK must have seen of server-everything through `/mcp/{id}`.
/// How an endpoint shows the upstream: `/mcp/{id}` as it is, `/mcp`
/// under the MCP id.
#[derive(Clone, Copy)]
struct View {
    /// Before every tool name (`everything__` on `/mcp`).
    prefix: &'static str,
    server: &'static str,
    /// Before every resource URI (`plexmcp://everything/` on `/mcp`).
    uri_prefix: &'static str,
}

const AS_IT_IS: View = View {
    prefix: "",
    server: "mcp-servers/everything",
    uri_prefix: "",
};

const AGGREGATED: View = View {
    prefix: "everything__",
    server: "plexmcp",
    uri_prefix: "plexmcp://everything/",
};

fn assert_saw_the_upstream(sdk: Sdk, summary: &Value) {
    assert_saw(sdk, summary, AS_IT_IS);
}

fn assert_saw(sdk: Sdk, summary: &Value, view: View) {
    let name = sdk.name();
    let protocol = text(summary, "/protocol");
    let stateless = protocol == STATELESS_REVISION;
    assert!(
        stateless || HANDSHAKE_REVISIONS.contains(&protocol),
        "{summary:#}"
    );
    assert_eq!(text(summary, "/server"), view.server);

    // The upstream's own names, the conditional ones (registered because
    // this client declared sampling and elicitation) included.
    let tools = strings(&summary["tools"]);
    let tools: Vec<&str> = tools
        .iter()
        .map(|t| {
            t.strip_prefix(view.prefix)
                .unwrap_or_else(|| panic!("{t} lacks {:?}", view.prefix))
        })
        .collect();
    for tool in [
        "echo",
        "get-sum",
        "trigger-sampling-request",
        "trigger-elicitation-request",
        "trigger-long-running-operation",
        "toggle-simulated-logging",
    ] {
        assert!(tools.contains(&tool), "{tool} missing from {tools:?}");
    }
    assert!(!tools.iter().any(|t| t.contains("__")), "{tools:?}");

    let lowercase = name.to_lowercase();
    assert_eq!(
        text(summary, "/echo"),
        format!("Echo: hello from {lowercase}")
    );

    // The document as the upstream has it on disk, byte for byte.
    let entry = support::server_everything();
    let doc = entry.parent().unwrap().join("docs/architecture.md");
    let on_disk = std::fs::read_to_string(&doc).expect("server-everything's architecture.md");
    assert_eq!(
        text(summary, "/resource/uri"),
        format!(
            "{}demo://resource/static/document/architecture.md",
            view.uri_prefix
        )
    );
    assert_eq!(text(summary, "/resource/text"), on_disk);

    assert_eq!(text(summary, "/prompt"), "What's weather in Lyon?");

    // The server's sampling request reached this client, and what it
    // answered came back in the tool's result.
    assert_eq!(
        strings(&summary["sampling"]["asked"]),
        ["Resource trigger-sampling-request context: name a colour"]
    );
    let sampled = text(summary, "/sampling/result");
    assert!(
        sampled.contains(&format!("\"text\": \"sampled by the {name} SDK\"")),
        "{sampled}"
    );
    assert_eq!(
        strings(&summary["elicitation"]["asked"]),
        ["Please provide inputs for the following fields:"]
    );
    let elicited = text(summary, "/elicitation/result");
    assert!(
        elicited.contains(&format!("- Name: Ada from the {name} SDK")),
        "{elicited}"
    );

    // Progress with the client's own token, in order, before the result
    // (the last step may race the result, so not every step is required).
    let steps = summary["progress"]["steps"].as_array().expect("steps");
    assert!(!steps.is_empty(), "no progress: {summary:#}");
    let values: Vec<f64> = steps
        .iter()
        .map(|s| {
            assert_eq!(s["total"].as_f64(), Some(4.0), "{s}");
            s["progress"].as_f64().expect("progress value")
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]) && values.iter().all(|v| (1.0..=4.0).contains(v)),
        "{values:?}"
    );
    assert_eq!(
        text(summary, "/progress/result"),
        "Long running operation completed. Duration: 2 seconds, Steps: 4."
    );

    if stateless {
        // No session to keep a level in: the client is told how 2026-07-28
        // does it (and the simulated logs, sent between requests, have no
        // stream to travel on in that revision).
        assert!(
            text(summary, "/set_level").contains("logLevel in each request's _meta"),
            "{summary:#}"
        );
    } else {
        assert_saw_a_log(summary);
    }

    // The cancelled call ended as the SDK ends a cancelled call, and the
    // session went on working.
    match sdk {
        Sdk::TypeScript => {
            assert_eq!(text(summary, "/cancel/ended"), "rejected", "{summary:#}");
            assert!(
                text(summary, "/cancel/error").contains("the user pressed stop"),
                "{summary:#}"
            );
        }
        Sdk::Python(_) => assert_eq!(text(summary, "/cancel/ended"), "cancelled"),
    }
    assert_eq!(text(summary, "/cancel/after"), "Echo: after the cancel");
}

fn assert_saw_a_log(summary: &Value) {
    let log = text(summary, "/log/data");
    assert!(
        [
            "Debug",
            "Info",
            "Notice",
            "Warning",
            "Error",
            "Critical",
            "Alert",
            "Emergency"
        ]
        .iter()
        .any(|level| log.starts_with(level)),
        "{log}"
    );
}

/// A gateway in front of server-everything over stdio, and a key for it.
async fn everything_behind_plexmcp() -> (Env, Server, String) {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("sdk-client", &[]);
    let server = Server::start(&env).await;
    (env, server, key)
}

#[tokio::test]
async fn the_typescript_sdk_gets_the_upstream_as_it_is() {
    let (env, server, key) = everything_behind_plexmcp().await;
    let url = format!("{}/mcp/everything", server.base);
    let summary = Sdk::TypeScript.run(&env, &url, &key, "").await;
    assert_eq!(
        text(&summary, "/sdk"),
        format!("typescript@{}", support::install::TS_SDK_VERSION)
    );
    assert_eq!(text(&summary, "/protocol"), "2025-11-25");
    assert_eq!(summary["session"], true, "{summary:#}");
    assert_saw_the_upstream(Sdk::TypeScript, &summary);
}

#[tokio::test]
async fn the_python_sdk_gets_the_upstream_as_it_is() {
    let (env, server, key) = everything_behind_plexmcp().await;
    let url = format!("{}/mcp/everything", server.base);
    let summary = Sdk::Python("legacy").run(&env, &url, &key, "").await;
    assert_eq!(
        text(&summary, "/sdk"),
        format!("python@{}", support::install::PY_SDK_VERSION)
    );
    assert_eq!(text(&summary, "/protocol"), "2025-11-25");
    assert_saw_the_upstream(Sdk::Python("legacy"), &summary);
    // Nothing the gateway did surprised the SDK (it once logged the 202
    // that answered its DELETE as a failed termination).
    assert_eq!(summary["warnings"], Value::Array(vec![]), "{summary:#}");
}

/// The Python SDK's default mode probes `server/discover` at 2026-07-28
/// first and, answered, speaks that stateless revision: sampling and
/// elicitation arrive as input requests of the tool's answer, progress on
/// the call's own stream, all bridged to the upstream's session.
#[tokio::test]
async fn the_python_sdk_in_auto_mode_speaks_the_stateless_revision() {
    let (env, server, key) = everything_behind_plexmcp().await;
    let url = format!("{}/mcp/everything", server.base);
    let summary = Sdk::Python("auto").run(&env, &url, &key, "").await;
    assert_eq!(text(&summary, "/mode"), "auto");
    assert_eq!(text(&summary, "/protocol"), STATELESS_REVISION);
    assert_saw_the_upstream(Sdk::Python("auto"), &summary);
    assert_eq!(summary["warnings"], Value::Array(vec![]), "{summary:#}");
}

#[tokio::test]
async fn the_sdks_get_an_http_upstream_as_it_is_too() {
    let upstream = HttpEverything::start();
    let env = Env::new();
    env.cli_ok(&["mcps", "add", "remote", "--url", &upstream.url()]);
    let (_, key) = env.create_key("sdk-client", &[]);
    let server = Server::start(&env).await;
    let url = format!("{}/mcp/remote", server.base);
    for sdk in [Sdk::TypeScript, Sdk::Python("legacy"), Sdk::Python("auto")] {
        let summary = sdk.run(&env, &url, &key, "").await;
        assert_saw_the_upstream(sdk, &summary);
        if text(&summary, "/protocol") != STATELESS_REVISION {
            // Over HTTP the upstream has a session of its own, and its log
            // messages name it: they came through the gateway's session.
            assert!(
                text(&summary, "/log/data").contains("SessionId"),
                "{summary:#}"
            );
        }
    }
}

#[tokio::test]
async fn the_sdks_get_every_mcp_behind_the_aggregate_endpoint() {
    let (env, server, key) = everything_behind_plexmcp().await;
    let url = format!("{}/mcp", server.base);
    for sdk in [Sdk::TypeScript, Sdk::Python("legacy"), Sdk::Python("auto")] {
        let summary = sdk.run(&env, &url, &key, "everything__").await;
        assert_saw(sdk, &summary, AGGREGATED);
        if let Sdk::Python("auto") = sdk {
            // No session on /mcp either: each request bridged on its own.
            assert_eq!(text(&summary, "/protocol"), STATELESS_REVISION);
        }
    }
}
