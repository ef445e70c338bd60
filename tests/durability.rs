//! Durability and concurrency, end to end with the real binary:
//! - key changes made by the CLI while `serve` holds the database (and its
//!   WAL) open survive `serve` being killed with SIGKILL;
//! - `serve` killed with SIGKILL under load, round after round: the file
//!   stays sound, the server restarts, and at most one usage-writer batch
//!   is lost per kill (the loss is measured and printed);
//! - the console (in tmux), `serve` and the CLI working on one database at
//!   once, under load: nothing fails, nothing is "locked", and a revoke from
//!   the CLI or the console is honoured by the server's next request;
//! - an unwritable folder, a read-only database, a full disk, a file-size
//!   limit, a database from a newer schema and files that are not plexmcp
//!   databases: one clear error line, exit 1, existing data untouched.
//!
//! Needs node and the reference server, and tmux for the console; the test
//! support installs them on first use, and tests fail, never skip, when it
//! cannot.
//! `PLEXMCP_SIGKILL_ROUNDS` sets the number of kills (default 20); the
//! soak script in `tests/soak/` runs 100.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plexmcp::server::usage_writer::MAX_BATCH;
use plexmcp::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::tmux::{Tmux, console_command};
use support::{Env, READY_TIMEOUT, Server};

/// `PRAGMA integrity_check` through a connection of our own.
fn integrity(db: &Path) -> String {
    Store::open(db)
        .expect("open the database")
        .integrity_check()
        .expect("run integrity_check")
}

/// A plain HTTP client (no proxy) for load and checks.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// `POST /mcp`; `None` when the connection failed or the answer was cut
/// off (the server was killed).
async fn try_post(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> Option<(StatusCode, Value)> {
    let response = client
        .post(format!("{base}/mcp"))
        .header("Authorization", format!("ApiKey {key}"))
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status();
    let bytes = response.bytes().await.ok()?;
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn echo_body(mcp: &str, message: &str) -> Value {
    json!({ "mcp_id": mcp, "tool": "echo", "arguments": { "message": message } })
}

/// Authenticated, then refused: no MCP "nowhere" exists (403, no upstream).
fn forbidden_body() -> Value {
    json!({ "mcp_id": "nowhere", "tool": "echo" })
}

/// Clients calling the server in a loop until stopped, counting the
/// answers (200 from echo, 403 from the cheap path) and anything else.
struct Load {
    stop: Arc<AtomicBool>,
    /// Set just before the server is killed: failures after it are expected.
    killing: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    echoed: Arc<AtomicU64>,
    unexpected: Arc<Mutex<Vec<String>>>,
    tasks: tokio::task::JoinSet<()>,
}

impl Load {
    /// `echo_clients` call echo on `mcp`, `forbidden_clients` the 403 path.
    fn start(
        base: &str,
        key: &str,
        mcp: &str,
        echo_clients: usize,
        forbidden_clients: usize,
    ) -> Load {
        let mut load = Load {
            stop: Arc::default(),
            killing: Arc::default(),
            answered: Arc::default(),
            echoed: Arc::default(),
            unexpected: Arc::default(),
            tasks: tokio::task::JoinSet::new(),
        };
        for client_no in 0..echo_clients + forbidden_clients {
            let echo = client_no < echo_clients;
            let (base, key, mcp) = (base.to_string(), key.to_string(), mcp.to_string());
            let (stop, killing, answered, echoed, unexpected) = (
                load.stop.clone(),
                load.killing.clone(),
                load.answered.clone(),
                load.echoed.clone(),
                load.unexpected.clone(),
            );
            load.tasks.spawn(async move {
                let client = http_client();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = if echo {
                        echo_body(&mcp, &format!("c{client_no} #{i}"))
                    } else {
                        forbidden_body()
                    };
                    i += 1;
                    match try_post(&client, &base, &key, &body).await {
                        Some((status, _)) if echo && status == StatusCode::OK => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            echoed.fetch_add(1, Ordering::Relaxed);
                        }
                        Some((status, _)) if !echo && status == StatusCode::FORBIDDEN => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Some((status, body)) => {
                            // Still an answer (and a usage event), but wrong.
                            answered.fetch_add(1, Ordering::Relaxed);
                            unexpected.lock().unwrap().push(format!("{status}: {body}"));
                        }
                        None if killing.load(Ordering::Relaxed) => {
                            // The server is gone; wait to be stopped.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        None => unexpected
                            .lock()
                            .unwrap()
                            .push("request failed while the server was up".to_string()),
                    }
                }
            });
        }
        load
    }

    fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::Relaxed)
    }

    /// Stops the clients; returns the answers they received.
    async fn stop(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(done) = self.tasks.join_next().await {
            done.expect("load client");
        }
        let unexpected = self.unexpected.lock().unwrap().clone();
        (self.answered(), unexpected)
    }
}

