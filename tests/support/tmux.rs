//! A private tmux server (its own socket) driving the real console, for the
//! tests that need a terminal: the console beside `serve` and the CLI on one
//! database, and the console's own keyboard and clipboard end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::process::READY_TIMEOUT;

/// One tmux server running one session named `console`; dropping it kills
/// the server and whatever still runs in it.
pub struct Tmux {
    socket: String,
    /// The socket file, which tmux leaves behind when its server exits.
    socket_path: Option<PathBuf>,
}

impl Tmux {
    /// `command` in a 160×45 session.
    pub fn start(command: &str) -> Tmux {
        Tmux::start_sized(command, 160, 45)
    }

    /// `command` in a `width`×`height` session; tmux is installed first
    /// when it is missing.
    pub fn start_sized(command: &str, width: u16, height: u16) -> Tmux {
        super::install::require_tmux();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut tmux = Tmux {
            socket: format!(
                "plexmcp-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            socket_path: None,
        };
        let (w, h) = (width.to_string(), height.to_string());
        // The socket's path comes with the session (-P -F): a console that
        // exits at once takes the server with it before a second query.
        let path = tmux.ok(&[
            "new-session",
            "-d",
            "-P",
            "-F",
            "#{socket_path}",
            "-s",
            "console",
            "-x",
            &w,
            "-y",
            &h,
            command,
        ]);
        tmux.socket_path = Some(PathBuf::from(path.trim()));
        tmux
    }

    /// Keeps what the console copies with OSC 52 as a paste buffer (call it
    /// right after start, before the console can copy).
    pub fn capture_clipboard(&self) {
        self.ok(&["set", "-g", "set-clipboard", "on"]);
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

    /// Keys by tmux name (`Enter`, `Escape`) or single characters.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    pub fn type_text(&self, text: &str) {
        self.ok(&["send-keys", "-t", "console", "-l", text]);
    }

    /// The newest paste buffer, if there is one yet.
    pub fn paste_buffer(&self) -> Option<String> {
        let out = self.run(&["show-buffer"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Polls the screen until `done`; fails on "locked" or after a while.
    pub fn wait(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.wait_for_screen(what, |screen| {
            assert!(
                !screen.contains("locked"),
                "the console reports a lock:\n{screen}"
            );
            done(screen)
        })
    }

    /// Polls the screen until `done`, failing after a while.
    pub fn wait_for_screen(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let screen = self.screen();
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

    pub fn wait_for_text(&self, text: &str) -> String {
        self.wait_for_screen(&format!("{text:?}"), |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Already gone when the console exited and closed the only session.
        let _ = self.run(&["kill-server"]);
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
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
        "env -u PLEXMCP_DB -u PLEXMCP_CONFIG -u PLEXMCP_ORG -u PLEXMCP_LISTEN -u PLEXMCP_LOG -u DISPLAY \
         -u WAYLAND_DISPLAY USER=tester XDG_STATE_HOME={state} XDG_CACHE_HOME={state} XDG_CONFIG_HOME={state} \
         {bin} --db {db} --no-server; echo EXIT=$? > {exit}",
        state = sh_quote(&state.to_string_lossy()),
        bin = sh_quote(env!("CARGO_BIN_EXE_plexmcp")),
        db = sh_quote(&db.to_string_lossy()),
        exit = sh_quote(&exit_file.to_string_lossy()),
    )
}
