//! The audit trail from the outside: `plexmcp audit list|export|verify`
//! against a real database, tampered with the way an attacker with the
//! file would do it — plain SQL through another SQLite client.

mod support;

/// Undoes the schema version after the audit chain's, to stand in for an older database.
/// Newest first: each migration added later puts its own down script in front.
const SCHEMA_4_DOWN: &str = concat!(
    include_str!("../assets/migrations/0007_rotation_handover.down.sql"),
    include_str!("../assets/migrations/0006_tool_pins.down.sql"),
    include_str!("../assets/migrations/0005_tool_access.down.sql"),
    include_str!("../assets/migrations/0004_rate_limits.down.sql")
);

use std::io::Write;
use std::process::{Command, Stdio};

use rusqlite::Connection;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::*;

fn id_of(key: &Value) -> String {
    str_field(key, "id").to_string()
}

/// A database with a little of everything audited: keys created, edited,
/// rotated and revoked, an MCP added and removed, a plan change.
fn busy_env() -> (Env, String) {
    let env = Env::new();
    let key = id_of(&env.create_key_json("ci", &[]));
    env.ok(["keys", "edit", &key, "--name", "ci-2"]);
    env.ok(["mcps", "add", "gh", "--url", "https://mcp.example/mcp"]);
    env.ok(["keys", "edit", &key, "--mcp", "gh"]);
    env.ok(["keys", "rotate", &key]);
    env.ok(["keys", "revoke", &key, "--yes"]);
    env.ok(["mcps", "remove", "gh"]);
    env.ok(["org", "set-plan", "pro"]);
    (env, key)
}

/// Another SQLite client on the database, as an attacker would use.
fn outside(env: &Env) -> Connection {
    Connection::open(&env.db).expect("open the database with rusqlite")
}

fn audit_rows(env: &Env) -> i64 {
    outside(env)
        .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
        .expect("count audit rows")
}

fn verify_fails(env: &Env) -> String {
    env.fail(1, ["audit", "verify"])
}

// ------------------------------------------------------------- verify

