//! Raw usage events, black-box: retention, export and `org show`'s
//! storage lines. Events are written through the store with old
//! timestamps, then `plexmcp serve` (and the console, in tmux) runs with a
//! short `usage.retention_days`: the usage writer prunes what is older, in
//! batches, while every statistic people see (`keys list`, `keys show`,
//! the console's detail pane drawn from the store) stays the same, since
//! it comes from the hourly roll-ups. `org show` moves its oldest raw
//! event and `/metrics` counts what was pruned. `usage export` streams
//! what is kept as NDJSON or CSV.

mod support;
#[path = "tui_support/mod.rs"]
mod tui_support;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, TimeDelta, Utc};
use plexmcp::domain::Timestamp;
use plexmcp::store::{Store, UsageEvent};
use plexmcp::tui::action::{Action, Detail, Snapshot};
use plexmcp::tui::app::App;
use serde_json::Value;
use support::tmux::{Tmux, sh_quote};
use support::{Env, Server, expect_fail, expect_usage, free_port};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Old raw events beyond one pruning batch (1,000), so the writer has to
/// work through a backlog.
const OLD_EVENTS: usize = 2_500;

fn event(key_row: i64, at: Timestamp, tool: &str, status: u16, ip: Option<&str>) -> UsageEvent {
    UsageEvent {
        key_row,
        mcp_slug: Some("ev".into()),
        tool: Some(tool.into()),
        outcome: if status == 200 {
            "ok"
        } else {
            "upstream_error"
        },
        http_status: status,
        latency_us: 1_500,
        client_ip: ip.map(str::to_owned),
        user_agent: Some("probe/1".into()),
        at_ms: at.timestamp_millis(),
    }
}

/// An MCP `ev` (never started: usage only has to name a live MCP) and a key.
fn key_with_mcp(env: &Env, name: &str) -> (String, i64) {
    if !env.ok(["mcps", "list"]).contains("ev") {
        env.ok(["mcps", "add", "ev", "--stdio", "true"]);
    }
    let (id, _) = env.create_key(name, &[]);
    let store = Store::open(&env.db).unwrap();
    let row = store.key_by_lookup(1, &id).unwrap().unwrap().row_id;
    (id, row)
}

fn record(env: &Env, events: &[UsageEvent]) {
    Store::open(&env.db).unwrap().record_usage(events).unwrap();
}

/// The times of the seeded events that a 5-day retention keeps.
struct Seeded {
    key: String,
    row: i64,
    /// The oldest event of all (pruned).
    oldest: Timestamp,
    /// The oldest event a 5-day retention keeps.
    oldest_kept: Timestamp,
}

/// 2,500 events 10 days old and one 200 days old (past a 5-day retention,
/// but inside the 30-day and lifetime statistics), three 3 days old and
/// two an hour old (kept).
fn seed(env: &Env) -> Seeded {
    let (key, row) = key_with_mcp(env, "retained");
    let now = Utc::now();
    let oldest = now - TimeDelta::days(200);
    let oldest_kept = now - TimeDelta::days(3);
    let mut events = vec![event(row, oldest, "old", 502, Some("10.0.0.9"))];
    events.extend((0..OLD_EVENTS).map(|i| {
        let at = now - TimeDelta::days(10) + TimeDelta::seconds(i as i64);
        event(row, at, "echo", 200, Some("10.0.0.1"))
    }));
    for i in 0..3 {
        let at = oldest_kept + TimeDelta::minutes(i);
        events.push(event(row, at, "echo", 200, Some("10.0.0.2")));
    }
    let hour_ago = now - TimeDelta::hours(1);
    events.push(event(row, hour_ago, "get-sum", 200, Some("10.0.0.3")));
    events.push(event(row, hour_ago, "get-sum", 502, Some("10.0.0.3")));
    record(env, &events);
    Seeded {
        key,
        row,
        oldest,
        oldest_kept,
    }
}

