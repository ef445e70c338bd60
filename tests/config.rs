//! The configuration file and the log settings, black-box: precedence
//! (flag > env > file > default) as `config show` reports it and as
//! `serve` acts on it, one-line errors naming file, line and key,
//! `config init`, JSON logs, the access line off and sampled, and SIGHUP.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use support::{ChildGuard, Env, READY_TIMEOUT, free_port};

/// The binary against `env`'s database, reading its configuration from
/// `<env>/config/plexmcp/config.toml` and nothing else.
fn plexmcp(env: &Env) -> Command {
    let mut cmd = env.command();
    cmd.env("XDG_CONFIG_HOME", config_home(env));
    for var in ["PLEXMCP_CONFIG", "PLEXMCP_LOG_FORMAT", "PLEXMCP_ACCESS_LOG"] {
        cmd.env_remove(var);
    }
    cmd
}

fn config_home(env: &Env) -> PathBuf {
    env.dir.path().join("config")
}

fn config_path(env: &Env) -> PathBuf {
    config_home(env).join("plexmcp/config.toml")
}

fn write_config(env: &Env, text: &str) -> PathBuf {
    let path = config_path(env);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().expect("run plexmcp")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The `key = value  # source` line of `config show` for `key`.
fn shown<'a>(show: &'a str, key: &str) -> &'a str {
    show.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in config show:\n{show}"))
}

fn assert_shown(show: &str, key: &str, value: &str, source: &str) {
    let line = shown(show, key);
    let (setting, from) = line.split_once("  # ").expect("a source comment");
    assert_eq!(setting.trim_end(), format!("{key} = {value}"), "{show}");
    assert!(
        from.starts_with(source),
        "{key} from {from:?}, not {source:?}:\n{show}"
    );
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let env = Env::new();
    write_config(
        &env,
        "org = \"from-file\"\n[server]\nlisten = \"127.0.0.1:1111\"\n[log]\nformat = \"json\"\n",
    );
    let mut cmd = plexmcp(&env);
    cmd.env("PLEXMCP_ORG", "from-env")
        .env("PLEXMCP_LISTEN", "127.0.0.1:2222");
    let retention = stdout(&run(
        {
            let mut c = plexmcp(&env);
            c.env("PLEXMCP_USAGE_RETENTION_DAYS", "30");
            c
        },
        &["--usage-retention-days", "7", "config", "show"],
    ));
    assert_shown(
        &retention,
        "usage.retention_days",
        "7",
        "flag --usage-retention-days",
    );
    let show = stdout(&run(cmd, &["--org", "from-flag", "config", "show"]));
    assert_shown(&show, "org", "\"from-flag\"", "flag --org");
    assert_shown(
        &show,
        "server.listen",
        "\"127.0.0.1:2222\"",
        "env PLEXMCP_LISTEN",
    );
    assert_shown(&show, "log.format", "\"json\"", "file");
    assert_shown(&show, "log.access", "\"on\"", "default");
    assert_shown(&show, "usage.retention_days", "90", "default");
    assert!(!show.contains("(not used yet)"), "{show}");

    // Without the flag the variable wins; without the variable, the file.
    let mut cmd = plexmcp(&env);
    cmd.env("PLEXMCP_ORG", "from-env");
    let show = stdout(&run(cmd, &["config", "show"]));
    assert_shown(&show, "org", "\"from-env\"", "env PLEXMCP_ORG");
    assert_shown(&show, "server.listen", "\"127.0.0.1:1111\"", "file");
}

