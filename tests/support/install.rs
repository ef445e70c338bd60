//! What the tests need beyond Rust, installed on first use so that
//! `cargo test` alone is the whole set-up: the reference MCP server and the
//! official TypeScript MCP SDK from npm, the official Python MCP SDK from
//! PyPI into a venv (each pinned, the one place its version is written),
//! all under `<repo>/test-deps/`, and tmux, the sqlite3 command and python3
//! from apt when they are missing.
//!
//! Test binaries and their threads start at once, so every install runs
//! under one file lock in `test-deps/` and checks again once it holds it.
//! npm and pip install into a staging folder that is moved into place only
//! after the entry file and version are checked, and a marker is written
//! last: a run killed half way is redone, never trusted. When an install is
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

/// The official TypeScript client SDK, a downstream client in
/// `tests/sdk_clients.rs`; installed in its own folder so that its pin does
/// not depend on the one server-everything happens to pull in.
pub const TS_SDK_PACKAGE: &str = "@modelcontextprotocol/sdk";
pub const TS_SDK_VERSION: &str = "1.32.2";
/// Where the TypeScript SDK lives under the deps folder.
pub const TS_SDK_DIR: &str = "ts-sdk";

/// The official Python client SDK (PyPI), in a venv of its own.
pub const PY_SDK_PACKAGE: &str = "mcp";
pub const PY_SDK_VERSION: &str = "2.3.0";
/// Where the Python SDK's venv lives under the deps folder.
pub const PY_SDK_DIR: &str = "py-sdk";

/// An npm package pinned exactly, with the file whose presence proves the
/// install complete.
struct NpmPin {
    package: &'static str,
    version: &'static str,
    entry: &'static str,
}

const EVERYTHING: NpmPin = NpmPin {
    package: EVERYTHING_PACKAGE,
    version: EVERYTHING_VERSION,
    entry: "dist/index.js",
};

const TS_SDK: NpmPin = NpmPin {
    package: TS_SDK_PACKAGE,
    version: TS_SDK_VERSION,
    entry: "dist/cjs/client/streamableHttp.js",
};

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
    EVERYTHING.entry_under(deps)
}

/// The folder whose `node_modules` holds the TypeScript SDK: scripts
/// resolve `@modelcontextprotocol/sdk/...` from there as an app would.
pub fn ts_sdk_home(deps: &Path) -> PathBuf {
    deps.join(TS_SDK_DIR)
}

