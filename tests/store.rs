//! The database file as the outside world sees it: permissions, refusal of
//! files that are not ours (left byte-for-byte untouched), and that the full
//! key is never stored or printed after it was issued.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use plexmcp::store::{Store, StoreError};
use rusqlite::Connection;
use support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn assert_no_sidecars(db: &Path) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let p = sidecar(db, suffix);
        assert!(!p.exists(), "{} was left behind", p.display());
    }
}

/// Every command refuses the file with exit 1 and one line, and leaves it
/// (and its folder) exactly as it was.
fn assert_refused(env: &Env, needle: &str) {
    let before = std::fs::read(&env.db).expect("read");
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let dir_before = listing(env.dir.path());
    for args in [
        vec!["keys", "list"],
        vec!["keys", "list", "--json"],
        vec!["keys", "create", "--name", "x", "--json"],
        vec!["mcps", "add", "m", "--stdio", "m"],
        vec!["org", "show"],
        vec!["org", "create", "acme"],
        vec!["org", "set-plan", "pro"],
    ] {
        let err = env.fail(1, &args);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(
            std::fs::read(&env.db).unwrap(),
            before,
            "{args:?} changed the file"
        );
        assert_eq!(listing(env.dir.path()), dir_before, "{args:?} left files");
    }
    assert_no_sidecars(&env.db);
}

#[test]
fn new_database_is_private() {
    let env = Env::new();
    let folder = env.dir.path().join("fresh");
    let db = folder.join("plexmcp.db");
    let run = run_cmd(
        env.cmd()
            .arg("--db")
            .arg(&db)
            .args(["keys", "create", "--name", "x"]),
    );
    expect_ok(run);
    assert_eq!(mode(&db), 0o600, "db file mode");
    assert_eq!(mode(&folder), 0o700, "new folder mode");
    // The folder we did not create keeps its mode.
    assert_ne!(mode(env.dir.path()) & 0o777, 0);
}

#[test]
fn wal_and_shm_are_private_too() {
    let env = Env::new();
    env.ok(["org", "show"]);
    // Holding a connection keeps the WAL and shared-memory files around.
    let conn = Connection::open(&env.db).unwrap();
    let _: i64 = conn
        .query_row("SELECT count(*) FROM orgs", [], |r| r.get(0))
        .unwrap();
    env.ok(["keys", "create", "--name", "x"]);
    for suffix in ["-wal", "-shm"] {
        let p = sidecar(&env.db, suffix);
        assert!(
            p.exists(),
            "{} exists while a connection is open",
            p.display()
        );
        assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
    }
    drop(conn);
}

#[test]
fn garbage_file_is_refused_untouched() {
    let env = Env::new();
    std::fs::write(
        &env.db,
        b"these are my tax records, not a database\n".repeat(50),
    )
    .unwrap();
    assert_refused(&env, "not a plexmcp database");
}

#[test]
fn zero_filled_file_is_refused_untouched() {
    let env = Env::new();
    std::fs::write(&env.db, vec![0u8; 4096]).unwrap();
    assert_refused(&env, "not a plexmcp database");
}

#[test]
fn short_sqlite_like_file_is_refused_untouched() {
    let env = Env::new();
    std::fs::write(&env.db, b"SQLite format 3\0").unwrap();
    assert_refused(&env, "not a plexmcp database");
}

#[test]
fn other_sqlite_database_is_refused_untouched() {
    let env = Env::new();
    {
        let conn = Connection::open(&env.db).unwrap();
        conn.execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes (body) VALUES ('hello');",
        )
        .unwrap();
    }
    assert_no_sidecars(&env.db);
    assert_refused(&env, "not a plexmcp database");
    // Still the other application's data.
    let conn = Connection::open(&env.db).unwrap();
    let body: String = conn
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(body, "hello");
}

