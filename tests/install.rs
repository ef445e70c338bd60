//! The first-use installs of the test support (`support::install`), against
//! a stand-in `npm` that writes the package layout the real one would: a
//! fresh folder gets the pinned version, a complete install is reused (npm
//! not run again, even by many threads at once), a half-finished or
//! mismatched one is redone, and every impossible case is one line that
//! says what is missing. The Python SDK's venv likewise, against a
//! stand-in `python3` whose venvs hold a stand-in pip.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use support::install::{
    EVERYTHING_PACKAGE, EVERYTHING_VERSION, PY_SDK_PACKAGE, PY_SDK_VERSION, TS_SDK_PACKAGE,
    TS_SDK_VERSION, ensure_program_with, everything_entry, install_everything_with,
    install_py_sdk_with, install_ts_sdk_with, py_sdk_python, ts_sdk_home,
};

/// A stand-in `npm` in `dir` that installs `version` of the reference
/// server into `--prefix` (or fails with `fail` on stderr) and counts its runs.
fn fake_npm(dir: &Path, version: &str, fail: Option<&str>) -> PathBuf {
    let files = [("dist/index.js", "// entry")];
    fake_npm_of(
        dir,
        EVERYTHING_PACKAGE,
        EVERYTHING_VERSION,
        version,
        &files,
        fail,
    )
}

/// A stand-in `npm` that accepts only `package@pinned` and installs it as
/// `version`, with `files` (path in the package, content) in it.
fn fake_npm_of(
    dir: &Path,
    package: &str,
    pinned: &str,
    version: &str,
    files: &[(&str, &str)],
    fail: Option<&str>,
) -> PathBuf {
    let npm = dir.join("npm");
    let body = match fail {
        Some(message) => format!("echo '{message}' >&2\nexit 1"),
        None => {
            let mut body = format!(
                r#"pkg="$prefix/node_modules/{package}"
mkdir -p "$pkg"
echo '{{"name":"{package}","version":"{version}"}}' > "$pkg/package.json"
echo '{{"dependencies":{{}}}}' > "$prefix/package.json""#
            );
            for (path, content) in files {
                body.push_str(&format!(
                    "\nmkdir -p \"$(dirname \"$pkg/{path}\")\"\necho '{content}' > \"$pkg/{path}\""
                ));
            }
            body
        }
    };
    let script = format!(
        r#"#!/bin/sh
echo run >> "{runs}"
[ "$1" = install ] && [ "$2" = --prefix ] || {{ echo "unexpected: $*" >&2; exit 2; }}
prefix="$3"
case "$*" in *"--save-exact {package}@{pinned}"*) ;; *) echo "unpinned: $*" >&2; exit 2;; esac
sleep 0.2
{body}
"#,
        runs = dir.join("runs").display()
    );
    write_executable(&npm, &script);
    npm
}

fn write_executable(path: &Path, script: &str) {
    std::fs::write(path, script).expect("write stand-in program");
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(path, perms).unwrap();
}

/// The package's files as an install of `version` would leave them.
fn plant(deps: &Path, version: &str) {
    let entry = everything_entry(deps);
    std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
    std::fs::write(&entry, "// planted\n").unwrap();
    std::fs::write(
        deps.join("node_modules")
            .join(EVERYTHING_PACKAGE)
            .join("package.json"),
        format!(r#"{{"version":"{version}"}}"#),
    )
    .unwrap();
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn installed_version(deps: &Path) -> String {
    let text = std::fs::read_to_string(
        deps.join("node_modules")
            .join(EVERYTHING_PACKAGE)
            .join("package.json"),
    )
    .expect("package.json installed");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["version"].as_str().unwrap().to_string()
}

#[test]
fn a_fresh_folder_gets_the_pinned_version_and_later_calls_reuse_it() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let deps = deps.path().join("test-deps"); // not there yet
    let npm = fake_npm(tools.path(), EVERYTHING_VERSION, None);

    install_everything_with(&deps, npm.as_os_str()).expect("installed");
    assert!(everything_entry(&deps).is_file());
    assert_eq!(installed_version(&deps), EVERYTHING_VERSION);
    assert_eq!(runs(tools.path()), 1);

    install_everything_with(&deps, npm.as_os_str()).expect("reused");
    assert_eq!(
        runs(tools.path()),
        1,
        "npm ran again for a complete install"
    );
    let left: Vec<String> = std::fs::read_dir(&deps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging") || n.starts_with(".old"))
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

#[test]
fn many_threads_at_once_install_once() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let npm = Arc::new(fake_npm(tools.path(), EVERYTHING_VERSION, None));
    let deps = Arc::new(deps.path().to_path_buf());
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (npm, deps) = (npm.clone(), deps.clone());
            std::thread::spawn(move || install_everything_with(&deps, npm.as_os_str()))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().expect("installed");
    }
    assert_eq!(runs(tools.path()), 1, "the lock let npm run more than once");
    assert!(everything_entry(&deps).is_file());
}

#[test]
fn an_install_killed_half_way_is_redone_not_trusted() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let deps = deps.path();
    // What a run killed half way leaves: a staging folder, and the package
    // in place but no marker (written last).
    std::fs::create_dir_all(deps.join(".staging/node_modules")).unwrap();
    plant(deps, EVERYTHING_VERSION);
    let entry = everything_entry(deps);
    std::fs::write(&entry, "// half").unwrap();
    let npm = fake_npm(tools.path(), EVERYTHING_VERSION, None);

    install_everything_with(deps, npm.as_os_str()).expect("installed");
    assert_eq!(runs(tools.path()), 1, "a half install was trusted");
    assert_eq!(std::fs::read_to_string(&entry).unwrap(), "// entry\n");
    assert!(!deps.join(".staging").exists());
}

