//! The console's audit view end to end: the real binary in a private tmux
//! server, its events loaded from the database through the effect
//! executor, and a change made meanwhile by another process (the CLI)
//! appearing in the open view without a key press. Needs tmux (installed
//! on first use).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::tmux::{Tmux, console_command};
use support::{Env, str_field};

fn wait_for_exit(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(Instant::now() < deadline, "the console did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_audit_view_shows_the_trail_and_follows_other_processes() {
    let env = Env::new();
    let key = env.create_key_json("ci-deploy", &[]);
    let id = str_field(&key, "id").to_string();
    env.ok(["keys", "edit", &id, "--name", "ci-release"]);
    env.create_key_json("laptop", &[]);

    let exit_file = env.dir.path().join("exit.txt");
    let console = console_command(&env.db, &env.dir.path().join("state"), &exit_file);
    let tmux = Tmux::start_sized(&console, 120, 40);
    tmux.wait_for_text("API Keys (2)");
    tmux.keys(&["a"]);
    let screen = tmux.wait_for_text("Audit trail of default");
    let screen = if screen.contains("3 events") {
        screen
    } else {
        tmux.wait_for_text("3 events")
    };
    assert!(
        screen.contains("name: \"ci-deploy\" -> \"ci-release\""),
        "{screen}"
    );
    assert!(screen.contains(&format!("pmcp_{id}")), "{screen}");

    // Filter to one key by typing part of its name.
    tmux.keys(&["/"]);
    tmux.type_text("ci-rel");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for_text("2 events");
    assert!(!screen.contains("laptop"), "{screen}");

    // Another process revokes the key: the open view reloads by itself.
    env.ok(["keys", "revoke", &id, "--yes"]);
    let screen = tmux.wait_for_text("key.revoked");
    assert!(screen.contains("3 events"), "{screen}");

    tmux.keys(&["Escape"]);
    tmux.wait_for_screen("the list again", |s| !s.contains("Audit trail of"));
    tmux.keys(&["q"]);
    assert_eq!(wait_for_exit(&exit_file).trim(), "EXIT=0");
}