#[test]
fn newer_schema_is_refused_untouched() {
    let env = Env::new();
    env.create_key_json("old", &[]);
    {
        let conn = Connection::open(&env.db).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    assert_no_sidecars(&env.db);
    assert_refused(&env, "newer");
    let err = env.fail(1, ["keys", "list"]);
    assert!(err.contains("99"), "{err}");
}

/// The header on disk can lag behind a WAL another process still holds;
/// the version is checked again through SQLite before anything is written.
#[test]
fn newer_schema_in_the_wal_is_refused() {
    let env = Env::new();
    env.create_key_json("old", &[]);
    let conn = Connection::open(&env.db).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    let before = std::fs::read(&env.db).unwrap();
    let on_disk = u32::from_be_bytes(before[60..64].try_into().unwrap());
    assert!(on_disk < 99, "the bump is still only in the WAL");
    let err = env.fail(1, ["keys", "create", "--name", "new"]);
    assert!(err.contains("newer"), "{err}");
    assert_eq!(std::fs::read(&env.db).unwrap(), before);
    drop(conn);
    let conn = Connection::open(&env.db).unwrap();
    let keys: i64 = conn
        .query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(keys, 1, "nothing was written");
}

#[test]
fn library_open_reports_typed_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
    let err = Store::open(&garbage).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
    assert_eq!(err.to_string().lines().count(), 1);

    let newer = dir.path().join("newer.db");
    drop(Store::open(&newer).unwrap());
    {
        let conn = Connection::open(&newer).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Store::open(&newer).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string().lines().count(), 1);

    let err = Store::open(dir.path()).unwrap_err();
    assert_eq!(err.to_string().lines().count(), 1, "{err}");

    // A good database opens again and again.
    let good = dir.path().join("good.db");
    drop(Store::open(&good).unwrap());
    let store = Store::open(&good).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn full_key_is_never_stored_or_shown_again() {
    let env = Env::new();
    env.ok(["mcps", "add", "github", "--stdio", "gh-mcp"]);
    // A second connection held open keeps the WAL from being folded away,
    // so both files are inspected with recent changes still in the WAL.
    let holder = Connection::open(&env.db).unwrap();
    holder.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    let _: i64 = holder
        .query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))
        .unwrap();

    let created = env.create_key_json("secret-holder", &["--description", "d", "--mcp", "github"]);
    let id = str_field(&created, "id").to_string();
    let rotated = env.json(["keys", "rotate", &id, "--json"]);
    let human = env.ok(["keys", "create", "--name", "human"]);
    let human_key = human
        .split_whitespace()
        .find(|w| w.starts_with("pmcp_") && w.len() == 51)
        .expect("human create prints the key")
        .to_string();
    let human_rotate = env.ok(["keys", "rotate", &human_key[5..13], "--revoke-old"]);
    let human_rotated_key = human_rotate
        .split_whitespace()
        .find(|w| w.starts_with("pmcp_") && w.len() == 51)
        .expect("human rotate prints the key")
        .to_string();

    let keys = [
        str_field(&created, "key").to_string(),
        str_field(&rotated, "key").to_string(),
        human_key,
        human_rotated_key,
    ];
    // The secret part (between the lookup id and the tag) on its own too.
    let secrets: Vec<&str> = keys.iter().map(|k| &k[13..45]).collect();

    assert!(
        sidecar(&env.db, "-wal").exists(),
        "the WAL is present while a connection is held"
    );
    let check = |bytes: &[u8], what: &str| {
        for (key, secret) in keys.iter().zip(&secrets) {
            assert!(!contains_bytes(bytes, key.as_bytes()), "full key in {what}");
            assert!(
                !contains_bytes(bytes, secret.as_bytes()),
                "secret in {what}"
            );
        }
    };
    check(&std::fs::read(&env.db).unwrap(), "db file");
    check(&std::fs::read(sidecar(&env.db, "-wal")).unwrap(), "WAL");

    let mut outputs = vec![
        env.ok(["keys", "list"]),
        env.ok(["keys", "list", "--json"]),
        env.ok(["org", "show", "--json"]),
    ];
    for k in &keys {
        outputs.push(env.ok(["keys", "show", &k[5..13]]));
        outputs.push(env.ok(["keys", "show", &k[5..13], "--json"]));
        outputs.push(env.ok(["keys", "show", k]));
        outputs.push(env.ok(["keys", "show", k, "--json"]));
    }
    for out in &outputs {
        check(out.as_bytes(), "command output");
    }

    drop(holder);
    check(&env.db_bytes(), "db after checkpoint");
    assert!(
        !sidecar(&env.db, "-wal").exists(),
        "WAL folded on last close"
    );
}