#[test]
fn another_version_in_the_folder_is_replaced_by_the_pinned_one() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    // Another pin, fully installed, with its own marker.
    plant(deps.path(), "1.0.0");
    std::fs::write(
        deps.path().join("installed.txt"),
        format!("{EVERYTHING_PACKAGE}@1.0.0\n"),
    )
    .unwrap();
    let npm = fake_npm(tools.path(), EVERYTHING_VERSION, None);

    install_everything_with(deps.path(), npm.as_os_str()).expect("installed");
    assert_eq!(runs(tools.path()), 1);
    assert_eq!(installed_version(deps.path()), EVERYTHING_VERSION);
}

#[test]
fn npm_installing_the_wrong_version_is_an_error_and_nothing_is_trusted() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let npm = fake_npm(tools.path(), "1.0.0", None);
    let err = install_everything_with(deps.path(), npm.as_os_str()).unwrap_err();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("not version {EVERYTHING_VERSION}")),
        "{err}"
    );
    assert!(!everything_entry(deps.path()).exists());
}

#[test]
fn no_npm_is_one_line_naming_node_and_npm() {
    let deps = tempfile::tempdir().unwrap();
    let err = install_everything_with(deps.path(), OsStr::new("/nonexistent/npm")).unwrap_err();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("npm not found"), "{err}");
    assert!(err.contains("install Node.js"), "{err}");
    assert!(err.contains(EVERYTHING_VERSION), "{err}");
    assert!(!everything_entry(deps.path()).exists());
}

#[test]
fn an_unreachable_registry_is_one_line_with_npms_reason() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let npm = fake_npm(
        tools.path(),
        EVERYTHING_VERSION,
        Some(
            "npm error code ENOTFOUND\nnpm error network request failed, reason: getaddrinfo ENOTFOUND registry.npmjs.org\nnpm error A complete log of this run can be found in: /x.log",
        ),
    );
    let err = install_everything_with(deps.path(), npm.as_os_str()).unwrap_err();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is the npm registry reachable?"), "{err}");
    assert!(err.contains("getaddrinfo ENOTFOUND"), "{err}");
    assert!(!err.contains("complete log"), "{err}");
    assert!(!everything_entry(deps.path()).exists());
}

#[test]
fn a_missing_program_without_apt_get_is_one_line_saying_how_to_get_it() {
    let deps = tempfile::tempdir().unwrap();
    let err = ensure_program_with(
        "plexmcp-no-such-tool",
        &["--version"],
        "no-such-package",
        "/nonexistent/apt-get",
        deps.path(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "plexmcp-no-such-tool not found and apt-get is unavailable: install the \
         `no-such-package` package (e.g. `sudo apt-get install no-such-package`)"
    );
}

#[test]
fn a_program_that_runs_needs_no_install() {
    let deps = tempfile::tempdir().unwrap();
    ensure_program_with(
        "sh",
        &["-c", "true"],
        "dash",
        "/nonexistent/apt-get",
        deps.path(),
    )
    .expect("sh runs");
}

#[test]
fn the_typescript_sdk_gets_a_folder_of_its_own_beside_the_server() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let deps = deps.path();
    install_everything_with(
        deps,
        fake_npm(tools.path(), EVERYTHING_VERSION, None).as_os_str(),
    )
    .expect("server installed");
    let sdk_tools = tempfile::tempdir().unwrap();
    let entry = [("dist/cjs/client/streamableHttp.js", "// client")];
    let npm = fake_npm_of(
        sdk_tools.path(),
        TS_SDK_PACKAGE,
        TS_SDK_VERSION,
        TS_SDK_VERSION,
        &entry,
        None,
    );

    install_ts_sdk_with(deps, npm.as_os_str()).expect("SDK installed");
    install_ts_sdk_with(deps, npm.as_os_str()).expect("SDK reused");
    assert_eq!(
        runs(sdk_tools.path()),
        1,
        "npm ran again for a complete install"
    );
    let home = ts_sdk_home(deps);
    assert!(
        home.join("node_modules")
            .join(TS_SDK_PACKAGE)
            .join(entry[0].0)
            .is_file()
    );
    // Neither install disturbed the other.
    assert!(everything_entry(deps).is_file());
    assert_eq!(installed_version(deps), EVERYTHING_VERSION);
    install_everything_with(
        deps,
        fake_npm(tools.path(), EVERYTHING_VERSION, None).as_os_str(),
    )
    .expect("server reused");
    assert_eq!(
        runs(tools.path()),
        1,
        "the SDK's install spoiled the server's"
    );
}

