//! What an operator installs besides the binary: the systemd unit, the
//! container build, shell completions and man pages. The unit is checked
//! twice: its directives against what the README promises (no tool
//! needed), and by `systemd-analyze verify`, installed on first use when
//! missing. Docker cannot run here, so the container build is checked for
//! what it copies and how it runs, not built.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_plexmcp");
const UNIT: &str = "assets/plexmcp.service";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn plexmcp(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PLEXMCP_DB")
        .output()
        .expect("run plexmcp")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The unit's active settings, `[Section]` → key → values (a key may repeat).
fn unit_settings(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut settings = BTreeMap::<_, Vec<String>>::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{UNIT}: not a setting: {line}"));
        settings
            .entry((section.clone(), key.trim().to_owned()))
            .or_default()
            .push(value.trim().to_owned());
    }
    settings
}

#[test]
fn unit_runs_serve_under_its_own_user_with_the_hardening_the_readme_promises() {
    let settings = unit_settings(&read(UNIT));
    let service = |key: &str| -> Vec<String> {
        settings
            .get(&("Service".to_owned(), key.to_owned()))
            .cloned()
            .unwrap_or_default()
    };
    let required = [
        ("ExecStart", "/usr/local/bin/plexmcp serve"),
        ("Restart", "on-failure"),
        ("StateDirectory", "plexmcp"),
        ("Environment", "PLEXMCP_DB=/var/lib/plexmcp/plexmcp.db"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ];
    for (key, value) in required {
        assert!(
            service(key).iter().any(|v| v == value),
            "{UNIT}: [Service] lacks {key}={value} (has {:?})",
            service(key)
        );
    }
    // A user of its own: a named one that is not root, or a dynamic one.
    let user = service("User");
    let dynamic = service("DynamicUser") == ["yes"];
    assert!(
        dynamic || (user.len() == 1 && !["root", "0"].contains(&user[0].as_str())),
        "{UNIT}: runs as {user:?} (DynamicUser {dynamic}); it needs a user of its own"
    );
    // Plain HTTP: the unit must not expose it by default.
    let listen: Vec<_> = service("Environment")
        .into_iter()
        .filter_map(|v| v.strip_prefix("PLEXMCP_LISTEN=").map(str::to_owned))
        .collect();
    assert!(
        listen.iter().all(|l| l.starts_with("127.0.0.1:")),
        "{UNIT}: listens on {listen:?}, not loopback"
    );
    assert_eq!(
        settings.get(&("Install".to_owned(), "WantedBy".to_owned())),
        Some(&vec!["multi-user.target".to_owned()]),
        "{UNIT}: not enabled at boot"
    );
}

/// `ExecReload` sends SIGHUP, which ends a `serve` that does not handle it:
/// the unit may only offer reload when `serve` survives the signal (else
/// it keeps the commented line for when it does).
#[test]
fn unit_offers_reload_exactly_when_serve_survives_sighup() {
    let text = read(UNIT);
    let reload = unit_settings(&text)
        .get(&("Service".to_owned(), "ExecReload".to_owned()))
        .cloned();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut serve = Command::new(BIN);
    serve
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PLEXMCP_DB", dir.path().join("plexmcp.db"))
        .env("PLEXMCP_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: only async-signal-safe libc calls between fork and exec. An
    // ignored SIGHUP (nohup) would be inherited and hide the default action.
    unsafe {
        serve.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = serve.spawn().expect("start plexmcp serve");
    // Read on a thread: a serve that never says it listens must not hang the test.
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while !seen
        .last()
        .is_some_and(|l: &String| l.contains("serving POST /mcp on http://"))
    {
        match lines_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "plexmcp serve did not say it listens; its log:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: signals to the child we started and still own.
    unsafe {
        libc::kill(pid, libc::SIGHUP);
        libc::kill(pid, libc::SIGTERM);
    }
    // A guard against a hang, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for serve") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("plexmcp serve did not exit within a minute of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let survived = status.signal() != Some(libc::SIGHUP);
    match (&reload, survived) {
        (None, false) => assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("#ExecReload=")),
            "{UNIT}: keep the commented ExecReload line for when serve reloads"
        ),
        (Some(reload), true) => {
            assert!(status.success(), "serve after SIGHUP and SIGTERM: {status}");
            assert_eq!(reload, &["/bin/kill -HUP $MAINPID".to_owned()]);
        }
        (Some(_), false) => {
            panic!("{UNIT} has ExecReload, but SIGHUP ends plexmcp serve ({status})")
        }
        (None, true) => panic!("serve survives SIGHUP: enable ExecReload in {UNIT}"),
    }
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let analyze = systemd_analyze();
    // The unit as installed, but starting the binary just built: verify
    // checks that ExecStart is executable.
    let dir = tempfile::tempdir().expect("temp dir");
    let text = read(UNIT);
    let exec = "ExecStart=/usr/local/bin/plexmcp ";
    assert!(text.contains(exec), "{UNIT}: no `{exec}…` line");
    let unit = dir.path().join("plexmcp.service");
    std::fs::write(&unit, text.replace(exec, &format!("ExecStart={BIN} "))).unwrap();
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are warnings with exit 0: any line about
    // the unit is a finding.
    let findings: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("plexmcp.service"))
        .collect();
    assert!(
        out.status.success() && findings.is_empty(),
        "systemd-analyze verify {UNIT} ({}):\n{stderr}",
        out.status
    );
}

/// `systemd-analyze`, installed with apt-get (as root, once per machine,
/// under a lock shared by every test binary) when it is missing.
fn systemd_analyze() -> PathBuf {
    let how = "install the `systemd` package (`apt-get install systemd` as root)";
    if let Some(found) = find_program("systemd-analyze") {
        return found;
    }
    let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("install-systemd.lock");
    let lock = File::create(&lock_path).expect("create the install lock");
    lock.lock().expect("take the install lock");
    if let Some(found) = find_program("systemd-analyze") {
        return found;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("systemd-analyze is not installed and this test is not root: {how}");
    }
    let Some(apt) = find_program("apt-get") else {
        panic!("systemd-analyze is not installed and there is no apt-get: {how}");
    };
    let install = || {
        Command::new(&apt)
            .args(["-o", "DPkg::Lock::Timeout=120", "install", "-y"])
            .args(["--no-install-recommends", "systemd"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .expect("run apt-get")
    };
    let mut out = install();
    if !out.status.success() {
        // A fresh container has no package lists yet.
        let update = Command::new(&apt)
            .args(["-o", "DPkg::Lock::Timeout=120", "update"])
            .stdin(Stdio::null())
            .output()
            .expect("run apt-get update");
        out = if update.status.success() {
            install()
        } else {
            update
        };
    }
    if !out.status.success() {
        // apt's own error lines start with "E:"; notices (debconf) do not.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .rfind(|l| l.starts_with("E:"))
            .or_else(|| stderr.lines().rfind(|l| !l.trim().is_empty()))
            .unwrap_or("no message");
        panic!("systemd-analyze is missing and apt-get could not install it ({why}): {how}");
    }
    find_program("systemd-analyze").unwrap_or_else(|| {
        panic!("apt-get installed systemd, yet there is no systemd-analyze on PATH: {how}")
    })
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The Dockerfile's stages and their instructions, continuation lines joined.
fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let word = word.to_ascii_uppercase();
        if word == "FROM" {
            stages.push(Vec::new());
        }
        let stage = stages
            .last_mut()
            .expect("Dockerfile: an instruction before FROM");
        stage.push((word, rest.trim().to_owned()));
    }
    stages
}

fn instructions<'a>(stage: &'a [(String, String)], word: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(w, _)| w == word)
        .map(|(_, rest)| rest.as_str())
        .collect()
}

