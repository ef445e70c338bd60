//! `plexmcp backup`, `restore` and `db check`, black-box: a backup taken
//! while `serve` answers requests restores to a database where every key
//! answers as before; a restore is refused while any plexmcp process has
//! the database open, and for files that are not our backups; `db check`
//! finds damage put there on purpose.
//!
//! Tests that need `server-everything` fail, never skip, when it is absent:
//! install it with `scripts/install-test-deps.sh`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::Value;
use support::tmux::{Tmux, console_command};
use support::{Env, Server};

/// What a key gets when it calls `echo` on `ev`: (status, error code, reason).
type Answer = (StatusCode, Option<String>, Option<String>);

async fn answer(server: &Server, key: &str) -> Answer {
    let reply = server.echo(key, "ev", "hello").await;
    if reply.status == StatusCode::OK {
        assert_eq!(reply.text(), "Echo: hello");
    }
    (
        reply.status,
        reply.code().map(str::to_owned),
        reply.reason().map(str::to_owned),
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a prepared command off the async workers.
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run plexmcp"))
        .await
        .expect("join")
}

/// Everything a user sees of the keys; compared to show "nothing changed".
fn keys_seen(env: &Env) -> Value {
    serde_json::from_str(&env.cli_ok(&["keys", "list", "--json"])).expect("keys list JSON")
}

fn key_names(env: &Env) -> Vec<String> {
    keys_seen(env)
        .as_array()
        .expect("array")
        .iter()
        .map(|k| k["name"].as_str().expect("name").to_owned())
        .collect()
}

/// An environment whose database is `path` (which need not exist yet).
fn env_at(path: &Path) -> Env {
    Env {
        dir: tempfile::tempdir().expect("temp dir"),
        db: path.to_path_buf(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_to_a_database_where_every_key_still_verifies() {
    let env = Env::new();
    env.cli_ok(&["org", "set-plan", "pro"]);
    env.add_everything_stdio("ev");
    env.add_everything_stdio("other");
    let (_, all_key) = env.create_key("all MCPs", &[]);
    let (_, ev_key) = env.create_key("ev only", &["--mcp", "ev"]);
    let (_, other_key) = env.create_key("other only", &["--mcp", "other"]);
    let (revoked_id, revoked_key) = env.create_key("revoked", &[]);
    env.cli_ok(&["keys", "revoke", &revoked_id, "--yes"]);
    let keys = [&all_key, &ev_key, &other_key, &revoked_key];
    let expected: Vec<Answer> = vec![
        (StatusCode::OK, None, None),
        (StatusCode::OK, None, None),
        (StatusCode::FORBIDDEN, Some("unauthorized_mcp".into()), None),
        (
            StatusCode::UNAUTHORIZED,
            Some("invalid_api_key".into()),
            Some("revoked".into()),
        ),
    ];

    let server = Arc::new(Server::start(&env).await);
    let mut before = Vec::new();
    for key in keys {
        before.push(answer(&server, key).await);
    }
    assert_eq!(before, expected);

    // Load: one key calls without pause until the backup has finished.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (server, stop, key) = (server.clone(), stop.clone(), all_key.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) || statuses.is_empty() {
                statuses.push(server.echo(&key, "ev", "load").await.status);
            }
            statuses
        })
    };
    let copy = env.dir.path().join("plexmcp-backup.db");
    let mut cmd = env.command();
    cmd.arg("backup").arg(&copy);
    let out = run(cmd).await;
    stop.store(true, Ordering::Relaxed);
    let statuses = load.await.expect("join load");
    assert!(
        out.status.success(),
        "backup failed under load: {}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("integrity check ok"),
        "{}",
        stdout(&out)
    );
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "requests during the backup: {statuses:?}"
    );
    let mode = std::fs::metadata(&copy)
        .expect("backup file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "backup mode {mode:o}");
    let copy_env = env_at(&copy);
    let check = copy_env.cli(&["db", "check"]);
    assert!(
        check.status.success(),
        "db check on the copy: {}",
        stderr(&check)
    );
    assert!(stdout(&check).contains(": ok"), "{}", stdout(&check));
    Arc::into_inner(server)
        .expect("the load task let go of the server")
        .terminate();

    // A new machine: restore into a database that does not exist yet.
    let fresh = Env::new();
    let restored = fresh.cli(&["restore", copy.to_str().expect("UTF-8 path"), "--yes"]);
    assert!(restored.status.success(), "restore: {}", stderr(&restored));
    let server = Server::start(&fresh).await;
    let mut after = Vec::new();
    for key in keys {
        after.push(answer(&server, key).await);
    }
    assert_eq!(after, expected, "answers after the restore");
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_refused_while_serve_or_the_console_has_the_database_open() {
    let env = Env::new();
    env.create_key("in the backup", &[]);
    let copy = env.dir.path().join("copy.db");
    let copy_arg = copy.to_str().expect("UTF-8 path");
    env.cli_ok(&["backup", copy_arg]);
    env.create_key("after the backup", &[]);
    let seen = keys_seen(&env);

    let server = Server::start(&env).await;
    let mut cmd = env.command();
    cmd.args(["restore", copy_arg, "--yes"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is in use by another process"),
        "{}",
        stderr(&out)
    );
    assert_eq!(keys_seen(&env), seen, "a refused restore changed the keys");
    server.terminate();

    let state = env.dir.path().join("state");
    let exit_file = env.dir.path().join("console-exit.txt");
    let tmux = Arc::new(Tmux::start(&console_command(&env.db, &state, &exit_file)));
    let t = tmux.clone();
    tokio::task::spawn_blocking(move || t.wait("the key list", |s| s.contains("after the backup")))
        .await
        .expect("join");
    let out = env.cli(&["restore", copy_arg, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is in use by another process"),
        "{}",
        stderr(&out)
    );
    assert_eq!(keys_seen(&env), seen, "a refused restore changed the keys");
    tmux.keys(&["q"]);
    let exit = exit_file.clone();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + support::READY_TIMEOUT;
        while !exit.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the console did not quit"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    })
    .await
    .expect("join");

    // With nothing holding it, the same restore goes through.
    env.cli_ok(&["restore", copy_arg, "--yes"]);
    assert_eq!(key_names(&env), ["in the backup"]);
}

#[test]
fn restore_refuses_foreign_damaged_or_newer_files_and_changes_nothing() {
    let env = Env::new();
    env.create_key("kept", &[]);
    let seen = keys_seen(&env);
    let dir = env.dir.path();
    let refused = |file: &Path, why: &str| {
        let out = env.cli(&["restore", file.to_str().expect("UTF-8 path"), "--yes"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            file.display(),
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(why),
            "{}: {}",
            file.display(),
            stderr(&out)
        );
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert_eq!(
            keys_seen(&env),
            seen,
            "restoring {} changed the keys",
            file.display()
        );
    };

    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a database at all\n".repeat(300)).unwrap();
    refused(&text, "is not a plexmcp database (not an SQLite file)");

    let other_app = dir.join("other-app.db");
    rusqlite::Connection::open(&other_app)
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi');")
        .unwrap();
    refused(&other_app, "an SQLite database of another application");

    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    refused(&empty, "is not a plexmcp backup (it is empty)");

    let newer = dir.join("newer.db");
    env.cli_ok(&["backup", newer.to_str().unwrap()]);
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    refused(&newer, "was written by a newer plexmcp (schema version 99");

    let damaged = dir.join("damaged.db");
    env.cli_ok(&["backup", damaged.to_str().unwrap()]);
    damage_key_index(&damaged);
    refused(&damaged, "is damaged");

    refused(&dir.join("missing.db"), "no backup");
}

#[test]
fn restore_asks_first_and_is_audited_in_the_restored_database() {
    let env = Env::new();
    env.create_key("in the backup", &[]);
    let copy = env.dir.path().join("copy.db");
    let copy_arg = copy.to_str().expect("UTF-8 path");
    env.cli_ok(&["backup", copy_arg]);
    env.create_key("after the backup", &[]);

    // No terminal to ask on (stdin is /dev/null): refused, as a usage error.
    let out = env.cli(&["restore", copy_arg]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
    assert_eq!(
        key_names(&env).len(),
        2,
        "an unconfirmed restore changed the keys"
    );

    let out = env.cli_ok(&["restore", copy_arg, "--yes"]);
    assert!(out.starts_with("Restored "), "{out}");
    assert!(out.contains("1 key (0 revoked)"), "{out}");
    assert_eq!(key_names(&env), ["in the backup"]);

    let store = plexmcp::store::Store::open(&env.db).expect("open restored database");
    let events = store
        .audit_for("database", &env.db.display().to_string(), 5)
        .expect("audit events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].action, "database.restored");
    assert_eq!(events[0].actor, "tester");
    assert_eq!(
        events[0].detail.as_deref(),
        Some(&*format!("from {copy_arg}"))
    );
}

#[test]
fn backup_refuses_to_overwrite_unless_forced_and_never_writes_over_the_database() {
    let env = Env::new();
    env.create_key("first", &[]);
    let copy = env.dir.path().join("copy.db");
    let copy_arg = copy.to_str().expect("UTF-8 path");
    env.cli_ok(&["backup", copy_arg]);
    let first_copy = std::fs::read(&copy).unwrap();

    env.create_key("second", &[]);
    let out = env.cli(&["backup", copy_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already exists; pass --force to replace it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        first_copy,
        "the copy was touched"
    );

    env.cli_ok(&["backup", copy_arg, "--force"]);
    let fresh = Env::new();
    fresh.cli_ok(&["restore", copy_arg, "--yes"]);
    let mut names = key_names(&fresh);
    names.sort();
    assert_eq!(names, ["first", "second"]);

    let db_arg = env.db.to_str().expect("UTF-8 path");
    for args in [vec!["backup", db_arg], vec!["backup", db_arg, "--force"]] {
        let out = env.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("is the database itself"),
            "{}",
            stderr(&out)
        );
    }
    let folder = env.dir.path().to_str().unwrap();
    let out = env.cli(&["backup", folder, "--force"]);
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
    assert_eq!(key_names(&env).len(), 2);
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial copies left behind: {leftovers:?}"
    );

    let nothing = Env::new();
    let out = nothing.cli(&["backup", copy_arg, "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    assert!(!nothing.db.exists(), "backup created a database to back up");
}

#[test]
fn db_check_says_ok_on_a_good_database_and_exits_1_naming_the_damage() {
    let env = Env::new();
    env.create_key("one", &[]);
    env.create_key("two", &[]);
    let out = env.cli(&["db", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "{}: ok (integrity check and foreign keys; schema version {})\n",
            env.db.display(),
            plexmcp::store::schema_version()
        )
    );

    let copy_env = Env::new();
    env.cli_ok(&["backup", copy_env.db.to_str().unwrap()]);
    damage_key_index(&copy_env.db);
    let out = copy_env.cli(&["db", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("missing from index sqlite_autoindex_api_keys_1"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("problem(s)"), "{}", stderr(&out));
}

/// Zeroes the cell area of the page holding the API keys' lookup-id index
/// (as a bad disk sector would): the keys' rows go missing from it.
fn damage_key_index(db: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let (page, page_size): (i64, i64) = {
        let conn = rusqlite::Connection::open(db).expect("open the copy");
        let page = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 'sqlite_autoindex_api_keys_1'",
                [],
                |r| r.get(0),
            )
            .expect("the lookup-id index");
        let size = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .expect("page size");
        (page, size)
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .expect("open the copy for damage");
    let (page, page_size) = (page as u64, page_size as u64);
    let start = (page - 1) * page_size;
    let mut bytes = vec![0u8; usize::try_from(page_size).unwrap()];
    file.seek(SeekFrom::Start(start)).unwrap();
    file.read_exact(&mut bytes).unwrap();
    let len = bytes.len();
    bytes[len - 600..].fill(0);
    file.seek(SeekFrom::Start(start)).unwrap();
    file.write_all(&bytes).unwrap();
}

#[test]
fn backup_into_a_missing_folder_names_that_folder() {
    let env = Env::new();
    env.create_key("one", &[]);
    let folder = env.dir.path().join("not-made-yet");
    let target = folder.join("copy.db");
    let out = env.cli(&["backup", target.to_str().expect("UTF-8 path")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: no such folder; create it first\n",
            folder.display()
        )
    );
    assert!(!folder.exists(), "backup created the folder");
}

#[test]
fn db_check_names_a_row_whose_parent_is_missing() {
    let env = Env::new();
    env.create_key("one", &[]);
    let copy_env = Env::new();
    env.cli_ok(&["backup", copy_env.db.to_str().unwrap()]);
    // Another SQLite client, with foreign keys off (the sqlite3 shell's default).
    let row: i64 = {
        let conn = rusqlite::Connection::open(&copy_env.db).expect("open the copy");
        conn.pragma_update(None, "foreign_keys", false)
            .expect("foreign keys off");
        conn.execute(
            "INSERT INTO audit_events (org_id, at, actor, action, target_kind, target_id)
             VALUES (999, 0, 'someone', 'org.created', 'org', 'gone')",
            [],
        )
        .expect("insert an orphan");
        conn.last_insert_rowid()
    };
    let out = copy_env.cli(&["db", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("audit_events row {row} refers to a missing orgs row\n")
    );
    assert!(
        stderr(&out).contains("has 1 problem(s)"),
        "{}",
        stderr(&out)
    );
}