#[test]
fn an_sdk_without_its_entry_file_is_not_trusted() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let npm = fake_npm_of(
        tools.path(),
        TS_SDK_PACKAGE,
        TS_SDK_VERSION,
        TS_SDK_VERSION,
        &[],
        None,
    );
    let err = install_ts_sdk_with(deps.path(), npm.as_os_str()).unwrap_err();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("streamableHttp.js is missing"), "{err}");
    assert!(!ts_sdk_home(deps.path()).join("installed.txt").exists());
}

/// A stand-in `python3` in `dir` whose `-m venv DIR` makes a venv whose
/// `bin/python` is a stand-in too: its `-m pip install` accepts only the
/// pinned SDK (or fails with `pip_fails` on stderr) and records the
/// install next to itself, and its `-c` prints the installed version, as
/// the version probe expects. Every run of either is counted.
fn fake_python(dir: &Path, pip_fails: Option<&str>) -> PathBuf {
    let runs = dir.join("runs");
    let pip = match pip_fails {
        Some(message) => format!("echo '{message}' >&2; exit 1"),
        None => format!(
            r#"case "$*" in *"{PY_SDK_PACKAGE}=={PY_SDK_VERSION}"*) ;; *) echo "unpinned: $*" >&2; exit 2;; esac
echo {PY_SDK_VERSION} > "$here/installed-sdk""#
        ),
    };
    let venv_python = format!(
        r#"#!/bin/sh
here="$(dirname "$0")"
echo run >> "{runs}"
case "$1" in
  -m) {pip} ;;
  -c) [ -f "$here/installed-sdk" ] && cat "$here/installed-sdk" || exit 1 ;;
  *) exit 2 ;;
esac
"#,
        runs = runs.display()
    );
    let template = dir.join("venv-python");
    write_executable(&template, &venv_python);
    let python = dir.join("python3");
    let script = format!(
        r#"#!/bin/sh
echo run >> "{runs}"
[ "$1" = -m ] && [ "$2" = venv ] || {{ echo "unexpected: $*" >&2; exit 2; }}
mkdir -p "$3/bin" && cp "{template}" "$3/bin/python"
"#,
        runs = runs.display(),
        template = template.display()
    );
    write_executable(&python, &script);
    python
}

#[test]
fn the_python_sdk_gets_a_venv_that_is_reused_once_complete() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let python = fake_python(tools.path(), None);

    install_py_sdk_with(deps.path(), python.as_os_str()).expect("installed");
    let venv_python = py_sdk_python(deps.path());
    assert!(venv_python.is_file(), "{}", venv_python.display());
    let after_install = runs(tools.path());
    install_py_sdk_with(deps.path(), python.as_os_str()).expect("reused");
    // Reuse only asks the venv's interpreter for the version.
    assert_eq!(runs(tools.path()), after_install + 1);
    let left: Vec<String> = std::fs::read_dir(deps.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".staging") || n.contains(".old"))
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

#[test]
fn a_venv_without_its_marker_is_redone_not_trusted() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let python = fake_python(tools.path(), None);
    install_py_sdk_with(deps.path(), python.as_os_str()).expect("installed");
    let marker = py_sdk_python(deps.path())
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("installed.txt");
    std::fs::remove_file(&marker).expect("a marker was written");

    let before = runs(tools.path());
    install_py_sdk_with(deps.path(), python.as_os_str()).expect("redone");
    // venv, pip and version probes ran again; the marker is back.
    assert!(
        runs(tools.path()) >= before + 3,
        "a venv without marker was trusted"
    );
    assert!(marker.is_file());
}

#[test]
fn a_failing_pip_is_one_line_with_pips_reason() {
    let tools = tempfile::tempdir().unwrap();
    let deps = tempfile::tempdir().unwrap();
    let python = fake_python(
        tools.path(),
        Some("ERROR: Could not find a version that satisfies the requirement mcp==2.3.0"),
    );
    let err = install_py_sdk_with(deps.path(), python.as_os_str()).unwrap_err();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is PyPI reachable?"), "{err}");
    assert!(err.contains("Could not find a version"), "{err}");
    assert!(!py_sdk_python(deps.path()).exists());
}

#[test]
fn no_python_is_one_line_saying_how_to_get_it() {
    let deps = tempfile::tempdir().unwrap();
    let err = install_py_sdk_with(deps.path(), OsStr::new("/nonexistent/python3")).unwrap_err();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("python3 not found"), "{err}");
    assert!(
        err.contains("apt-get install python3 python3-venv"),
        "{err}"
    );
    assert!(err.contains(PY_SDK_VERSION), "{err}");
}