/// The Python SDK venv's interpreter under a deps folder.
pub fn py_sdk_python(deps: &Path) -> PathBuf {
    deps.join(PY_SDK_DIR).join("bin/python")
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

/// The folder to resolve the TypeScript SDK from, installed first if
/// needed; fails the test with one line when that is impossible.
pub fn ts_sdk() -> PathBuf {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let deps = deps_dir();
        install_ts_sdk_with(&deps, OsStr::new("npm"))?;
        Ok(ts_sdk_home(&deps))
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The interpreter of a venv holding the Python SDK, installed first if
/// needed; fails the test with one line when that is impossible.
pub fn py_sdk() -> PathBuf {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| {
        ensure_program("python3", &["--version"], "python3")?;
        let deps = deps_dir();
        install_py_sdk_with(&deps, OsStr::new("python3"))?;
        Ok(py_sdk_python(&deps))
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"))
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

impl NpmPin {
    fn spec(&self) -> String {
        format!("{}@{}", self.package, self.version)
    }

    fn marker_text(&self) -> String {
        format!("{}\n", self.spec())
    }

    /// The entry file of an install whose `node_modules` is under `home`.
    fn entry_under(&self, home: &Path) -> PathBuf {
        home.join("node_modules")
            .join(self.package)
            .join(self.entry)
    }

    /// A complete install under `home`: marker, version and entry.
    fn installed(&self, home: &Path) -> bool {
        let marker = fs::read_to_string(home.join(MARKER)).ok();
        marker.as_deref() == Some(self.marker_text().as_str())
            && self.version_under(&home.join("node_modules")).as_deref() == Some(self.version)
            && self.entry_under(home).is_file()
    }

    /// The version in the package's package.json under `node_modules`.
    fn version_under(&self, node_modules: &Path) -> Option<String> {
        let text = fs::read_to_string(node_modules.join(self.package).join("package.json")).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json["version"].as_str().map(str::to_owned)
    }
}

/// Installs the pinned reference server into `deps` with `npm` unless a
/// complete install is there already.
pub fn install_everything_with(deps: &Path, npm: &OsStr) -> Result<(), String> {
    install_npm(deps, deps, &EVERYTHING, npm)
}

/// Installs the pinned TypeScript SDK into `deps/ts-sdk` with `npm` unless
/// a complete install is there already.
pub fn install_ts_sdk_with(deps: &Path, npm: &OsStr) -> Result<(), String> {
    install_npm(deps, &ts_sdk_home(deps), &TS_SDK, npm)
}

/// Installs `pin` with `npm` so that `home/node_modules` holds it, under
/// the lock of `deps`.
fn install_npm(deps: &Path, home: &Path, pin: &NpmPin, npm: &OsStr) -> Result<(), String> {
    if pin.installed(home) {
        return Ok(());
    }
    let _lock = lock(deps)?;
    if pin.installed(home) {
        return Ok(()); // another binary installed it while we waited
    }
    let staging = home.join(STAGING);
    let old = home.join(OLD);
    // Leftovers of a run killed half way.
    for dir in [&staging, &old] {
        remove_dir(dir)?;
    }
    fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let spec = pin.spec();
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
    if pin.version_under(&staged).as_deref() != Some(pin.version)
        || !pin.entry_under(&staging).is_file()
    {
        return Err(format!(
            "`npm install {spec}` succeeded but {} is missing or not version {}",
            pin.entry_under(&staging).display(),
            pin.version
        ));
    }
    // The marker goes first and comes back last, so a half-moved install
    // is never trusted.
    let marker = home.join(MARKER);
    remove_file(&marker)?;
    let live = home.join("node_modules");
    if live.exists() {
        rename(&live, &old)?;
    }
    rename(&staged, &live)?;
    for file in ["package.json", "package-lock.json"] {
        if staging.join(file).exists() {
            rename(&staging.join(file), &home.join(file))?;
        }
    }
    write_marker(home, &pin.marker_text())?;
    remove_dir(&old)?;
    remove_dir(&staging)
}

/// Writes `text` as the marker of `home`, atomically.
fn write_marker(home: &Path, text: &str) -> Result<(), String> {
    let tmp = home.join(".installed.tmp");
    fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    rename(&tmp, &home.join(MARKER))
}

fn py_marker_text() -> String {
    format!("{PY_SDK_PACKAGE}=={PY_SDK_VERSION}\n")
}

/// The version of the Python SDK that `python` imports, if it imports one.
fn py_sdk_version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m, mcp; print(m.version('mcp'))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A complete venv: marker, and an interpreter that imports the pinned SDK.
fn py_sdk_installed(venv: &Path) -> bool {
    let marker = fs::read_to_string(venv.join(MARKER)).ok();
    marker.as_deref() == Some(py_marker_text().as_str())
        && py_sdk_version(&venv.join("bin/python")).as_deref() == Some(PY_SDK_VERSION)
}

/// Creates a venv with `python -m venv` in `deps/py-sdk` and installs the
/// pinned Python SDK into it with its pip, unless a complete one is there.
/// The venv is built in a staging folder and moved into place: a venv's
/// own interpreter works from wherever it is moved (only pip's launcher
/// scripts name the old path, and nothing here uses them).
pub fn install_py_sdk_with(deps: &Path, python: &OsStr) -> Result<(), String> {
    let venv = deps.join(PY_SDK_DIR);
    if py_sdk_installed(&venv) {
        return Ok(());
    }
    let _lock = lock(deps)?;
    if py_sdk_installed(&venv) {
        return Ok(()); // another binary installed it while we waited
    }
    let staging = deps.join(format!("{PY_SDK_DIR}{STAGING}"));
    let old = deps.join(format!("{PY_SDK_DIR}{OLD}"));
    for dir in [&staging, &old] {
        remove_dir(dir)?;
    }
    let spec = format!("{PY_SDK_PACKAGE}=={PY_SDK_VERSION}");
    let out = Command::new(python)
        .args(["-m", "venv"])
        .arg(&staging)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "python3 not found ({e}): install Python 3.10 or later \
                 (`apt-get install python3 python3-venv`) so the tests can install {spec}"
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "`python3 -m venv` failed ({}): install the venv module \
             (Debian: `apt-get install python3-venv`) so the tests can install {spec}",
            last_line(&out)
        ));
    }
    let staged_python = staging.join("bin/python");
    let out = Command::new(&staged_python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            &spec,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} ({e})", staged_python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`pip install {spec}` failed (is PyPI reachable? the SDK needs Python 3.10 or later): {}",
            last_line(&out)
        ));
    }
    if py_sdk_version(&staged_python).as_deref() != Some(PY_SDK_VERSION) {
        return Err(format!(
            "`pip install {spec}` succeeded but {} does not import version {PY_SDK_VERSION}",
            staged_python.display()
        ));
    }
    // As for npm: no marker while the venv is being moved.
    if venv.exists() {
        rename(&venv, &old)?;
    }
    rename(&staging, &venv)?;
    if py_sdk_version(&venv.join("bin/python")).as_deref() != Some(PY_SDK_VERSION) {
        return Err(format!(
            "the venv moved to {} no longer imports {spec}",
            venv.display()
        ));
    }
    write_marker(&venv, &py_marker_text())?;
    remove_dir(&old)
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