#[test]
fn verify_passes_on_an_untouched_database_and_names_its_head() {
    let (env, _) = busy_env();
    let rows = audit_rows(&env);
    assert!(rows >= 9, "only {rows} audit rows");
    let out = env.ok(["audit", "verify"]);
    assert!(
        out.starts_with(&format!(
            "OK: {rows} audit events, the hash chain is intact."
        )),
        "{out}"
    );
    let report = env.json(["audit", "verify", "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], rows, "{report}");
    assert_eq!(report["head_id"], rows, "{report}");
    let head = str_field(&report, "head");
    assert!(out.contains(head), "{out}");
    let stored: String = outside(&env)
        .query_row(
            "SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(head, stored);
}

#[test]
fn verify_passes_on_a_new_empty_database() {
    let env = Env::new();
    assert_eq!(
        env.ok(["audit", "verify"]),
        "OK: the audit trail is empty.\n"
    );
}

#[test]
fn verify_catches_an_edited_row() {
    let (env, _) = busy_env();
    let changed = outside(&env)
        .execute(
            "UPDATE audit_events SET detail = 'access: all' WHERE id = 4",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let err = verify_fails(&env);
    assert!(
        err.contains("audit event 4 was changed after it was written"),
        "{err}"
    );
    assert!(err.contains("(3 events before it verified)"), "{err}");

    // Any column counts, the actor's address included.
    let (env, _) = busy_env();
    outside(&env)
        .execute(
            "UPDATE audit_events SET actor_addr = '198.51.100.1' WHERE id = 2",
            [],
        )
        .unwrap();
    assert!(verify_fails(&env).contains("audit event 2 was changed"));
}

#[test]
fn verify_catches_a_deleted_row() {
    let (env, _) = busy_env();
    outside(&env)
        .execute("DELETE FROM audit_events WHERE id = 3", [])
        .unwrap();
    let err = verify_fails(&env);
    assert!(
        err.contains("audit event 4 does not follow event 2") && err.contains("deleted"),
        "{err}"
    );

    // The very first one too.
    let (env, _) = busy_env();
    outside(&env)
        .execute("DELETE FROM audit_events WHERE id = 1", [])
        .unwrap();
    let err = verify_fails(&env);
    assert!(
        err.contains("audit event 2 is the first one but links to an earlier event"),
        "{err}"
    );
}

#[test]
fn verify_catches_a_reordered_row() {
    let (env, _) = busy_env();
    // Swap events 3 and 4 whole, hashes included.
    outside(&env)
        .execute_batch(
            "BEGIN;
             UPDATE audit_events SET id = -4 WHERE id = 4;
             UPDATE audit_events SET id = 4 WHERE id = 3;
             UPDATE audit_events SET id = 3 WHERE id = -4;
             COMMIT;",
        )
        .unwrap();
    let err = verify_fails(&env);
    assert!(err.contains("audit event 3 "), "{err}");
    assert!(err.contains("(2 events before it verified)"), "{err}");
}

#[test]
fn verify_catches_a_row_added_outside_plexmcp() {
    let (env, _) = busy_env();
    let row: i64 = {
        let conn = outside(&env);
        conn.execute(
            "INSERT INTO audit_events (org_id, at, actor, action, target_kind, target_id)
             VALUES (1, 0, 'mallory', 'key.created', 'key', 'FAKEFAKE')",
            [],
        )
        .unwrap();
        conn.last_insert_rowid()
    };
    let err = verify_fails(&env);
    assert!(
        err.contains(&format!(
            "audit event {row} has no hash: it was added outside plexmcp"
        )),
        "{err}"
    );
}

/// The hash as README "Audit trail" documents it, computed independently.
fn documented_hash(conn: &Connection, id: i64, prev: Option<&str>) -> String {
    // Every field as text (numbers in decimal), NULL kept as None.
    let mut fields: Vec<Option<String>> = conn
        .query_row(
            "SELECT CAST(id AS TEXT), CAST(org_id AS TEXT), CAST(at AS TEXT), actor, actor_addr,
                    action, target_kind, target_id, detail
             FROM audit_events WHERE id = ?1",
            [id],
            |r| (0..9).map(|i| r.get(i)).collect(),
        )
        .unwrap();
    fields.push(prev.map(str::to_owned));
    let mut h = Sha256::new();
    h.update(b"plexmcp-audit-v1");
    for field in fields {
        match field {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the chain does not prove on its own: someone with write access
/// can recompute every hash after an edit (the algorithm is public), or
/// drop the newest events. A head recorded elsewhere catches both.
#[test]
fn a_recomputed_chain_passes_alone_and_fails_against_a_recorded_head() {
    let (env, _) = busy_env();
    let recorded = env.json(["audit", "verify", "--json"]);
    let head = str_field(&recorded, "head").to_string();
    assert_eq!(
        env.json(["audit", "verify", "--head", &head, "--json"])["ok"],
        true
    );

    let conn = outside(&env);
    conn.execute(
        "UPDATE audit_events SET actor = 'someone-else' WHERE id = 2",
        [],
    )
    .unwrap();
    let ids: Vec<i64> = {
        let mut stmt = conn
            .prepare("SELECT id FROM audit_events ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let mut prev: Option<String> = None;
    for id in ids {
        let hash = documented_hash(&conn, id, prev.as_deref());
        conn.execute(
            "UPDATE audit_events SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
            rusqlite::params![prev, hash, id],
        )
        .unwrap();
        prev = Some(hash);
    }
    drop(conn);

    // The rewrite is self-consistent: the documented format is the real one.
    env.ok(["audit", "verify"]);
    let err = env.fail(1, ["audit", "verify", "--head", &head]);
    assert!(
        err.contains(&format!(
            "audit trail rewritten: the recorded head {head} is not in it"
        )),
        "{err}"
    );

    // Cutting off the newest events is caught the same way.
    let (env, _) = busy_env();
    let head = str_field(&env.json(["audit", "verify", "--json"]), "head").to_string();
    outside(&env)
        .execute(
            "DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)",
            [],
        )
        .unwrap();
    env.ok(["audit", "verify"]);
    env.fail(1, ["audit", "verify", "--head", &head]);
    // An older head is still found after new events were appended.
    let (env, _) = busy_env();
    let head = str_field(&env.json(["audit", "verify", "--json"]), "head").to_string();
    env.ok(["keys", "create", "--name", "later"]);
    let out = env.ok(["audit", "verify", "--head", &head.to_uppercase()]);
    assert!(out.contains("nothing up to it has changed"), "{out}");
    let usage = expect_usage(env.run(["audit", "verify", "--head", "abc"]));
    assert!(usage.contains("is not a head hash"), "{usage}");
}

#[test]
fn an_upgraded_database_chains_the_events_it_already_had() {
    let (env, _) = busy_env();
    let rows = audit_rows(&env);
    // Back to schema version 2, as an older plexmcp left it.
    outside(&env)
        .execute_batch(&format!(
            "{}
             ALTER TABLE audit_events DROP COLUMN hash;
             ALTER TABLE audit_events DROP COLUMN prev_hash;
             PRAGMA user_version = 2;",
            SCHEMA_4_DOWN
        ))
        .unwrap();
    let out = env.ok(["audit", "verify"]);
    assert!(
        out.starts_with(&format!("OK: {rows} audit events")),
        "{out}"
    );
    // And new events continue the same chain.
    env.ok(["org", "set-plan", "team"]);
    let out = env.ok(["audit", "verify"]);
    assert!(
        out.starts_with(&format!("OK: {} audit events", rows + 1)),
        "{out}"
    );
}

/// Several processes appending at once each link to the event committed
/// just before theirs: the head is read inside the writing transaction.
#[test]
fn concurrent_writers_keep_one_unbroken_chain() {
    let env = Env::new();
    env.ok(["org", "set-plan", "enterprise"]);
    let keys: Vec<String> = (0..4)
        .map(|i| id_of(&env.create_key_json(&format!("k{i}"), &[])))
        .collect();
    std::thread::scope(|s| {
        for key in &keys {
            let env = &env;
            s.spawn(move || {
                for round in 0..8 {
                    env.ok(["keys", "edit", key, "--description", &format!("r{round}")]);
                }
            });
        }
    });
    let report = env.json(["audit", "verify", "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], 1 + 4 + 4 * 8, "{report}");
}

// -------------------------------------------------------------- list

fn list(env: &Env, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "list", "--json"];
    args.extend_from_slice(extra);
    env.json(args)
        .as_array()
        .expect("audit list --json is an array")
        .clone()
}

#[test]
fn list_shows_who_what_when_and_old_to_new_values() {
    let env = Env::new();
    let key = id_of(&env.create_key_json("before", &["--description", "old notes"]));
    let run = run_cmd(
        env.cmd()
            .env("SSH_CONNECTION", "203.0.113.9 5555 10.0.0.1 22")
            .args([
                "keys",
                "edit",
                &key,
                "--name",
                "after",
                "--description",
                "new notes",
            ]),
    );
    expect_ok(run);
    let events = list(&env, &[]);
    assert_eq!(events.len(), 2, "{events:?}");
    let edit = &events[0]; // newest first
    assert_eq!(
        fields(edit),
        [
            "action",
            "actor",
            "actor_addr",
            "at",
            "detail",
            "hash",
            "id",
            "org",
            "prev_hash",
            "target_id",
            "target_kind"
        ]
    );
    assert_eq!(edit["action"], "key.edited");
    assert_eq!(edit["actor"], "tester");
    assert_eq!(edit["actor_addr"], "203.0.113.9");
    assert_eq!(edit["org"], "default");
    assert_eq!(edit["target_kind"], "key");
    assert_eq!(edit["target_id"], key.as_str());
    assert_eq!(
        edit["detail"],
        "name: \"before\" -> \"after\"; description: \"old notes\" -> \"new notes\""
    );
    time_field(edit, "at");
    assert_eq!(edit["prev_hash"], events[1]["hash"]);

    let table = env.ok(["audit", "list"]);
    let header = table.lines().next().unwrap();
    for column in ["ID", "TIME", "BY", "FROM", "EVENT", "TARGET", "DETAIL"] {
        assert!(header.contains(column), "{header}");
    }
    let line = table.lines().nth(1).unwrap();
    for part in [
        "key.edited",
        "tester",
        "203.0.113.9",
        &format!("pmcp_{key}"),
        "\"before\" -> \"after\"",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
}

#[test]
fn list_filters_by_key_time_and_organization() {
    let env = Env::new();
    let a = id_of(&env.create_key_json("alpha", &[]));
    let b = id_of(&env.create_key_json("beta", &[]));
    env.ok(["keys", "edit", &a, "--name", "alpha-2"]);
    env.ok(["org", "create", "acme"]);
    env.ok(["--org", "acme", "keys", "create", "--name", "elsewhere"]);

    let of_a = list(&env, &["--key", &a]);
    assert_eq!(of_a.len(), 2, "{of_a:?}");
    assert!(of_a.iter().all(|e| e["target_id"] == a.as_str()));
    // The display prefix works as well as the id.
    assert_eq!(list(&env, &["--key", &format!("pmcp_{b}")]).len(), 1);

    // acme's events are not the default org's, and the other way round.
    let default = list(&env, &[]);
    assert!(default.iter().all(|e| e["org"] == "default"), "{default:?}");
    let acme = env.json(["--org", "acme", "audit", "list", "--json"]);
    assert!(
        acme.as_array().unwrap().iter().all(|e| e["org"] == "acme"),
        "{acme}"
    );

    // Age the first two events (the list does not verify, so this is fine).
    outside(&env)
        .execute(
            "UPDATE audit_events SET at = 1577836800 WHERE id IN (1, 2)",
            [],
        )
        .unwrap();
    let recent = list(&env, &["--since", "2021-01-01"]);
    assert_eq!(recent.len(), default.len() - 2, "{recent:?}");
    assert!(recent.iter().all(|e| e["id"].as_i64().unwrap() > 2));
    assert_eq!(list(&env, &["--since", "1h"]).len(), default.len() - 2);
    assert_eq!(
        list(&env, &["--since", "2019-12-31T00:00:00Z"]).len(),
        default.len()
    );
    let limited = list(&env, &["--limit", "1"]);
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0]["id"], default[0]["id"]);

    let err = expect_fail(env.run(["audit", "list", "--since", "last tuesday"]), 2);
    assert!(err.contains("cannot read time 'last tuesday'"), "{err}");
    let err = env.fail(1, ["audit", "list", "--key", "pmcp_NOSUCHKY"]);
    assert!(err.contains("NOSUCHKY"), "{err}");
    let out = Env::new().ok(["audit", "list"]);
    assert_eq!(out, "No audit events in organization 'default'.\n");
}

// ------------------------------------------------------------ export

/// Parses CSV with Python's csv module: a reader that is not ours.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    require_python3();
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 csv failed");
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

#[test]
fn export_writes_every_event_as_ndjson_and_quoted_csv() {
    let env = Env::new();
    let key = id_of(&env.create_key_json("Deploy, \"prod\"", &[]));
    env.ok(["keys", "edit", &key, "--name", "x \"y\", z"]);
    env.ok(["mcps", "add", "gh", "--url", "https://mcp.example/mcp"]);

    let ndjson = env.ok(["audit", "export", "--format", "ndjson"]);
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3);
    let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3], "oldest first");
    assert_eq!(
        lines[1]["detail"],
        "name: \"Deploy, \\\"prod\\\"\" -> \"x \\\"y\\\", z\""
    );
    // The default format is NDJSON.
    assert_eq!(env.ok(["audit", "export"]), ndjson);

    let csv = env.ok(["audit", "export", "--format", "csv"]);
    assert!(csv.contains("\r\n"), "records end with CRLF");
    let records = parse_csv(&csv);
    assert_eq!(
        records[0],
        [
            "id",
            "at",
            "org",
            "actor",
            "actor_addr",
            "action",
            "target_kind",
            "target_id",
            "detail",
            "prev_hash",
            "hash"
        ]
    );
    assert_eq!(records.len(), 4);
    for (record, line) in records[1..].iter().zip(&lines) {
        for (i, name) in records[0].iter().enumerate() {
            let expected = match &line[name.as_str()] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(record[i], expected, "{name} of {line}");
        }
    }

    let only_key = env.ok(["audit", "export", "--key", &key]);
    assert_eq!(only_key.lines().count(), 2);
    let bad = expect_usage(env.run(["audit", "export", "--format", "xml"]));
    assert!(bad.contains("xml"), "{bad}");
}

/// A trail longer than the migration's batches: export streams all of it
/// in order, a reader that stops early ends it quietly, and an upgrade
/// chains it across batch boundaries.
#[test]
fn a_long_trail_exports_whole_and_upgrades_in_batches() {
    const EDITS: usize = 1100;
    let env = Env::new();
    let key = id_of(&env.create_key_json("busy", &[]));
    // Filled through plexmcp itself, so it verifies.
    {
        let mut store = plexmcp::store::Store::open(&env.db).unwrap();
        store.relax_durability().unwrap();
        let org = store.org("default").unwrap();
        let record = plexmcp::admin::find_key(&store, &org, &key).unwrap();
        let actor = plexmcp::domain::Actor {
            user: "bulk".into(),
            addr: None,
        };
        for i in 0..EDITS {
            let edit = plexmcp::admin::EditRequest {
                description: Some(format!("d{i}")),
                ..Default::default()
            };
            plexmcp::admin::edit_key(&mut store, &record, &edit, &actor, chrono::Utc::now())
                .unwrap();
        }
    }
    let out = env.ok(["audit", "export", "--format", "csv"]);
    assert_eq!(out.lines().count(), 1 + 1 + EDITS);
    let ids: Vec<i64> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=1 + EDITS as i64).collect::<Vec<_>>());

    let mut child = env
        .command()
        .args(["audit", "export"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{out:?}"
    );

    outside(&env)
        .execute_batch(&format!(
            "{}
             ALTER TABLE audit_events DROP COLUMN hash;
             ALTER TABLE audit_events DROP COLUMN prev_hash;
             PRAGMA user_version = 2;",
            SCHEMA_4_DOWN
        ))
        .unwrap();
    let out = env.ok(["audit", "verify"]);
    assert!(
        out.starts_with(&format!("OK: {} audit events", 1 + EDITS)),
        "{out}"
    );
}

// ----------------------------------------------------------- secrets

#[test]
fn secrets_never_reach_the_audit_trail() {
    let env = Env::new();
    let (id, full_key) = env.create_key("secretive", &[]);
    let rotated = env.json(["keys", "rotate", &id, "--json"]);
    let new_key = str_field(&rotated, "key").to_string();
    env.ok([
        "mcps",
        "add",
        "fs",
        "--stdio",
        "fs-mcp",
        "--env",
        "TOKEN=env-secret-1234",
    ]);
    env.ok([
        "mcps",
        "add",
        "gh",
        "--url",
        "https://bot:url-pass-5678@mcp.example/mcp?token=query-secret-9",
        "--header",
        "Authorization=Bearer header-secret-0",
    ]);
    let conn = outside(&env);
    let hashes: Vec<String> = {
        let mut stmt = conn.prepare("SELECT secret_hash FROM api_keys").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let server_secret: Vec<u8> = conn
        .query_row(
            "SELECT value FROM meta WHERE name = 'server_secret'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let every_cell: String = {
        let mut stmt = conn
            .prepare(
                "SELECT concat_ws('|', id, org_id, at, actor, actor_addr, action, target_kind,
                        target_id, detail, prev_hash, hash) FROM audit_events",
            )
            .unwrap();
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.join("\n")
    };
    let exported = env.ok(["audit", "export", "--format", "csv"]);
    let listed = env.ok(["audit", "list", "--json"]);
    let secret_hex: String = server_secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut secrets = vec![
        full_key.clone(),
        full_key["pmcp_".len() + 8..].to_string(),
        new_key.clone(),
        new_key["pmcp_".len() + 8..].to_string(),
        "env-secret-1234".into(),
        "url-pass-5678".into(),
        "query-secret-9".into(),
        "header-secret-0".into(),
        secret_hex,
    ];
    secrets.extend(hashes);
    for secret in &secrets {
        for (place, text) in [
            ("audit rows", &every_cell),
            ("export", &exported),
            ("list", &listed),
        ] {
            assert!(!text.contains(secret.as_str()), "{secret} in {place}");
        }
    }
    assert!(
        every_cell.contains("https://bot:***@mcp.example/mcp?token=***"),
        "{every_cell}"
    );
}

/// A restore goes back to the backup's chain and appends its own event to
/// it: the result verifies, and a head recorded after the backup is gone.
#[test]
fn a_restored_database_verifies_and_forgets_newer_heads() {
    let (env, _) = busy_env();
    let backup = env.dir.path().join("backup.db");
    env.ok(["backup", backup.to_str().unwrap()]);
    env.ok(["keys", "create", "--name", "after-the-backup"]);
    let newer = str_field(&env.json(["audit", "verify", "--json"]), "head").to_string();
    env.ok(["restore", backup.to_str().unwrap(), "--yes"]);

    let report = env.json(["audit", "verify", "--json"]);
    assert_eq!(report["ok"], true, "{report}");
    let restored = list(&env, &["--limit", "1"]);
    assert_eq!(restored[0]["action"], "database.restored", "{restored:?}");
    assert_eq!(restored[0]["org"], Value::Null);
    assert_eq!(report["head"], restored[0]["hash"]);
    let err = env.fail(1, ["audit", "verify", "--head", &newer]);
    assert!(err.contains("restoring an older backup"), "{err}");
}