#[test]
fn config_flag_and_variable_choose_the_file() {
    let env = Env::new();
    let other = env.dir.path().join("other.toml");
    std::fs::write(&other, "org = \"other\"\n").unwrap();
    write_config(&env, "org = \"xdg\"\n");
    let show = stdout(&run(plexmcp(&env), &["config", "show"]));
    assert_shown(&show, "org", "\"xdg\"", "file");
    let mut cmd = plexmcp(&env);
    cmd.env("PLEXMCP_CONFIG", &other);
    let show = stdout(&run(cmd, &["config", "show"]));
    assert_shown(&show, "org", "\"other\"", "file");
    assert!(show.starts_with(&format!(
        "# config file: {} (env PLEXMCP_CONFIG)",
        other.display()
    )));

    let missing = env.dir.path().join("missing.toml");
    let out = run(
        plexmcp(&env),
        &["--config", missing.to_str().unwrap(), "keys", "list"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("missing.toml"), "{err}");
}

/// The org in the file is the one `keys` commands work in.
#[test]
fn commands_use_the_file() {
    let env = Env::new();
    stdout(&run(plexmcp(&env), &["org", "create", "acme"]));
    write_config(&env, "org = \"acme\"\n");
    let show: serde_json::Value =
        serde_json::from_str(&stdout(&run(plexmcp(&env), &["org", "show", "--json"]))).unwrap();
    assert_eq!(show["slug"], "acme", "{show}");
}

fn assert_one_line_error(out: &Output, code: i32, starts: &str, contains: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(starts),
        "{err:?} should start with {starts:?}"
    );
    assert!(err.contains(contains), "{err}");
}

#[test]
fn unknown_key_is_one_line_with_file_line_and_key() {
    let env = Env::new();
    let path = write_config(
        &env,
        "# comment\n\n[log]\nformat = \"text\"\nfromat = \"json\"\n",
    );
    let out = run(plexmcp(&env), &["keys", "list"]);
    let starts = format!("error: {}:5: log.fromat: ", path.display());
    assert_one_line_error(&out, 2, &starts, "unknown field `fromat`");
}

#[test]
fn bad_value_is_one_line_with_file_line_and_key() {
    let env = Env::new();
    let path = write_config(&env, "[server]\nlisten = \"localhost\"\n");
    let out = run(plexmcp(&env), &["config", "show"]);
    let starts = format!("error: {}:2: server.listen: ", path.display());
    assert_one_line_error(&out, 2, &starts, "not an address");

    let path = write_config(&env, "[log]\naccess = \"sometimes\"\n");
    let out = run(plexmcp(&env), &["serve"]);
    let starts = format!("error: {}:2: log.access: ", path.display());
    assert_one_line_error(&out, 2, &starts, "on, off or sample:N");
}

#[test]
fn bad_flag_or_variable_is_one_line_naming_it() {
    let env = Env::new();
    let out = run(plexmcp(&env), &["--log-format", "xml", "config", "show"]);
    assert_one_line_error(&out, 2, "error: --log-format 'xml'", "text or json");
    let mut cmd = plexmcp(&env);
    cmd.env("PLEXMCP_ACCESS_LOG", "sample:0");
    let out = run(cmd, &["config", "show"]);
    assert_one_line_error(&out, 2, "error: PLEXMCP_ACCESS_LOG 'sample:0'", "sample:N");
}

#[test]
fn init_then_show_round_trip() {
    let env = Env::new();
    let path = config_path(&env);
    let init = stdout(&run(plexmcp(&env), &["config", "init"]));
    assert_eq!(init.trim(), format!("wrote {}", path.display()));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);

    let show = stdout(&run(plexmcp(&env), &["config", "show"]));
    assert!(
        show.starts_with(&format!("# config file: {} (default)\n", path.display())),
        "{show}"
    );
    // Every line of the template is a comment: all defaults.
    for line in show.lines().skip(1).filter(|l| !l.starts_with("db ")) {
        assert!(line.contains("# default"), "{line}");
    }

    // Uncommenting a line changes that setting.
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "# listen = \"127.0.0.1:8470\"",
        "listen = \"127.0.0.1:9999\"",
    );
    std::fs::write(&path, text).unwrap();
    let show = stdout(&run(plexmcp(&env), &["config", "show"]));
    assert_shown(&show, "server.listen", "\"127.0.0.1:9999\"", "file");

    // Not overwritten without --force.
    let out = run(plexmcp(&env), &["config", "init"]);
    assert_one_line_error(&out, 1, "error: ", "use --force");
    let show = stdout(&run(plexmcp(&env), &["config", "show"]));
    assert_shown(&show, "server.listen", "\"127.0.0.1:9999\"", "file");
    stdout(&run(plexmcp(&env), &["config", "init", "--force"]));
    let show = stdout(&run(plexmcp(&env), &["config", "show"]));
    assert_shown(&show, "server.listen", "\"127.0.0.1:8470\"", "default");
}