// ---------------------------------------------------------------------------
// Key mutations survive SIGKILL
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_changes_made_while_serve_runs_survive_sigkill() {
    let env = Env::new();
    let (_, warm) = env.create_key("warm", &[]);
    let server = Server::start(&env).await;
    // The server holds the database and its WAL open from here on, so the
    // CLI's commits stay in the WAL instead of being checkpointed away.
    let reply = server.call(Some(&warm), &forbidden_body()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:#}", reply.body);

    // Every kind of change, each reported done by its command.
    env.cli_ok(&["mcps", "add", "gh", "--url", "http://127.0.0.1:9/mcp"]);
    let (created, created_key) =
        env.create_key("created", &["--description", "made while serving"]);
    let (revoked, revoked_key) = env.create_key("to-revoke", &[]);
    env.cli_ok(&["keys", "revoke", &revoked, "--yes"]);
    let (rotated_old, _) = env.create_key("to-rotate", &[]);
    let rotation: Value = serde_json::from_str(&env.cli_ok(&[
        "keys",
        "rotate",
        &rotated_old,
        "--revoke-old",
        "--json",
    ]))
    .expect("rotate JSON");
    let rotated_new = rotation["id"].as_str().expect("new id").to_string();
    let rotated_key = rotation["key"].as_str().expect("new key").to_string();
    let (edited, _) = env.create_key("to-edit", &[]);
    env.cli_ok(&[
        "keys",
        "edit",
        &edited,
        "--name",
        "edited",
        "--description",
        "new words",
        "--mcp",
        "gh",
    ]);
    env.cli_ok(&["org", "set-plan", "team"]);

    // The running server sees them too.
    let reply = server.call(Some(&created_key), &forbidden_body()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:#}", reply.body);
    server
        .call(Some(&revoked_key), &forbidden_body())
        .await
        .assert_invalid_key("revoked");

    let wal = PathBuf::from(format!("{}-wal", env.db.display()));
    let wal_size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let status = server.kill_hard();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
    assert!(
        wal_size > 0,
        "the changes were not in a WAL ({wal_size} bytes)"
    );
    eprintln!("WAL at the kill: {wal_size} bytes (information only)");

    // Reopened after the crash: every change is there.
    assert_eq!(integrity(&env.db), "ok");
    let key = |id: &str| env.key_json(id);
    let c = key(&created);
    assert_eq!(
        (c["name"].as_str(), c["description"].as_str()),
        (Some("created"), Some("made while serving"))
    );
    assert_eq!(key(&revoked)["status"], "revoked");
    assert_eq!(key(&rotated_old)["status"], "revoked");
    let n = key(&rotated_new);
    assert_eq!(
        (n["status"].as_str(), n["name"].as_str()),
        (Some("active"), Some("to-rotate"))
    );
    let e = key(&edited);
    assert_eq!(e["name"], "edited");
    assert_eq!(e["description"], "new words");
    assert_eq!(e["mcp_access"], json!(["gh"]));
    let org: Value =
        serde_json::from_str(&env.cli_ok(&["org", "show", "--json"])).expect("org JSON");
    assert_eq!(org["plan"], "team", "{org:#}");
    let mcps: Value =
        serde_json::from_str(&env.cli_ok(&["mcps", "list", "--json"])).expect("mcps JSON");
    assert_eq!(mcps[0]["id"], "gh", "{mcps:#}");

    // And a restarted server honours them.
    let server = Server::start(&env).await;
    let reply = server.call(Some(&rotated_key), &forbidden_body()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:#}", reply.body);
    server
        .call(Some(&revoked_key), &forbidden_body())
        .await
        .assert_invalid_key("revoked");
    let status = server.terminate();
    assert!(status.success(), "{status}");
}

// ---------------------------------------------------------------------------
// SIGKILL under load, round after round
// ---------------------------------------------------------------------------

/// Kills in the test; `PLEXMCP_SIGKILL_ROUNDS` overrides (the soak: 100).
fn sigkill_rounds() -> usize {
    std::env::var("PLEXMCP_SIGKILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_under_load_stays_sound_and_loses_at_most_one_writer_batch() {
    const ECHO_CLIENTS: usize = 2;
    const FORBIDDEN_CLIENTS: usize = 2;
    let rounds = sigkill_rounds();
    let env = Env::new();
    env.add_everything_stdio("ev");
    let (_, key) = env.create_key("load", &[]);

    let mut stored = env.usage_event_count();
    let mut last_answered: Option<u64> = None;
    let mut losses: Vec<i64> = Vec::new();
    let mut total_answered = 0u64;
    let started = Instant::now();
    for round in 0..=rounds {
        // Restart on the database the last kill left behind: the server
        // recovers it, and then it must be sound.
        let server = Server::start(&env).await;
        let check = integrity(&env.db);
        assert_eq!(check, "ok", "round {round}: integrity_check after a kill");
        let now_stored = env.usage_event_count();
        if let Some(answered) = last_answered {
            let kept = u64::try_from(now_stored - stored).expect("events never vanish");
            let loss = i64::try_from(answered).unwrap() - i64::try_from(kept).unwrap();
            eprintln!("kill {round:>3}: {answered:>5} answered, {kept:>5} stored, lost {loss}");
            // An answer implies its event was queued; an event can also be
            // stored for an answer the killed server never delivered (at
            // most one per client).
            assert!(
                loss <= i64::try_from(MAX_BATCH).unwrap(),
                "kill {round}: {loss} events lost, more than one writer batch ({MAX_BATCH})"
            );
            assert!(
                loss >= -i64::try_from(ECHO_CLIENTS + FORBIDDEN_CLIENTS).unwrap(),
                "kill {round}: {} more events than answers",
                -loss
            );
            losses.push(loss);
            total_answered += answered;
        }
        stored = now_stored;
        if round == rounds {
            // A last, graceful stop: nothing may be lost then.
            let load = Load::start(&server.base, &key, "ev", ECHO_CLIENTS, FORBIDDEN_CLIENTS);
            wait_for(&load, 50, "the last load").await;
            let (answered, unexpected) = load.stop().await;
            assert!(unexpected.is_empty(), "{unexpected:#?}");
            let status = server.terminate();
            assert!(status.success(), "{status}");
            assert_eq!(
                env.usage_event_count() - stored,
                i64::try_from(answered).unwrap(),
                "a graceful stop lost usage events"
            );
            break;
        }

        let load = Load::start(&server.base, &key, "ev", ECHO_CLIENTS, FORBIDDEN_CLIENTS);
        // Kill at a different point of the load each round.
        let target = 20 + (round as u64 * 37) % 200;
        wait_for(&load, target, &format!("round {round}")).await;
        load.killing.store(true, Ordering::Relaxed);
        let status = server.kill_hard();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "round {round}: {status}"
        );
        let (answered, unexpected) = load.stop().await;
        assert!(unexpected.is_empty(), "round {round}: {unexpected:#?}");
        last_answered = Some(answered);
    }
    let max = losses.iter().max().copied().unwrap_or(0);
    let mean = losses.iter().sum::<i64>() as f64 / losses.len().max(1) as f64;
    eprintln!(
        "{rounds} SIGKILLs in {:?}: {total_answered} answered; usage events lost per kill: \
         max {max}, mean {mean:.2}, all {losses:?} (writer batch cap {MAX_BATCH})",
        started.elapsed()
    );
}

/// Waits until `load` has had an echo answered (so the stdio upstream is
/// running when the server is killed), then `answers` answers more.
async fn wait_for(load: &Load, answers: u64, what: &str) {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut base = None;
    loop {
        if base.is_none() && load.echoed() > 0 {
            base = Some(load.answered());
        }
        if base.is_some_and(|base| load.answered() >= base + answers) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: only {} answers ({} echoes); unexpected: {:#?}",
            load.answered(),
            load.echoed(),
            load.unexpected.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------------------
// Console, serve and CLI on one database at once
// ---------------------------------------------------------------------------

/// The first whole key (`pmcp_` and 46 letters or digits) on `screen`.
fn key_on(screen: &str) -> Option<String> {
    screen.match_indices("pmcp_").find_map(|(at, _)| {
        let candidate: String = screen[at + 5..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        (candidate.len() == 46).then(|| format!("pmcp_{candidate}"))
    })
}

/// Runs a CLI command off the async threads; it must succeed and must not
/// mention a lock. Returns stdout.
async fn cli(env: &Arc<Env>, args: &[&str]) -> String {
    let env = env.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (env.cli(&args), args.join(" "))
    })
    .await
    .expect("CLI task");
    let (out, line) = out;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("locked"),
        "plexmcp {line} failed ({}): {stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A blocking console step on a blocking thread.
async fn console<T: Send + 'static>(
    tmux: &Arc<Tmux>,
    step: impl FnOnce(&Tmux) -> T + Send + 'static,
) -> T {
    let tmux = tmux.clone();
    tokio::task::spawn_blocking(move || step(&tmux))
        .await
        .expect("console step")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_serve_and_cli_share_one_database_under_load() {
    const CLI_ROUNDS: usize = 12;
    const CONSOLE_ROUNDS: usize = 3;
    let env = Arc::new(Env::new());
    env.cli_ok(&["org", "set-plan", "enterprise"]);
    env.add_everything_stdio("ev");
    let (_, steady) = env.create_key("steady", &[]);
    let server = Arc::new(Server::start(&env).await);
    let warm = server.echo(&steady, "ev", "warm").await;
    assert_eq!(warm.status, StatusCode::OK, "{:#}", warm.body);

    let state = env.dir.path().join("state");
    let exit_file = env.dir.path().join("console-exit.txt");
    let command = console_command(&env.db, &state, &exit_file);
    let tmux = Arc::new(Tmux::start(&command));
    console(&tmux, |t| t.wait("the key list", |s| s.contains("steady"))).await;

    let load = Load::start(&server.base, &steady, "ev", 2, 1);

    // The CLI: create, use, edit, use, revoke, and the very next request
    // with the key is refused.
    let cli_churn = {
        let (env, server) = (env.clone(), server.clone());
        tokio::spawn(async move {
            for i in 0..CLI_ROUNDS {
                let created: Value = serde_json::from_str(
                    &cli(
                        &env,
                        &["keys", "create", "--name", &format!("cli-{i}"), "--json"],
                    )
                    .await,
                )
                .expect("keys create JSON");
                let (id, key) = (
                    created["id"].as_str().unwrap().to_string(),
                    created["key"].as_str().unwrap().to_string(),
                );
                let reply = server.echo(&key, "ev", "fresh").await;
                assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
                cli(
                    &env,
                    &["keys", "edit", &id, "--description", &format!("edit {i}")],
                )
                .await;
                if i % 3 == 0 {
                    cli(&env, &["org", "set-plan", "enterprise"]).await;
                }
                let reply = server.echo(&key, "ev", "edited").await;
                assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
                cli(&env, &["keys", "revoke", &id, "--yes"]).await;
                server
                    .echo(&key, "ev", "revoked")
                    .await
                    .assert_invalid_key("revoked");
                cli(&env, &["keys", "list", "--json"]).await;
            }
        })
    };

    // The console: create a key through its form, use it, revoke it with
    // `r` `y`; once the console says so, the server refuses the key.
    let console_churn = {
        let (tmux, server) = (tmux.clone(), server.clone());
        tokio::spawn(async move {
            for j in 0..CONSOLE_ROUNDS {
                let name = format!("console-{j}");
                let key = console(&tmux, move |t| {
                    t.keys(&["n"]);
                    t.wait("the create form", |s| s.contains("Create API key"));
                    t.type_text(&name);
                    t.keys(&["Enter"]);
                    let screen = t.wait("the new key", |s| {
                        s.contains("shown only once") && key_on(s).is_some()
                    });
                    t.keys(&["Enter"]);
                    t.wait("the dialog to close", |s| !s.contains("shown only once"));
                    key_on(&screen).expect("a key on screen")
                })
                .await;
                let reply = server.echo(&key, "ev", "from the console").await;
                assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);

                let prefix = key[..13].to_string();
                console(&tmux, move |t| {
                    t.keys(&["r"]);
                    let dialog = t.wait("the revoke dialog", |s| s.contains("Revoke key"));
                    assert!(
                        dialog.contains(&format!("({prefix})")),
                        "the console offers to revoke another key than {prefix}:\n{dialog}"
                    );
                    t.keys(&["y"]);
                    t.wait("the revoke to be done", |s| {
                        s.contains(&format!("Revoked {prefix}"))
                    });
                })
                .await;
                server
                    .echo(&key, "ev", "revoked in the console")
                    .await
                    .assert_invalid_key("revoked");
            }
        })
    };

    cli_churn.await.expect("CLI churn");
    console_churn.await.expect("console churn");
    let (answered, unexpected) = load.stop().await;
    assert!(unexpected.is_empty(), "failed requests: {unexpected:#?}");
    eprintln!(
        "console + serve + CLI: {answered} requests answered under the churn (information only)"
    );

    // The console is still well and quits cleanly.
    console(&tmux, |t| {
        t.wait("the console after the churn", |s| s.contains("steady"));
        t.keys(&["q"]);
    })
    .await;
    let deadline = Instant::now() + READY_TIMEOUT;
    let exit = loop {
        if let Ok(text) = std::fs::read_to_string(&exit_file)
            && text.ends_with('\n')
        {
            break text;
        }
        assert!(Instant::now() < deadline, "the console did not quit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.trim(), "EXIT=0");
    let log = std::fs::read_to_string(state.join("plexmcp/plexmcp.log")).unwrap_or_default();
    assert!(!log.contains("locked"), "the console logged a lock:\n{log}");
    assert!(!server.logs().contains("locked"), "serve logged a lock");

    let server = Arc::into_inner(server).expect("no task holds the server");
    let logs = server.logs();
    let status = server.terminate();
    assert!(status.success(), "{status}; log:\n{logs}");
    assert_eq!(integrity(&env.db), "ok");
}

// ---------------------------------------------------------------------------
// Unusable databases: one clear error line, data untouched
// ---------------------------------------------------------------------------

/// Every file in `dir` (not recursive) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let entry = entry.expect("dir entry");
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            (entry.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// The commands each case runs: a write, a read, and the server.
const COMMANDS: [&[&str]; 3] = [
    &["keys", "create", "--name", "refused"],
    &["keys", "list"],
    &["serve", "--listen", "127.0.0.1:0"],
];

/// `bin --db db args…` with a clean environment, under `prefix` (e.g.
/// setpriv or prlimit) and a time limit, so a server that wrongly starts
/// cannot hang the test.
fn run_plexmcp(prefix: &[&str], bin: &Path, db: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("60")
        .args(prefix)
        .arg(bin)
        .arg("--db")
        .arg(db)
        .args(args);
    for var in ["PLEXMCP_DB", "PLEXMCP_ORG", "PLEXMCP_LISTEN", "PLEXMCP_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("USER", "tester").stdin(Stdio::null());
    cmd.output().expect("run plexmcp")
}

/// Exit 1 and exactly one line on stderr, `error: …`, containing one of
/// `expected`. Returns the line.
fn assert_one_error_line(out: &Output, what: &str, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit {}; stderr:\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line:\n{stderr}");
    let line = lines[0];
    assert!(line.starts_with("error: "), "{what}: {line}");
    assert!(
        expected.iter().any(|e| line.contains(e)),
        "{what}: {line:?} says none of {expected:?}"
    );
    line.to_string()
}

/// True when this process runs as root (permission checks then need
/// another user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// As root, commands run as `nobody` (65534) through setpriv, against
/// files owned by root; otherwise as ourselves, with the permission bits
/// taken away. The binary is copied where `nobody` can run it.
struct OtherUser {
    bin_dir: tempfile::TempDir,
    root: bool,
}

impl OtherUser {
    fn new() -> OtherUser {
        use std::os::unix::fs::PermissionsExt;
        let bin_dir = tempfile::tempdir().expect("temp dir");
        let bin = bin_dir.path().join("plexmcp");
        std::fs::copy(env!("CARGO_BIN_EXE_plexmcp"), &bin).expect("copy the binary");
        std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = running_as_root();
        if root {
            let works = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                works,
                "setpriv (util-linux) is needed to test permissions as root"
            );
        }
        OtherUser { bin_dir, root }
    }

    fn bin(&self) -> PathBuf {
        self.bin_dir.path().join("plexmcp")
    }

    fn prefix(&self) -> &'static [&'static str] {
        if self.root {
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ]
        } else {
            &[]
        }
    }

    fn run(&self, db: &Path, args: &[&str]) -> Output {
        run_plexmcp(self.prefix(), &self.bin(), db, args)
    }

    /// Makes `path` belong to the user the commands run as.
    fn give(&self, path: &Path) {
        if self.root {
            let status = Command::new("chown")
                .arg("65534:65534")
                .arg(path)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown {}", path.display());
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A database with two keys, in a folder of its own (mode 0755).
fn populated_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    chmod(dir.path(), 0o755);
    let env = Env {
        dir: tempfile::tempdir().expect("temp dir"),
        db: dir.path().join("plexmcp.db"),
    };
    env.create_key("one", &[]);
    env.create_key("two", &["--description", "existing data"]);
    let db = env.db.clone();
    (dir, db)
}

#[test]
fn an_unwritable_folder_gives_one_error_line_and_changes_nothing() {
    let user = OtherUser::new();
    let (dir, db) = populated_db();
    // The database belongs to the user; its folder does not (root's, or
    // mode 0555): SQLite cannot create the -wal and -shm files next to it.
    user.give(&db);
    if !user.root {
        chmod(dir.path(), 0o555);
    }
    let before = snapshot(dir.path());
    for args in COMMANDS {
        let out = user.run(&db, args);
        let line = assert_one_error_line(&out, &format!("{args:?}"), &["is not writable"]);
        eprintln!("unwritable folder, {args:?}: {line}");
        assert_eq!(snapshot(dir.path()), before, "{args:?} changed the folder");
    }
    // A database to be created there cannot be.
    let new_db = dir.path().join("new.db");
    for args in COMMANDS {
        let out = user.run(&new_db, args);
        let line = assert_one_error_line(
            &out,
            &format!("new database, {args:?}"),
            &["Permission denied"],
        );
        assert!(line.contains(&*new_db.to_string_lossy()), "{line}");
        eprintln!("unwritable folder, new database, {args:?}: {line}");
        assert_eq!(snapshot(dir.path()), before, "{args:?} changed the folder");
    }
    chmod(dir.path(), 0o755);
}

#[test]
fn a_read_only_database_gives_one_error_line_and_changes_nothing() {
    let user = OtherUser::new();
    let (dir, db) = populated_db();
    chmod(&db, 0o444);
    if !user.root {
        chmod(dir.path(), 0o555);
    }
    let before = snapshot(dir.path());
    for args in COMMANDS {
        let out = user.run(&db, args);
        let line = assert_one_error_line(&out, &format!("{args:?}"), &["is not writable"]);
        assert!(line.contains(&*db.to_string_lossy()), "{line}");
        eprintln!("read-only database, {args:?}: {line}");
        assert_eq!(snapshot(dir.path()), before, "{args:?} changed the folder");
    }
    chmod(dir.path(), 0o755);

    // In a folder the user may write to: SQLite may add its -wal and -shm
    // files, but the database itself stays as it was.
    user.give(dir.path());
    for args in COMMANDS {
        let out = user.run(&db, args);
        let line = assert_one_error_line(&out, &format!("{args:?}"), &["is not writable"]);
        eprintln!("read-only database, writable folder, {args:?}: {line}");
        let after = snapshot(dir.path());
        assert_eq!(after["plexmcp.db"], before["plexmcp.db"], "{args:?}");
        for name in after.keys() {
            assert!(
                before.contains_key(name) || name.ends_with("-wal") || name.ends_with("-shm"),
                "{args:?} created {name}"
            );
        }
    }
}

#[test]
fn a_database_from_a_newer_schema_is_refused_untouched() {
    let (dir, db) = populated_db();
    {
        let conn = rusqlite::Connection::open(&db).expect("open with rusqlite");
        conn.pragma_update(None, "user_version", 99)
            .expect("set user_version");
    }
    let before = snapshot(dir.path());
    for args in COMMANDS {
        let out = run_plexmcp(&[], Path::new(env!("CARGO_BIN_EXE_plexmcp")), &db, args);
        let line = assert_one_error_line(&out, &format!("{args:?}"), &["newer plexmcp"]);
        eprintln!("newer schema, {args:?}: {line}");
        assert_eq!(snapshot(dir.path()), before, "{args:?} changed the folder");
    }
}

#[test]
fn files_that_are_not_plexmcp_databases_are_refused_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Bytes from a small LCG: no header, no structure.
    let mut state = 0x2545_F491_u32;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as u8
        })
        .collect();
    std::fs::write(dir.path().join("noise.db"), &noise).unwrap();
    std::fs::write(dir.path().join("notes.db"), "remember the milk\n").unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("other-app.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
    }
    let before = snapshot(dir.path());
    for name in ["noise.db", "notes.db", "other-app.db"] {
        for args in COMMANDS {
            let db = dir.path().join(name);
            let out = run_plexmcp(&[], Path::new(env!("CARGO_BIN_EXE_plexmcp")), &db, args);
            let line = assert_one_error_line(
                &out,
                &format!("{name}, {args:?}"),
                &["is not a plexmcp database"],
            );
            eprintln!("{name}, {args:?}: {line}");
            assert_eq!(snapshot(dir.path()), before, "{name}, {args:?}");
        }
    }
}

#[test]
fn a_file_size_limit_gives_one_error_line_and_changes_nothing() {
    // RLIMIT_FSIZE (`ulimit -f`) needs no privileges: a write past it fails
    // with EFBIG (plexmcp ignores SIGXFSZ), as a write to a full disk fails
    // with ENOSPC. 16 KiB is less than SQLite's shared-memory file.
    let works = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(works, "prlimit (util-linux) is not installed");
    let (dir, db) = populated_db();
    let keys_before = keys_list(&db);
    let before = snapshot(dir.path());
    let bin = Path::new(env!("CARGO_BIN_EXE_plexmcp"));
    for args in COMMANDS {
        let out = run_plexmcp(&["prlimit", "--fsize=16384", "--"], bin, &db, args);
        let line = assert_one_error_line(&out, &format!("{args:?}"), &["File too large"]);
        eprintln!("file-size limit, {args:?}: {line}");
        let after = snapshot(dir.path());
        assert_eq!(after["plexmcp.db"], before["plexmcp.db"], "{args:?}");
    }
    assert_eq!(keys_list(&db), keys_before);

    // A limit above the shared-memory file: opening works, and writes go
    // on until the WAL (which the failed checkpoints leave growing) reaches
    // the limit in the middle of a transaction.
    let mut keys = keys_before;
    let mut refused = None;
    for i in 0..20 {
        let name = format!("limited-{i}");
        let db_before = std::fs::read(&db).unwrap();
        let out = run_plexmcp(
            &["prlimit", "--fsize=36864", "--"],
            bin,
            &db,
            &["keys", "create", "--name", &name],
        );
        if out.status.success() {
            keys.push(name);
            continue;
        }
        let line = assert_one_error_line(&out, "limited create", &["File too large"]);
        assert_eq!(
            std::fs::read(&db).unwrap(),
            db_before,
            "the database changed"
        );
        refused = Some((i, line));
        break;
    }
    let (i, line) = refused.expect("20 key creations never reached a 36 KiB limit");
    eprintln!("file-size limit, creation {i} in the middle of a transaction: {line}");
    keys.sort();
    assert_eq!(
        keys_list(&db),
        keys,
        "the keys committed before the refusal"
    );
    assert_eq!(integrity(&db), "ok");
}

/// The names of the keys in `db`, as `keys list --json` gives them.
fn keys_list(db: &Path) -> Vec<String> {
    let out = run_plexmcp(
        &[],
        Path::new(env!("CARGO_BIN_EXE_plexmcp")),
        db,
        &["keys", "list", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("keys list JSON");
    let mut names: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Runs in a private mount namespace: mounts a 1 MiB tmpfs on $1, copies
/// the database $2 into it, fills it up to $5 KiB of free space, runs the
/// commands and records what they did in $3 (outside the tmpfs).
const DISK_FULL_SCRIPT: &str = r#"
set -u
mnt=$1 db=$2 out=$3 bin=$4 free_kib=$5 commands=$6
mount -t tmpfs -o size=1m plexmcp-test "$mnt" || exit 90
touch "$out/mounted"
cp "$db" "$mnt/plexmcp.db"
avail=$(df -Pk "$mnt" | awk 'NR == 2 { print $4 }')
if [ "$avail" -gt "$free_kib" ]; then
    dd if=/dev/zero of="$mnt/filler" bs=1024 count=$((avail - free_kib)) 2>/dev/null
fi
df -Pk "$mnt" | awk 'NR == 2 { print $4 }' > "$out/free"
n=0
for args in "keys create --name refused" "keys list" "serve --listen 127.0.0.1:0"; do
    [ "$n" -lt "$commands" ] || break
    # shellcheck disable=SC2086
    timeout 60 "$bin" --db "$mnt/plexmcp.db" $args > "$out/$n.stdout" 2> "$out/$n.stderr"
    echo $? > "$out/$n.code"
    n=$((n + 1))
done
cp "$mnt/plexmcp.db" "$out/after.db"
ls "$mnt" > "$out/files"
rm -f "$mnt/filler"
"$bin" --db "$mnt/plexmcp.db" keys list --json > "$out/list-after.json" 2> "$out/list-after.stderr"
"#;

/// The disk-full script under `unshare`, running the first `commands` of
/// [`COMMANDS`] (a private mount namespace: as
/// root with `-m`, unprivileged with `-rm` where user namespaces are
/// allowed). `None` when neither can mount a tmpfs here.
fn disk_full_run(db: &Path, free_kib: u32, commands: usize) -> Option<tempfile::TempDir> {
    for unshare in [["-rm"], ["-m"]] {
        let out = tempfile::tempdir().expect("temp dir");
        let mnt = tempfile::tempdir().expect("mount point");
        let status = Command::new("unshare")
            .args(unshare)
            .args(["sh", "-c", DISK_FULL_SCRIPT, "sh"])
            .arg(mnt.path())
            .arg(db)
            .arg(out.path())
            .arg(env!("CARGO_BIN_EXE_plexmcp"))
            .arg(free_kib.to_string())
            .arg(commands.to_string())
            .env("USER", "tester")
            .env_remove("PLEXMCP_DB")
            .env_remove("PLEXMCP_ORG")
            .env_remove("PLEXMCP_LOG")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if out.path().join("mounted").exists() {
            assert!(
                status.is_ok_and(|s| s.success()),
                "the disk-full script failed"
            );
            return Some(out);
        }
    }
    None
}

#[test]
fn a_full_disk_gives_one_error_line_and_changes_nothing() {
    let (_dir, db) = populated_db();
    let original = std::fs::read(&db).unwrap();
    let keys_before = keys_list(&db);
    // Completely full: even SQLite's -shm file cannot be made, and every
    // command fails. 36 KiB free: the -shm file (32 KiB) fits, a new key's
    // transaction does not; reading still works (and a server would start,
    // so it is not run).
    for (free_kib, commands) in [(0, COMMANDS.len()), (36, 2)] {
        // Never a silent skip: without a mountable tmpfs this test fails and says why.
        let Some(out) = disk_full_run(&db, free_kib, commands) else {
            panic!(
                "no tmpfs can be mounted here: this test needs `unshare -rm` (user namespaces) \
                 or root with CAP_SYS_ADMIN for `unshare -m` (util-linux)"
            );
        };
        let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap_or_default();
        let free = read("free");
        for (n, args) in COMMANDS.iter().enumerate().take(commands) {
            let code: i32 = read(&format!("{n}.code"))
                .trim()
                .parse()
                .expect("exit code");
            let what = format!("{} KiB free, {args:?}", free.trim());
            if free_kib > 0 && args[1] == "list" && code == 0 {
                eprintln!("{what}: works");
                continue;
            }
            let output = Output {
                status: std::os::unix::process::ExitStatusExt::from_raw(code << 8),
                stdout: Vec::new(),
                stderr: read(&format!("{n}.stderr")).into_bytes(),
            };
            let line =
                assert_one_error_line(&output, &what, &["No space left on device", "disk is full"]);
            eprintln!("{what}: {line}");
        }
        assert_eq!(
            std::fs::read(out.path().join("after.db")).unwrap(),
            original,
            "{free_kib} KiB free: the database file changed"
        );
        for name in read("files").lines() {
            assert!(
                ["plexmcp.db", "plexmcp.db-wal", "plexmcp.db-shm", "filler"].contains(&name),
                "{name} appeared"
            );
        }
        // Once there is space again, everything is as it was.
        let list: Value = serde_json::from_str(&read("list-after.json")).unwrap_or_else(|e| {
            panic!(
                "keys list after freeing space ({e}): {}",
                read("list-after.stderr")
            )
        });
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        assert_eq!(names, keys_before);
    }
}
