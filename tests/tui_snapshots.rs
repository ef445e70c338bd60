//! Every pane and dialog of the console drawn into ratatui's `TestBackend`
//! at 80×24 (stacked panes) and 120×40 (side by side), compared with insta
//! snapshots in `tests/snapshots/`. The data and the clock are fixed (see
//! `tui_support`), so times and ids are stable; the secret part of a shown
//! key is masked so a change to key generation does not churn the dialogs.

mod tui_support;

use plexmcp::upstream::{Health, UpstreamHealth};

use plexmcp::access_preview::ToolList;
use plexmcp::admin::AdminError;
use plexmcp::server::usage_writer::Losses;
use plexmcp::tui::action::{Action, CopyReport, ServerStatus};
use plexmcp::tui::app::App;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyCode;
use tui_support::*;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn assert_screen(name: &str, app: &mut App, width: u16, height: u16) {
    let terminal = draw(app, width, height);
    let screen = mask_keys(&terminal.backend().to_string());
    insta::with_settings!({
        snapshot_suffix => format!("{width}x{height}"),
    }, {
        insta::assert_snapshot!(name, screen);
    });
}

/// Hides the secret and tag of any whole key on screen, keeping its public
/// prefix and its width. (insta's regex filters are not enabled here.)
fn mask_keys(screen: &str) -> String {
    const PREFIX: &str = "pmcp_";
    const KEY_LEN: usize = 51;
    const SHOWN: usize = 13; // pmcp_ + the 8-character id
    let mut out = String::with_capacity(screen.len());
    let mut rest = screen;
    while let Some(at) = rest.find(PREFIX) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let whole = from.len() >= KEY_LEN
            && from.as_bytes()[PREFIX.len()..KEY_LEN]
                .iter()
                .all(u8::is_ascii_alphanumeric)
            && !from
                .as_bytes()
                .get(KEY_LEN)
                .is_some_and(u8::is_ascii_alphanumeric);
        if whole {
            out.push_str(&from[..SHOWN]);
            out.push_str(&"*".repeat(KEY_LEN - SHOWN));
            rest = &from[KEY_LEN..];
        } else {
            out.push_str(PREFIX);
            rest = &from[PREFIX.len()..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn masking_keeps_prefixes_and_hides_secrets() {
    let key = issued_key();
    let text = format!("a {} b pmcp_Ab3dE5fG c", key.expose());
    let masked = mask_keys(&text);
    assert_eq!(masked.len(), text.len());
    assert!(!masked.contains(&key.expose()[13..]));
    assert!(masked.contains(&key.expose()[..13]));
    assert!(masked.ends_with(" b pmcp_Ab3dE5fG c"));
}

/// Snapshots `build()` at both sizes; each size gets a fresh app.
fn screens(name: &str, build: impl Fn() -> App) {
    for (width, height) in SIZES {
        let mut app = build();
        assert_screen(name, &mut app, width, height);
    }
}

fn keys_press(app: &mut App, actions: Vec<Action>) {
    for action in actions {
        app.update(action);
    }
}

fn issue(app: &mut App, replaced: Option<String>) {
    let key = issued_key();
    let record = issued_record(&key, "ci-runner");
    app.update(Action::KeyIssued {
        record: Box::new(record),
        key,
        replaced,
    });
}

// ------------------------------------------------------------------ list

#[test]
fn loading() {
    screens("loading", || App::new(ORG, now(), running()));
}

#[test]
fn empty_list() {
    screens("empty_list", || {
        loaded_with(snapshot_with(Vec::new(), Vec::new()), 10)
    });
}

#[test]
fn list_with_detail() {
    screens("list_with_detail", loaded);
}

#[test]
fn detail_loading() {
    screens("detail_loading", || loaded_with(snapshot(), 10));
}

#[test]
fn list_selected_revoked_key() {
    screens("list_selected_revoked_key", || {
        let mut app = loaded();
        app.update(ch('G'));
        app
    });
}

#[test]
fn list_selected_specific_access() {
    screens("list_selected_specific_access", || {
        let mut app = loaded();
        app.update(ch('j'));
        app
    });
}

#[test]
fn detail_focused() {
    screens("detail_focused", || {
        let mut app = loaded();
        app.update(press(KeyCode::Tab));
        app
    });
}

/// Snapshots what `act` does to an app already told the terminal's size,
/// as the event loop tells it before any key arrives.
fn sized_screens(name: &str, build: impl Fn() -> App, act: impl Fn(&mut App)) {
    for (width, height) in SIZES {
        let mut app = sized(build(), width, height);
        act(&mut app);
        assert_screen(name, &mut app, width, height);
    }
}

#[test]
fn detail_scrolled() {
    sized_screens("detail_scrolled", loaded, |app| {
        app.update(press(KeyCode::Tab));
        for _ in 0..12 {
            app.update(ch('j'));
        }
    });
}

/// Issue 12 item 3: scrolling stops with the last line at the bottom.
#[test]
fn detail_scrolled_to_the_end() {
    sized_screens("detail_scrolled_to_the_end", loaded, |app| {
        app.update(press(KeyCode::Tab));
        for _ in 0..20 {
            app.update(press(KeyCode::PageDown));
        }
    });
    for (width, height) in SIZES {
        let mut app = sized(loaded(), width, height);
        app.update(press(KeyCode::Tab));
        for _ in 0..20 {
            app.update(press(KeyCode::PageDown));
        }
        let fits = plexmcp::tui::panes::detail::line_count(&app)
            <= usize::from(app.detail_area.height - 2);
        if fits {
            assert_eq!(app.detail_scroll, 0, "{width}x{height}: nothing to scroll");
            continue;
        }
        let screen = draw(&mut app, width, height).backend().to_string();
        // The oldest activity line is the pane's last, right above its border.
        let rows: Vec<&str> = screen.lines().collect();
        let bottom = rows
            .iter()
            .rposition(|r| r.contains("└"))
            .expect("a bottom border");
        assert!(rows[bottom - 1].contains("key.created"), "{screen}");
    }
}

#[test]
fn long_list_scrolled_to_the_end() {
    screens("long_list_scrolled_to_the_end", || {
        let mut app = loaded_with(snapshot_with(many_keys(60), mcps()), 10);
        app.update(ch('G'));
        app
    });
}

/// Issue 12 (k9s habits): a list longer than its pane says which rows
/// are in view on its bottom border; a list that fits says nothing.
#[test]
fn a_long_list_shows_its_position_in_the_border() {
    for (width, height) in SIZES {
        let mut app = sized(
            loaded_with(snapshot_with(many_keys(153), mcps()), 10),
            width,
            height,
        );
        for _ in 0..3 {
            app.update(press(KeyCode::PageDown));
        }
        let rows = app.page_rows();
        assert!(app.offset > 0, "{width}x{height}: scrolled");
        let terminal = draw(&mut app, width, height);
        let list = app.list_area;
        let buffer = terminal.backend().buffer();
        let bottom: String = (list.x..list.x + list.width)
            .map(|x| buffer[(x, list.y + list.height - 1)].symbol().to_string())
            .collect();
        let position = format!(" {}–{} of 153 ", app.offset + 1, app.offset + rows);
        assert!(
            bottom.ends_with(&format!("{position}┘")),
            "{width}x{height}: {bottom:?}"
        );

        let mut short = sized(loaded(), width, height);
        let text = screen_text(&draw(&mut short, width, height));
        assert!(!text.contains(" of 4 "), "{width}x{height}: {text}");
    }
}

#[test]
fn long_list_scrolled_to_the_middle() {
    sized_screens(
        "long_list_scrolled_to_the_middle",
        || loaded_with(snapshot_with(many_keys(153), mcps()), 10),
        |app| {
            for _ in 0..3 {
                app.update(press(KeyCode::PageDown));
            }
        },
    );
}

/// Issue 12 (k9s habits): when the details list only the latest requests
/// or events, they say so at the end rather than pass for the whole history.
#[test]
fn capped_activity_says_older_entries_are_not_shown() {
    let cases = [
        (false, false, None),
        (true, false, Some("only the latest 12 requests")),
        (
            false,
            true,
            Some("only the latest 12 events · plexmcp audit"),
        ),
        (
            true,
            true,
            Some("only the latest 12 requests and 12 events"),
        ),
    ];
    for (more_requests, more_events, note) in cases {
        let mut app = sized(loaded(), 120, 40);
        app.update(Action::DetailLoaded(Box::new(
            plexmcp::tui::action::Detail {
                more_requests,
                more_events,
                ..detail()
            },
        )));
        app.update(press(KeyCode::Tab));
        app.update(ch('G'));
        let rows = detail_rows(&mut app, 120, 40);
        let last = rows
            .iter()
            .rev()
            .find(|r| !r.trim().is_empty())
            .expect("the details end somewhere")
            .trim()
            .to_string();
        match note {
            Some(note) => assert_eq!(last, note),
            None => assert!(
                !rows.iter().any(|r| r.contains("only the latest")),
                "{rows:?}"
            ),
        }
    }
}

/// Two active keys expire within the week (one marked in each size's view),
/// a revoked one would too but is not marked.
fn expiring_app() -> App {
    use chrono::TimeDelta;
    let mut keys = keys();
    keys[0].expires_at = Some(now() + TimeDelta::days(3)); // ci-deploy
    keys[1].expires_at = Some(now() + TimeDelta::hours(5)); // laptop
    keys[3].expires_at = Some(now() + TimeDelta::days(2)); // intern, revoked
    let mut app = loaded_with(snapshot_with(keys, mcps()), 10);
    app.update(Action::DetailLoaded(Box::new(detail())));
    app
}

/// Issue 12 (k9s habits): keys expiring soon stand out by a `!` and the
/// time left (the snapshots are drawn without colour), and are counted.
#[test]
fn list_with_expiring_keys() {
    screens("list_with_expiring_keys", expiring_app);
}

/// The count of expiring keys goes after the plan name, the word "serving"
/// and the title, and never takes the key count with it.
#[test]
fn the_expiring_count_in_the_header_goes_by_its_priority() {
    use plexmcp::domain::Plan;
    for org in ["acme", "production-eu-west-1", &"long-org-name-".repeat(8)] {
        for width in [80, 90, 100, 120] {
            let mut snapshot = snapshot_with(expiring_app().keys, mcps());
            snapshot.org_slug = org.to_string();
            snapshot.plan = Plan::Pro;
            let mut app = plexmcp::tui::app::App::new(org, now(), running());
            app.update(Action::Loaded(Box::new(snapshot)));
            let text = header(&mut app, width, 24.max(width / 3));
            let case = format!("{org} at {width}: {text:?}");
            assert!(text.contains(" · 2/20 keys"), "{case}");
            if text.contains("(pro)") || text.contains("serving") || text.contains(" plexmcp ") {
                assert!(text.contains(" · 2 expiring"), "{case}");
            }
        }
    }
    let mut app = expiring_app();
    assert!(header(&mut app, 120, 40).contains("acme (pro) · 2/20 keys · 2 expiring"));
}

#[test]
fn filter_footer() {
    screens("filter_footer", || {
        let mut app = loaded();
        keys_press(&mut app, vec![ch('/'), ch('l'), ch('a')]);
        app
    });
}

#[test]
fn filter_kept() {
    screens("filter_kept", || {
        let mut app = loaded();
        keys_press(
            &mut app,
            vec![ch('/'), ch('l'), ch('a'), press(KeyCode::Enter)],
        );
        app
    });
}

#[test]
fn filter_matches_nothing() {
    screens("filter_matches_nothing", || {
        let mut app = loaded();
        keys_press(&mut app, vec![ch('/'), ch('z'), ch('z')]);
        app
    });
}

#[test]
fn flash_message() {
    screens("flash_message", || {
        let mut app = loaded();
        app.update(ch('s'));
        app
    });
}

#[test]
fn flash_error() {
    screens("flash_error", || {
        let mut app = loaded();
        app.update(ch('G'));
        app.update(ch('r'));
        app
    });
}

// ---------------------------------------------------------- server status

#[test]
fn server_failed() {
    screens("server_failed", || {
        let mut app = loaded();
        app.update(Action::Server(ServerStatus::Failed(
            "127.0.0.1:8470 is in use".into(),
        )));
        app
    });
}

#[test]
fn server_off() {
    screens("server_off", || {
        let mut app = loaded();
        app.update(Action::Server(ServerStatus::Off));
        app
    });
}

#[test]
fn server_running_idle() {
    screens("server_running_idle", || {
        let mut app = loaded();
        app.update(Action::Server(ServerStatus::Running {
            addr: "127.0.0.1:8470".into(),
            per_minute: 0,
            errors_per_minute: 0,
            usage_lost: Default::default(),
        }));
        app
    });
}

// ------------------------------------------------------------ key forms

#[test]
fn create_form_empty() {
    screens("create_form_empty", || {
        let mut app = loaded();
        app.update(ch('n'));
        app
    });
}

#[test]
fn create_form_with_errors() {
    screens("create_form_with_errors", || {
        let mut app = loaded();
        app.update(ch('n'));
        keys_press(
            &mut app,
            vec![
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                press(KeyCode::Left),
                press(KeyCode::Left),
                press(KeyCode::Tab),
            ],
        );
        type_text(&mut app, "2020-01-01");
        app.update(press(KeyCode::Enter));
        app
    });
}

#[test]
fn create_form_custom_date_hint() {
    screens("create_form_custom_date_hint", || {
        let mut app = loaded();
        app.update(ch('n'));
        type_text(&mut app, "ci-runner");
        keys_press(
            &mut app,
            vec![
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                press(KeyCode::Left),
                press(KeyCode::Left),
                press(KeyCode::Tab),
            ],
        );
        app
    });
}

#[test]
fn create_form_specific_checklist() {
    screens("create_form_specific_checklist", || {
        let mut app = loaded();
        app.update(ch('n'));
        type_text(&mut app, "ci-runner");
        app.update(press(KeyCode::Tab));
        type_text(&mut app, "Nightly builds");
        keys_press(
            &mut app,
            vec![
                press(KeyCode::Tab),
                press(KeyCode::Right),
                press(KeyCode::Tab),
            ],
        );
        // A rate brings its burst field, left blank.
        type_text(&mut app, "120/min");
        keys_press(
            &mut app,
            vec![
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                ch(' '),
                press(KeyCode::Tab),
                press(KeyCode::Down),
                ch(' '),
            ],
        );
        app
    });
}

#[test]
fn create_form_specific_nothing_ticked() {
    screens("create_form_specific_nothing_ticked", || {
        let mut app = loaded();
        app.update(ch('n'));
        type_text(&mut app, "ci-runner");
        keys_press(
            &mut app,
            vec![
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                ch(' '),
                press(KeyCode::Enter),
            ],
        );
        app
    });
}

#[test]
fn create_form_specific_without_mcps() {
    screens("create_form_specific_without_mcps", || {
        let mut app = loaded_with(snapshot_with(keys(), Vec::new()), 10);
        app.update(ch('n'));
        keys_press(
            &mut app,
            vec![
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                ch(' '),
            ],
        );
        app
    });
}

#[test]
fn create_form_plan_limit() {
    screens("create_form_plan_limit", || {
        let mut app = loaded();
        app.update(ch('n'));
        type_text(&mut app, "one-too-many");
        app.update(press(KeyCode::Enter));
        app.update(Action::Failed(
            plexmcp::tui::action::Operation::CreateKey,
            AdminError::LimitReached(
                "organization 'acme' has 20 active keys, the limit of the pro plan; \
                 revoke one or upgrade to team"
                    .into(),
            ),
        ));
        app
    });
}

#[test]
fn create_form_saving() {
    screens("create_form_saving", || {
        let mut app = loaded();
        app.update(ch('n'));
        type_text(&mut app, "ci-runner");
        app.update(press(KeyCode::Enter));
        app
    });
}

#[test]
fn edit_form() {
    screens("edit_form", || {
        let mut app = loaded();
        app.update(ch('j'));
        app.update(ch('e'));
        app
    });
}

// -------------------------------------------------------------- dialogs

#[test]
fn show_key_before_copy() {
    screens("show_key_before_copy", || {
        let mut app = loaded();
        issue(&mut app, None);
        app
    });
}

#[test]
fn show_key_after_copy() {
    screens("show_key_after_copy", || {
        let mut app = loaded();
        issue(&mut app, None);
        app.update(ch('c'));
        app.update(Action::Copied(CopyReport {
            osc52: true,
            system: Err("no display".into()),
        }));
        app
    });
}

#[test]
fn show_key_copy_failed() {
    screens("show_key_copy_failed", || {
        let mut app = loaded();
        issue(&mut app, None);
        app.update(Action::Copied(CopyReport {
            osc52: false,
            system: Err("no display".into()),
        }));
        app
    });
}

#[test]
fn show_key_rotated_old_kept() {
    screens("show_key_rotated_old_kept", || {
        let mut app = loaded();
        issue(
            &mut app,
            Some("The old key pmcp_Ab3dE5fG keeps working until you revoke it (r).".into()),
        );
        app
    });
}

#[test]
fn show_key_rotated_old_revoked() {
    screens("show_key_rotated_old_revoked", || {
        let mut app = loaded();
        issue(
            &mut app,
            Some("The old key pmcp_Ab3dE5fG is revoked.".into()),
        );
        app
    });
}

#[test]
fn revoke_confirm() {
    screens("revoke_confirm", || {
        let mut app = loaded();
        app.update(ch('r'));
        app
    });
}

#[test]
fn rotate_dialog() {
    screens("rotate_dialog", || {
        let mut app = loaded();
        app.update(ch('R'));
        app
    });
}

#[test]
fn rotate_dialog_grace_step() {
    screens("rotate_dialog_grace_step", || {
        let mut app = loaded();
        app.update(ch('R'));
        app.update(ch('g'));
        app.update(press(KeyCode::Tab));
        for c in "30m".chars() {
            app.update(ch(c));
        }
        app
    });
}

#[test]
fn rotate_dialog_expired_key() {
    screens("rotate_dialog_expired_key", || {
        let mut app = loaded();
        app.update(ch('j'));
        app.update(ch('j'));
        app.update(ch('R'));
        app
    });
}

/// A key replaced with a grace period that ends in 3 h, an idle limit,
/// and a client that used it 5 minutes ago: the cutover is not done.
#[test]
fn detail_of_a_key_in_its_grace_period() {
    screens("detail_of_a_key_in_its_grace_period", || {
        let mut keys = keys();
        let ci = &mut keys[0];
        ci.expires_at = Some(now() + chrono::TimeDelta::hours(3));
        ci.succession.replaced_by = Some("Nw2Ke3Yz".into());
        ci.succession.replaced_at = Some(now() - chrono::TimeDelta::hours(21));
        ci.succession.idle_limit = Some(chrono::TimeDelta::minutes(30));
        ci.succession.last_accepted_at = Some(now() - chrono::TimeDelta::minutes(5));
        let mut app = loaded_with(snapshot_with(keys, mcps()), 10);
        app.update(Action::DetailLoaded(Box::new(detail())));
        app
    });
}

/// The replacement names the key it replaces.
#[test]
fn detail_of_a_replacement() {
    screens("detail_of_a_replacement", || {
        let mut keys = keys();
        keys[0].rotated_from = Some("Old1Ke2Y".into());
        let mut app = loaded_with(snapshot_with(keys, mcps()), 10);
        app.update(Action::DetailLoaded(Box::new(detail())));
        app
    });
}

#[test]
fn org_picker() {
    screens("org_picker", || {
        let mut app = loaded();
        app.update(ch('o'));
        app.update(ch('j'));
        app
    });
}

#[test]
fn command_palette() {
    screens("command_palette", || {
        let mut app = loaded();
        app.update(ch(':'));
        app
    });
    screens("command_palette_narrowed", || {
        let mut app = loaded();
        app.update(ch(':'));
        type_text(&mut app, "re");
        app.update(press(KeyCode::Down));
        app
    });
}

#[test]
fn help() {
    screens("help", || {
        let mut app = loaded();
        app.update(ch('?'));
        app
    });
}

// ------------------------------------------------------------------ MCPs

#[test]
fn mcps_empty() {
    screens("mcps_empty", || {
        let mut app = loaded_with(snapshot_with(keys(), Vec::new()), 10);
        app.update(ch('m'));
        app
    });
}

#[test]
fn mcps_with_entries() {
    screens("mcps_with_entries", || {
        let mut app = loaded();
        app.update(ch('m'));
        app.update(ch('j'));
        app
    });
}

#[test]
fn mcps_pinned_with_a_withheld_tool() {
    screens("mcps_pinned", || {
        let mut app = loaded_pinned();
        app.update(ch('m'));
        app
    });
}

/// The MCPs view with the console's server's view of each upstream: one
/// connected after a restart, one failing (the selected one: its error is
/// shown under the table), and none yet for an MCP nobody called.
#[test]
fn mcps_health() {
    screens("mcps_health", || {
        let mut app = loaded_pinned();
        let name = |slug: &str| {
            let mcp = app.mcps.iter().find(|m| m.slug == slug).unwrap();
            plexmcp::server::upstream_name(&mcp.slug, mcp.row_id)
        };
        let health = vec![
            UpstreamHealth {
                name: name("everything"),
                state: Health::Connected,
                restarts: 1,
            },
            UpstreamHealth {
                name: name("github"),
                state: Health::Failing("HTTP 401 Unauthorized from the upstream".into()),
                restarts: 0,
            },
        ];
        app.update(Action::UpstreamHealth(health));
        app.update(ch('m'));
        app.update(ch('j'));
        app
    });
}

#[test]
fn withheld_tools_show_old_against_new() {
    screens("withheld_tools", || {
        let mut app = loaded_pinned();
        app.update(ch('m'));
        app.update(ch('j'));
        app.update(ch('t'));
        app.update(Action::WithheldLoaded {
            org: ORG.to_string(),
            slug: "github".to_string(),
            tools: github_tools(),
        });
        app
    });
}

/// Issue 12: at 80×24 the help does not fit; scrolled to its end it shows
/// its last lines and where it is.
#[test]
fn help_scrolled_on_a_short_screen() {
    let mut app = sized(loaded(), 80, 24);
    app.update(ch('?'));
    app.update(ch('G'));
    assert_screen("help_scrolled", &mut app, 80, 24);
}

/// Issue 12: usage as a real chart, requests and errors per day with
/// dated and counted axes (`u`).
#[test]
fn usage_chart() {
    screens("usage_chart", || {
        let mut app = loaded();
        app.update(ch('u'));
        app
    });
}

#[test]
fn mcp_remove_confirm() {
    screens("mcp_remove_confirm", || {
        let mut app = loaded();
        app.update(ch('m'));
        app.update(ch('d'));
        app
    });
}

#[test]
fn mcp_form_empty() {
    screens("mcp_form_empty", || {
        let mut app = loaded();
        app.update(ch('m'));
        app.update(ch('a'));
        app
    });
}

#[test]
fn mcp_form_with_errors() {
    screens("mcp_form_with_errors", || {
        let mut app = loaded();
        app.update(ch('m'));
        app.update(ch('a'));
        type_text(&mut app, "Bad Id");
        keys_press(
            &mut app,
            vec![
                press(KeyCode::Tab),
                press(KeyCode::Tab),
                press(KeyCode::Right),
                press(KeyCode::Tab),
            ],
        );
        type_text(&mut app, "ftp://example.com");
        app.update(press(KeyCode::Enter));
        app
    });
}

// ------------------------------------------------------------ too small

#[test]
fn terminal_too_small() {
    let mut app = loaded();
    assert_screen("terminal_too_small", &mut app, 60, 20);
    let mut app = loaded();
    assert_screen("terminal_too_small", &mut app, 79, 24);
    let mut app = loaded();
    assert_screen("terminal_too_small", &mut app, 80, 23);
}

/// Too small while a new key waits: the screen says so, and quitting asks.
#[test]
fn terminal_too_small_with_a_key_on_show() {
    let mut app = loaded();
    issue(&mut app, None);
    assert_screen("terminal_too_small_key_waiting", &mut app, 70, 20);
    app.update(ctrl('c'));
    assert_screen("terminal_too_small_quit_confirm", &mut app, 70, 20);
}

// ------------------------------------------------------- quit confirm

#[test]
fn quit_confirm_over_the_show_once_key() {
    screens("quit_confirm_show_key", || {
        let mut app = loaded();
        issue(&mut app, None);
        app.update(ctrl('c'));
        app
    });
}

// ---------------------------------------------------- look-alike names

/// Every character of the screen, as the terminal would receive them.
fn screen_text(terminal: &Terminal<TestBackend>) -> String {
    terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|cell| cell.symbol())
        .collect()
}

fn look_alike_app() -> App {
    let mut stored = keys();
    stored[0].name = "evil\u{202E}gnp.exe".into();
    stored[0].description = Some("line\u{2028}two\u{200B}".into());
    stored[1].name = "lap\u{FEFF}top\u{2066}".into();
    let mut app = loaded_with(snapshot_with(stored, mcps()), 10);
    let mut detail = detail();
    detail.audit[0].detail = Some("name: evil\u{202E}gnp.exe".into());
    app.update(Action::DetailLoaded(Box::new(detail)));
    app
}

#[test]
fn look_alike_names_are_escaped_in_the_list_and_detail() {
    for (width, height) in SIZES {
        let mut app = look_alike_app();
        let terminal = draw(&mut app, width, height);
        let text = screen_text(&terminal);
        for c in ['\u{202E}', '\u{2028}', '\u{200B}', '\u{FEFF}', '\u{2066}'] {
            assert!(!text.contains(c), "raw {c:?} sent to the terminal");
        }
        assert!(text.contains("evil\\u{202E}gnp"), "{text}");
    }
    screens("look_alike_names_escaped", look_alike_app);
}

#[test]
fn look_alike_names_are_escaped_in_dialogs() {
    let mut app = look_alike_app();
    app.update(ch('r'));
    let text = screen_text(&draw(&mut app, 120, 40));
    assert!(!text.contains('\u{202E}'));
    assert!(text.contains("evil\\u{202E}gnp"), "revoke dialog: {text}");
    let mut app = look_alike_app();
    app.update(ch('R'));
    let text = screen_text(&draw(&mut app, 120, 40));
    assert!(!text.contains('\u{202E}'));
    assert!(text.contains("evil\\u{202E}gnp"), "rotate dialog: {text}");
    // The edit form shows what is stored without letting it act.
    let mut app = look_alike_app();
    app.update(ch('e'));
    let text = screen_text(&draw(&mut app, 120, 40));
    assert!(!text.contains('\u{202E}'), "edit form");
}

#[test]
fn create_form_refusing_a_look_alike_name() {
    screens("create_form_look_alike_name", || {
        let mut app = loaded();
        app.update(ch('n'));
        type_text(&mut app, "evil\u{202E}gnp");
        app.update(press(KeyCode::Enter));
        app
    });
}

// ----------------------------------------------------- usage writer loss

#[test]
fn lost_usage_events_show_in_the_status_bar() {
    screens("server_usage_lost", || {
        let mut app = loaded();
        app.update(Action::Server(ServerStatus::Running {
            addr: "127.0.0.1:8470".into(),
            per_minute: 42,
            errors_per_minute: 1,
            usage_lost: Losses {
                dropped: 120,
                failed_batches: 3,
                failed_events: 30,
            },
        }));
        app
    });
}

// ------------------------------------------- issue 12: console defects

/// The key form with 33 MCPs to choose from, the cursor moved to `at`
/// and a few ticked on the way.
fn form_with_a_long_checklist(at: usize) -> App {
    let mut app = loaded_with(snapshot_with(keys(), many_mcps(33)), 10);
    app.update(ch('n'));
    type_text(&mut app, "ci-runner");
    for _ in 0..4 {
        app.update(press(KeyCode::Tab));
    }
    app.update(press(KeyCode::Right)); // specific MCPs
    app.update(press(KeyCode::Tab));
    if at > 0 {
        app.update(ch(' ')); // ticked, then scrolled out of view
    }
    for _ in 0..at {
        app.update(ch('j'));
    }
    app.update(ch(' '));
    app
}

/// Item 1: a checklist longer than the screen scrolls with its cursor,
/// says how many MCPs are above and below, and leaves the dialog's hint
/// line and bottom border on screen.
#[test]
fn create_form_long_checklist_scrolls_with_its_cursor() {
    for (width, height) in SIZES {
        for at in [0, 20, 32] {
            let mut app = form_with_a_long_checklist(at);
            let screen = draw(&mut app, width, height).backend().to_string();
            let cursor = format!("[x] mcp-{:02}", at + 1);
            assert!(screen.contains(&cursor), "{width}x{height} {at}:\n{screen}");
            assert!(
                screen.contains("Esc cancel"),
                "{width}x{height} {at}:\n{screen}"
            );
            assert!(
                screen.contains('└'),
                "bottom border at {width}x{height}:\n{screen}"
            );
            if at > 0 && !screen.contains("mcp-01") {
                // mcp-01, ticked first, is out of view: the mark counts it.
                assert!(
                    screen.contains("↑ ") && screen.contains("more (1 ticked)"),
                    "{screen}"
                );
            }
            if at == 32 {
                assert!(screen.contains("↑ "), "{screen}");
                assert!(!screen.contains("↓ "), "{screen}");
            } else {
                assert!(screen.contains("↓ "), "{screen}");
            }
        }
    }
    screens("create_form_long_checklist_top", || {
        form_with_a_long_checklist(0)
    });
    screens("create_form_long_checklist_middle", || {
        form_with_a_long_checklist(20)
    });
}

/// Item 2: the MCPs view scrolled to its last MCP.
#[test]
fn mcps_view_scrolled_to_the_end() {
    for (width, height) in SIZES {
        let mut app = loaded_with(snapshot_with(keys(), many_mcps(40)), 10);
        app.update(ch('m'));
        let top = draw(&mut app, width, height).backend().to_string();
        assert!(top.contains("↓ "), "{top}");
        app.update(ch('G'));
        let end = draw(&mut app, width, height).backend().to_string();
        assert!(end.contains("mcp-40"), "{end}");
        assert!(end.contains("↑ ") && !end.contains("↓ "), "{end}");
    }
    screens("mcps_scrolled_to_the_end", || {
        let mut app = loaded_with(snapshot_with(keys(), many_mcps(40)), 10);
        app.update(ch('m'));
        app.update(ch('G'));
        app
    });
}

/// Item 5: a message longer than the footer is shown whole.
#[test]
fn a_long_message_wraps_instead_of_losing_its_end() {
    let message = "the free plan allows 5 active API keys and organization 'acme' has 7 \
                   active keys: revoke a key or raise the plan with \
                   `plexmcp --db /srv/plexmcp/plexmcp.db --org acme org set-plan pro`";
    let failing = || {
        let mut app = loaded();
        app.update(ch('R'));
        app.update(ch('k'));
        app.update(Action::Failed(
            plexmcp::tui::action::Operation::RotateKey,
            AdminError::LimitReached(message.into()),
        ));
        app
    };
    for (width, height) in SIZES {
        let mut app = failing();
        let screen = draw(&mut app, width, height).backend().to_string();
        let joined: String = screen.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            joined.contains("set-plan pro`"),
            "{width}x{height}:\n{screen}"
        );
        assert!(joined.contains("has 7"), "{width}x{height}:\n{screen}");
    }
    screens("long_message_wrapped", failing);
}

/// Text with every kind of character the rules refuse.
fn hostile(text: &str) -> String {
    format!("{text}\u{202E}\u{1b}[2J\u{200B}\u{2028}x")
}

/// Every stored string the console shows, made hostile: names written
/// by an older build or another program, client-supplied tool names and
/// addresses, org and MCP slugs.
fn hostile_app() -> App {
    let mut stored = keys();
    for key in &mut stored {
        key.name = hostile(&key.name);
        key.description = Some(hostile("desc"));
        key.created_by = hostile("alice");
        key.revoked_by = key.revoked_by.as_ref().map(|b| hostile(b));
        key.rotated_from = Some(hostile("Old12345"));
    }
    stored[1].access = plexmcp::domain::McpAccess::only_mcps([hostile("github")]);
    let mut mcps = mcps();
    for mcp in &mut mcps {
        mcp.slug = hostile(&mcp.slug);
        mcp.name = hostile(&mcp.name);
    }
    let mut snapshot = snapshot_with(stored, mcps);
    snapshot.orgs.push(org_choice(
        &hostile("evil-org"),
        plexmcp::domain::Plan::Free,
        0,
    ));
    let mut app = loaded_with(snapshot, 10);
    let mut detail = detail();
    for tool in &mut detail.usage.by_tool {
        tool.mcp = hostile(&tool.mcp);
        tool.tool = hostile(&tool.tool);
    }
    for client in &mut detail.usage.clients {
        client.ip = hostile(&client.ip);
    }
    for request in &mut detail.usage.recent {
        request.mcp = Some(hostile("everything"));
        request.tool = Some(hostile("echo"));
        request.outcome = hostile(&request.outcome);
        request.client_ip = Some(hostile("203.0.113.9"));
        request.user_agent = Some(hostile("curl/8.5.0"));
    }
    for event in &mut detail.audit {
        event.actor = hostile(&event.actor);
        event.actor_addr = Some(hostile("198.51.100.7"));
        event.action = hostile(&event.action);
        event.detail = Some(hostile("detail"));
    }
    app.update(Action::DetailLoaded(Box::new(detail)));
    app
}

/// Issue 12 item 8: no pane or dialog sends a control, separator or
/// bidi character to the terminal, whatever the stored text holds; each
/// shows it escaped the one way `rules::visible` does.
#[test]
fn no_pane_or_dialog_prints_a_control_or_bidi_character() {
    let modes: Vec<(&str, Vec<Action>)> = vec![
        ("list", vec![]),
        ("detail", vec![press(KeyCode::Tab)]),
        ("detail wrapped", vec![press(KeyCode::Tab), ch('w')]),
        ("specific access", vec![ch('j')]),
        ("revoked", vec![ch('G')]),
        ("help", vec![ch('?')]),
        ("edit form", vec![ch('e')]),
        ("revoke", vec![ch('r')]),
        ("rotate", vec![ch('R')]),
        ("mcps", vec![ch('m')]),
        ("remove mcp", vec![ch('m'), ch('d')]),
        ("orgs", vec![ch('o'), ch('G')]),
        ("filter", vec![ch('/'), ch('x')]),
    ];
    for (width, height) in SIZES {
        for (mode, actions) in &modes {
            let mut app = sized(hostile_app(), width, height);
            keys_press(&mut app, actions.iter().map(clone_key).collect());
            let text = screen_text(&draw(&mut app, width, height));
            for c in text.chars() {
                assert!(
                    !plexmcp::rules::is_unsafe_to_show(c),
                    "{mode} at {width}x{height}: raw U+{:04X} on screen:\n{text}",
                    u32::from(c)
                );
            }
            // (Help covers what it would show.)
            if *mode != "help" {
                assert!(text.contains("\\u{202E}"), "{mode}: escaped, not dropped");
            }
        }
        // A status message and the show-once dialog.
        let mut app = sized(hostile_app(), width, height);
        app.update(Action::Failed(
            plexmcp::tui::action::Operation::Load,
            AdminError::Internal(hostile("database says")),
        ));
        let text = screen_text(&draw(&mut app, width, height));
        assert!(
            !text.chars().any(plexmcp::rules::is_unsafe_to_show),
            "{text}"
        );
        let mut app = sized(hostile_app(), width, height);
        let key = issued_key();
        let mut record = issued_record(&key, "x");
        record.name = hostile("new");
        app.update(Action::KeyIssued {
            record: Box::new(record),
            key,
            replaced: None,
        });
        let text = screen_text(&draw(&mut app, width, height));
        assert!(
            !text.chars().any(plexmcp::rules::is_unsafe_to_show),
            "{text}"
        );
    }
}

fn clone_key(action: &Action) -> Action {
    match action {
        Action::Key(key) => Action::Key(*key),
        other => panic!("only keys here, not {other:?}"),
    }
}

/// The status bar's text at `width`.
fn header(app: &mut App, width: u16, height: u16) -> String {
    let terminal = draw(app, width, height);
    let buffer = terminal.backend().buffer();
    (0..width)
        .map(|x| buffer[(x, 0)].symbol().to_string())
        .collect()
}

/// Issue 12 item 6: however crowded, the header keeps the key count and
/// the server's address whole, with a gap between its halves.
#[test]
fn the_header_gives_up_whole_pieces_and_never_overlaps() {
    use plexmcp::domain::Plan;
    let orgs = ["acme", "production-eu-west-1", &"long-org-name-".repeat(8)];
    for plan in [Plan::Free, Plan::Pro, Plan::Enterprise] {
        for org in orgs {
            for per_minute in [0, 123_456_789] {
                for (width, height) in [(80, 24), (100, 30), (120, 40)] {
                    let mut snapshot = snapshot();
                    snapshot.org_slug = org.to_string();
                    snapshot.plan = plan;
                    snapshot.active_keys = 6;
                    let mut app = plexmcp::tui::app::App::new(org, now(), running());
                    app.update(Action::Loaded(Box::new(snapshot)));
                    app.update(Action::Server(ServerStatus::Running {
                        addr: "127.0.0.1:8470".into(),
                        per_minute,
                        errors_per_minute: 3,
                        usage_lost: Losses {
                            dropped: per_minute,
                            ..Losses::default()
                        },
                    }));
                    let text = header(&mut app, width, height);
                    let count = match plan.key_limit() {
                        Some(limit) => format!(" · 6/{limit} keys"),
                        None => " · 6 keys".to_string(),
                    };
                    let case = format!("{plan} {org} {per_minute} at {width}: {text:?}");
                    let keys_end = text.find(&count).expect(&case) + count.len();
                    let addr = text.find("127.0.0.1:8470").expect(&case);
                    let between = text[keys_end..addr].trim_end_matches("serving ");
                    assert!(between.len() >= 2 && between.trim().is_empty(), "{case}");
                }
            }
        }
    }
}

#[test]
fn crowded_header() {
    screens("crowded_header", || {
        let mut snapshot = snapshot();
        snapshot.org_slug = "production-eu-west-1".into();
        snapshot.plan = plexmcp::domain::Plan::Enterprise;
        snapshot.active_keys = 6;
        let mut app = plexmcp::tui::app::App::new("production-eu-west-1", now(), running());
        app.update(Action::Loaded(Box::new(snapshot)));
        app.update(Action::Server(ServerStatus::Running {
            addr: "127.0.0.1:8470".into(),
            per_minute: 12_345,
            errors_per_minute: 3,
            usage_lost: Losses::default(),
        }));
        app
    });
}

/// Issue 12 item 6: at 80 columns the footer still offers `o org` (the
/// sort hint goes first: the list's title shows the sort already).
#[test]
fn the_footer_keeps_the_org_hint_at_80_columns() {
    let mut app = loaded();
    let terminal = draw(&mut app, 80, 24);
    let buffer = terminal.backend().buffer();
    let footer: String = (0..80)
        .map(|x| buffer[(x, 23)].symbol().to_string())
        .collect();
    for hint in ["n new", "o org", "m MCPs", "? help", "q quit"] {
        assert!(footer.contains(hint), "{hint}: {footer:?}");
    }
}

/// A key whose details hold a 300-character tool name and a long client line.
fn long_lines_app() -> App {
    let mut app = loaded();
    let mut detail = detail();
    detail.usage.by_tool[0].tool = "t".repeat(300);
    detail.usage.recent[0].tool = Some("x".repeat(300));
    detail.usage.clients[0].ip = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".into();
    app.update(Action::DetailLoaded(Box::new(detail)));
    app.update(press(KeyCode::Tab));
    app
}

/// The details pane's rows (inside its border) at `width`×`height`.
fn detail_rows(app: &mut App, width: u16, height: u16) -> Vec<String> {
    let terminal = draw(app, width, height);
    let area = app.detail_area;
    let buffer = terminal.backend().buffer();
    (area.y + 1..area.y + area.height - 1)
        .map(|y| {
            (area.x + 1..area.x + area.width - 1)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect()
        })
        .collect()
}

/// Issue 12 item 12: a long value takes one line, cut with `…`; `w`
/// shows it whole, wrapped under its own start rather than at column 0.
#[test]
fn long_detail_lines_are_cut_and_wrap_on_request() {
    for (width, height) in SIZES {
        let mut app = sized(long_lines_app(), width, height);
        // Scrolled so the tool breakdown is in view at 80×24 too.
        for _ in 0..12 {
            app.update(ch('j'));
        }
        let rows = detail_rows(&mut app, width, height);
        let tool = rows
            .iter()
            .position(|r| r.contains("everything/ttt"))
            .unwrap_or_else(|| panic!("{rows:#?}"));
        assert!(rows[tool].trim_end().ends_with('…'), "{rows:#?}");
        assert!(rows[tool + 1].contains("github/search_issues"), "{rows:#?}");

        app.update(ch('w'));
        app.update(ch('g'));
        let lines = plexmcp::tui::panes::detail::line_count(&app);
        let mut all = Vec::new();
        // Page through the whole text: every line once.
        loop {
            let rows = detail_rows(&mut app, width, height);
            let top = usize::from(app.detail_scroll);
            for (i, row) in rows.into_iter().enumerate() {
                if all.len() == top + i {
                    all.push(row);
                }
            }
            let before = app.detail_scroll;
            app.update(press(KeyCode::PageDown));
            if app.detail_scroll == before {
                break;
            }
        }
        assert!(all.len() >= lines, "{} of {lines}", all.len());
        let text = all.concat();
        assert!(text.matches('t').count() >= 300);
        let tool = all
            .iter()
            .position(|r| r.contains("everything/ttt"))
            .unwrap();
        // Continuation lines start indented, never at column 0.
        let end = all
            .iter()
            .position(|r| r.contains("1100 requests"))
            .unwrap();
        assert!(end > tool, "{all:#?}");
        for row in &all[tool + 1..=end] {
            assert!(row.starts_with("    t"), "{row:?}");
        }
        assert!(
            !all.iter().any(|r| r.contains('…')),
            "nothing cut: {all:#?}"
        );
    }
    screens("long_detail_lines_cut", long_lines_app);
    screens("long_detail_lines_wrapped", || {
        let mut app = long_lines_app();
        app.update(ch('w'));
        app
    });
}

/// Item 13: a request that named no MCP or tool (invalid JSON) reads the
/// same in the breakdown and in Activity, and user agents are shown.
#[test]
fn unnamed_requests_read_the_same_everywhere_and_user_agents_show() {
    let mut app = loaded();
    let mut detail = detail();
    detail.usage.by_tool[1].mcp = String::new();
    detail.usage.by_tool[1].tool = String::new();
    detail.usage.recent[1].mcp = None;
    detail.usage.recent[1].tool = None;
    app.update(Action::DetailLoaded(Box::new(detail)));
    app.update(ch('w'));
    let screen = draw(&mut app, 120, 60).backend().to_string();
    assert!(screen.contains("  -/-  90 requests"), "{screen}");
    assert!(screen.contains("504 -/- upstream_timeout"), "{screen}");
    assert!(!screen.contains("  /  "), "{screen}");
    assert!(screen.contains("curl/8.5.0"), "{screen}");
}

/// The key form's tool picker over an edit: the upstream's tools, one ticked.
#[test]
fn tool_picker() {
    screens("tool_picker", || {
        let mut app = loaded();
        app.update(ch('j'));
        app.update(ch('e'));
        app.update(Action::ToolsLoaded {
            org: ORG.into(),
            lists: vec![(
                "github".into(),
                ToolList::listed(vec![
                    "get_issue".into(),
                    "search_issues".into(),
                    "create_issue".into(),
                ]),
            )],
        });
        for _ in 0..3 {
            app.update(press(KeyCode::Tab));
        }
        app.update(press(KeyCode::Down));
        app.update(ch('t'));
        app.update(press(KeyCode::Down));
        app.update(ch(' '));
        app
    });
}
