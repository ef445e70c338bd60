//! `GET /metrics`, black-box: `plexmcp serve` with `metrics.listen` in its
//! configuration file, a few requests on the API, then a scrape of the
//! metrics listener, read as Prometheus text. Also: the API's listener
//! never serves `/metrics`, and without the setting nothing listens there.

mod support;

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;

use serde_json::json;
use support::mcp_session::connect;
use support::{Env, Server, free_port};

/// A configuration file in `env`'s folder with `text`; returns its path.
fn write_config(env: &Env, text: &str) -> PathBuf {
    let path = env.dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A Prometheus text exposition, checked line by line: every sample's
/// value keyed by `name{labels}` exactly as printed.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let kind = words.next().unwrap();
            let name = words.next().unwrap_or_default();
            assert!(
                matches!(kind, "HELP" | "TYPE") && is_metric_name(name),
                "bad comment line: {line:?}"
            );
            if kind == "TYPE" {
                let ty = words.next().unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram"].contains(&ty),
                    "bad type: {line:?}"
                );
                typed.push(name.to_string());
            }
            continue;
        }
        assert!(!line.is_empty(), "an empty line in:\n{text}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value is not a number: {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(is_metric_name(name), "bad metric name: {line:?}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels: {line:?}"));
            for pair in inner.split(',') {
                let (key, quoted) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label: {line:?}"));
                assert!(is_metric_name(key), "bad label name: {line:?}");
                assert!(
                    quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                    "unquoted label value: {line:?}"
                );
            }
        }
        assert!(
            typed.iter().any(|t| name.starts_with(t.as_str())),
            "sample before its TYPE line: {line:?}"
        );
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "series twice: {line:?}"
        );
    }
    samples
}

fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

