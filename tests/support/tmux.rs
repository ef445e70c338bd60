//! A private tmux server driving the real console, for tests that need the
//! console running beside `serve` and the CLI on one database.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::READY_TIMEOUT;

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh";

/// A private tmux server (its own socket) running one session; dropping it
/// kills the server and whatever still runs in it.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(command: &str) -> Tmux {
        let works = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(works, "tmux is not installed: {INSTALL_HINT}");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let tmux = Tmux {
            socket: format!("plexmcp-durability-{}-{nanos}", std::process::id()),
        };
        tmux.ok(&[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            "160",
            "-y",
            "45",
            command,
        ]);
        tmux
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "console"])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    pub fn type_text(&self, text: &str) {
        self.ok(&["send-keys", "-t", "console", "-l", text]);
    }

    /// Polls the screen until `done`; fails on "locked" or after a while.
    pub fn wait(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let screen = self.screen();
            assert!(
                !screen.contains("locked"),
                "the console reports a lock:\n{screen}"
            );
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen is:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Single quotes for the `sh -c` tmux runs a session's command with.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell command that runs the console (no server) on `db` in a tmux
/// session, with its log under `state`, writing `EXIT=<code>` to `exit_file`.
pub fn console_command(db: &Path, state: &Path, exit_file: &Path) -> String {
    format!(
        "env -u PLEXMCP_DB -u PLEXMCP_ORG -u PLEXMCP_LISTEN -u PLEXMCP_LOG -u DISPLAY \
         -u WAYLAND_DISPLAY USER=tester XDG_STATE_HOME={state} XDG_CACHE_HOME={state} \
         {bin} --db {db} --no-server; echo EXIT=$? > {exit}",
        state = sh_quote(&state.to_string_lossy()),
        bin = sh_quote(env!("CARGO_BIN_EXE_plexmcp")),
        db = sh_quote(&db.to_string_lossy()),
        exit = sh_quote(&exit_file.to_string_lossy()),
    )
}
