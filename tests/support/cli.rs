//! The real `plexmcp` binary as a CLI against a test's own database: every
//! test gets its own temp directory, and every run a controlled environment
//! (`USER=tester`, no SSH, no stray org, database, listen address or log
//! filter from the caller's shell). One way to build that command serves
//! both styles of test: `assert_cmd` (`Env::cmd`, database in `PLEXMCP_DB`)
//! and plain `std::process` (`Env::command`, database in `--db`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use super::upstream::everything_stdio_command;

/// The fields every key object in JSON has, sorted.
pub const KEY_FIELDS: [&str; 16] = [
    "created_at",
    "description",
    "effective_rate_limit",
    "expires_at",
    "id",
    "last_used_at",
    "mcp_access",
    "name",
    "prefix",
    "rate_limit",
    "replaced_by",
    "replaces",
    "request_count",
    "revoke_when_idle_secs",
    "status",
    "tool_access",
];

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Variables of the caller's shell that would change what the binary does.
const CLEARED_VARS: [&str; 11] = [
    "PLEXMCP_DB",
    "PLEXMCP_ORG",
    "PLEXMCP_LISTEN",
    "PLEXMCP_LOG",
    "PLEXMCP_LOG_FORMAT",
    "PLEXMCP_ACCESS_LOG",
    "PLEXMCP_CONFIG",
    "PLEXMCP_USAGE_RETENTION_DAYS",
    "SSH_CONNECTION",
    "LOGNAME",
    "RUST_BACKTRACE",
];

/// The binary with a clean, fixed environment and no database set.
pub fn plexmcp_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_plexmcp"));
    for var in CLEARED_VARS {
        cmd.env_remove(var);
    }
    cmd.env("USER", "tester");
    // The operator's own ~/.config/plexmcp/config.toml must not steer tests.
    cmd.env("XDG_CONFIG_HOME", "/nonexistent/plexmcp-tests");
    cmd
}

/// [`plexmcp_command`] as an `assert_cmd` command.
pub fn bare_cmd() -> assert_cmd::Command {
    assert_cmd::Command::from_std(plexmcp_command())
}

/// A temp directory with a database path inside it; the CLI and the server
/// run against it.
pub struct Env {
    pub dir: TempDir,
    pub db: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("plexmcp.db");
        Env { dir, db }
    }

    /// An environment whose database lives at `db` (which may not exist yet).
    pub fn at(dir: TempDir, db: PathBuf) -> Env {
        Env { dir, db }
    }

    /// The binary with `PLEXMCP_DB` pointing at this env's database.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = bare_cmd();
        cmd.env("PLEXMCP_DB", &self.db);
        cmd
    }

    /// The binary with `--db` set and stdin closed.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = plexmcp_command();
        cmd.arg("--db").arg(&self.db);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs with these arguments; never accepts a panic.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.cmd().args(args))
    }

    /// Runs and requires success; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        expect_ok(self.run(args))
    }

    /// Runs and requires failure with `code` and one `error:` line on stderr;
    /// returns that line.
    pub fn fail<I, S>(&self, code: i32, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        expect_fail(self.run(args), code)
    }

    /// Runs and parses stdout as JSON.
    pub fn json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }

    /// `keys create --name NAME EXTRA.. --json`, returning the key object.
    pub fn create_key_json(&self, name: &str, extra: &[&str]) -> Value {
        let mut args = vec!["keys", "create", "--name", name];
        args.extend_from_slice(extra);
        args.push("--json");
        self.json(args)
    }

    /// `keys show KEY --json`.
    pub fn show(&self, key: &str) -> Value {
        self.json(["keys", "show", key, "--json"])
    }

    /// The database file's bytes plus those of its `-wal`, if present.
    pub fn db_bytes(&self) -> Vec<u8> {
        let mut bytes = std::fs::read(&self.db).expect("read db");
        if let Ok(wal) = std::fs::read(sidecar(&self.db, "-wal")) {
            bytes.extend(wal);
        }
        bytes
    }

    /// Runs a CLI command to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run plexmcp")
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "plexmcp {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 stdout")
    }

    /// `keys create --json` with extra arguments; returns (id, full key).
    pub fn create_key(&self, name: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["keys", "create", "--name", name, "--json"];
        args.extend_from_slice(extra);
        let json: Value = serde_json::from_str(&self.cli_ok(&args)).expect("keys create JSON");
        let id = json["id"]
            .as_str()
            .expect("id in keys create JSON")
            .to_string();
        let key = json["key"]
            .as_str()
            .expect("key in keys create JSON")
            .to_string();
        (id, key)
    }

    /// Registers the reference server over stdio as `slug`.
    pub fn add_everything_stdio(&self, slug: &str) {
        self.cli_ok(&["mcps", "add", slug, "--stdio", &everything_stdio_command()]);
    }

    /// The key's entry in `keys list --json`.
    pub fn key_json(&self, id: &str) -> Value {
        let list: Value = serde_json::from_str(&self.cli_ok(&["keys", "list", "--json"]))
            .expect("keys list JSON");
        list.as_array()
            .expect("keys list --json is an array")
            .iter()
            .find(|k| k["id"] == id)
            .unwrap_or_else(|| panic!("key {id} not in keys list: {list:#}"))
            .clone()
    }

    /// Usage events stored so far, read through a separate connection.
    pub fn usage_event_count(&self) -> i64 {
        plexmcp::store::Store::open(&self.db)
            .expect("open store")
            .usage_event_count()
            .expect("count usage events")
    }
}
pub fn run_cmd(cmd: &mut assert_cmd::Command) -> Run {
    let out = cmd.output().expect("run plexmcp");
    let run = Run {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    };
    assert!(
        !run.stderr.contains("panicked") && !run.stdout.contains("panicked"),
        "plexmcp panicked: {run:?}"
    );
    run
}

pub fn expect_ok(run: Run) -> String {
    assert_eq!(run.code, 0, "expected success: {run:?}");
    run.stdout
}

/// Failure with `code`, nothing on stdout, and exactly one `error: ` line.
pub fn expect_fail(run: Run, code: i32) -> String {
    assert_eq!(run.code, code, "expected exit {code}: {run:?}");
    assert_one_error_line(&run);
    run.stderr.trim_end().to_string()
}

pub fn assert_one_error_line(run: &Run) {
    assert!(
        run.stderr.starts_with("error: "),
        "stderr must start with 'error: ': {run:?}"
    );
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "stderr must be one line: {run:?}"
    );
    assert!(run.stdout.is_empty(), "nothing on stdout on error: {run:?}");
}

/// Failure from clap's parser: exit 2 and an `error:` first line (clap adds
/// a usage hint below it).
pub fn expect_usage(run: Run) -> String {
    assert_eq!(run.code, 2, "expected a usage error: {run:?}");
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    run.stderr
}

/// `<db>-wal`, `<db>-shm`, …
pub fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The sorted field names of a JSON object.
pub fn fields(v: &Value) -> Vec<String> {
    let mut f: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    f.sort();
    f
}

pub fn key_fields_with_key() -> Vec<String> {
    let mut f: Vec<String> = KEY_FIELDS.iter().map(|s| s.to_string()).collect();
    f.push("key".into());
    f.sort();
    f
}

pub fn key_fields() -> Vec<String> {
    KEY_FIELDS.iter().map(|s| s.to_string()).collect()
}

pub fn str_field<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"))
}

pub fn time_field(v: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    let s = str_field(v, field);
    assert!(s.ends_with('Z'), "{field} is not UTC: {s}");
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{field} is not RFC 3339 ({e}): {s}"))
        .to_utc()
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
