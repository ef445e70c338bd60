//! Rotation with a hand-over and expiry warnings, end to end: `keys rotate
//! --grace|--revoke-when-idle` against a running `plexmcp serve`, the links
//! between old and new key, the old key's last-hour clients, an expired
//! key's fresh term, and `keys list --expiring`.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use support::{Env, Server};

fn at(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {value}"))
}

fn rfc3339_in(secs: i64) -> String {
    (Utc::now() + chrono::TimeDelta::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Polls `check` every 100 ms for up to `within`; panics with `what` if it never holds.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn audit_details(env: &Env, action: &str) -> Vec<String> {
    env.json(["audit", "list", "--json"])
        .as_array()
        .expect("audit list --json is an array")
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_key_rotated_with_a_two_second_grace_works_then_stops_by_itself_while_the_server_runs() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (old_id, old) = env.create_key("deploy", &["--expires", "90d"]);
    let server = Server::start(&env).await;
    let warm = server.echo(&old, "everything", "before").await;
    assert_eq!(warm.status, StatusCode::OK, "{:#}", warm.body);

    let rotated = env.json(["keys", "rotate", &old_id, "--grace", "2s", "--json"]);
    let new = rotated["key"].as_str().expect("the new key, shown once");
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    // The links, both ways.
    assert_eq!(rotated["replaces"], format!("pmcp_{old_id}"), "{rotated:#}");
    let old_shown = env.show(&old_id);
    assert_eq!(
        old_shown["replaced_by"],
        format!("pmcp_{new_id}"),
        "{old_shown:#}"
    );
    // The grace brought the old key's expiry forward to its end.
    let grace_end = at(&old_shown["expires_at"]);
    assert!(
        grace_end <= Utc::now() + chrono::TimeDelta::seconds(3),
        "{old_shown:#}"
    );
    // The new key has the old one's term, counted from now.
    let term = at(&rotated["expires_at"]) - at(&rotated["created_at"]);
    assert_eq!(term, chrono::TimeDelta::days(90), "{rotated:#}");

    // Both work during the grace…
    let during = server.echo(&old, "everything", "during").await;
    assert_eq!(during.status, StatusCode::OK, "{:#}", during.body);
    // …then the old one stops by itself; nothing else is done to it.
    eventually(Duration::from_secs(10), "the old key stops", || async {
        server.echo(&old, "everything", "after").await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    let refused = server.echo(&old, "everything", "after").await;
    refused.assert_invalid_key("expired");
    let fresh = server.echo(new, "everything", "new").await;
    assert_eq!(fresh.status, StatusCode::OK, "{:#}", fresh.body);

    // Still listed, as expired, and still linked.
    let listed = env.json(["keys", "list", "--json"]);
    let old_listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == old_id.as_str())
        .expect("the old key stays listed");
    assert_eq!(old_listed["status"], "expired", "{old_listed:#}");
    assert_eq!(old_listed["replaced_by"], format!("pmcp_{new_id}"));
    let shown = env.ok(["keys", "show", &new_id]);
    assert!(
        shown.contains(&format!("Replaces     pmcp_{old_id}")),
        "{shown}"
    );
    let shown = env.ok(["keys", "show", &old_id]);
    assert!(
        shown.contains(&format!("Replaced by  pmcp_{new_id}")),
        "{shown}"
    );

    let rotations = audit_details(&env, "key.rotated");
    assert_eq!(rotations.len(), 1, "{rotations:?}");
    assert!(
        rotations[0].starts_with(&format!("replaced by pmcp_{new_id}; grace 2s: expires: ")),
        "{rotations:?}"
    );
}

#[tokio::test]
async fn during_a_grace_the_old_key_shows_the_clients_that_still_use_it() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (old_id, old) = env.create_key("deploy", &[]);
    let server = Server::start(&env).await;
    let text = env.ok(["keys", "rotate", &old_id, "--grace", "3h"]);
    assert!(
        text.contains("keeps working until ") && text.contains("(in 3 h), then expires"),
        "{text}"
    );
    let shown = env.ok(["keys", "show", &old_id]);
    assert!(
        shown.contains("Used by (1h) no client in the last hour"),
        "{shown}"
    );
    let used = server.echo(&old, "everything", "straggler").await;
    assert_eq!(used.status, StatusCode::OK, "{:#}", used.body);
    // Usage is written behind the requests: the address shows once it lands.
    eventually(
        Duration::from_secs(10),
        "127.0.0.1 in keys show",
        || async {
            env.ok(["keys", "show", &old_id])
                .contains("Used by (1h) 127.0.0.1 (just now)")
        },
    )
    .await;
}

#[tokio::test]
async fn revoke_when_idle_ends_the_old_key_once_unused_that_long() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (old_id, old) = env.create_key("deploy", &[]);
    let server = Server::start(&env).await;
    let text = env.ok([
        "keys",
        "rotate",
        &old_id,
        "--grace",
        "1h",
        "--revoke-when-idle",
        "2s",
    ]);
    assert!(
        text.contains("sooner once unused for less than a minute"),
        "{text}"
    );
    assert_eq!(env.show(&old_id)["revoke_when_idle_secs"], 2);
    // In use, it works; each request starts its idle clock again.
    let used = server.echo(&old, "everything", "still here").await;
    assert_eq!(used.status, StatusCode::OK, "{:#}", used.body);
    // Left alone (the status is read, not the key used), it ends by itself.
    eventually(Duration::from_secs(10), "the idle old key ends", || async {
        env.show(&old_id)["status"] == "expired"
    })
    .await;
    server
        .echo(&old, "everything", "late")
        .await
        .assert_invalid_key("expired");
    let shown = env.show(&old_id);
    assert_eq!(shown["status"], "expired", "{shown:#}");
    let said = env.ok(["keys", "show", &old_id]);
    assert!(said.contains("(ended early: unused)"), "{said}");
    assert!(
        said.contains("Idle limit   less than a minute unused (ended"),
        "{said}"
    );
}

#[test]
fn rotating_an_expired_key_gives_a_full_fresh_term_and_promises_nothing_of_the_old_one() {
    let env = Env::new();
    let (old_id, _) = env.create_key("stale", &["--expires", &rfc3339_in(3)]);
    let old = env.show(&old_id);
    let term = at(&old["expires_at"]) - at(&old["created_at"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.show(&old_id)["status"] != "expired" {
        assert!(
            std::time::Instant::now() < deadline,
            "the key never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A grace or idle limit has nothing to keep working: refused, one line.
    let refused = env.fail(1, ["keys", "rotate", &old_id, "--grace", "1h"]);
    assert!(refused.contains("has expired"), "{refused}");
    let text = env.ok(["keys", "rotate", &old_id]);
    assert!(text.contains("had already expired"), "{text}");
    assert!(!text.contains("keeps working"), "{text}");
    let new = env
        .json(["keys", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["replaces"] == format!("pmcp_{old_id}").as_str())
        .cloned()
        .expect("the new key");
    assert_eq!(new["status"], "active", "{new:#}");
    let fresh = at(&new["expires_at"]) - at(&new["created_at"]);
    assert_eq!(
        fresh, term,
        "a full term, not the old key's remaining seconds"
    );
}

#[test]
fn keys_list_expiring_shows_only_working_keys_that_end_within_the_span() {
    let env = Env::new();
    let (soon, _) = env.create_key("soon", &["--expires", &rfc3339_in(3 * 3600 + 30)]);
    let (_, _) = env.create_key("later", &["--expires", "30d"]);
    let (_, _) = env.create_key("forever", &["--expires", "never"]);
    let (gone, _) = env.create_key("gone", &["--expires", "1d"]);
    env.ok(["keys", "revoke", &gone, "--yes"]);

    let listed = env.json(["keys", "list", "--expiring", "7d", "--json"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["id"].as_str())
        .collect();
    assert_eq!(ids, [soon.as_str()], "{listed:#}");
    let shown = env.ok(["keys", "show", &soon]);
    assert!(
        shown.contains("UTC (in 3 h)"),
        "hours, not 'in 0 days': {shown}"
    );
    let none = env.ok(["keys", "list", "--expiring", "1h"]);
    assert!(
        none.contains("No active key in organization 'default' expires within that time."),
        "{none}"
    );
    let bad = env.fail(2, ["keys", "list", "--expiring", "soon"]);
    assert_eq!(bad.lines().count(), 1, "{bad}");
}
