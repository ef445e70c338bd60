//! Black-box tests of the scriptable CLI contract (issue 2): the real
//! binary against a temp database, success and error paths alike.

mod support;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use chrono::{Months, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use support::*;

fn id_of(key: &Value) -> String {
    str_field(key, "id").to_string()
}

fn status(env: &Env, key: &str) -> String {
    str_field(&env.show(key), "status").to_string()
}

/// Asserts `t` is within `slack` seconds of `expected`.
fn near(t: chrono::DateTime<Utc>, expected: chrono::DateTime<Utc>, slack: i64) {
    let d = (t - expected).num_seconds().abs();
    assert!(d <= slack, "{t} is {d}s from {expected}");
}

/// Sleeps until a second after the key's `expires_at`.
fn sleep_past(key: &Value) {
    let left = time_field(key, "expires_at") - Utc::now() + TimeDelta::seconds(1);
    std::thread::sleep(left.to_std().unwrap_or_default());
}

// ---------------------------------------------------------------- create

#[test]
fn create_defaults_and_json_shape() {
    let env = Env::new();
    let before = Utc::now();
    let key = env.create_key_json("Production Server", &[]);
    assert_eq!(fields(&key), key_fields_with_key());

    let full = str_field(&key, "key");
    let id = id_of(&key);
    assert_eq!(full.len(), 51, "{full}");
    assert!(full.starts_with("pmcp_"));
    assert!(
        full[5..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{full}"
    );
    assert_eq!(id.len(), 8);
    assert!(full[5..].starts_with(&id), "id is the key's lookup part");
    assert_eq!(str_field(&key, "prefix"), format!("pmcp_{id}"));
    assert_eq!(key["name"], "Production Server");
    assert_eq!(key["description"], Value::Null);
    assert_eq!(key["last_used_at"], Value::Null);
    assert_eq!(key["status"], "active");
    assert_eq!(key["mcp_access"], "all");
    assert_eq!(key["request_count"], 0);

    let created = time_field(&key, "created_at");
    near(created, before, 5);
    let expires = time_field(&key, "expires_at");
    assert_eq!(
        expires - created,
        TimeDelta::days(90),
        "default expiry is 90d"
    );

    // Names are trimmed.
    let trimmed = env.create_key_json("  spaced  ", &[]);
    assert_eq!(trimmed["name"], "spaced");
}

#[test]
fn create_human_output_shows_key_once_with_guidance() {
    let env = Env::new();
    let out = env.ok(["keys", "create", "--name", "Laptop"]);
    let full = out
        .split_whitespace()
        .find(|w| w.starts_with("pmcp_") && w.len() == 51)
        .unwrap_or_else(|| panic!("no full key in:\n{out}"));
    let list = env.ok(["keys", "list"]);
    assert!(list.contains(&full[..13]), "list shows the prefix");
    assert!(!list.contains(full));
}

#[test]
fn create_with_explicit_fields() {
    let env = Env::new();
    env.ok(["org", "set-plan", "pro"]); // room for more than five keys
    let now = Utc::now();

    let k = env.create_key_json(
        "ci",
        &["--description", "GitHub Actions", "--expires", "30d"],
    );
    assert_eq!(k["description"], "GitHub Actions");
    let created = time_field(&k, "created_at");
    assert_eq!(time_field(&k, "expires_at") - created, TimeDelta::days(30));

    let k = env.create_key_json("yearly", &["--expires", "1y"]);
    let created = time_field(&k, "created_at");
    assert_eq!(
        time_field(&k, "expires_at"),
        created.checked_add_months(Months::new(12)).unwrap()
    );

    let k = env.create_key_json("forever", &["--expires", "never"]);
    assert_eq!(k["expires_at"], Value::Null);
    assert_eq!(k["status"], "active");

    // A date means the end of that day, UTC.
    let date = (now + TimeDelta::days(400)).date_naive();
    let k = env.create_key_json("dated", &["--expires", &date.to_string()]);
    assert_eq!(k["expires_at"], format!("{date}T23:59:59Z"));

    // RFC 3339 with an offset is stored and shown in UTC.
    let year = (now + TimeDelta::days(400)).format("%Y").to_string();
    let k = env.create_key_json(
        "exact",
        &["--expires", &format!("{year}-06-01T10:00:00+02:00")],
    );
    assert_eq!(k["expires_at"], format!("{year}-06-01T08:00:00Z"));

    // Explicit `--mcp all`.
    let k = env.create_key_json("all", &["--mcp", "all"]);
    assert_eq!(k["mcp_access"], "all");
}

#[test]
fn create_with_specific_mcps() {
    let env = Env::new();
    env.ok(["mcps", "add", "github", "--stdio", "npx -y gh-mcp"]);
    env.ok([
        "mcps",
        "add",
        "slack",
        "--url",
        "https://mcp.example.com/slack",
    ]);
    env.ok(["mcps", "add", "jira", "--url", "http://127.0.0.1:3001/mcp"]);

    let k = env.create_key_json("two", &["--mcp", "slack", "--mcp", "github"]);
    assert_eq!(k["mcp_access"], json!(["github", "slack"]));
    let shown = env.show(&id_of(&k));
    assert_eq!(shown["mcp_access"], json!(["github", "slack"]));

    // A repeated id is harmless.
    let k = env.create_key_json("dup", &["--mcp", "jira", "--mcp", "jira"]);
    assert_eq!(k["mcp_access"], json!(["jira"]));
    assert_eq!(k["tool_access"], json!({"jira": "all"}));

    // Tools after the id limit the grant; the list is kept sorted, once each.
    let k = env.create_key_json(
        "tools",
        &["--mcp", "github:search,get_issue,search", "--mcp", "jira"],
    );
    assert_eq!(k["mcp_access"], json!(["github", "jira"]));
    assert_eq!(
        k["tool_access"],
        json!({"github": ["get_issue", "search"], "jira": "all"})
    );
    assert_eq!(env.show(&id_of(&k))["tool_access"], k["tool_access"]);
    let all = env.create_key_json("every", &[]);
    assert_eq!(all["tool_access"], json!("all"));

    // Two different grants for one MCP are refused, not guessed at.
    let err = env.fail(
        2,
        [
            "keys", "create", "--name", "x", "--mcp", "jira:a", "--mcp", "jira",
        ],
    );
    assert_eq!(
        err.trim(),
        "error: --mcp jira is given twice with different tools; name each MCP once, with all its tools in one list"
    );
    let err = env.fail(2, ["keys", "create", "--name", "x", "--mcp", "github:"]);
    assert!(err.contains("list at least one tool"), "{err}");
}

#[test]
fn create_validation_errors() {
    let env = Env::new();
    env.ok(["mcps", "add", "github", "--stdio", "gh-mcp"]);
    let long_name = "n".repeat(101);
    let long_desc = "d".repeat(1001);
    let yesterday = (Utc::now() - TimeDelta::days(1)).date_naive().to_string();
    let past_rfc = (Utc::now() - TimeDelta::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true);

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--name", ""], "name"),
        (vec!["--name", "   "], "name"),
        (vec!["--name", &long_name], "101"),
        (vec!["--name", "a\nb"], "name"),
        (vec!["--name", "ok", "--description", &long_desc], "1001"),
        (vec!["--name", "ok", "--expires", &yesterday], "past"),
        (vec!["--name", "ok", "--expires", &past_rfc], "past"),
        (vec!["--name", "ok", "--expires", "soon"], "expiry"),
        (vec!["--name", "ok", "--expires", "0d"], "expiry"),
        (vec!["--name", "ok", "--expires", "2027-13-45"], "expiry"),
        (vec!["--name", "ok", "--expires", ""], "expiry"),
        (vec!["--name", "ok", "--mcp", "nope"], "nope"),
        (
            vec!["--name", "ok", "--mcp", "github", "--mcp", "nope"],
            "nope",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["keys", "create"];
        full.extend(args.iter().copied());
        let err = env.fail(1, &full);
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    // Several problems are reported together, still on one line.
    let err = env.fail(
        1,
        [
            "keys",
            "create",
            "--name",
            "",
            "--description",
            &long_desc,
            "--expires",
            "soon",
        ],
    );
    assert!(
        err.contains("name") && err.contains("1001") && err.contains("soon"),
        "{err}"
    );

    // Boundaries are accepted.
    let k = env.create_key_json(&"n".repeat(100), &["--description", &"d".repeat(1000)]);
    assert_eq!(str_field(&k, "name").len(), 100);

    // Nothing invalid was stored.
    let list = env.json(["keys", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.ok(["mcps", "add", "x", "--stdio", "x-mcp"]);
    let err = env.fail(
        2,
        [
            "keys", "create", "--name", "a", "--mcp", "all", "--mcp", "x",
        ],
    );
    assert!(err.contains("all"), "{err}");
    env.fail(
        2,
        [
            "keys", "create", "--name", "a", "--mcp", "x", "--mcp", "all",
        ],
    );

    // clap's own errors.
    expect_usage(env.run(["keys", "create"]));
    expect_usage(env.run(["keys", "create", "--name"]));
    expect_usage(env.run(["keys", "frobnicate"]));
    expect_usage(env.run(["keys", "show"]));
    expect_usage(env.run(["keys", "list", "--bogus"]));
    expect_usage(env.run(["org", "set-plan", "platinum"]));
    expect_usage(env.run(["mcps", "add", "x"]));
    expect_usage(env.run(["mcps", "add", "x", "--stdio", "a", "--url", "http://h/"]));
    expect_usage(env.run(["mcps", "add", "y", "--url", "http://h/", "--timeout", "-1"]));
    expect_usage(env.run(["nonsense"]));

    // Nothing was created by any of them.
    assert_eq!(env.json(["keys", "list", "--json"]), json!([]));
}

// ---------------------------------------------------------------- list / show

#[test]
fn list_includes_revoked_keys_and_is_a_json_array() {
    let env = Env::new();
    assert_eq!(env.json(["keys", "list", "--json"]), json!([]));
    let human = env.ok(["keys", "list"]);
    assert!(
        human.contains("keys create"),
        "empty list says what to do: {human}"
    );

    let a = env.create_key_json("alpha", &[]);
    let b = env.create_key_json("beta", &["--expires", "never"]);
    env.ok(["keys", "revoke", &id_of(&a), "--yes"]);

    let list = env.json(["keys", "list", "--json"]);
    let items = list.as_array().expect("array");
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(fields(item), key_fields(), "no `key` field in list");
    }
    let by_id = |id: &str| items.iter().find(|k| k["id"] == id).unwrap().clone();
    assert_eq!(by_id(&id_of(&a))["status"], "revoked");
    assert_eq!(by_id(&id_of(&b))["status"], "active");
    assert_eq!(by_id(&id_of(&b))["expires_at"], Value::Null);
}

#[test]
fn list_human_is_an_aligned_table() {
    let env = Env::new();
    let a = env.create_key_json("a", &[]);
    env.create_key_json("a much longer key name", &["--expires", "never"]);
    env.ok(["keys", "revoke", &id_of(&a), "-y"]);

    let out = env.ok(["keys", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let header = lines[0];
    for col in [
        "PREFIX",
        "NAME",
        "STATUS",
        "CREATED",
        "LAST USED",
        "EXPIRES",
    ] {
        assert!(header.contains(col), "missing {col}: {header}");
    }
    let status_at = header.find("STATUS").unwrap();
    let name_at = header.find("NAME").unwrap();
    let expires_at = header.find("EXPIRES").unwrap();
    for row in &lines[1..] {
        assert!(row.starts_with("pmcp_"), "{row}");
        assert!(
            row[status_at..].starts_with("Active") || row[status_at..].starts_with("Revoked"),
            "STATUS column misaligned:\n{out}"
        );
        assert!(row.as_bytes()[name_at - 1] == b' ' && row.as_bytes()[name_at] == b'a');
        let expires = &row[expires_at..];
        assert!(
            expires.starts_with("Never") || expires.starts_with("20"),
            "EXPIRES column misaligned:\n{out}"
        );
    }
    assert!(out.contains("Revoked") && out.contains("Never"), "{out}");
}

#[test]
fn show_by_id_prefix_and_errors() {
    let env = Env::new();
    let key = env.create_key_json("shown", &["--description", "for show"]);
    let id = id_of(&key);
    let prefix = str_field(&key, "prefix").to_string();

    let by_id = env.show(&id);
    let by_prefix = env.show(&prefix);
    assert_eq!(by_id, by_prefix);
    assert_eq!(fields(&by_id), key_fields());
    assert_eq!(by_id["name"], "shown");
    assert_eq!(by_id["description"], "for show");
    assert_eq!(by_id["created_at"], key["created_at"]);
    assert_eq!(by_id["expires_at"], key["expires_at"]);

    let human = env.ok(["keys", "show", &prefix]);
    assert!(human.contains(&prefix) && human.contains("shown") && human.contains("for show"));
    assert!(human.contains("Active"), "{human}");

    // Unknown but well-formed: exit 1, one line.
    let unknown = if id == "AAAAAAAA" {
        "BBBBBBBB"
    } else {
        "AAAAAAAA"
    };
    let err = env.fail(1, ["keys", "show", unknown]);
    assert!(err.contains("keys list"), "says where to look: {err}");
    env.fail(1, ["keys", "show", &format!("pmcp_{unknown}")]);

    // Garbage: exit 1, without echoing the input back.
    for garbage in [
        "garbage<script>",
        "pmcp_",
        "",
        "pmcp_zz!zz!zz",
        "\u{1b}[31mred",
        "x'; DROP TABLE api_keys; --",
        &"Z".repeat(5000),
    ] {
        let err = env.fail(1, ["keys", "show", garbage]);
        if garbage.len() > 5 {
            assert!(!err.contains(garbage), "echoed the input: {err}");
        }
        assert!(!err.contains('\u{1b}'), "{err:?}");
    }
    // The key survived the injection attempt.
    assert_eq!(status(&env, &id), "active");
}

#[test]
fn show_by_full_key_never_prints_it() {
    let env = Env::new();
    let key = env.create_key_json("full", &[]);
    let full = str_field(&key, "key");
    let shown = env.show(full);
    assert_eq!(shown["id"], key["id"]);
    assert!(!shown.to_string().contains(full));
    let human = env.ok(["keys", "show", full]);
    assert!(!human.contains(full), "{human}");
    // Nor in an error about it (another org's key).
    env.ok(["org", "create", "other"]);
    let err = env.fail(1, ["--org", "other", "keys", "show", full]);
    assert!(!err.contains(full), "{err}");
}

// ---------------------------------------------------------------- revoke

#[test]
fn revoke_with_yes_is_final() {
    let env = Env::new();
    let key = env.create_key_json("doomed", &[]);
    let id = id_of(&key);
    let out = env.ok(["keys", "revoke", &id, "--yes"]);
    assert!(out.contains(&format!("pmcp_{id}")), "{out}");
    let shown = env.show(&id);
    assert_eq!(shown["status"], "revoked");

    let err = env.fail(1, ["keys", "revoke", &id, "--yes"]);
    assert!(err.contains("revoked"), "{err}");
    env.fail(1, ["keys", "revoke", &format!("pmcp_{id}"), "--yes"]);
    env.fail(1, ["keys", "revoke", "AAAAAAAB", "--yes"]);
    env.fail(1, ["keys", "revoke", "not a key", "--yes"]);

    let human = env.ok(["keys", "show", &id]);
    assert!(human.contains("Revoked"), "{human}");
    assert!(human.contains("by tester"), "{human}");
}

#[test]
fn revoke_without_yes_needs_a_terminal() {
    let env = Env::new();
    let key = env.create_key_json("kept", &[]);
    let id = id_of(&key);
    // Stdin is a pipe, even one that says yes: refused as a usage error.
    let run = run_cmd(env.cmd().args(["keys", "revoke", &id]).write_stdin("y\n"));
    let err = expect_fail(run, 2);
    assert!(err.contains("--yes"), "{err}");
    let run = run_cmd(env.cmd().args(["keys", "revoke", &id]));
    expect_fail(run, 2);
    assert_eq!(status(&env, &id), "active");
}

/// With a real terminal (through `script`), the prompt decides.
#[test]
fn revoke_asks_on_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let env = Env::new();
    let id = id_of(&env.create_key_json("asked", &[]));
    let bin = assert_cmd::cargo::cargo_bin("plexmcp");
    let in_tty = |answer: &str| {
        let line = format!("'{}' keys revoke {id}", bin.display());
        let out = std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("PLEXMCP_DB", &env.db)
            .env("USER", "tester")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(answer.as_bytes())?;
                child.wait_with_output()
            })
            .expect("run script");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!text.contains("panicked"), "{text}");
        (out.status.code(), text)
    };
    let (code, text) = in_tty("n\n");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("[y/N]"), "{text}");
    assert_eq!(status(&env, &id), "active");
    let (code, text) = in_tty("y\n");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(status(&env, &id), "revoked");
}

// ---------------------------------------------------------------- rotate

#[test]
fn rotate_copies_fields_and_keeps_old_key() {
    let env = Env::new();
    env.ok(["mcps", "add", "github", "--stdio", "gh-mcp"]);
    let old = env.create_key_json(
        "rotating",
        &[
            "--description",
            "desc",
            "--expires",
            "30d",
            "--mcp",
            "github",
        ],
    );
    let old_id = id_of(&old);
    // Let a little time pass so the copied expiry length is measurable.
    std::thread::sleep(Duration::from_millis(1100));

    let new = env.json(["keys", "rotate", &old_id, "--json"]);
    assert_eq!(fields(&new), key_fields_with_key());
    assert_ne!(new["id"], old["id"]);
    assert_ne!(new["key"], old["key"]);
    assert_eq!(str_field(&new, "key").len(), 51);
    assert_eq!(new["name"], "rotating");
    assert_eq!(new["description"], "desc");
    assert_eq!(new["mcp_access"], json!(["github"]));
    assert_eq!(new["status"], "active");
    let old_len = time_field(&old, "expires_at") - time_field(&old, "created_at");
    let new_len = time_field(&new, "expires_at") - time_field(&new, "created_at");
    assert!(
        (old_len - new_len).num_seconds().abs() <= 2,
        "expiry length {old_len} vs {new_len}"
    );
    assert!(time_field(&new, "expires_at") > time_field(&old, "expires_at"));

    // The old key still works until revoked.
    assert_eq!(status(&env, &old_id), "active");
    let human = env.ok(["keys", "show", &id_of(&new)]);
    assert!(
        human.contains(&format!("pmcp_{old_id}")),
        "rotated from: {human}"
    );

    // Rotating by prefix, with --revoke-old, revokes it in the same step.
    let newer = env.json([
        "keys",
        "rotate",
        str_field(&new, "prefix"),
        "--revoke-old",
        "--json",
    ]);
    assert_eq!(status(&env, &id_of(&new)), "revoked");
    assert_eq!(status(&env, &id_of(&newer)), "active");
    assert_eq!(newer["mcp_access"], json!(["github"]));
}

#[test]
fn rotate_never_expiring_and_human_output() {
    let env = Env::new();
    let old = env.create_key_json("nev", &["--expires", "never"]);
    let new = env.json(["keys", "rotate", &id_of(&old), "--json"]);
    assert_eq!(new["expires_at"], Value::Null);
    assert_eq!(new["mcp_access"], "all");
    assert_eq!(new["description"], Value::Null);

    let out = env.ok(["keys", "rotate", &id_of(&new), "--revoke-old"]);
    let full = out
        .split_whitespace()
        .find(|w| w.starts_with("pmcp_") && w.len() == 51);
    assert!(
        full.is_some(),
        "human rotate prints the new key once: {out}"
    );
    assert_eq!(status(&env, &id_of(&new)), "revoked");
}

#[test]
fn rotate_errors() {
    let env = Env::new();
    let key = env.create_key_json("gone", &[]);
    let id = id_of(&key);
    env.ok(["keys", "revoke", &id, "--yes"]);
    let err = env.fail(1, ["keys", "rotate", &id]);
    assert!(err.contains("revoked"), "{err}");
    env.fail(1, ["keys", "rotate", &id, "--revoke-old", "--json"]);
    env.fail(1, ["keys", "rotate", "AAAAAAAC"]);
    env.fail(1, ["keys", "rotate", "?!"]);
    // Only the revoked key exists still.
    assert_eq!(
        env.json(["keys", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------- edit

#[test]
fn edit_name_description_and_access() {
    let env = Env::new();
    env.ok(["mcps", "add", "github", "--stdio", "gh-mcp"]);
    env.ok(["mcps", "add", "slack", "--url", "https://example.com/mcp"]);
    let key = env.create_key_json("before", &["--description", "old text"]);
    let id = id_of(&key);

    env.ok(["keys", "edit", &id, "--name", "after"]);
    let k = env.show(&id);
    assert_eq!(k["name"], "after");
    assert_eq!(k["description"], "old text");
    assert_eq!(k["mcp_access"], "all");

    env.ok([
        "keys",
        "edit",
        &format!("pmcp_{id}"),
        "--description",
        "new text",
    ]);
    assert_eq!(env.show(&id)["description"], "new text");
    env.ok(["keys", "edit", &id, "--description", ""]);
    assert_eq!(env.show(&id)["description"], Value::Null);

    env.ok(["keys", "edit", &id, "--mcp", "slack", "--mcp", "github"]);
    assert_eq!(env.show(&id)["mcp_access"], json!(["github", "slack"]));
    env.ok(["keys", "edit", &id, "--mcp", "slack"]);
    assert_eq!(env.show(&id)["mcp_access"], json!(["slack"]));
    env.ok(["keys", "edit", &id, "--mcp", "all", "--name", "both"]);
    let k = env.show(&id);
    assert_eq!(k["mcp_access"], "all");
    assert_eq!(k["name"], "both");
    // Unchanged by edits.
    assert_eq!(k["created_at"], key["created_at"]);
    assert_eq!(k["expires_at"], key["expires_at"]);
}

#[test]
fn edit_errors() {
    let env = Env::new();
    env.ok(["mcps", "add", "github", "--stdio", "gh-mcp"]);
    let key = env.create_key_json("edited", &["--mcp", "github"]);
    let id = id_of(&key);

    let err = env.fail(2, ["keys", "edit", &id]);
    assert!(err.contains("--name"), "{err}");
    env.fail(2, ["keys", "edit", &id, "--mcp", "all", "--mcp", "github"]);
    env.fail(1, ["keys", "edit", &id, "--name", ""]);
    env.fail(1, ["keys", "edit", &id, "--name", &"x".repeat(101)]);
    env.fail(1, ["keys", "edit", &id, "--description", &"x".repeat(1001)]);
    let err = env.fail(1, ["keys", "edit", &id, "--mcp", "nope"]);
    assert!(err.contains("nope"), "{err}");
    env.fail(1, ["keys", "edit", "AAAAAAAD", "--name", "x"]);
    env.fail(1, ["keys", "edit", "#garbage#", "--name", "x"]);
    // Nothing changed.
    let k = env.show(&id);
    assert_eq!(k["name"], "edited");
    assert_eq!(k["mcp_access"], json!(["github"]));

    env.ok(["keys", "revoke", &id, "--yes"]);
    let err = env.fail(1, ["keys", "edit", &id, "--name", "revived"]);
    assert!(err.contains("revoked"), "{err}");
    assert_eq!(env.show(&id)["name"], "edited");
    assert_eq!(env.show(&id)["status"], "revoked");
}

// ---------------------------------------------------------------- plan limits

#[test]
fn free_plan_limit_and_revoked_keys() {
    let env = Env::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(id_of(&env.create_key_json(&format!("k{i}"), &[])));
    }
    let err = env.fail(1, ["keys", "create", "--name", "sixth"]);
    assert!(err.contains("free"), "{err}");
    assert!(err.contains('5'), "{err}");
    assert!(err.contains("set-plan pro"), "{err}");
    // Rotation would add a sixth active key too…
    env.fail(1, ["keys", "rotate", &ids[0]]);
    // …unless it swaps one for another.
    let rotated = env.json(["keys", "rotate", &ids[0], "--revoke-old", "--json"]);
    assert_eq!(rotated["status"], "active");

    // Revoked keys do not count.
    env.ok(["keys", "revoke", &ids[1], "--yes"]);
    env.create_key_json("replacement", &[]);
    env.fail(1, ["keys", "create", "--name", "again"]);

    let org = env.json(["org", "show", "--json"]);
    assert_eq!(org["plan"], "free");
    assert_eq!(org["active_keys"], 5);
    assert_eq!(org["key_limit"], 5);
    assert_eq!(org["total_keys"], 7);
}

#[test]
fn expired_keys_do_not_count() {
    let env = Env::new();
    let soon = (Utc::now() + TimeDelta::seconds(2)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let short = env.create_key_json("short-lived", &["--expires", &soon]);
    assert_eq!(short["expires_at"], soon);
    sleep_past(&short);
    assert_eq!(status(&env, &id_of(&short)), "expired");

    for i in 0..5 {
        env.create_key_json(&format!("k{i}"), &[]);
    }
    let err = env.fail(1, ["keys", "create", "--name", "sixth"]);
    assert!(
        err.contains("free") && err.contains("set-plan pro"),
        "{err}"
    );

    let list = env.json(["keys", "list", "--json"]);
    let statuses: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "expired").count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == "active").count(), 5);
    assert!(env.ok(["keys", "list"]).contains("Expired"));
}

#[test]
fn pro_plan_allows_twenty() {
    let env = Env::new();
    let out = env.ok(["org", "set-plan", "pro"]);
    assert!(out.contains("pro"), "{out}");
    assert_eq!(env.json(["org", "show", "--json"])["plan"], "pro");
    for i in 0..20 {
        env.create_key_json(&format!("k{i}"), &["--expires", "never"]);
    }
    let err = env.fail(1, ["keys", "create", "--name", "21st"]);
    assert!(
        err.contains("pro") && err.contains("20") && err.contains("set-plan team"),
        "{err}"
    );

    // Moving down is allowed but warns; existing keys keep working.
    let run = env.run(["org", "set-plan", "free"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.starts_with("warning:"), "{run:?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
    env.fail(1, ["keys", "create", "--name", "over"]);
    let org = env.json(["org", "show", "--json"]);
    assert_eq!(org["active_keys"], 20);

    env.ok(["org", "set-plan", "enterprise"]);
    env.create_key_json("unlimited", &[]);
    assert_eq!(
        env.json(["org", "show", "--json"])["key_limit"],
        Value::Null
    );
    // Setting the same plan again is fine.
    env.ok(["org", "set-plan", "enterprise"]);
    env.ok(["org", "set-plan", "team"]);
}

/// Issue 12 item 5: after a move to a smaller plan the message counts the
/// keys really active, and its suggested command, pasted as it is, changes
/// this database (it names `--db`) rather than the default one.
#[test]
fn the_plan_limit_message_counts_active_keys_and_its_command_works_when_pasted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("my data").join("plexmcp.db");
    let env = Env::at(dir, db);
    env.ok(["org", "set-plan", "pro"]);
    for i in 0..7 {
        env.create_key_json(&format!("k{i}"), &["--expires", "never"]);
    }
    env.run(["org", "set-plan", "free"]);
    let err = env.fail(1, ["keys", "create", "--name", "eighth"]);
    assert!(err.contains("allows 5"), "{err}");
    assert!(err.contains("has 7 active keys"), "{err}");
    let command = err
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {err}"));
    let words = shlex::split(command).expect("a shell command");
    assert_eq!(words[0], "plexmcp", "{command}");
    // Pasted without PLEXMCP_DB, as a person at another shell would.
    let pasted = run_cmd(
        bare_cmd()
            .args(&words[1..])
            .env("XDG_DATA_HOME", env.dir.path()),
    );
    assert_eq!(pasted.code, 0, "{pasted:?}");
    assert_eq!(env.json(["org", "show", "--json"])["plan"], "pro");
}

/// Several processes racing for the last slots cannot exceed the plan.
#[test]
fn concurrent_creates_respect_the_limit() {
    let env = Env::new();
    env.ok(["org", "show"]); // create the database first
    let children: Vec<_> = (0..8)
        .map(|i| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("plexmcp"))
                .args(["keys", "create", "--name", &format!("racer{i}"), "--json"])
                .env("PLEXMCP_DB", &env.db)
                .env("USER", "tester")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut ok = 0;
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        match out.status.code() {
            Some(0) => ok += 1,
            Some(1) => assert!(stderr.contains("set-plan pro"), "{stderr}"),
            other => panic!("unexpected exit {other:?}: {stderr}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(
        env.json(["keys", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

/// Several processes opening a brand-new database at once all succeed:
/// creation and migration must not race.
#[test]
fn concurrent_first_use_of_a_new_database() {
    let env = Env::new();
    let children: Vec<_> = (0..6)
        .map(|i| {
            let args: Vec<String> = if i % 2 == 0 {
                vec!["org".into(), "list".into(), "--json".into()]
            } else {
                ["keys", "create", "--name", &format!("first{i}"), "--json"]
                    .map(String::from)
                    .to_vec()
            };
            std::process::Command::new(assert_cmd::cargo::cargo_bin("plexmcp"))
                .args(args)
                .env("PLEXMCP_DB", &env.db)
                .env("USER", "tester")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
    }
    assert_eq!(
        env.json(["keys", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        env.json(["org", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------- orgs

#[test]
fn orgs_create_list_and_switch() {
    let env = Env::new();
    let default = env.json(["org", "show", "--json"]);
    assert_eq!(default["slug"], "default");
    assert_eq!(default["plan"], "free");
    let human = env.ok(["org", "show"]);
    assert!(
        human.contains("default") && human.contains("free"),
        "{human}"
    );

    let in_default = env.create_key_json("default-key", &[]);
    let out = env.ok(["org", "create", "acme"]);
    assert!(out.contains("acme"), "{out}");
    let err = env.fail(1, ["org", "create", "acme"]);
    assert!(err.contains("acme"), "{err}");
    env.fail(1, ["org", "create", "Not A Slug"]);
    env.fail(1, ["org", "create", "--", "-leading"]);
    env.fail(1, ["org", "create", ""]);

    let orgs = env.json(["org", "list", "--json"]);
    let slugs: Vec<&str> = orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "default"]);
    let table = env.ok(["org", "list"]);
    assert!(
        table.contains("acme") && table.contains("default"),
        "{table}"
    );

    let acme = env.json(["--org", "acme", "org", "show", "--json"]);
    assert_eq!(acme["slug"], "acme");
    assert_eq!(acme["plan"], "free", "a new org starts on free");
    assert_eq!(acme["active_keys"], 0);

    // Keys are per org.
    assert_eq!(
        env.json(["--org", "acme", "keys", "list", "--json"]),
        json!([])
    );
    let in_acme = env.json([
        "--org", "acme", "keys", "create", "--name", "acme-key", "--json",
    ]);
    env.fail(1, ["--org", "acme", "keys", "show", &id_of(&in_default)]);
    env.fail(1, ["keys", "show", &id_of(&in_acme)]);
    env.fail(1, ["keys", "revoke", &id_of(&in_acme), "--yes"]);
    env.fail(1, ["keys", "rotate", &id_of(&in_acme)]);
    env.fail(1, ["keys", "edit", &id_of(&in_acme), "--name", "stolen"]);
    let default_list = env.json(["keys", "list", "--json"]);
    assert_eq!(default_list.as_array().unwrap().len(), 1);
    assert_eq!(default_list[0]["id"], in_default["id"]);
    // `--org` works after the subcommand too (it is global).
    let acme_list = env.json(["keys", "list", "--json", "--org", "acme"]);
    assert_eq!(acme_list.as_array().unwrap().len(), 1);

    // Plans are per org.
    env.ok(["--org", "acme", "org", "set-plan", "team"]);
    assert_eq!(env.json(["org", "show", "--json"])["plan"], "free");
    assert_eq!(
        env.json(["--org", "acme", "org", "show", "--json"])["plan"],
        "team"
    );

    // MCPs are per org.
    env.ok(["--org", "acme", "mcps", "add", "github", "--stdio", "gh"]);
    assert_eq!(env.json(["mcps", "list", "--json"]), json!([]));
    env.fail(1, ["keys", "create", "--name", "x", "--mcp", "github"]);
}

#[test]
fn unknown_org_is_refused() {
    let env = Env::new();
    for args in [
        vec!["--org", "ghost", "keys", "list"],
        vec!["--org", "ghost", "keys", "create", "--name", "x"],
        vec!["--org", "ghost", "mcps", "list"],
        vec!["--org", "ghost", "org", "show"],
        vec!["--org", "ghost", "org", "set-plan", "pro"],
    ] {
        let err = env.fail(1, &args);
        assert!(err.contains("org create"), "{args:?}: {err}");
    }
    // An echoed slug cannot drive the terminal.
    let err = env.fail(1, ["--org", "\u{1b}[2Jx", "keys", "list"]);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    // Nothing was created.
    let orgs = env.json(["org", "list", "--json"]);
    assert_eq!(orgs.as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------- mcps

#[test]
fn mcps_add_list_and_secrets_stay_hidden() {
    let env = Env::new();
    let env_secret = "sekr1t-ENV-VALUE-9f8e7d";
    let header_secret = "Bearer sekr1t-HEADER-VALUE-1a2b3c";
    env.ok([
        "mcps",
        "add",
        "github",
        "--stdio",
        "npx -y '@modelcontextprotocol/server-github' --stdio",
        "--name",
        "GitHub",
        "--env",
        &format!("GITHUB_TOKEN={env_secret}"),
        "--env",
        "LOG_LEVEL=debug=yes",
        "--timeout",
        "45",
    ]);
    env.ok([
        "mcps",
        "add",
        "remote",
        "--url",
        "https://mcp.example.com/v1",
        "--header",
        &format!("Authorization={header_secret}"),
    ]);

    let list = env.json(["mcps", "list", "--json"]);
    let text = list.to_string();
    assert!(!text.contains("sekr1t"), "secret value listed: {text}");
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 2);
    let gh = items.iter().find(|m| m["id"] == "github").unwrap();
    assert_eq!(gh["name"], "GitHub");
    assert_eq!(gh["transport"], "stdio");
    assert_eq!(gh["command"], "npx");
    assert_eq!(
        gh["args"],
        json!(["-y", "@modelcontextprotocol/server-github", "--stdio"])
    );
    assert_eq!(gh["timeout_secs"], 45);
    assert!(
        text.contains("GITHUB_TOKEN"),
        "env names are listed: {text}"
    );
    let remote = items.iter().find(|m| m["id"] == "remote").unwrap();
    assert_eq!(remote["transport"], "http");
    assert_eq!(remote["name"], "remote", "name defaults to the id");
    assert_eq!(remote["timeout_secs"], 30, "default timeout");
    assert!(
        remote["url"]
            .as_str()
            .unwrap()
            .starts_with("https://mcp.example.com/v1")
    );

    let human = env.ok(["mcps", "list"]);
    assert!(
        human.contains("github") && human.contains("remote"),
        "{human}"
    );
    assert!(!human.contains("sekr1t"), "{human}");
    assert!(!env.ok(["org", "show"]).contains("sekr1t"));
    assert_eq!(env.json(["org", "show", "--json"])["mcps"], 2);

    // Nor in any key's activity.
    let key = env.create_key_json("k", &[]);
    assert!(!env.ok(["keys", "show", &id_of(&key)]).contains("sekr1t"));

    // Duplicate ids are refused, also across transports.
    let err = env.fail(1, ["mcps", "add", "github", "--url", "https://x.example/"]);
    assert!(err.contains("github"), "{err}");
    env.fail(1, ["mcps", "add", "remote", "--stdio", "x"]);
    assert_eq!(
        env.json(["mcps", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn mcps_inherit_env_is_listed_and_validated() {
    let env = Env::new();
    env.ok([
        "mcps",
        "add",
        "fs",
        "--stdio",
        "fs-mcp",
        "--env",
        "TOKEN=sekr1t",
        "--inherit-env",
        "HTTPS_PROXY",
        "--inherit-env",
        "NODE_EXTRA_CA_CERTS",
        "--inherit-env",
        "HTTPS_PROXY",
    ]);
    let list = env.json(["mcps", "list", "--json"]);
    assert_eq!(
        list[0]["inherit_env"],
        json!(["HTTPS_PROXY", "NODE_EXTRA_CA_CERTS"]),
        "{list:#}"
    );
    assert_eq!(list[0]["env"], json!(["TOKEN"]), "{list:#}");
    let human = env.ok(["mcps", "list"]);
    assert!(
        human.lines().next().unwrap().contains("INHERITS"),
        "{human}"
    );
    assert!(human.contains("HTTPS_PROXY,NODE_EXTRA_CA_CERTS"), "{human}");
    assert!(!human.contains("sekr1t"), "{human}");

    let refused: [(&[&str], &str); 5] = [
        (&["--inherit-env", "PLEXMCP_API_KEY"], "PLEXMCP_"),
        (&["--inherit-env", "plexmcp_db"], "PLEXMCP_"),
        (&["--inherit-env", "1BAD"], "1BAD"),
        (&["--env", "A=1", "--inherit-env", "A"], "both"),
        (
            &["--url", "http://h.example/", "--inherit-env", "A"],
            "--stdio",
        ),
    ];
    for (extra, says) in refused {
        let mut args = vec!["mcps", "add", "bad"];
        if !extra.contains(&"--url") {
            args.extend(["--stdio", "x"]);
        }
        args.extend(extra.iter().copied());
        let err = env.fail(1, &args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(
        env.json(["mcps", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn mcps_url_credentials_are_redacted_in_output_and_audit() {
    let env = Env::new();
    let url = "http://user:hunter2@h.example/mcp?token=abc&region=eu9q#frag-s3cret";
    let added = env.ok(["mcps", "add", "x", "--url", url]);
    let listed = env.ok(["mcps", "list"]);
    let json = env.json(["mcps", "list", "--json"]);
    let audit = plexmcp::store::Store::open(&env.db)
        .expect("open the database")
        .audit_for("mcp", "x", 10)
        .expect("read the audit trail");
    let detail = audit
        .iter()
        .find(|e| e.action == "mcp.added")
        .and_then(|e| e.detail.clone())
        .unwrap_or_else(|| panic!("no mcp.added event with a detail: {audit:?}"));

    for (what, text) in [
        ("mcps add", added.as_str()),
        ("mcps list", listed.as_str()),
        ("mcps list --json", &json.to_string()),
        ("audit detail", detail.as_str()),
    ] {
        for secret in ["hunter2", "abc", "eu9q", "s3cret"] {
            assert!(!text.contains(secret), "{what} shows '{secret}': {text}");
        }
        // Still says where it points, and which parameters it carries.
        assert!(
            text.contains("http://user:***@h.example/mcp?token=***&region=***#***"),
            "{what}: {text}"
        );
    }
    // Nor does a refused URL echo its credentials in the error.
    for bad in [
        "http://user:hunter2@h.example:99999/mcp?token=abc",
        "ftp://user:hunter2@h.example/?token=abc",
    ] {
        let err = env.fail(1, ["mcps", "add", "y", "--url", bad]);
        assert!(!err.contains("hunter2") && !err.contains("abc"), "{err}");
        assert!(err.contains("h.example"), "{err}");
    }
    // The upstream itself still gets the real URL: the row is unchanged.
    let store = plexmcp::store::Store::open(&env.db).expect("open the database");
    let org = store.org("default").expect("default org");
    let mcp = store
        .mcp_by_slug(org.row_id, "x")
        .expect("read the MCP")
        .expect("the MCP exists");
    assert_eq!(
        mcp.transport,
        plexmcp::domain::McpTransport::Http {
            url: url.to_string(),
            headers: Vec::new()
        }
    );
}

#[test]
fn mcps_add_validation() {
    let env = Env::new();
    let cases: Vec<Vec<&str>> = vec![
        vec!["bad-url", "--url", "not a url"],
        vec!["ftp", "--url", "ftp://files.example.com/"],
        vec!["nohost", "--url", "http://"],
        vec!["bad-env", "--stdio", "x", "--env", "1A=x"],
        vec!["bad-env2", "--stdio", "x", "--env", "novalue"],
        vec!["bad-env3", "--stdio", "x", "--env", "=x"],
        vec![
            "bad-header",
            "--url",
            "http://h.example/",
            "--header",
            "Bad Name=x",
        ],
        vec![
            "bad-header2",
            "--url",
            "http://h.example/",
            "--header",
            "X=a\r\nInjected: 1",
        ],
        vec!["misplaced", "--url", "http://h.example/", "--env", "A=b"],
        vec!["misplaced2", "--stdio", "x", "--header", "A=b"],
        vec!["quotes", "--stdio", "node 'unbalanced"],
        vec!["empty", "--stdio", "   "],
        vec!["Upper", "--stdio", "x"],
        vec!["a__b", "--stdio", "x"],
        vec!["-dash", "--stdio", "x"],
        vec!["timeout", "--stdio", "x", "--timeout", "0"],
        vec!["timeout2", "--stdio", "x", "--timeout", "601"],
        vec!["named", "--stdio", "x", "--name", ""],
    ];
    for args in cases {
        let mut full = vec!["mcps", "add"];
        full.extend(args.iter().copied());
        let run = env.run(&full);
        // `-dash` looks like a flag to clap: a usage error is right there.
        if args[0] == "-dash" {
            expect_usage(run);
        } else {
            expect_fail(run, 1);
        }
    }
    assert_eq!(env.json(["mcps", "list", "--json"]), json!([]));
    assert!(
        env.ok(["mcps", "list"]).contains("mcps add"),
        "empty list hint"
    );
}

#[test]
fn mcps_remove_cuts_access() {
    let env = Env::new();
    env.ok(["mcps", "add", "github", "--stdio", "gh-mcp"]);
    env.ok(["mcps", "add", "slack", "--stdio", "slack-mcp"]);
    let only = env.create_key_json("only-github", &["--mcp", "github"]);
    let both = env.create_key_json("both", &["--mcp", "github", "--mcp", "slack"]);
    let all = env.create_key_json("all", &[]);

    let out = env.ok(["mcps", "remove", "github"]);
    assert!(out.contains("github"), "{out}");
    let ids: Vec<Value> = env
        .json(["mcps", "list", "--json"])
        .as_array()
        .unwrap()
        .to_vec();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0]["id"], "slack");

    assert_eq!(env.show(&id_of(&only))["mcp_access"], json!([]));
    assert!(env.ok(["keys", "show", &id_of(&only)]).contains("none"));
    assert_eq!(env.show(&id_of(&both))["mcp_access"], json!(["slack"]));
    assert_eq!(env.show(&id_of(&all))["mcp_access"], "all");
    let listed = env.json(["keys", "list", "--json"]);
    let only_listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == only["id"])
        .unwrap();
    assert_eq!(only_listed["mcp_access"], json!([]));

    let err = env.fail(1, ["keys", "create", "--name", "x", "--mcp", "github"]);
    assert!(err.contains("github"), "{err}");
    env.fail(1, ["keys", "edit", &id_of(&all), "--mcp", "github"]);
    let err = env.fail(1, ["mcps", "remove", "github"]);
    assert!(err.contains("github"), "{err}");
    env.fail(1, ["mcps", "remove", "never-was"]);

    // The id can be reused, but old grants do not come back with it.
    env.ok(["mcps", "add", "github", "--url", "https://new.example/mcp"]);
    assert_eq!(env.show(&id_of(&only))["mcp_access"], json!([]));
    let k = env.create_key_json("new-grant", &["--mcp", "github"]);
    assert_eq!(k["mcp_access"], json!(["github"]));
}

// ---------------------------------------------------------------- audit

#[test]
fn every_change_is_audited_with_the_actor() {
    let env = Env::new();
    let key = env.create_key_json("audited", &[]);
    let id = id_of(&key);
    env.ok(["keys", "edit", &id, "--name", "audited-2"]);
    let new = env.json(["keys", "rotate", &id, "--json"]);
    let ssh = run_cmd(
        env.cmd()
            .env("SSH_CONNECTION", "203.0.113.9 5555 10.0.0.1 22")
            .args(["keys", "revoke", &id, "--yes"]),
    );
    expect_ok(ssh);

    let out = env.ok(["keys", "show", &id]);
    let activity = out
        .split_once("Activity")
        .unwrap_or_else(|| panic!("no Activity section:\n{out}"))
        .1;
    for action in ["key.created", "key.edited", "key.rotated", "key.revoked"] {
        let line = activity
            .lines()
            .find(|l| l.contains(action))
            .unwrap_or_else(|| panic!("no {action} in:\n{out}"));
        assert!(line.contains("tester"), "actor missing: {line}");
        if action == "key.revoked" {
            assert!(line.contains("203.0.113.9"), "ssh client missing: {line}");
        } else {
            assert!(!line.contains("203.0.113.9"), "{line}");
        }
    }
    assert!(
        out.contains("Created") && out.contains("by tester"),
        "{out}"
    );
    assert!(
        out.contains("203.0.113.9"),
        "revoked by shows the address: {out}"
    );

    // The replacement's own activity records its creation.
    let out = env.ok(["keys", "show", &id_of(&new)]);
    assert!(out.contains("key.created"), "{out}");

    // With USER unset the actor falls back to LOGNAME.
    let k2 = env.create_key_json("logname", &[]);
    let run = run_cmd(
        env.cmd()
            .env_remove("USER")
            .env("LOGNAME", "fallback-user")
            .args(["keys", "edit", &id_of(&k2), "--description", "d"]),
    );
    expect_ok(run);
    let out = env.ok(["keys", "show", &id_of(&k2)]);
    assert!(out.contains("fallback-user"), "{out}");
}

// ---------------------------------------------------------------- robustness

#[test]
fn no_panic_on_odd_input() {
    let env = Env::new();
    env.ok(["mcps", "add", "m", "--stdio", "m"]);
    let id = id_of(&env.create_key_json("target", &[]));
    let weird: Vec<OsString> = vec![
        OsString::from_vec(vec![0xff, 0xfe, b'a']),
        "é".repeat(200).into(),
        "%s%n%x".into(),
        "'\"`$(id)".into(),
        "\u{202e}evil".into(),
        "9".repeat(40).into(),
        "-".into(),
        "--".into(),
    ];
    let shapes: Vec<Vec<&str>> = vec![
        vec!["keys", "create", "--name"],
        vec!["keys", "create", "--name", "n", "--description"],
        vec!["keys", "create", "--name", "n", "--expires"],
        vec!["keys", "create", "--name", "n", "--mcp"],
        vec!["keys", "show"],
        vec!["keys", "revoke"],
        vec!["keys", "rotate"],
        vec!["keys", "edit", &id, "--name"],
        vec!["keys", "edit", &id, "--mcp"],
        vec!["mcps", "add"],
        vec!["mcps", "add", "w", "--url"],
        vec!["mcps", "add", "w", "--stdio"],
        vec!["mcps", "add", "w", "--stdio", "x", "--env"],
        vec!["mcps", "remove"],
        vec!["org", "create"],
        vec!["org", "set-plan"],
        vec!["--org"],
    ];
    for shape in &shapes {
        for w in &weird {
            let mut cmd = env.cmd();
            cmd.args(shape).arg(w);
            if shape == &["--org"] {
                cmd.args(["keys", "list"]);
            }
            let run = run_cmd(&mut cmd);
            assert!(
                matches!(run.code, 0..=2),
                "{shape:?} {w:?}: unexpected exit {run:?}"
            );
            if run.code == 1 {
                assert_one_error_line(&run);
            }
            if run.code != 0 {
                assert!(
                    run.stderr.starts_with("error: "),
                    "{shape:?} {w:?}: {run:?}"
                );
            }
        }
    }
    // The key is untouched and the db is healthy.
    assert_eq!(status(&env, &id), "active");
}

#[test]
fn db_path_problems_are_one_line_errors() {
    let env = Env::new();
    // A directory.
    let run = run_cmd(
        bare_cmd()
            .args(["--db"])
            .arg(env.dir.path())
            .args(["keys", "list"]),
    );
    expect_fail(run, 1);
    // Under a regular file.
    let file = env.dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let run = run_cmd(
        bare_cmd()
            .arg("--db")
            .arg(file.join("sub.db"))
            .args(["keys", "list"]),
    );
    expect_fail(run, 1);
    // `--db` wins over PLEXMCP_DB, and a missing folder is created.
    let other = env.dir.path().join("nested/deeper/other.db");
    let run =
        run_cmd(
            env.cmd()
                .arg("--db")
                .arg(&other)
                .args(["keys", "create", "--name", "elsewhere"]),
        );
    expect_ok(run);
    assert!(other.exists());
    assert!(!env.db.exists(), "PLEXMCP_DB was not used");
}

#[test]
fn help_and_version_work() {
    let env = Env::new();
    let out = env.ok(["--help"]);
    for cmd in ["keys", "mcps", "org"] {
        assert!(out.contains(cmd), "{out}");
    }
    let out = env.ok(["keys", "--help"]);
    for sub in ["create", "list", "show", "revoke", "rotate", "edit"] {
        assert!(out.contains(sub), "{out}");
    }
    assert!(env.ok(["--version"]).contains(env!("CARGO_PKG_VERSION")));
    assert!(!env.db.exists(), "help does not create a database");
}

#[test]
fn status_values_are_exactly_the_contract() {
    let env = Env::new();
    let a = env.create_key_json("a", &[]);
    let b = env.create_key_json("b", &[]);
    env.ok(["keys", "revoke", &id_of(&b), "--yes"]);
    let soon = (Utc::now() + TimeDelta::seconds(2)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let c = env.create_key_json("c", &["--expires", &soon]);
    sleep_past(&c);
    let list = env.json(["keys", "list", "--json"]);
    let got: BTreeSet<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (id_of(k), str_field(k, "status").to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = [
        (id_of(&a), "active".to_string()),
        (id_of(&b), "revoked".to_string()),
        (id_of(&c), "expired".to_string()),
    ]
    .into();
    assert_eq!(got, want);
    // An expired key can still be revoked, and then it is revoked.
    env.ok(["keys", "revoke", &id_of(&c), "--yes"]);
    assert_eq!(status(&env, &id_of(&c)), "revoked");
}

/// `plexmcp keys list | head -1`: a reader that goes away is not a crash.
#[test]
fn closed_stdout_is_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    env.create_key_json("piped", &[]);
    env.ok(["mcps", "add", "m", "--stdio", "m"]);
    for args in [
        vec!["keys", "list"],
        vec!["keys", "list", "--json"],
        vec!["mcps", "list", "--json"],
        vec!["org", "list"],
    ] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("plexmcp"))
            .args(&args)
            .env("PLEXMCP_DB", &env.db)
            .env("USER", "tester")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take()); // nobody reads: every write hits a closed pipe
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            out.status.code() == Some(0) || out.status.signal() == Some(13),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}

// ------------------------------------------------------ look-alike names

/// Characters that make a name look like another or reorder what follows.
const LOOK_ALIKES: [(char, &str); 5] = [
    ('\u{202E}', "U+202E"),
    ('\u{200B}', "U+200B"),
    ('\u{FEFF}', "U+FEFF"),
    ('\u{2066}', "U+2066"),
    ('\u{2028}', "U+2028"),
];

#[test]
fn invisible_and_direction_changing_characters_are_refused_in_names_and_descriptions() {
    let env = Env::new();
    let key = env.create_key_json("honest", &[]);
    for (c, code) in LOOK_ALIKES {
        let name = format!("prod{c}uction");
        let err = env.fail(1, ["keys", "create", "--name", &name]);
        assert!(err.contains("name contains"), "{err}");
        assert!(err.contains(&format!("({code})")), "names {code}: {err}");
        assert!(!err.contains(c), "echoed the raw character: {err:?}");

        let err = env.fail(
            1,
            ["keys", "create", "--name", "ok", "--description", &name],
        );
        assert!(err.contains("description contains"), "{err}");
        assert!(err.contains(code), "{err}");

        let err = env.fail(1, ["keys", "edit", &id_of(&key), "--name", &name]);
        assert!(err.contains(code), "{err}");
    }
    let err = env.fail(1, ["keys", "create", "--name", "evil\u{202E}gnp"]);
    assert_eq!(
        err,
        "error: name contains an invisible or direction-changing character (U+202E)"
    );
    // Nothing was created and the honest key kept its name.
    let list = env.json(["keys", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(env.show(&id_of(&key))["name"], "honest");
}

/// A name written by an older build or straight into the file with sqlite3.
fn store_raw_name(env: &Env, id: &str, name: &str, description: &str) {
    let conn = rusqlite::Connection::open(&env.db).expect("open with rusqlite");
    let changed = conn
        .execute(
            "UPDATE api_keys SET name = ?1, description = ?2 WHERE lookup_id = ?3",
            rusqlite::params![name, description, id],
        )
        .expect("update the name directly");
    assert_eq!(changed, 1);
}

#[test]
fn look_alike_names_already_stored_are_shown_escaped() {
    let env = Env::new();
    let key = env.create_key_json("placeholder", &[]);
    let id = id_of(&key);
    store_raw_name(&env, &id, "evil\u{202E}gnp.exe\u{200B}", "line\u{2028}two");

    let list = env.ok(["keys", "list"]);
    assert!(
        list.contains("evil\\u{202E}gnp.exe\\u{200B}"),
        "escaped in the table:\n{list}"
    );
    let show = env.ok(["keys", "show", &id]);
    assert!(show.contains("evil\\u{202E}gnp.exe\\u{200B}"), "{show}");
    assert!(show.contains("line\\u{2028}two"), "{show}");
    for out in [&list, &show] {
        for (c, _) in LOOK_ALIKES {
            assert!(!out.contains(c), "raw {c:?} printed:\n{out}");
        }
    }

    // JSON escapes them too, and a parser still reads the exact name back.
    let raw = env.ok(["keys", "list", "--json"]);
    assert!(raw.contains("evil\\u202egnp.exe\\u200b"), "{raw}");
    assert!(!raw.contains('\u{202E}'), "{raw}");
    let parsed: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(parsed[0]["name"], "evil\u{202E}gnp.exe\u{200B}");
    assert_eq!(parsed[0]["description"], "line\u{2028}two");
}