#[test]
fn container_builds_with_the_pinned_rust_and_serves_as_a_user_on_a_volume() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "Dockerfile: not multi-stage");
    let (builder, runtime) = (&stages[0], stages.last().unwrap());
    let rust_version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("Cargo.toml: rust-version");
    let from = instructions(builder, "FROM")[0];
    assert!(
        from.starts_with(&format!("rust:{rust_version}")),
        "Dockerfile builds with `{from}`, Cargo.toml wants Rust {rust_version}"
    );
    let runtime_from = instructions(runtime, "FROM")[0];
    assert!(
        runtime_from.starts_with("debian:") && runtime_from.contains("-slim"),
        "Dockerfile runtime is `{runtime_from}`"
    );

    let user = instructions(runtime, "USER");
    let user = user.last().expect("Dockerfile: the runtime sets no USER");
    let name = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&name), "Dockerfile runs as {user}");

    let env = instructions(runtime, "ENV").join(" ");
    let db = env
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("PLEXMCP_DB="))
        .expect("Dockerfile: ENV PLEXMCP_DB");
    let data = Path::new(db).parent().unwrap().to_str().unwrap();
    assert!(
        instructions(runtime, "VOLUME").iter().any(|v| v
            .split_whitespace()
            .any(|v| v.trim_matches(['[', ']', '"', ',']) == data)),
        "Dockerfile: the database folder {data} is not a VOLUME"
    );
    assert!(
        env.split_whitespace()
            .any(|kv| kv == "PLEXMCP_LISTEN=0.0.0.0:8470"),
        "Dockerfile: ENV {env}"
    );
    assert_eq!(instructions(runtime, "EXPOSE"), ["8470"]);
    assert_eq!(instructions(runtime, "CMD"), [r#"["serve"]"#]);
}

/// Every file the builder copies exists and is not left out of the context
/// by .dockerignore; a folder holding only those has every target
/// Cargo.toml declares and every file the binary embeds.
#[test]
fn container_context_holds_everything_the_build_reads() {
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for must in ["target", ".git"] {
        assert!(
            ignored.iter().any(|p| p == must),
            ".dockerignore lets {must} into the context"
        );
    }
    let stages = dockerfile_stages();
    let copied: Vec<String> = instructions(&stages[0], "COPY")
        .iter()
        .filter(|c| !c.starts_with("--from"))
        .flat_map(|c| {
            let mut parts: Vec<&str> = c.split_whitespace().collect();
            parts.pop(); // the destination
            parts.into_iter().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    assert!(!copied.is_empty(), "Dockerfile: the builder copies nothing");
    let context = tempfile::tempdir().expect("temp dir");
    for source in &copied {
        assert!(
            !ignored
                .iter()
                .any(|p| p == source || p.trim_end_matches('/') == source),
            ".dockerignore leaves out {source}, which the Dockerfile copies"
        );
        let from = repo(source);
        assert!(
            from.exists(),
            "Dockerfile copies {source}, which does not exist"
        );
        copy_tree(&from, &context.path().join(source));
    }

    // Cargo refuses a manifest whose declared targets are missing, even to
    // build only the binary.
    for (kind, name, path) in declared_targets(&read("Cargo.toml")) {
        let candidates = match path {
            Some(path) => vec![path],
            None => {
                let folder = match kind.as_str() {
                    "bench" => "benches",
                    "test" => "tests",
                    "example" => "examples",
                    _ => "src/bin",
                };
                vec![
                    format!("{folder}/{name}.rs"),
                    format!("{folder}/{name}/main.rs"),
                ]
            }
        };
        assert!(
            candidates.iter().any(|c| context.path().join(c).is_file()),
            "Cargo.toml declares the {kind} {name}, whose {} the Dockerfile does not copy",
            candidates[0]
        );
    }
    for (file, embedded) in embedded_files(&repo("src")) {
        let relative = embedded.strip_prefix(repo("")).unwrap_or(&embedded);
        // Test data embedded by #[cfg(test)] modules only.
        if relative.starts_with("tests") {
            continue;
        }
        assert!(
            context.path().join(relative).exists(),
            "{} embeds {}, which the Dockerfile does not copy",
            file.display(),
            relative.display()
        );
    }
}

/// (kind, name, path) of each `[[bench]]`, `[[test]]`, `[[example]]` and
/// `[[bin]]` table in a manifest.
fn declared_targets(manifest: &str) -> Vec<(String, String, Option<String>)> {
    let mut targets: Vec<(String, String, Option<String>)> = Vec::new();
    let mut in_target = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            let kind = ["bench", "test", "example", "bin"]
                .into_iter()
                .find(|k| line == format!("[[{k}]]"));
            in_target = kind.is_some();
            if let Some(kind) = kind {
                targets.push((kind.to_owned(), String::new(), None));
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=').filter(|_| in_target) else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        let target = targets.last_mut().expect("a target table");
        match key.trim() {
            "name" => target.1 = value,
            "path" => target.2 = Some(value),
            _ => {}
        }
    }
    targets
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

/// (source file, embedded file) for every `include_str!`/`include_bytes!`.
fn embedded_files(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(embedded_files(&path));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for macro_name in ["include_str!(", "include_bytes!("] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = text[at + macro_name.len()..].trim_start();
                let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else {
                    continue;
                };
                let embedded = path.parent().unwrap().join(name);
                let embedded = embedded.canonicalize().unwrap_or(embedded);
                found.push((path.clone(), embedded));
            }
        }
    }
    found
}

#[test]
fn bash_completion_is_valid_bash_and_completes_subcommands() {
    let out = plexmcp(&["completions", "bash"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("plexmcp.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash (install it: apt-get install bash)");
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // What Tab offers after `plexmcp ` and after `plexmcp keys r`.
    let complete = |words: &str| -> Vec<String> {
        let line = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _plexmcp plexmcp \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new("bash")
            .args(["-c", &line])
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "completing `{words}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out).lines().map(str::to_owned).collect()
    };
    let top = complete("plexmcp ''");
    for sub in [
        "keys",
        "mcps",
        "org",
        "serve",
        "backup",
        "restore",
        "db",
        "completions",
        "man",
    ] {
        assert!(
            top.iter().any(|w| w == sub),
            "`plexmcp <Tab>` offers {top:?}"
        );
    }
    assert_eq!(complete("plexmcp keys r"), ["revoke", "rotate"]);
}

#[test]
fn zsh_and_fish_completions_name_the_commands_and_bad_shells_are_refused() {
    let zsh = stdout(&plexmcp(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef plexmcp"), "{zsh:.200}");
    let fish = stdout(&plexmcp(&["completions", "fish"]));
    for script in [&zsh, &fish] {
        for word in ["keys", "revoke", "backup", "restore"] {
            assert!(script.contains(word), "a completion script lacks {word}");
        }
    }
    assert!(fish.contains("complete -c plexmcp"), "{fish:.200}");

    let out = plexmcp(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'tcsh'") && err.contains("bash"),
        "{err}"
    );
}

#[test]
fn man_page_has_a_title_and_every_subcommand_and_dir_writes_the_pages_it_names() {
    let page = stdout(&plexmcp(&["man"]));
    assert!(
        page.lines().any(|l| l.starts_with(".TH plexmcp 1")),
        "{page:.300}"
    );
    for sub in [
        "serve",
        "keys",
        "mcps",
        "org",
        "backup",
        "restore",
        "db",
        "completions",
        "man",
    ] {
        assert!(
            page.contains(&format!("plexmcp\\-{sub}(1)")),
            "plexmcp.1 does not name {sub}"
        );
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let man1 = dir.path().join("share/man/man1");
    let out = plexmcp(&["man", "--dir", man1.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).starts_with("Wrote "), "{}", stdout(&out));
    let top = std::fs::read_to_string(man1.join("plexmcp.1")).expect("plexmcp.1");
    assert_eq!(
        top, page,
        "--dir wrote another plexmcp.1 than `plexmcp man`"
    );
    // Every page a page refers to is there, down to `keys revoke`.
    let mut names = vec!["plexmcp".to_owned()];
    let mut seen = 0;
    while let Some(name) = names.get(seen).cloned() {
        seen += 1;
        let text = std::fs::read_to_string(man1.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1, named by another page: {e}"));
        assert!(text.contains(".TH "), "{name}.1 has no title");
        for (at, _) in text.match_indices("plexmcp\\-") {
            let word = text[at..].split_whitespace().next().unwrap_or("");
            if let Some(referred) = word.strip_suffix("(1)") {
                let referred = referred.replace("\\-", "-");
                if !names.contains(&referred) {
                    names.push(referred);
                }
            }
        }
    }
    assert!(
        names.iter().any(|n| n == "plexmcp-keys-revoke"),
        "pages found: {names:?}"
    );
}
