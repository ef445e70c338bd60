//! Secrets stay secret. A full session (register MCPs, create keys, use
//! them through `serve`, rotate, revoke, use them again) runs with every
//! process logging at `trace`; then every log, every output, the database
//! and its `-wal`/`-shm` are searched for each key's secret part and whole
//! text: the only hits allowed are in the one output of the `keys create` or
//! `keys rotate` that printed that very key. Then: the key types zeroize
//! their text when dropped, including when the console's show-once dialog
//! closes, observed by an allocator that inspects memory as it is freed.

mod support;
mod tui_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plexmcp::keys::{self, ID_LEN, KEY_PREFIX, SECRET_LEN, ServerSecret};
use plexmcp::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ChildGuard, Env, HttpEverything, READY_TIMEOUT, everything_stdio_command};

// ---------------------------------------------------------------------------
// A full session at trace level
// ---------------------------------------------------------------------------

/// One process's output, kept for the search.
struct Captured {
    what: String,
    bytes: Vec<u8>,
    /// The one key this output was meant to show (`keys create`/`rotate`).
    shows: Option<String>,
}

struct Session {
    env: Env,
    /// Outside the database's folder: logs, the console's state folder.
    scratch: tempfile::TempDir,
    outputs: Vec<Captured>,
}

/// The 32 characters after the id: what makes a key a key.
fn secret_part(key: &str) -> &str {
    let start = KEY_PREFIX.len() + ID_LEN;
    &key[start..start + SECRET_LEN]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Session {
    fn new() -> Session {
        Session {
            env: Env::new(),
            scratch: tempfile::tempdir().expect("temp dir"),
            outputs: Vec::new(),
        }
    }

    /// The binary at `trace`, with its state folder in the scratch dir.
    fn command(&self) -> Command {
        let mut cmd = self.env.command();
        cmd.env("PLEXMCP_LOG", "trace")
            .env("XDG_STATE_HOME", self.scratch.path().join("state"))
            .env("RUST_LOG", "trace");
        cmd
    }

    fn keep(&mut self, what: String, output: &Output, shows: Option<String>) {
        self.outputs.push(Captured {
            what: format!("stdout of {what}"),
            bytes: output.stdout.clone(),
            shows,
        });
        self.outputs.push(Captured {
            what: format!("stderr of {what}"),
            bytes: output.stderr.clone(),
            shows: None,
        });
    }

    /// A CLI command that must succeed; returns its stdout.
    fn cli(&mut self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("run plexmcp");
        assert!(
            output.status.success(),
            "plexmcp {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.keep(format!("plexmcp {args:?}"), &output, None);
        String::from_utf8(output.stdout).expect("UTF-8 stdout")
    }

    /// A command that prints a new key once; returns the key. Its stdout
    /// is the one place that key may appear.
    fn cli_issuing(&mut self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("run plexmcp");
        assert!(
            output.status.success(),
            "plexmcp {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout");
        let key = if args.contains(&"--json") {
            let json: Value = serde_json::from_str(&stdout).expect("JSON");
            json["key"].as_str().expect("key in JSON").to_string()
        } else {
            stdout
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with(KEY_PREFIX) && l.len() == keys::KEY_LEN)
                .unwrap_or_else(|| panic!("no key in:\n{stdout}"))
                .to_string()
        };
        self.keep(format!("plexmcp {args:?}"), &output, Some(key.clone()));
        key
    }

    /// Every file under the database's folder, right now.
    fn store_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut dirs = vec![self.env.dir.path().to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    files.push((path, bytes));
                }
            }
        }
        files
    }

    /// Copies of the database files as they are now (the WAL and shm exist
    /// only while some connection is open).
    fn snapshot_store(&mut self, when: &str) -> Vec<String> {
        let mut names = Vec::new();
        for (path, bytes) in self.store_files() {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            names.push(name.clone());
            self.outputs.push(Captured {
                what: format!("{name} ({when})"),
                bytes,
                shows: None,
            });
        }
        names
    }
}

/// `plexmcp serve` at trace, stdout and stderr each into a file.
struct TracedServer {
    child: ChildGuard,
    base: String,
    stdout: PathBuf,
    stderr: PathBuf,
    client: reqwest::Client,
}