async fn scrape(client: &reqwest::Client, url: &str) -> HashMap<String, f64> {
    let response = client.get(url).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse_exposition(&response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_requests_auth_failures_and_usage() {
    let env = Env::new();
    env.add_everything_stdio("ev");
    env.add_everything_stdio("other");
    let (_, ev_key) = env.create_key("ev only", &["--mcp", "ev"]);
    let port = free_port();
    let config = write_config(&env, &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    let server =
        Server::start_with_vars(&env, &[("PLEXMCP_CONFIG", config.to_str().unwrap())]).await;
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");

    let before = scrape(&server.client, &metrics_url).await;
    assert_eq!(
        sample(&before, "plexmcp_auth_failures_total{reason=\"missing\"}"),
        0.0
    );

    let keyless = json!({"mcp_id": "ev", "tool": "echo", "arguments": {"message": "hi"}});
    assert_eq!(server.call(None, &keyless).await.status, 401);
    let bad_key = server.call(Some("plexmcp_not_a_key"), &keyless).await;
    assert_eq!(bad_key.status, 401);
    assert_eq!(server.echo(&ev_key, "other", "no").await.status, 403);
    let ok = server.echo(&ev_key, "ev", "hello").await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let rpc = server
        .call(
            Some(&ev_key),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    assert_eq!(rpc.status, 200, "{:?}", rpc.body);

    let after = scrape(&server.client, &metrics_url).await;
    let rest = |status: u16| {
        format!("plexmcp_requests_total{{endpoint=\"rest\",method=\"POST\",status=\"{status}\"}}")
    };
    assert_eq!(sample(&after, &rest(401)), 2.0);
    assert_eq!(sample(&after, &rest(403)), 1.0);
    assert_eq!(sample(&after, &rest(200)), 1.0);
    assert_eq!(
        sample(
            &after,
            "plexmcp_requests_total{endpoint=\"jsonrpc\",method=\"POST\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&after, "plexmcp_auth_failures_total{reason=\"missing\"}"),
        1.0
    );
    let refused: f64 = ["malformed", "not_found"]
        .iter()
        .map(|r| {
            sample(
                &after,
                &format!("plexmcp_auth_failures_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(refused, 1.0, "the made-up key is refused once");
    assert_eq!(sample(&after, "plexmcp_rate_limited_total"), 0.0);
    assert_eq!(
        sample(
            &after,
            "plexmcp_request_duration_seconds_count{endpoint=\"rest\"}"
        ),
        4.0
    );
    assert_eq!(
        sample(
            &after,
            "plexmcp_request_duration_seconds_bucket{endpoint=\"rest\",le=\"+Inf\"}"
        ),
        4.0
    );
    let fastest = "plexmcp_request_duration_seconds_bucket{endpoint=\"rest\",le=\"0.001\"}";
    assert!(
        sample(&after, fastest) <= 4.0,
        "buckets are cumulative, up to the count"
    );
    // Upstream time apart from the gateway's own: one REST request called
    // the upstream; every POST /mcp request has an overhead, and the two
    // add up to the request's time.
    let series =
        |name: &str, endpoint: &str| sample(&after, &format!("{name}{{endpoint=\"{endpoint}\"}}"));
    assert_eq!(
        series("plexmcp_upstream_call_duration_seconds_count", "rest"),
        1.0
    );
    assert_eq!(
        series("plexmcp_upstream_call_duration_seconds_count", "jsonrpc"),
        0.0,
        "tools/list is answered from the pool's list"
    );
    assert_eq!(
        series("plexmcp_gateway_overhead_seconds_count", "rest"),
        4.0
    );
    assert_eq!(
        series("plexmcp_gateway_overhead_seconds_count", "jsonrpc"),
        1.0
    );
    let parts = series("plexmcp_upstream_call_duration_seconds_sum", "rest")
        + series("plexmcp_gateway_overhead_seconds_sum", "rest");
    let whole = series("plexmcp_request_duration_seconds_sum", "rest");
    assert!((parts - whole).abs() < 1e-5, "{parts} vs {whole}");
    assert!(series("plexmcp_upstream_call_duration_seconds_sum", "rest") > 0.0);
    // The upstream the call started is up, and has not been restarted.
    let up: Vec<(&String, &f64)> = after
        .iter()
        .filter(|(k, _)| k.starts_with("plexmcp_upstream_up{upstream=\"ev#"))
        .collect();
    assert_eq!(up.len(), 1, "{after:#?}");
    assert_eq!(*up[0].1, 1.0);
    let restarts = up[0]
        .0
        .replace("plexmcp_upstream_up", "plexmcp_upstream_restarts_total");
    assert_eq!(sample(&after, &restarts), 0.0);
    assert!(sample(&after, "plexmcp_database_size_bytes") > 0.0);
    assert_eq!(sample(&after, "plexmcp_mcp_sessions_open"), 0.0);

    // A session on /mcp/ev is counted while it is open.
    let (session, _) = connect(&server, "ev", &ev_key, "metrics").await;
    let during = scrape(&server.client, &metrics_url).await;
    assert_eq!(sample(&during, "plexmcp_mcp_sessions_open"), 1.0);
    session.cancel().await.expect("the session ends");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sample(
        &scrape(&server.client, &metrics_url).await,
        "plexmcp_mcp_sessions_open",
    ) != 0.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the ended session is still counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(sample(&after, "plexmcp_upstream_connects_total"), 1.0);
    assert_eq!(
        sample(&after, "plexmcp_upstream_connect_failures_total"),
        0.0
    );
    assert_eq!(sample(&after, "plexmcp_usage_events_dropped_total"), 0.0);
    assert_eq!(sample(&after, "plexmcp_usage_failed_batches_total"), 0.0);
    // Every request that reached a key is a usage event: the bad key is
    // unknown, so four are written (401 keyless has no key either: three).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = scrape(&server.client, &metrics_url).await;
        if sample(&now, "plexmcp_usage_events_written_total") >= 3.0 {
            assert!(sample(&now, "plexmcp_usage_batches_total") >= 1.0);
            // By MCP: the calls that went through (the REST call and the
            // session's requests), and the one refused, under "other".
            assert!(
                sample(
                    &now,
                    "plexmcp_mcp_requests_total{mcp=\"ev\",outcome=\"ok\"}"
                ) >= 1.0
            );
            assert_eq!(
                sample(
                    &now,
                    "plexmcp_mcp_requests_total{mcp=\"other\",outcome=\"unauthorized_mcp\"}"
                ),
                1.0
            );
            assert_eq!(sample(&now, "plexmcp_usage_queue_depth"), 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "usage events never written: {now:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Keep failing until the limiter answers 429: each one is counted.
    let mut limited = 0;
    for _ in 0..30 {
        if server.call(None, &keyless).await.status == 429 {
            limited += 1;
        }
    }
    assert!(limited > 0, "the limiter never answered 429");
    let limiting = scrape(&server.client, &metrics_url).await;
    assert_eq!(
        sample(&limiting, "plexmcp_rate_limited_total"),
        f64::from(limited)
    );
    assert_eq!(sample(&limiting, &rest(429)), f64::from(limited));

    // Not on the API's listener: its ordinary 404.
    let public = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let body: serde_json::Value = public.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert!(server.terminate().success());
}

#[tokio::test]
async fn without_metrics_listen_nothing_listens() {
    let env = Env::new();
    let port = free_port();
    // The same file as above without the setting: metrics stay off.
    let config = write_config(&env, "[metrics]\n");
    let server =
        Server::start_with_vars(&env, &[("PLEXMCP_CONFIG", config.to_str().unwrap())]).await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on the metrics port"
    );
    let logs = server.logs();
    assert!(!logs.contains("/metrics"), "{logs}");
    assert!(server.terminate().success());
}