/// `config init --force` repairs a file too broken to read.
#[test]
fn init_force_replaces_a_broken_file() {
    let env = Env::new();
    write_config(&env, "this is not toml");
    stdout(&run(plexmcp(&env), &["config", "init", "--force"]));
    stdout(&run(plexmcp(&env), &["config", "show"]));
}

#[test]
fn example_file_is_what_init_writes() {
    let env = Env::new();
    let path = env.dir.path().join("written.toml");
    stdout(&run(
        plexmcp(&env),
        &["--config", path.to_str().unwrap(), "config", "init"],
    ));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/config.example.toml");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string(example).unwrap()
    );
}

/// `plexmcp serve` with its stderr captured line by line.
struct Serve {
    child: ChildGuard,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    client: reqwest::Client,
}

const SERVING: &str = "plexmcp serving POST /mcp on http://";

impl Serve {
    /// Starts `cmd` (a `plexmcp` command) with `args` and waits until it
    /// reports its address, in text or JSON.
    fn start(mut cmd: Command, args: &[&str]) -> Serve {
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn plexmcp serve");
        let stderr = child.stderr.take().unwrap();
        let child = ChildGuard::new(child);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let thread_lines = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(SERVING) {
                    let addr: String = line[at + SERVING.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                        .collect();
                    let _ = tx.send(addr);
                }
                thread_lines.lock().unwrap().push(line);
            }
        });
        let addr = rx.recv_timeout(READY_TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "serve did not report its address:\n{}",
                lines.lock().unwrap().join("\n")
            )
        });
        Serve {
            child,
            addr: addr.parse().expect("address in the serving line"),
            lines,
            reader: Some(reader),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a log line contains `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.contains(text)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {text:?}:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A keyless `POST /mcp` (401), which still gets an access line.
    async fn request(&self) {
        let status = self
            .client
            .post(format!("http://{}/mcp", self.addr))
            .json(&serde_json::json!({"mcp_id": "x", "tool": "y", "arguments": {}}))
            .send()
            .await
            .expect("POST /mcp")
            .status();
        assert_eq!(status, 401);
    }

    /// SIGTERM, wait for the exit, and every line it wrote.
    fn stop(mut self) -> Vec<String> {
        self.child.signal("TERM");
        let status = self.child.wait_timeout(READY_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()),
            "serve did not stop cleanly ({status:?}):\n{}",
            self.lines().join("\n")
        );
        self.reader.take().unwrap().join().unwrap();
        self.lines()
    }
}

fn access_lines(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.contains("POST /mcp") && !l.contains(SERVING))
        .count()
}

#[tokio::test]
async fn serve_listens_where_the_file_says() {
    let env = Env::new();
    let port = free_port();
    write_config(&env, &format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    let serve = Serve::start(plexmcp(&env), &["serve"]);
    assert_eq!(serve.addr.port(), port);
    serve.request().await;
    serve.stop();
}

#[tokio::test]
async fn log_format_json_writes_json_lines() {
    let env = Env::new();
    let serve = Serve::start(
        plexmcp(&env),
        &["--log-format", "json", "serve", "--listen", "127.0.0.1:0"],
    );
    serve.request().await;
    let lines = serve.stop();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value["fields"]["message"].is_string(), "{line}");
        assert!(value["level"].is_string(), "{line}");
    }
    let access = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["message"] == "POST /mcp")
        .expect("an access line");
    assert_eq!(access["fields"]["status"], 401, "{access}");
}

#[tokio::test]
async fn access_log_on_off_and_sampled() {
    let env = Env::new();
    let count = |args: &'static [&'static str]| {
        let env = &env;
        async move {
            let serve = Serve::start(plexmcp(env), args);
            for _ in 0..20 {
                serve.request().await;
            }
            access_lines(&serve.stop())
        }
    };
    assert_eq!(count(&["serve", "--listen", "127.0.0.1:0"]).await, 20);
    assert_eq!(
        count(&["--access-log", "off", "serve", "--listen", "127.0.0.1:0"]).await,
        0
    );
    assert_eq!(
        count(&[
            "--access-log",
            "sample:5",
            "serve",
            "--listen",
            "127.0.0.1:0"
        ])
        .await,
        4
    );
}

#[tokio::test]
async fn sighup_applies_the_new_log_filter_and_access_setting() {
    let env = Env::new();
    // Only the CLI's own lines: no access lines at first.
    let path = write_config(&env, "[log]\nfilter = \"warn,plexmcp::cli=info\"\n");
    let serve = Serve::start(plexmcp(&env), &["serve", "--listen", "127.0.0.1:0"]);
    serve.request().await;

    std::fs::write(&path, "[log]\nfilter = \"info\"\n").unwrap();
    serve.child.signal("HUP");
    serve.wait_for("SIGHUP: configuration reloaded");
    serve.request().await;
    serve.request().await;

    std::fs::write(&path, "[log]\nfilter = \"info\"\naccess = \"off\"\n").unwrap();
    serve.child.signal("HUP");
    serve.wait_for("SIGHUP: log.access is now off");
    serve.request().await;

    // What cannot change at runtime says so, and the server keeps going
    // (server.listen here would not change: the --listen flag beats it).
    std::fs::write(
        &path,
        "[log]\nfilter = \"info\"\naccess = \"off\"\nformat = \"json\"\n",
    )
    .unwrap();
    serve.child.signal("HUP");
    serve.wait_for("log.format changed");

    // A broken file is refused and the running configuration stays.
    std::fs::write(&path, "[log]\nfilter = \"info\"\nbogus = 1\n").unwrap();
    serve.child.signal("HUP");
    let refused = serve.wait_for("configuration not reloaded");
    assert!(
        refused.contains(&format!("{}:3: log.bogus", path.display())),
        "{refused}"
    );
    serve.request().await;

    let lines = serve.stop();
    assert_eq!(access_lines(&lines), 2, "{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.contains("needs a restart")),
        "{}",
        lines.join("\n")
    );
}

/// `POST /mcp/everything` initialize with `headers`; the status only.
async fn initialize_status(serve: &Serve, key: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = serve
        .client
        .post(format!("http://{}/mcp/everything", serve.addr))
        .header("authorization", format!("ApiKey {key}"))
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "config-test", "version": "1"}}
        }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .send()
        .await
        .expect("POST /mcp/everything")
        .status()
        .as_u16()
}

#[tokio::test]
async fn allowed_origins_and_hosts_come_from_the_file() {
    let env = Env::new();
    env.add_everything_stdio("everything");
    let (_, key) = env.create_key("inspector", &[]);
    let inspector = [("origin", "http://localhost:6274")];
    let proxied = [("host", "mcp.example.com")];

    let serve = Serve::start(plexmcp(&env), &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(initialize_status(&serve, &key, &inspector).await, 403);
    assert_eq!(initialize_status(&serve, &key, &proxied).await, 403);
    serve.stop();

    write_config(
        &env,
        "[server]\nallowed_origins = [\"http://localhost:6274\"]\nallowed_hosts = [\"mcp.example.com\"]\n",
    );
    let serve = Serve::start(plexmcp(&env), &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(initialize_status(&serve, &key, &inspector).await, 200);
    assert_eq!(initialize_status(&serve, &key, &proxied).await, 200);
    let other = [("origin", "https://evil.example")];
    assert_eq!(initialize_status(&serve, &key, &other).await, 403);
    serve.stop();
}