impl TracedServer {
    fn start(session: &Session) -> TracedServer {
        use std::os::unix::process::CommandExt;
        let stdout = session.scratch.path().join("serve.stdout");
        let stderr = session.scratch.path().join("serve.stderr");
        let mut cmd = session.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0);
        let child = ChildGuard::new(cmd.spawn().expect("spawn plexmcp serve"));
        const SERVING: &str = "plexmcp serving POST /mcp on http://";
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = loop {
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            if let Some(at) = log.find(SERVING) {
                break log[at + SERVING.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
            }
            assert!(Instant::now() < deadline, "serve never started:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        };
        TracedServer {
            child,
            base: format!("http://{addr}"),
            stdout,
            stderr,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// `POST /mcp` with the key in `header` as `prefix` + key.
    async fn post(&self, header: &str, value: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/mcp", self.base))
            .header(header, value)
            .json(body)
            .send()
            .await
            .expect("POST /mcp");
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn echo(&self, key: &str, mcp: &str) -> (StatusCode, Value) {
        let body = json!({"mcp_id": mcp, "tool": "echo", "arguments": {"message": "hello"}});
        self.post("Authorization", &format!("ApiKey {key}"), &body)
            .await
    }

    fn stop(mut self, session: &mut Session) {
        self.child.signal("TERM");
        let status = self
            .child
            .wait_timeout(READY_TIMEOUT)
            .expect("serve stops on SIGTERM");
        assert!(status.success(), "serve exited with {status}");
        for (what, path) in [
            ("serve stdout", &self.stdout),
            ("serve stderr", &self.stderr),
        ] {
            session.outputs.push(Captured {
                what: what.into(),
                bytes: std::fs::read(path).unwrap(),
                shows: None,
            });
        }
    }
}

fn assert_status(reply: (StatusCode, Value), status: StatusCode) -> Value {
    assert_eq!(reply.0, status, "{:#}", reply.1);
    reply.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_secret_in_any_log_output_or_database_file() {
    let upstream = HttpEverything::start();
    let mut s = Session::new();
    // An upstream credential, too: stored (documented), never logged.
    let upstream_token = format!("upstream-token-{}", std::process::id() * 7919);

    s.cli(&["mcps", "add", "ev", "--stdio", &everything_stdio_command()]);
    s.cli(&[
        "mcps",
        "add",
        "hev",
        "--url",
        &upstream.url(),
        "--header",
        &format!("Authorization=Bearer {upstream_token}"),
    ]);
    let a = s.cli_issuing(&["keys", "create", "--name", "alpha"]);
    let b = s.cli_issuing(&["keys", "create", "--name", "beta", "--json", "--mcp", "hev"]);
    let a_id = a[KEY_PREFIX.len()..KEY_PREFIX.len() + ID_LEN].to_string();
    let b_id = b[KEY_PREFIX.len()..KEY_PREFIX.len() + ID_LEN].to_string();
    let server_secret: ServerSecret = Store::open(&s.env.db).unwrap().server_secret().unwrap();
    let wrong = support::same_id_wrong_secret(&server_secret, &a, 1)
        .expose()
        .to_string();
    let forged = support::bad_tag(&a, 3);

    let server = TracedServer::start(&s);
    // Every way of presenting a key, every kind of answer.
    assert_status(server.echo(&a, "ev").await, StatusCode::OK);
    let body = json!({"mcp_id": "hev", "tool": "echo", "arguments": {"message": "x"}});
    assert_status(server.post("X-API-Key", &b, &body).await, StatusCode::OK);
    assert_status(
        server
            .post("Authorization", &format!("Bearer {b}"), &body)
            .await,
        StatusCode::OK,
    );
    assert_status(server.echo(&b, "ev").await, StatusCode::FORBIDDEN);
    for rpc in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "ev__echo", "arguments": {"message": "rpc"}}}),
    ] {
        let (status, _) = server
            .post("Authorization", &format!("Bearer {a}"), &rpc)
            .await;
        assert!(status.is_success(), "{status} for {rpc}");
    }
    for bad in [&wrong, &forged, &format!("{a}x"), &a[..40].to_string()] {
        let (status, _) = server.echo(bad, "ev").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Non-UTF-8 in the header is refused too (and must not be logged).
    let (status, _) = server.post("X-API-Key", &format!("{a} é"), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Rotate one key keeping the old, the other revoking it; revoke one.
    let a2 = s.cli_issuing(&["keys", "rotate", &a_id]);
    let b2 = s.cli_issuing(&["keys", "rotate", &b_id, "--revoke-old", "--json"]);
    let a2_id = a2[KEY_PREFIX.len()..KEY_PREFIX.len() + ID_LEN].to_string();
    assert_status(server.echo(&a2, "ev").await, StatusCode::OK);
    assert_status(server.echo(&a, "ev").await, StatusCode::OK);
    assert_status(server.post("X-API-Key", &b2, &body).await, StatusCode::OK);
    assert_status(
        server.post("X-API-Key", &b, &body).await,
        StatusCode::UNAUTHORIZED,
    );
    s.cli(&["keys", "revoke", &a_id, "--yes"]);
    s.cli(&["keys", "revoke", &a2_id, "-y"]);
    assert_status(server.echo(&a, "ev").await, StatusCode::UNAUTHORIZED);
    assert_status(server.echo(&a2, "ev").await, StatusCode::UNAUTHORIZED);
    for args in [
        vec!["keys", "list"],
        vec!["keys", "list", "--json"],
        vec!["keys", "show", &a_id],
        vec!["keys", "show", &a2_id],
        vec!["mcps", "list"],
    ] {
        s.cli(&args);
    }
    let files_live = s.snapshot_store("while serving");
    server.stop(&mut s);
    let files_after = s.snapshot_store("after");
    assert!(
        files_live.iter().any(|f| f.ends_with("-wal")),
        "expected a WAL while serving: {files_live:?}"
    );
    eprintln!("searched database files: while serving {files_live:?}, after {files_after:?}");

    let keys = [&a, &b, &a2, &b2, &wrong];
    let mut hits = Vec::new();
    for captured in &s.outputs {
        for key in keys {
            if captured.shows.as_deref() == Some(key.as_str()) {
                continue; // the one output that shows this key
            }
            for (label, needle) in [("key", key.as_str()), ("secret", secret_part(key))] {
                if contains(&captured.bytes, needle.as_bytes()) {
                    hits.push(format!("{label} of {}… in {}", &key[..13], captured.what));
                }
            }
        }
        let is_log = captured.what.starts_with("serve") || captured.what.starts_with("stderr");
        if is_log && contains(&captured.bytes, upstream_token.as_bytes()) {
            hits.push(format!("upstream token in {}", captured.what));
        }
    }
    // The outputs that show a key did show it (so the search can find one).
    for key in [&a, &b, &a2, &b2] {
        assert!(
            s.outputs
                .iter()
                .any(|c| c.shows.as_deref() == Some(key.as_str())
                    && contains(&c.bytes, secret_part(key).as_bytes())),
            "no output shows {}…",
            &key[..13]
        );
    }
    let serve_log = s.outputs.iter().find(|c| c.what == "serve stderr").unwrap();
    let log_lines = serve_log.bytes.split(|&b| b == b'\n').count();
    eprintln!(
        "searched {} outputs and files; serve logged {log_lines} lines at trace",
        s.outputs.len()
    );
    assert!(
        contains(&serve_log.bytes, b"TRACE") && contains(&serve_log.bytes, b"POST /mcp"),
        "serve did not log at trace"
    );
    assert!(hits.is_empty(), "secrets leaked:\n{}", hits.join("\n"));
}

// ---------------------------------------------------------------------------
// Zeroize: memory is inspected as it is freed
// ---------------------------------------------------------------------------

/// Passes everything to the system allocator; while armed, counts freed
/// (or reallocated-away) blocks that still hold the watched bytes.
struct Inspecting;

static ARMED: AtomicBool = AtomicBool::new(false);
static NEEDLE: [AtomicU8; SECRET_LEN] = [const { AtomicU8::new(0) }; SECRET_LEN];
static HITS: AtomicUsize = AtomicUsize::new(0);

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

fn inspect(ptr: *const u8, size: usize) {
    if !ARMED.load(Ordering::SeqCst) || size < SECRET_LEN {
        return;
    }
    let mut needle = [0u8; SECRET_LEN];
    for (b, a) in needle.iter_mut().zip(&NEEDLE) {
        *b = a.load(Ordering::Relaxed);
    }
    // SAFETY: the block is live and `size` bytes long until we pass it on.
    let block = unsafe { std::slice::from_raw_parts(ptr, size) };
    if contains(block, &needle) {
        HITS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; `inspect` only
// reads blocks that are still allocated.
unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        inspect(ptr, layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A block moved elsewhere leaves its old bytes behind.
        inspect(ptr, layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` with `needle` watched; returns how many freed blocks held it.
fn freed_copies(needle: &[u8], f: impl FnOnce()) -> usize {
    assert_eq!(needle.len(), SECRET_LEN);
    for (a, &b) in NEEDLE.iter().zip(needle) {
        a.store(b, Ordering::Relaxed);
    }
    HITS.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    HITS.load(Ordering::SeqCst)
}

/// A generator byte stream from `seed`, the same every time.
fn filler(seed: u64) -> impl FnMut(&mut [u8]) {
    let mut state = seed;
    move |buf: &mut [u8]| {
        for b in buf {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *b = (state >> 56) as u8;
        }
    }
}

/// One test, so that nothing else arms the allocator meanwhile.
#[test]
fn key_material_is_zeroized_when_dropped() {
    use plexmcp::tui::action::Action;
    use ratatui::crossterm::event::KeyCode;

    let server = ServerSecret::generate();
    let seed = u64::from(std::process::id()) << 20 | 0x5eed;
    // The key the tests below will make, known in advance.
    let expected = keys::generate_with(&server, filler(seed));
    let secret = secret_part(expected.expose()).as_bytes().to_vec();
    drop(expected);

    // The detector works: a plain String copy is found when freed.
    let found = freed_copies(&secret, || {
        let copy = String::from_utf8(secret.clone()).unwrap();
        drop(std::hint::black_box(copy));
    });
    assert!(found >= 1, "the allocator check does not see freed copies");

    // An ApiKey, from generation to drop, leaves no copy behind.
    let found = freed_copies(&secret, || {
        let key = keys::generate_with(&server, filler(seed));
        assert!(keys::parse_and_check(key.expose(), &server).is_ok());
        let _ = keys::fingerprint(key.expose());
        drop(std::hint::black_box(key));
    });
    assert_eq!(found, 0, "a freed block still held an ApiKey's secret");

    // The per-database secret zeroizes too (boxed, so it lives on the heap).
    let bytes: [u8; 32] = std::array::from_fn(|i| secret[i] ^ 0x5a);
    let found = freed_copies(&bytes, || {
        drop(std::hint::black_box(Box::new(ServerSecret::from_bytes(
            bytes,
        ))));
    });
    assert_eq!(found, 0, "a freed block still held the server secret");
    let found = freed_copies(&bytes, || drop(std::hint::black_box(Box::new(bytes))));
    assert!(found >= 1, "control: a plain boxed array is found");

    // The console: the key shown once, copied, and the dialog closed. All
    // the key's memory is wiped by then.
    let mut app = tui_support::loaded();
    let found = freed_copies(&secret, || {
        let key = keys::generate_with(&server, filler(seed));
        let record = tui_support::issued_record(&key, "shown once");
        app.update(Action::KeyIssued {
            record: Box::new(record),
            key,
            replaced: None,
        });
        assert!(matches!(app.mode, plexmcp::tui::app::Mode::ShowKey(_)));
        // `c` hands the text to the clipboard code in a Zeroizing buffer.
        let copied = app.update(tui_support::ch('c'));
        assert!(matches!(copied, Some(plexmcp::tui::app::Effect::Copy(_))));
        drop(copied);
        app.update(tui_support::press(KeyCode::Enter));
        assert!(!matches!(app.mode, plexmcp::tui::app::Mode::ShowKey(_)));
    });
    assert_eq!(found, 0, "the console left the shown key in freed memory");
}

/// Permissions of `path` (the low nine bits).
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Even under `umask 000`, the database folder is 0700 and the database,
/// its WAL and shared-memory files are readable by their owner alone.
#[tokio::test]
async fn store_files_stay_private_under_a_permissive_umask() {
    use std::os::unix::process::CommandExt;
    let scratch = tempfile::tempdir().expect("temp dir");
    let folder = scratch.path().join("data");
    let db = folder.join("plexmcp.db");
    let with_umask_0 = |args: &[&str]| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("umask 000; exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_plexmcp"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .env_remove("PLEXMCP_LOG")
            .env_remove("PLEXMCP_DB");
        cmd
    };
    let created = with_umask_0(&["keys", "create", "--name", "x"])
        .output()
        .expect("run plexmcp");
    assert!(created.status.success(), "{created:?}");
    assert_eq!(mode(&folder), 0o700, "database folder");
    assert_eq!(mode(&db), 0o600, "database file");

    // `serve` keeps a connection open, so the WAL and shm stay around.
    let mut serve = with_umask_0(&["serve", "--listen", "127.0.0.1:0"]);
    serve
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    let mut server = ChildGuard::new(serve.spawn().expect("spawn serve"));
    let sidecars = [folder.join("plexmcp.db-wal"), folder.join("plexmcp.db-shm")];
    let deadline = Instant::now() + READY_TIMEOUT;
    while !sidecars.iter().all(|p| p.exists()) {
        assert!(Instant::now() < deadline, "serve never opened the database");
        assert!(server.try_wait().is_none(), "serve exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in &sidecars {
        assert_eq!(
            mode(path) & 0o077,
            0,
            "{} is open to others",
            path.display()
        );
    }
    assert_eq!(mode(&db), 0o600);
}