fn rfc3339(at: Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The console's detail pane for the key, as the console draws it from
/// what the store answers at `now`: the list loaded, the key's usage
/// loaded, the screen drawn. Returns the rows from "Usage" up to
/// "Activity" (the statistics; Activity lists raw events, which go).
fn console_statistics(db: &Path, key_row: i64, now: Timestamp) -> String {
    let store = Store::open(db).unwrap();
    let org = store.org("default").unwrap();
    let snapshot = Snapshot {
        org_slug: org.slug.clone(),
        plan: org.plan,
        active_keys: store.active_key_count(org.row_id, now).unwrap(),
        orgs: vec![tui_support::org_choice(&org.slug, org.plan, 0)],
        keys: store.list_keys(org.row_id).unwrap(),
        mcps: store.list_mcps(org.row_id).unwrap(),
        pins: Default::default(),
    };
    let mut app = App::new("default", now, tui_support::running());
    app.update(tui_support::layout(10));
    app.update(Action::Loaded(Box::new(snapshot)));
    app.update(Action::DetailLoaded(Box::new(Detail {
        key_row,
        usage: store.key_usage(key_row, now, 13).unwrap(),
        audit: Vec::new(),
        more_requests: false,
        more_events: false,
        rate: None,
    })));
    let screen = tui_support::screen_text(&mut app, 120, 40);
    let rows: Vec<&str> = screen.lines().collect();
    let start = rows
        .iter()
        .position(|r| r.contains("Usage"))
        .unwrap_or_else(|| panic!("no Usage in the detail:\n{screen}"));
    let end = rows
        .iter()
        .position(|r| r.contains("Activity"))
        .unwrap_or(rows.len());
    rows[start..end].join("\n")
}

/// One sample of a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(url: &str) -> String {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    client
        .get(url)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap()
}