/// Changes other than key changes are audited too (read back through the
/// library, since only key activity has a CLI view).
#[test]
fn mcp_and_org_changes_are_audited() {
    let env = Env::new();
    env.ok([
        "mcps",
        "add",
        "github",
        "--stdio",
        "gh-mcp",
        "--env",
        "TOKEN=audit-secret-value-42",
    ]);
    env.ok(["mcps", "remove", "github"]);
    env.ok(["org", "create", "acme"]);
    let run = run_cmd(
        env.cmd()
            .env("SSH_CONNECTION", "203.0.113.9 5555 10.0.0.1 22")
            .args(["--org", "acme", "org", "set-plan", "pro"]),
    );
    expect_ok(run);

    let store = Store::open(&env.db).unwrap();
    let actions = |kind: &str, id: &str| {
        let events = store.audit_for(kind, id, 50).unwrap();
        for e in &events {
            assert_eq!(e.actor, "tester", "{e:?}");
            let detail = e.detail.as_deref().unwrap_or("");
            assert!(!detail.contains("audit-secret-value-42"), "{e:?}");
        }
        events
    };
    let mcp = actions("mcp", "github");
    let mut mcp_actions: Vec<&str> = mcp.iter().map(|e| e.action.as_str()).collect();
    mcp_actions.sort();
    assert_eq!(mcp_actions.len(), 2, "{mcp:?}");
    assert!(mcp_actions.contains(&"mcp.removed"), "{mcp:?}");

    let org = actions("org", "acme");
    let plan = org
        .iter()
        .find(|e| e.action.contains("plan"))
        .unwrap_or_else(|| panic!("no plan change in {org:?}"));
    assert_eq!(plan.actor_addr.as_deref(), Some("203.0.113.9"));
    assert!(org.iter().any(|e| e.action == "org.created"), "{org:?}");
}

#[test]
fn a_first_start_that_died_before_migrating_is_finished_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plexmcp.db");
    {
        // What a process leaves when it dies right after switching a new
        // file to WAL: an SQLite header, no tables, no application id.
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
    }
    let store = Store::open(&db).expect("an empty database is ours to set up");
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

/// Files of the database this process holds open although they were deleted.
fn deleted_files_of(db: &Path) -> Vec<String> {
    let db = db.to_string_lossy().into_owned();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with(&db) && target.ends_with("(deleted)"))
        .collect()
}

#[test]
fn opening_more_connections_keeps_outside_clients_from_deleting_the_wal() {
    let env = Env::new();
    env.ok(["mcps", "add", "github", "--stdio", "gh-mcp"]);
    let first = Store::open(&env.db).unwrap();
    assert_eq!(first.integrity_check().unwrap(), "ok");
    // Another connection of this process opened and closed: this must not
    // release `first`'s locks on the file.
    drop(first.reopen().unwrap());
    support::require_sqlite3();
    let out = std::process::Command::new("sqlite3")
        .arg(&env.db)
        .arg("SELECT count(*) FROM mcps")
        .output()
        .expect("run the sqlite3 command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        deleted_files_of(&env.db),
        Vec::<String>::new(),
        "the outside client deleted the WAL under an open connection"
    );
    // A change from another process is seen by the open connection.
    env.ok(["mcps", "add", "second", "--stdio", "x"]);
    assert_eq!(first.list_mcps(1).unwrap().len(), 2);
}

