//! Outside SQLite clients on a live database. Operators back up and
//! inspect `plexmcp.db` with the `sqlite3` command and scripts while
//! `serve`, the console and the CLI use it; none of that may split the
//! server from its database. (It once did: closing a plain descriptor of
//! the file dropped the process's SQLite locks, so the next outside client
//! to close deleted the WAL under the server, whose revokes were then
//! ignored and later undone.)
//!
//! Needs the `sqlite3` command, Python 3 with its `sqlite3` module, node
//! with the reference server, and tmux; the test support installs what is
//! missing on first use (`support::install`).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::tmux::{Tmux, console_command};
use support::{Env, READY_TIMEOUT, Server};

/// Runs the `sqlite3` command on `db`; it must succeed. Returns stdout.
fn sqlite3(db: &Path, sql: &str) -> String {
    support::require_sqlite3();
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run the sqlite3 command");
    assert!(
        out.status.success(),
        "sqlite3 {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a Python script with the database path as `sys.argv[1]`.
fn python(db: &Path, script: &str) -> String {
    support::require_python3();
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What every outside client does in one round: the `sqlite3` command
/// reads and backs up; Python reads, writes (a key's description, as an
/// operator fixing a typo might) and backs up. Each opens and closes the
/// file, which is what used to split the server from it.
fn outside_round(env: &Env, round: usize) {
    let db = &env.db;
    let dir = env.dir.path();
    let keys: i64 = sqlite3(db, "SELECT count(*) FROM api_keys")
        .parse()
        .expect("a count from sqlite3");
    assert!(keys >= 2, "sqlite3 sees {keys} keys");
    let backup = dir.join(format!("cli-backup-{round}.db"));
    sqlite3(db, &format!(".backup '{}'", backup.display()));
    assert_eq!(sqlite3(&backup, "PRAGMA integrity_check"), "ok");

    let backup = dir.join(format!("python-backup-{round}.db"));
    let script = format!(
        "import sqlite3, sys\n\
         con = sqlite3.connect(sys.argv[1], timeout=30)\n\
         n = con.execute('SELECT count(*) FROM usage_events').fetchone()[0]\n\
         con.execute(\"UPDATE api_keys SET description = 'edited by python {round}' WHERE name = 'steady'\")\n\
         con.commit()\n\
         dst = sqlite3.connect({backup:?})\n\
         con.backup(dst)\n\
         dst.close()\n\
         con.close()\n\
         print(n)\n",
        backup = backup.display().to_string(),
    );
    python(db, &script)
        .parse::<i64>()
        .expect("a usage count from python");
    assert_eq!(sqlite3(&backup, "PRAGMA integrity_check"), "ok");
}

/// Files of the database that `pid` holds open although they were deleted:
/// the sign of a process split from its database.
fn deleted_database_files(pid: u32, db: &Path) -> Vec<String> {
    let db = db.to_string_lossy().into_owned();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/PID/fd");
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with(&db) && target.ends_with("(deleted)"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_sqlite_clients_never_undo_a_revoke_or_lose_usage() {
    const STEADY_CALLS: usize = 10;
    let env = Env::new();
    env.cli_ok(&["org", "set-plan", "enterprise"]);
    env.add_everything_stdio("ev");
    let (revoked_id, revoked_key) = env.create_key("to-revoke", &[]);
    let (steady_id, steady_key) = env.create_key("steady", &[]);
    let server = Server::start(&env).await;

    let state = env.dir.path().join("state");
    let exit_file = env.dir.path().join("console-exit.txt");
    let tmux = Arc::new(Tmux::start(&console_command(&env.db, &state, &exit_file)));
    let t = tmux.clone();
    tokio::task::spawn_blocking(move || t.wait("the key list", |s| s.contains("steady")))
        .await
        .unwrap();

    let mut steady_sent = 0;
    for key in [&revoked_key, &steady_key] {
        let reply = server.echo(key, "ev", "warm").await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    }
    steady_sent += 1;

    for round in 0..3 {
        outside_round(&env, round);
        let split = deleted_database_files(server.pid(), &env.db);
        assert!(
            split.is_empty(),
            "round {round}: serve holds deleted database files {split:?}"
        );
        for i in 0..STEADY_CALLS {
            let reply = server
                .echo(&steady_key, "ev", &format!("{round}/{i}"))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
            steady_sent += 1;
        }
        if round == 0 {
            env.cli_ok(&["keys", "revoke", &revoked_id, "--yes"]);
        }
        server
            .echo(&revoked_key, "ev", "after the revoke")
            .await
            .assert_invalid_key("revoked");
    }

    // The console saw the revoke too.
    let t = tmux.clone();
    tokio::task::spawn_blocking(move || {
        t.wait("the revoke in the console", |s| {
            s.lines()
                .any(|l| l.contains("to-revoke") && l.contains("Revoked"))
        })
    })
    .await
    .unwrap();

    let logs = server.logs();
    let status = server.terminate();
    assert!(status.success(), "{status}; log:\n{logs}");
    assert_eq!(sqlite3(&env.db, "PRAGMA integrity_check"), "ok");
    assert_eq!(env.key_json(&revoked_id)["status"], "revoked");
    assert_eq!(
        sqlite3(
            &env.db,
            &format!(
                "SELECT revoked_at IS NOT NULL FROM api_keys WHERE lookup_id = '{revoked_id}'"
            )
        ),
        "1",
        "the revoke is in the database itself"
    );
    let steady = env.key_json(&steady_id);
    assert_eq!(
        steady["request_count"], steady_sent,
        "every request of the steady key was recorded: {steady:#}"
    );
    assert_eq!(steady["description"], "edited by python 2");

    tmux.keys(&["q"]);
    let deadline = Instant::now() + READY_TIMEOUT;
    while !std::fs::read_to_string(&exit_file).is_ok_and(|t| t.ends_with('\n')) {
        assert!(Instant::now() < deadline, "the console did not quit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
