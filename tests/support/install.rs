//! What the tests need beyond Rust, installed on first use so that
//! `cargo test` alone is the whole set-up: the reference MCP server from npm
//! (pinned, the one place its version is written) into `<repo>/test-deps/`,
//! and tmux, the sqlite3 command and python3 from apt when they are missing.
//!
//! Test binaries and their threads start at once, so every install runs
//! under one file lock in `test-deps/` and checks again once it holds it.
//! npm installs into a staging folder that is moved into place only after
//! the entry file and version are checked, and a marker is written last: a
//! run killed half way is redone, never trusted. When an install is
//! impossible the caller gets one line saying what is missing and how to
//! get it, and fails with it (tests never skip).
//!
//! Also compiled into the lib's upstream tests and the gateway bench with
//! `#[path]`, so it uses only std and serde_json.

#![allow(dead_code)] // each user needs a different part

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The reference MCP server the tests run against, pinned exactly.
pub const EVERYTHING_PACKAGE: &str = "@modelcontextprotocol/server-everything";
pub const EVERYTHING_VERSION: &str = "2026.8.31";

/// Written after a verified install; its content names what was installed.
const MARKER: &str = "installed.txt";
const LOCK: &str = ".lock";
const STAGING: &str = ".staging";
const OLD: &str = ".old";

/// `<repo>/test-deps`, or `$PLEXMCP_TEST_DEPS` when set.
pub fn deps_dir() -> PathBuf {
    std::env::var_os("PLEXMCP_TEST_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("test-deps"))
}

/// The reference server's `dist/index.js` under a deps folder.
pub fn everything_entry(deps: &Path) -> PathBuf {
    deps.join("node_modules")
        .join(EVERYTHING_PACKAGE)
        .join("dist/index.js")
}

/// The reference server's entry point, installed first if needed; the
/// error is the one line to fail with.
pub fn try_server_everything() -> Result<PathBuf, String> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let deps = deps_dir();
        install_everything_with(&deps, OsStr::new("npm"))?;
        require_works("node", &["--version"]).map_err(|_| {
            "node not found: install Node.js 20 or later (https://nodejs.org, \
             or `apt-get install nodejs npm`) to run the reference MCP server"
                .to_string()
        })?;
        Ok(everything_entry(&deps))
    })
    .clone()
}

/// Like [`try_server_everything`], failing the test on error.
pub fn server_everything() -> PathBuf {
    try_server_everything().unwrap_or_else(|e| panic!("{e}"))
}

/// tmux, installed with apt if missing; fails the test when it cannot be.
pub fn require_tmux() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| ensure_program("tmux", &["-V"], "tmux"));
    done.clone().unwrap_or_else(|e| panic!("{e}"))
}

/// The `sqlite3` command, installed with apt if missing.
pub fn require_sqlite3() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| ensure_program("sqlite3", &["--version"], "sqlite3"));
    done.clone().unwrap_or_else(|e| panic!("{e}"))
}

/// `python3` with its `sqlite3` module (the fake upstreams and the outside
/// clients are Python); python3 itself is installed with apt if missing.
pub fn require_python3() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| {
        ensure_program("python3", &["--version"], "python3")?;
        require_works("python3", &["-c", "import sqlite3"]).map_err(|_| {
            "python3 has no sqlite3 module: install a Python built with it \
             (Debian: `apt-get install python3`; pyenv: install libsqlite3-dev, then rebuild)"
                .to_string()
        })
    });
    done.clone().unwrap_or_else(|e| panic!("{e}"))
}

/// `node`; it cannot be installed here in a pinned way, so only checked.
pub fn require_node() {
    require_works("node", &["--version"]).unwrap_or_else(|_| {
        panic!(
            "node not found: install Node.js 20 or later (https://nodejs.org, \
             or `apt-get install nodejs npm`)"
        )
    })
}

/// Whether `program args` runs and succeeds (its output is discarded).
fn require_works(program: &str, args: &[&str]) -> Result<(), ()> {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok { Ok(()) } else { Err(()) }
}

/// Holds the install lock of `deps` until dropped (also across processes).
fn lock(deps: &Path) -> Result<File, String> {
    let locked = fs::create_dir_all(deps)
        .and_then(|()| {
            File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(deps.join(LOCK))
        })
        .and_then(|file| file.lock().map(|()| file));
    locked.map_err(|e| format!("cannot lock {}: {e}", deps.join(LOCK).display()))
}

fn marker_text() -> String {
    format!("{EVERYTHING_PACKAGE}@{EVERYTHING_VERSION}\n")
}

/// A complete install of the pinned version: marker, version and entry.
fn everything_installed(deps: &Path) -> bool {
    let marker = fs::read_to_string(deps.join(MARKER)).ok();
    marker.as_deref() == Some(marker_text().as_str())
        && package_version(&deps.join("node_modules")).as_deref() == Some(EVERYTHING_VERSION)
        && everything_entry(deps).is_file()
}

