//! Shared helpers for the black-box tests: every test gets its own temp
//! directory and database, and runs the real `plexmcp` binary against it
//! with a controlled environment (`USER=tester`, no SSH, no stray org).

#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// The fields every key object in JSON has, sorted.
pub const KEY_FIELDS: [&str; 10] = [
    "created_at",
    "description",
    "expires_at",
    "id",
    "last_used_at",
    "mcp_access",
    "name",
    "prefix",
    "request_count",
    "status",
];

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A temp directory with a database path inside it.
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
    pub fn cmd(&self) -> Command {
        let mut cmd = bare_cmd();
        cmd.env("PLEXMCP_DB", &self.db);
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
    pub fn create_key(&self, name: &str, extra: &[&str]) -> Value {
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
}

/// The binary with a clean, fixed environment but no database set.
pub fn bare_cmd() -> Command {
    let mut cmd = Command::cargo_bin("plexmcp").expect("binary built");
    cmd.env("USER", "tester")
        .env_remove("LOGNAME")
        .env_remove("SSH_CONNECTION")
        .env_remove("PLEXMCP_DB")
        .env_remove("PLEXMCP_ORG")
        .env_remove("RUST_BACKTRACE");
    cmd
}

pub fn run_cmd(cmd: &mut Command) -> Run {
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