/// Waits for the metrics at `url` to say `series` reached `value`.
async fn until_sample(url: &str, series: &str, value: f64) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(text) = tokio::time::timeout(Duration::from_secs(2), scrape(url)).await
            && sample(&text, series) == Some(value)
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {value} at {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn metrics_config(env: &Env, port: u16) -> String {
    let path = env.dir.path().join("config.toml");
    std::fs::write(&path, format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn serve_prunes_raw_events_past_the_retention_and_every_statistic_stays() {
    let env = Env::new();
    let seeded = seed(&env);
    let total = OLD_EVENTS + 6;
    let now = Utc::now();
    assert_eq!(env.usage_event_count(), total as i64);

    let listed = env.key_json(&seeded.key);
    let shown = env.json(["keys", "show", &seeded.key, "--json"]);
    assert_eq!(listed["request_count"], total);
    let console = console_statistics(&env.db, seeded.row, now);
    assert!(
        console.contains(&format!("{total} total · 2 24h · 5 7d · {} 30d", total - 1)),
        "{console}"
    );
    let org = env.json(["org", "show", "--json"]);
    assert_eq!(org["usage"]["oldest_event"], rfc3339(seeded.oldest));

    let port = free_port();
    let config = metrics_config(&env, port);
    let server = Server::start_with_vars(
        &env,
        &[
            ("PLEXMCP_CONFIG", &config),
            ("PLEXMCP_USAGE_RETENTION_DAYS", "5"),
        ],
    )
    .await;
    let pruned = (OLD_EVENTS + 1) as f64;
    let url = format!("http://127.0.0.1:{port}/metrics");
    until_sample(&url, "plexmcp_usage_events_pruned_total", pruned).await;
    let deadline = Instant::now() + TIMEOUT;
    while !server
        .logs()
        .contains("pruned 2501 raw usage events older than 5 days")
    {
        assert!(
            Instant::now() < deadline,
            "no pruning line:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.usage_event_count(), 5, "only the last 5 days are kept");

    // Everything people read is unchanged; only raw detail is gone.
    assert_eq!(env.key_json(&seeded.key), listed);
    assert_eq!(env.json(["keys", "show", &seeded.key, "--json"]), shown);
    assert_eq!(console_statistics(&env.db, seeded.row, now), console);
    let org = env.json(["org", "show", "--json"]);
    assert_eq!(org["usage"]["oldest_event"], rfc3339(seeded.oldest_kept));
    assert_eq!(
        org["usage"]["retention_days"], 90,
        "org show runs without the variable"
    );
    let exported = env.ok(["usage", "export"]);
    assert_eq!(exported.lines().count(), 5, "{exported}");
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_prunes_too_and_serves_metrics_on_metrics_listen() {
    let env = Env::new();
    seed(&env);
    let (listen, metrics) = (free_port(), free_port());
    let config = metrics_config(&env, metrics);
    let state = env.dir.path().join("state");
    let console = format!(
        "env -u PLEXMCP_DB -u PLEXMCP_ORG -u PLEXMCP_LISTEN -u PLEXMCP_LOG -u DISPLAY -u WAYLAND_DISPLAY \
         USER=tester XDG_STATE_HOME={state} XDG_CACHE_HOME={state} XDG_CONFIG_HOME={state} \
         PLEXMCP_CONFIG={config} PLEXMCP_USAGE_RETENTION_DAYS=5 \
         {bin} --db {db} --listen 127.0.0.1:{listen}",
        state = sh_quote(&state.to_string_lossy()),
        config = sh_quote(&config),
        bin = sh_quote(env!("CARGO_BIN_EXE_plexmcp")),
        db = sh_quote(&env.db.to_string_lossy()),
    );
    let tmux = Tmux::start_sized(&console, 120, 40);
    tmux.wait_for_text(&format!("serving 127.0.0.1:{listen}"));

    let url = format!("http://127.0.0.1:{metrics}/metrics");
    let text = until_sample(
        &url,
        "plexmcp_usage_events_pruned_total",
        (OLD_EVENTS + 1) as f64,
    )
    .await;
    assert_eq!(
        sample(&text, "plexmcp_mcp_sessions_open"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(env.usage_event_count(), 5);
    // The console's own detail still counts every request.
    tmux.wait_for_text(&format!("{} total", OLD_EVENTS + 6));

    // The API's listener does not serve metrics.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let public = client
        .get(format!("http://127.0.0.1:{listen}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    tmux.keys(&["q"]);
}

/// A minimal RFC 4180 reader: records of fields, quotes doubled inside
/// quoted fields, CRLF between records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF in:\n{text}");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => {
                assert!(c != '\n', "a bare LF outside quotes in:\n{text}");
                field.push(c);
            }
        }
    }
    assert!(field.is_empty() && record.is_empty(), "no CRLF at the end");
    records
}

const HOSTILE_TOOL: &str = "evil,\"tool\"\nsecond line";
const HOSTILE_AGENT: &str = " agent, \"quoted\" ";

/// Two keys: `a` with one request two days ago and one an hour ago (a
/// hostile tool name and user agent), `b` with one an hour ago.
fn export_fixture(env: &Env) -> (String, String) {
    let (a, a_row) = key_with_mcp(env, "alpha");
    let (b, b_row) = key_with_mcp(env, "beta");
    let now = Utc::now();
    let mut hostile = event(a_row, now - TimeDelta::hours(1), HOSTILE_TOOL, 502, None);
    hostile.user_agent = Some(HOSTILE_AGENT.into());
    record(
        env,
        &[
            event(
                a_row,
                now - TimeDelta::days(2),
                "echo",
                200,
                Some("10.0.0.1"),
            ),
            hostile,
            event(
                b_row,
                now - TimeDelta::minutes(30),
                "echo",
                200,
                Some("10.0.0.2"),
            ),
        ],
    );
    (a, b)
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn usage_export_streams_ndjson_oldest_first_filtered_by_key_and_time() {
    let env = Env::new();
    let (a, b) = export_fixture(&env);
    let all = ndjson(&env.ok(["usage", "export", "--format", "ndjson"]));
    assert_eq!(all.len(), 3);
    let mut fields: Vec<&str> = all[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "at",
            "client_ip",
            "http_status",
            "id",
            "key",
            "key_name",
            "latency_us",
            "mcp",
            "outcome",
            "tool",
            "user_agent"
        ]
    );
    let times: Vec<&str> = all.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted, "oldest first");
    assert_eq!(all[0]["key"], format!("pmcp_{a}"));
    assert_eq!(all[0]["key_name"], "alpha");
    assert_eq!(all[0]["mcp"], "ev");
    assert_eq!(all[0]["http_status"], 200);
    assert_eq!(all[0]["latency_us"], 1_500);
    assert_eq!(all[0]["client_ip"], "10.0.0.1");
    assert_eq!(all[1]["tool"], HOSTILE_TOOL);
    assert_eq!(all[1]["user_agent"], HOSTILE_AGENT);
    assert_eq!(all[1]["outcome"], "upstream_error");
    assert_eq!(all[1]["client_ip"], Value::Null);
    assert_eq!(all[2]["key"], format!("pmcp_{b}"));

    let only_a = ndjson(&env.ok(["usage", "export", "--key", &a]));
    assert_eq!(only_a.len(), 2);
    assert!(only_a.iter().all(|e| e["key"] == format!("pmcp_{a}")));
    let recent = ndjson(&env.ok(["usage", "export", "--since", "1d"]));
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0]["tool"], HOSTILE_TOOL);
    let both = ndjson(&env.ok([
        "usage",
        "export",
        "--key",
        &format!("pmcp_{b}"),
        "--since",
        "1d",
    ]));
    assert_eq!(both.len(), 1);
    assert_eq!(both[0]["key"], format!("pmcp_{b}"));
    // Another organization's export has none of them.
    env.ok(["org", "create", "other"]);
    assert_eq!(env.ok(["--org", "other", "usage", "export"]), "");
}

#[test]
fn usage_export_csv_has_a_header_and_quotes_hostile_values() {
    let env = Env::new();
    let (a, _) = export_fixture(&env);
    let text = env.ok(["usage", "export", "--format", "csv"]);
    let records = parse_csv(&text);
    assert_eq!(
        records[0],
        [
            "id",
            "at",
            "key",
            "key_name",
            "mcp",
            "tool",
            "outcome",
            "http_status",
            "latency_us",
            "client_ip",
            "user_agent"
        ]
    );
    assert_eq!(records.len(), 4, "{text}");
    assert!(records.iter().all(|r| r.len() == 11), "{records:?}");
    let hostile = &records[2];
    assert_eq!(hostile[2], format!("pmcp_{a}"));
    assert_eq!(hostile[5], HOSTILE_TOOL);
    assert_eq!(hostile[7], "502");
    assert_eq!(hostile[9], "", "no client address is an empty field");
    assert_eq!(hostile[10], HOSTILE_AGENT);
    // Same rows as the NDJSON export.
    let json = ndjson(&env.ok(["usage", "export"]));
    for (row, object) in records[1..].iter().zip(&json) {
        assert_eq!(row[0], object["id"].to_string());
        assert_eq!(row[1], object["at"].as_str().unwrap());
    }
    let filtered = parse_csv(&env.ok([
        "usage", "export", "--format", "csv", "--since", "1d", "--key", &a,
    ]));
    assert_eq!(
        filtered.len(),
        2,
        "header and the hostile row: {filtered:?}"
    );
}

#[test]
fn usage_export_refuses_bad_values_in_one_line() {
    let env = Env::new();
    export_fixture(&env);
    let err = expect_fail(env.run(["usage", "export", "--since", "soon"]), 2);
    assert!(err.contains("'soon'"), "{err}");
    let err = expect_fail(env.run(["usage", "export", "--key", "pmcp_ZZZZZZZZ"]), 1);
    assert!(
        err.contains("pmcp_ZZZZZZZZ") || err.contains("no key"),
        "{err}"
    );
    let err = expect_fail(env.run(["usage", "export", "--key", "not a key"]), 1);
    assert!(err.contains("not a key id or prefix"), "{err}");
    let err = expect_usage(env.run(["usage", "export", "--format", "xml"]));
    assert!(err.lines().next().unwrap().contains("xml"), "{err}");
    let err = expect_fail(
        env.run(["--usage-retention-days", "0", "usage", "export"]),
        2,
    );
    assert!(err.contains("from 1 to 36500"), "{err}");
}

#[test]
fn org_show_reports_the_database_size_and_the_oldest_raw_event() {
    let env = Env::new();
    let empty = env.json(["org", "show", "--json"]);
    assert_eq!(empty["usage"]["oldest_event"], Value::Null);
    assert_eq!(empty["usage"]["retention_days"], 90);
    assert_eq!(empty["database"]["path"], env.db.to_string_lossy().as_ref());
    let size = empty["database"]["size_bytes"].as_u64().unwrap();
    assert!(size > 0 && size.is_multiple_of(512), "whole pages: {size}");
    assert!(empty["database"]["free_bytes"].as_u64().unwrap() < size);
    let text = env.ok(["org", "show"]);
    assert!(
        text.contains("Raw usage     no events, kept 90 days (usage.retention_days)"),
        "{text}"
    );

    let (_, a_row) = key_with_mcp(&env, "alpha");
    let first = Utc::now() - TimeDelta::days(3);
    record(
        &env,
        &[
            event(a_row, first + TimeDelta::hours(2), "echo", 200, None),
            event(a_row, first, "echo", 200, None),
        ],
    );
    let shown = env.json(["--usage-retention-days", "30", "org", "show", "--json"]);
    assert_eq!(shown["usage"]["oldest_event"], rfc3339(first));
    assert_eq!(shown["usage"]["retention_days"], 30);
    let text = env.ok(["--usage-retention-days", "30", "org", "show"]);
    let db_line = text.lines().find(|l| l.starts_with("Database ")).unwrap();
    assert!(db_line.contains(&*env.db.to_string_lossy()), "{text}");
    assert!(db_line.contains("KiB") || db_line.contains("MiB"), "{text}");
    let human = first.format("%Y-%m-%d %H:%M UTC").to_string();
    assert!(
        text.contains(&format!("Raw usage     oldest event {human}, kept 30 days")),
        "{text}"
    );
    // Another organization's raw events are its own.
    env.ok(["org", "create", "other"]);
    let other = env.json(["--org", "other", "org", "show", "--json"]);
    assert_eq!(other["usage"]["oldest_event"], Value::Null);
}