/// The version in the reference server's package.json under `node_modules`.
fn package_version(node_modules: &Path) -> Option<String> {
    let text =
        fs::read_to_string(node_modules.join(EVERYTHING_PACKAGE).join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_owned)
}

/// Installs the pinned reference server into `deps` with `npm` unless a
/// complete install is there already.
pub fn install_everything_with(deps: &Path, npm: &OsStr) -> Result<(), String> {
    if everything_installed(deps) {
        return Ok(());
    }
    let _lock = lock(deps)?;
    if everything_installed(deps) {
        return Ok(()); // another binary installed it while we waited
    }
    let staging = deps.join(STAGING);
    let old = deps.join(OLD);
    // Leftovers of a run killed half way.
    for dir in [&staging, &old] {
        remove_dir(dir)?;
    }
    fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let spec = format!("{EVERYTHING_PACKAGE}@{EVERYTHING_VERSION}");
    let out = Command::new(npm)
        .arg("install")
        .arg("--prefix")
        .arg(&staging)
        .args(["--no-audit", "--no-fund", "--save-exact", &spec])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "npm not found ({e}): install Node.js 20 or later with npm (https://nodejs.org, \
                 or `apt-get install nodejs npm`) so the tests can install {spec}"
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "`npm install {spec}` failed (is the npm registry reachable?): {}",
            last_line(&out)
        ));
    }
    let staged = staging.join("node_modules");
    if package_version(&staged).as_deref() != Some(EVERYTHING_VERSION)
        || !everything_entry(&staging).is_file()
    {
        return Err(format!(
            "`npm install {spec}` succeeded but {} is missing or not version {EVERYTHING_VERSION}",
            everything_entry(&staging).display()
        ));
    }
    // The marker goes first and comes back last, so a half-moved install
    // is never trusted.
    let marker = deps.join(MARKER);
    remove_file(&marker)?;
    let live = deps.join("node_modules");
    if live.exists() {
        rename(&live, &old)?;
    }
    rename(&staged, &live)?;
    for file in ["package.json", "package-lock.json"] {
        if staging.join(file).exists() {
            rename(&staging.join(file), &deps.join(file))?;
        }
    }
    let tmp = deps.join(".installed.tmp");
    fs::write(&tmp, marker_text()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    rename(&tmp, &marker)?;
    remove_dir(&old)?;
    remove_dir(&staging)
}

fn ensure_program(program: &str, probe: &[&str], package: &str) -> Result<(), String> {
    ensure_program_with(program, probe, package, "apt-get", &deps_dir())
}

/// Runs `program probe` and, when that fails, installs `package` with
/// `apt_get` (as root, or through passwordless sudo) under the lock in `deps`.
pub fn ensure_program_with(
    program: &str,
    probe: &[&str],
    package: &str,
    apt_get: &str,
    deps: &Path,
) -> Result<(), String> {
    if require_works(program, probe).is_ok() {
        return Ok(());
    }
    let _lock = lock(deps)?;
    if require_works(program, probe).is_ok() {
        return Ok(()); // installed by another binary while we waited
    }
    let how = format!("install the `{package}` package (e.g. `sudo apt-get install {package}`)");
    if require_works(apt_get, &["--version"]).is_err() {
        return Err(format!(
            "{program} not found and apt-get is unavailable: {how}"
        ));
    }
    let sudo: &[&str] = if is_root() {
        &[]
    } else if require_works("sudo", &["-n", "true"]).is_ok() {
        &["sudo", "-n"]
    } else {
        return Err(format!(
            "{program} not found, and the tests can install it only as root or with passwordless sudo: {how}"
        ));
    };
    let apt = |args: &[&str]| -> Result<Output, String> {
        let mut words: Vec<&str> = sudo.to_vec();
        words.push(apt_get);
        words.extend_from_slice(args);
        Command::new(words[0])
            .args(&words[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run apt-get ({e}): {how}"))
    };
    let install = ["install", "-y", "-qq", "--no-install-recommends", package];
    let mut out = apt(&install)?;
    if !out.status.success() {
        // A fresh image has no package lists yet.
        apt(&["update", "-qq"])?;
        out = apt(&install)?;
    }
    if !out.status.success() {
        return Err(format!(
            "{program} not found and `apt-get install {package}` failed ({}): {how}",
            last_line(&out)
        ));
    }
    require_works(program, probe).map_err(|()| {
        format!("{program} still does not run after `apt-get install {package}`: {how}")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// What a failed command said, on one line: its stderr (or stdout) without
/// blank lines, warnings and npm's pointer to its log, shortened.
fn last_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("npm warn") && !l.contains("complete log"))
        .collect();
    let line = if lines.is_empty() {
        "no output".to_string()
    } else {
        lines.join("; ")
    };
    match line.char_indices().nth(400) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

fn remove_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn remove_file(file: &Path) -> Result<(), String> {
    match fs::remove_file(file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", file.display()))
        }
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    fs::rename(from, to)
        .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))
}