#[test]
fn unreadable_mcp_settings_fail_loudly_instead_of_being_dropped() {
    let env = Env::new();
    env.ok([
        "mcps",
        "add",
        "github",
        "--url",
        "https://mcp.example.com/mcp",
        "--header",
        "Authorization=Bearer upstream-token",
    ]);
    {
        // Damaged from outside: the headers (and their Authorization) no
        // longer parse. Read silently as "no headers", calls would reach
        // the upstream unauthenticated.
        let conn = Connection::open(&env.db).unwrap();
        conn.execute("UPDATE mcps SET headers_json = '[[\"Authorization\"' ", [])
            .unwrap();
    }
    let err = env.fail(1, ["mcps", "list"]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("MCP 'github'") && err.contains("headers_json"),
        "{err}"
    );
    let store = Store::open(&env.db).unwrap();
    let lookup = store.mcp_by_slug(1, "github");
    assert!(lookup.is_err(), "read as {lookup:?}");
    // Removing it still works, so the operator can add it again.
    env.ok(["mcps", "remove", "github"]);
    env.ok(["mcps", "list"]);
}

#[test]
fn a_timestamp_out_of_range_is_an_error_not_1970() {
    let env = Env::new();
    let created = env.create_key_json("odd", &[]);
    let id = created["id"].as_str().unwrap().to_string();
    {
        let conn = Connection::open(&env.db).unwrap();
        conn.execute(
            "UPDATE api_keys SET last_used_at = 9000000000000000 WHERE lookup_id = ?1",
            [&id],
        )
        .unwrap();
    }
    let err = env.fail(1, ["keys", "show", &id]);
    assert!(err.contains("out of range"), "{err}");
    assert!(!err.contains("1970-01-01"), "{err}");
}

#[test]
fn a_plan_change_counts_keys_in_its_own_transaction() {
    use plexmcp::admin;
    use plexmcp::domain::{Actor, McpAccess, Plan};

    let env = Env::new();
    env.ok(["org", "set-plan", "enterprise"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Keys are created from another connection while the plan changes.
    let creator = {
        let (db, stop, made) = (env.db.clone(), stop.clone(), made.clone());
        std::thread::spawn(move || {
            let mut store = Store::open(&db).unwrap();
            let org = store.org("default").unwrap();
            let actor = Actor {
                user: "creator".into(),
                addr: None,
            };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n = made.load(std::sync::atomic::Ordering::Relaxed);
                let request = admin::KeyRequest {
                    name: format!("k{n}"),
                    description: None,
                    expires: "never".into(),
                    access: McpAccess::All,
                };
                admin::create_key(&mut store, &org, &request, &actor, chrono::Utc::now()).unwrap();
                made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let mut store = Store::open(&env.db).unwrap();
    let org = store.org("default").unwrap();
    let actor = Actor {
        user: "tester".into(),
        addr: None,
    };
    let mut round = 0;
    while round < 40 || made.load(std::sync::atomic::Ordering::Relaxed) < 20 {
        round += 1;
        let plan = if round % 2 == 0 {
            Plan::Team
        } else {
            Plan::Enterprise
        };
        let change = admin::set_plan(&mut store, &org, plan, &actor, chrono::Utc::now()).unwrap();
        let latest = store.audit_for("org", "default", 1).unwrap();
        let detail = latest[0].detail.clone().unwrap_or_default();
        let keys = if change.active_keys == 1 {
            "key"
        } else {
            "keys"
        };
        assert!(
            detail.ends_with(&format!("({} active {keys})", change.active_keys)),
            "round {round}: the change reports {} active keys, its audit says {detail:?}",
            change.active_keys
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    creator.join().unwrap();
}
