//! The console's state machine driven by actions alone: no terminal, no
//! database, the clock injected. Each test feeds keys, loads and effect
//! results to `App` and checks its state and the effect it asks for.

mod tui_support;

use chrono::TimeDelta;
use plexmcp::access_preview::ToolList;
use plexmcp::admin::{AdminError, EditRequest, KeyRequest, McpRequest};
use plexmcp::domain::{McpAccess, McpGrant, RateLimit, RatePeriod, ToolAccess};
use plexmcp::rules::{Field, RateLimitSpec};
use plexmcp::tui::action::{Action, CopyReport, Operation, ServerStatus};
use plexmcp::tui::app::{App, Effect, Focus, Mode, Pending, SortKey};
use plexmcp::tui::forms::{KeyField, McpField};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_support::*;

fn selected_name(app: &App) -> &str {
    app.selected_key().map_or("<none>", |k| k.name.as_str())
}

fn names_in_view(app: &App) -> Vec<&str> {
    app.view
        .iter()
        .map(|&i| app.keys[i].name.as_str())
        .collect()
}

fn detail_row(effect: Option<Effect>) -> i64 {
    match effect {
        Some(Effect::LoadDetail { key_row }) => key_row,
        other => panic!("expected LoadDetail, got {other:?}"),
    }
}

fn key_form(app: &App) -> &plexmcp::tui::forms::KeyForm {
    match &app.mode {
        Mode::KeyForm(form) => form,
        other => panic!("expected the key form, got {other:?}"),
    }
}

fn assert_normal(app: &App) {
    assert!(matches!(app.mode, Mode::Normal), "mode is {:?}", app.mode);
}

// ---------------------------------------------------------------- loading

#[test]
fn start_forces_a_refresh_and_first_load_selects_the_newest_key() {
    let mut app = App::new(ORG, now(), ServerStatus::Off);
    match app.start() {
        Effect::Refresh {
            org,
            key_row,
            force,
        } => {
            assert_eq!(org, ORG);
            assert_eq!(key_row, None);
            assert!(force);
        }
        other => panic!("expected Refresh, got {other:?}"),
    }
    assert!(!app.loaded);
    app.update(layout(10));
    let effect = app.update(Action::Loaded(Box::new(snapshot())));
    assert!(app.loaded);
    assert_eq!(selected_name(&app), "ci-deploy");
    assert_eq!(detail_row(effect), 4);
    // The same detail again is not asked for twice.
    app.update(Action::DetailLoaded(Box::new(detail())));
    assert!(app.update(Action::Loaded(Box::new(snapshot()))).is_none());
    assert_eq!(app.selected_detail().map(|d| d.key_row), Some(4));
}

#[test]
fn a_load_for_another_org_is_ignored() {
    let mut app = loaded();
    let mut other = snapshot_with(many_keys(3), Vec::new());
    other.org_slug = "beta-labs".into();
    assert!(app.update(Action::Loaded(Box::new(other))).is_none());
    assert_eq!(app.keys.len(), 4);
}

// ------------------------------------------------------------- navigation

#[test]
fn j_k_g_and_arrows_move_and_load_the_new_keys_detail() {
    let mut app = loaded();
    assert_eq!(detail_row(app.update(ch('j'))), 3);
    assert_eq!(selected_name(&app), "laptop");
    assert_eq!(detail_row(app.update(press(KeyCode::Down))), 2);
    assert_eq!(detail_row(app.update(ch('G'))), 1);
    assert_eq!(selected_name(&app), "intern");
    // At the bottom, down stays and asks for nothing.
    assert!(app.update(ch('j')).is_none());
    assert!(app.update(press(KeyCode::End)).is_none());
    assert_eq!(app.selected, 3);
    assert_eq!(detail_row(app.update(ch('k'))), 2);
    assert_eq!(detail_row(app.update(press(KeyCode::Up))), 3);
    assert_eq!(detail_row(app.update(ch('g'))), 4);
    // At the top, up stays.
    assert!(app.update(ch('k')).is_none());
    assert!(app.update(press(KeyCode::Home)).is_none());
    assert_eq!(app.selected, 0);
}

#[test]
fn page_keys_move_by_the_list_height_and_keep_the_selection_in_view() {
    let mut app = loaded_with(snapshot_with(many_keys(25), Vec::new()), 5);
    assert_eq!(app.page_rows(), 5);
    assert_eq!(detail_row(app.update(press(KeyCode::PageDown))), 20);
    assert_eq!(app.selected, 5);
    assert_eq!(app.offset, 1, "selected row is the last visible one");
    app.update(press(KeyCode::PageDown));
    app.update(press(KeyCode::PageDown));
    app.update(press(KeyCode::PageDown));
    assert_eq!(app.selected, 20);
    assert_eq!(app.offset, 16);
    // The last page clamps to the last key.
    app.update(press(KeyCode::PageDown));
    assert_eq!(app.selected, 24);
    assert_eq!(app.offset, 20);
    assert!(app.update(press(KeyCode::PageDown)).is_none());
    assert_eq!(detail_row(app.update(press(KeyCode::PageUp))), 6);
    assert_eq!(app.selected, 19);
    assert_eq!(app.offset, 19, "selection scrolled to the top row");
    app.update(ctrl('u'));
    app.update(ctrl('u'));
    app.update(ctrl('u'));
    app.update(ctrl('u'));
    assert_eq!(app.selected, 0);
    assert_eq!(app.offset, 0);
    app.update(ctrl('d'));
    assert_eq!(app.selected, 5);
}

#[test]
fn a_smaller_layout_scrolls_the_selection_back_into_view() {
    let mut app = loaded_with(snapshot_with(many_keys(30), Vec::new()), 20);
    app.update(ch('G'));
    app.update(ch('k'));
    assert_eq!((app.selected, app.offset), (28, 10));
    app.update(layout(4));
    assert!(app.selected >= app.offset && app.selected < app.offset + 4);
}

/// Every navigation key in a long pseudo-random sequence, across loads
/// that shrink and grow the list and filters that empty it.
#[test]
fn selection_never_leaves_the_list() {
    let keys = [
        ch('j'),
        ch('k'),
        ch('g'),
        ch('G'),
        press(KeyCode::PageDown),
        press(KeyCode::PageUp),
        press(KeyCode::Down),
        press(KeyCode::Up),
        wheel(1),
        wheel(-1),
        ch('s'),
    ];
    let mut app = loaded_with(snapshot_with(many_keys(40), Vec::new()), 7);
    let mut state: u32 = 99;
    let mut next = move |n: usize| {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (state >> 16) as usize % n
    };
    for step in 0..3000 {
        match next(40) {
            0 => {
                let n = next(45);
                app.update(Action::Loaded(Box::new(snapshot_with(
                    many_keys(n),
                    Vec::new(),
                ))));
            }
            1 => {
                app.update(layout(1 + next(12) as u16));
            }
            2 => {
                // A filter that matches some keys, or none.
                app.update(ch('/'));
                let text = ["key-01", "zzz", "k00000", ""][next(4)];
                type_text_or_detail(&mut app, text);
                app.update(press(KeyCode::Enter));
            }
            3 => {
                app.update(ch('/'));
                app.update(press(KeyCode::Esc));
            }
            _ => {
                let i = next(keys.len());
                let action = match &keys[i] {
                    Action::Key(k) => Action::Key(*k),
                    Action::Scroll {
                        notches,
                        column,
                        row,
                    } => wheel_at(*notches, *column, *row),
                    _ => unreachable!(),
                };
                app.update(action);
            }
        }
        let rows = app.page_rows();
        if app.view.is_empty() {
            assert_eq!(app.selected, 0, "step {step}");
            assert!(app.selected_key().is_none());
        } else {
            assert!(app.selected < app.view.len(), "step {step}");
            assert!(app.selected >= app.offset, "step {step}");
            assert!(app.selected < app.offset + rows, "step {step}");
            assert!(app.selected_key().is_some());
        }
        assert!(app.view.iter().all(|&i| i < app.keys.len()), "step {step}");
        assert_normal(&app);
    }
}

/// Typing into the filter may ask for the selected key's detail; nothing else.
fn type_text_or_detail(app: &mut App, text: &str) {
    for c in text.chars() {
        match app.update(ch(c)) {
            None | Some(Effect::LoadDetail { .. }) => {}
            other => panic!("filter typing gave {other:?}"),
        }
    }
}

#[test]
fn filter_by_name_and_by_prefix_and_esc_clears_it() {
    let mut app = loaded();
    app.update(ch('/'));
    assert!(matches!(app.mode, Mode::Filter(_)));
    type_text_or_detail(&mut app, "LAP");
    assert_eq!(app.filter, "LAP");
    assert_eq!(names_in_view(&app), ["laptop"]);
    assert_eq!(selected_name(&app), "laptop");
    // Enter keeps the filter and leaves filter mode.
    app.update(press(KeyCode::Enter));
    assert_normal(&app);
    assert_eq!(names_in_view(&app), ["laptop"]);
    // `/` again edits the same filter; Esc clears it.
    app.update(ch('/'));
    app.update(press(KeyCode::Esc));
    assert_normal(&app);
    assert_eq!(app.filter, "");
    assert_eq!(app.view.len(), 4);
    assert_eq!(selected_name(&app), "laptop", "selection survives clearing");

    // By prefix, with or without `pmcp_`.
    app.update(ch('/'));
    type_text_or_detail(&mut app, "pmcp_qr7");
    assert_eq!(names_in_view(&app), ["old-staging"]);
    for _ in 0.."pmcp_".len() + 3 {
        app.update(press(KeyCode::Backspace));
    }
    type_text_or_detail(&mut app, "mn5op");
    assert_eq!(names_in_view(&app), ["intern"]);
    // Nothing matches: no selection, no detail.
    type_text_or_detail(&mut app, "zzz");
    assert!(app.view.is_empty());
    assert!(app.selected_key().is_none());
    assert!(app.selected_detail().is_none());
    app.update(press(KeyCode::Esc));
    assert_eq!(app.view.len(), 4);
}

/// Issue 12 (k9s habits): `/team-2` finds the key whose description, not
/// name, says team-2; case does not matter and a key without one is skipped.
#[test]
fn the_filter_matches_descriptions_too() {
    let mut keys = keys();
    keys[1].description = Some("Shared laptop of Team-2".to_string());
    let mut app = loaded_with(snapshot_with(keys, mcps()), 10);
    app.update(ch('/'));
    type_text_or_detail(&mut app, "team-2");
    assert_eq!(names_in_view(&app), ["laptop"]);
    assert_eq!(selected_name(&app), "laptop");
    app.update(press(KeyCode::Esc));
    app.update(ch('/'));
    type_text_or_detail(&mut app, "github actions");
    assert_eq!(names_in_view(&app), ["ci-deploy"]);
}

#[test]
fn filter_mode_takes_letters_that_are_bindings_elsewhere() {
    let mut app = loaded();
    app.update(ch('/'));
    type_text_or_detail(&mut app, "qnr");
    assert!(!app.quit);
    assert!(matches!(app.mode, Mode::Filter(_)));
    assert_eq!(app.filter, "qnr");
}

#[test]
fn s_cycles_the_sort_column() {
    let mut app = loaded();
    assert_eq!(app.sort, SortKey::Created);
    assert_eq!(
        names_in_view(&app),
        ["ci-deploy", "laptop", "old-staging", "intern"]
    );
    let expected: [(SortKey, [&str; 4]); 5] = [
        (
            SortKey::Name,
            ["ci-deploy", "intern", "laptop", "old-staging"],
        ),
        // Most recently used first, never used last.
        (
            SortKey::LastUsed,
            ["ci-deploy", "laptop", "old-staging", "intern"],
        ),
        // Soonest expiry first, never last.
        (
            SortKey::Expires,
            ["old-staging", "intern", "ci-deploy", "laptop"],
        ),
        (
            SortKey::Status,
            ["ci-deploy", "laptop", "old-staging", "intern"],
        ),
        (
            SortKey::Created,
            ["ci-deploy", "laptop", "old-staging", "intern"],
        ),
    ];
    for (sort, names) in expected {
        assert!(app.update(ch('s')).is_none());
        assert_eq!(app.sort, sort);
        assert_eq!(names_in_view(&app), names, "{sort:?}");
        assert_eq!(
            selected_name(&app),
            "ci-deploy",
            "selection follows the key"
        );
        let flash = app.flash.as_ref().expect("sort is announced");
        assert_eq!(flash.text, format!("Sorted by {}", sort.label()));
        assert!(!flash.error);
    }
}

/// Issue 12 (k9s habits): `S` turns the column round, the title's arrow
/// says which way the list runs, and a new column starts in its own order.
#[test]
fn capital_s_reverses_the_sort_and_the_arrow_follows() {
    let mut app = loaded();
    assert_eq!(app.sort_arrow(), "▼", "newest first");
    assert!(app.update(ch('S')).is_none());
    assert!(app.sort_reversed);
    assert_eq!(app.sort_arrow(), "▲");
    assert_eq!(
        names_in_view(&app),
        ["intern", "old-staging", "laptop", "ci-deploy"]
    );
    assert_eq!(
        selected_name(&app),
        "ci-deploy",
        "selection follows the key"
    );
    assert_eq!(
        app.flash.as_ref().map(|f| f.text.as_str()),
        Some("Sorted by Created ▲: oldest first")
    );
    // `s` moves on to Name, A to Z again.
    app.update(ch('s'));
    assert!(!app.sort_reversed);
    assert_eq!(app.sort_arrow(), "▲");
    assert_eq!(
        names_in_view(&app),
        ["ci-deploy", "intern", "laptop", "old-staging"]
    );
    app.update(ch('S'));
    assert_eq!(app.sort_arrow(), "▼");
    assert_eq!(
        names_in_view(&app),
        ["old-staging", "laptop", "intern", "ci-deploy"]
    );
    // Expires reversed: never expiring first, then the latest.
    app.update(ch('s'));
    app.update(ch('s'));
    assert_eq!(app.sort, SortKey::Expires);
    app.update(ch('S'));
    assert_eq!(
        names_in_view(&app),
        ["laptop", "ci-deploy", "intern", "old-staging"]
    );
    // Twice is the column's own order again.
    app.update(ch('S'));
    assert_eq!(
        names_in_view(&app),
        ["old-staging", "intern", "ci-deploy", "laptop"]
    );
}

/// Keys that tie on the column stay newest first, whichever way it runs.
#[test]
fn a_reversed_sort_keeps_ties_newest_first() {
    let mut app = loaded();
    app.update(ch('s'));
    app.update(ch('s'));
    app.update(ch('s'));
    app.update(ch('s'));
    assert_eq!(app.sort, SortKey::Status);
    app.update(ch('S'));
    // Revoked, expired, then the two active keys in created order.
    assert_eq!(
        names_in_view(&app),
        ["intern", "old-staging", "ci-deploy", "laptop"]
    );
}

#[test]
fn tab_switches_focus_and_j_then_scrolls_the_detail() {
    let mut app = loaded();
    // A pane shorter than the details, so they have somewhere to scroll.
    app.update(Action::Layout {
        list: ratatui::layout::Rect::new(0, 1, 70, 13),
        detail: ratatui::layout::Rect::new(70, 1, 50, 12),
    });
    assert_eq!(app.focus, Focus::List);
    app.update(press(KeyCode::Tab));
    assert_eq!(app.focus, Focus::Detail);
    assert!(app.update(ch('j')).is_none());
    assert!(app.update(ch('j')).is_none());
    assert_eq!(app.detail_scroll, 2);
    assert_eq!(selected_name(&app), "ci-deploy", "list selection unchanged");
    app.update(ch('k'));
    assert_eq!(app.detail_scroll, 1);
    app.update(ch('g'));
    assert_eq!(app.detail_scroll, 0);
    app.update(ch('k'));
    assert_eq!(app.detail_scroll, 0, "never scrolls above the top");
    app.update(press(KeyCode::BackTab));
    assert_eq!(app.focus, Focus::List);
    assert_eq!(detail_row(app.update(ch('j'))), 3);
    assert_eq!(app.detail_scroll, 0);
}

// ------------------------------------------------------------ create form

#[test]
fn create_form_tab_order_and_expiry_choices() {
    let mut app = loaded();
    assert!(app.update(ch('n')).is_none());
    assert_eq!(key_form(&app).focus, KeyField::Name);
    assert!(key_form(&app).editing.is_none());
    let order = [
        KeyField::Description,
        KeyField::Expiry,
        KeyField::RateLimit,
        KeyField::Access,
        KeyField::Name,
    ];
    for field in order {
        app.update(press(KeyCode::Tab));
        assert_eq!(key_form(&app).focus, field);
    }
    app.update(press(KeyCode::BackTab));
    assert_eq!(key_form(&app).focus, KeyField::Access);
    app.update(press(KeyCode::BackTab));
    assert_eq!(key_form(&app).focus, KeyField::RateLimit);
    app.update(press(KeyCode::BackTab));
    assert_eq!(key_form(&app).focus, KeyField::Expiry);

    // Default 90 days; → walks the choices and wraps, ← goes back.
    assert_eq!(key_form(&app).expiry_spec(), "90d");
    let mut seen = Vec::new();
    for _ in 0..5 {
        app.update(press(KeyCode::Right));
        seen.push(key_form(&app).expiry);
    }
    assert_eq!(seen, [2, 3, 4, 0, 1]);
    app.update(press(KeyCode::Left));
    assert_eq!(key_form(&app).expiry_spec(), "30d");
    app.update(press(KeyCode::Left));
    assert_eq!(key_form(&app).expiry, 4, "Custom date");
    assert_eq!(key_form(&app).expiry_spec(), "");
    app.update(press(KeyCode::Right));
    app.update(press(KeyCode::Right));
    app.update(press(KeyCode::Right));
    assert_eq!(key_form(&app).expiry_spec(), "1y");
    app.update(press(KeyCode::Right));
    assert_eq!(key_form(&app).expiry_spec(), "never");

    // Custom date adds a date field after Expiration.
    app.update(press(KeyCode::Right));
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::CustomDate);
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::RateLimit);
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::Access);

    // Specific access adds the checklist after MCP Access.
    app.update(press(KeyCode::Right));
    assert_eq!(key_form(&app).access(), McpAccess::only(Vec::new()));
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::McpList);
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::Name);
    app.update(press(KeyCode::BackTab));
    assert_eq!(key_form(&app).focus, KeyField::McpList);

    // Esc cancels without an effect.
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert_normal(&app);
}

#[test]
fn create_form_shows_each_error_beside_its_field_without_an_effect() {
    let mut app = loaded();
    app.update(ch('n'));

    // Empty name.
    assert!(app.update(press(KeyCode::Enter)).is_none());
    let form = key_form(&app);
    assert!(
        form.error_for(Field::Name)
            .is_some_and(|e| e.contains("empty"))
    );
    assert_eq!(form.focus, KeyField::Name);
    assert!(!form.busy);

    // A custom date in the past.
    type_text(&mut app, "ci");
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Left));
    app.update(press(KeyCode::Left));
    assert_eq!(key_form(&app).expiry, 4);
    app.update(press(KeyCode::Tab));
    type_text(&mut app, "2026-03-01");
    assert!(app.update(press(KeyCode::Enter)).is_none());
    let form = key_form(&app);
    assert_eq!(form.error_for(Field::Name), None, "name is fixed now");
    assert!(
        form.error_for(Field::Expiry)
            .is_some_and(|e| e.contains("past")),
        "{:?}",
        form.errors
    );
    assert_eq!(form.focus, KeyField::CustomDate);

    // Specific access with nothing ticked.
    for _ in 0.."2026-03-01".len() {
        app.update(press(KeyCode::Backspace));
    }
    type_text(&mut app, "2027-01-31");
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab));
    app.update(ch(' '));
    assert!(app.update(press(KeyCode::Enter)).is_none());
    let form = key_form(&app);
    assert_eq!(form.error_for(Field::Expiry), None);
    assert!(form.error_for(Field::McpAccess).is_some());
    assert_eq!(form.focus, KeyField::Access);

    // All four at once: every field has its own message.
    let mut app = loaded();
    app.update(ch('n'));
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Left));
    app.update(press(KeyCode::Left));
    app.update(press(KeyCode::Tab));
    type_text(&mut app, "2020-01-01");
    app.update(press(KeyCode::Tab));
    type_text(&mut app, "fast");
    app.update(press(KeyCode::Tab));
    assert_eq!(
        key_form(&app).focus,
        KeyField::Burst,
        "a rate brings the burst"
    );
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Right));
    assert!(app.update(press(KeyCode::Enter)).is_none());
    let form = key_form(&app);
    assert!(form.error_for(Field::Name).is_some());
    assert!(form.error_for(Field::Expiry).is_some());
    assert!(form.error_for(Field::McpAccess).is_some());
    assert_eq!(
        form.error_for(Field::RateLimit),
        Some("cannot read rate limit 'fast': use <requests>/s, /min or /h (e.g. 120/min), or none")
    );
    assert_eq!(form.focus, KeyField::Name, "focus goes to the first error");
}

#[test]
fn create_form_submits_the_request_as_entered() {
    let mut app = loaded();
    app.update(ch('n'));
    type_text(&mut app, "ci-runner");
    app.update(press(KeyCode::Tab));
    type_text(&mut app, "Nightly builds");
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Right)); // 1 year
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab)); // past the rate limit, left blank
    app.update(ch(' ')); // Specific
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Down));
    app.update(ch(' ')); // tick github
    app.update(ch(' ')); // untick
    app.update(ch(' ')); // tick again
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::CreateKey {
            org,
            request,
            rate_limit: None,
        }) => {
            assert_eq!(org, ORG);
            assert_eq!(
                request,
                KeyRequest {
                    name: "ci-runner".into(),
                    description: Some("Nightly builds".into()),
                    expires: "1y".into(),
                    access: McpAccess::only_mcps(["github"]),
                }
            );
        }
        other => panic!("expected CreateKey, got {other:?}"),
    }
    // The form stays open, busy, until the store answers; Enter again is ignored.
    assert!(key_form(&app).busy);
    assert!(app.update(press(KeyCode::Enter)).is_none());
}

/// The rate limit and burst, read as `--rate-limit` / `--burst` read them.
#[test]
fn create_form_takes_a_rate_limit_with_a_burst() {
    let mut app = loaded();
    app.update(ch('n'));
    type_text(&mut app, "limited");
    for _ in 0..3 {
        app.update(press(KeyCode::Tab));
    }
    assert_eq!(key_form(&app).focus, KeyField::RateLimit);
    assert!(!key_form(&app).burst_shown(), "no burst without a rate");
    type_text(&mut app, "120/min");
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::Burst);
    type_text(&mut app, "x");
    assert!(app.update(press(KeyCode::Enter)).is_none());
    assert_eq!(
        key_form(&app).error_for(Field::RateLimit),
        Some("cannot read burst 'x': use a whole number of requests, e.g. 20")
    );
    assert_eq!(key_form(&app).focus, KeyField::RateLimit);
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Backspace));
    type_text(&mut app, "20");
    assert_eq!(
        key_form(&app).error_for(Field::RateLimit),
        None,
        "a fixed value clears its error"
    );
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::CreateKey { rate_limit, .. }) => assert_eq!(
            rate_limit,
            Some(RateLimit {
                requests: 120,
                per: RatePeriod::Minute,
                burst: 20
            })
        ),
        other => panic!("expected CreateKey, got {other:?}"),
    }
}

/// An edit shows the key's limit, saves a change to it (or its removal),
/// and leaves it alone when untouched.
#[test]
fn edit_form_changes_or_clears_the_rate_limit() {
    let limited = |app: &mut App| {
        let mut snap = snapshot();
        let key = snap
            .keys
            .iter_mut()
            .find(|k| k.name == "ci-deploy")
            .unwrap();
        key.rate_limit = Some(RateLimit {
            requests: 5,
            per: RatePeriod::Second,
            burst: 10,
        });
        app.update(Action::Loaded(Box::new(snap)));
    };
    let mut app = loaded();
    limited(&mut app);
    app.update(ch('e'));
    assert_eq!(key_form(&app).rate_limit.value(), "5/s");
    assert_eq!(key_form(&app).burst.value(), "10");
    type_text(&mut app, "-renamed");
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::EditKey { rate_limit, .. }) => {
            assert_eq!(rate_limit, None, "untouched: not part of the edit")
        }
        other => panic!("expected EditKey, got {other:?}"),
    }

    let mut app = loaded();
    limited(&mut app);
    app.update(ch('e'));
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::RateLimit);
    for _ in 0.."5/s".len() {
        app.update(press(KeyCode::Backspace));
    }
    type_text(&mut app, "none");
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::EditKey {
            request,
            rate_limit,
            ..
        }) => {
            assert_eq!(rate_limit, Some(RateLimitSpec::None));
            assert_eq!(request, EditRequest::default(), "nothing else changed");
        }
        other => panic!("expected EditKey, got {other:?}"),
    }
}

#[test]
fn create_form_defaults_give_a_90_day_key_for_all_mcps() {
    let mut app = loaded();
    app.update(ch('n'));
    type_text(&mut app, "  spaced  ");
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::CreateKey { request, .. }) => {
            assert_eq!(request.expires, "90d");
            assert_eq!(request.access, McpAccess::All);
            // The CLI's rules trim the name and drop a blank description.
            let valid = plexmcp::admin::validate_key_request(&request, now()).unwrap();
            assert_eq!(valid.name, "spaced");
            assert_eq!(valid.description, None);
            assert_eq!(valid.expires_at, Some(now() + TimeDelta::days(90)));
        }
        other => panic!("expected CreateKey, got {other:?}"),
    }
}

#[test]
fn a_plan_limit_failure_is_a_general_error_in_the_form() {
    let mut app = loaded();
    app.update(ch('n'));
    type_text(&mut app, "sixth");
    assert!(matches!(
        app.update(press(KeyCode::Enter)),
        Some(Effect::CreateKey { .. })
    ));
    let message = "organization acme is on the pro plan, which allows 20 active keys";
    let effect = app.update(Action::Failed(
        Operation::CreateKey,
        AdminError::LimitReached(message.into()),
    ));
    assert!(effect.is_none());
    let form = key_form(&app);
    assert_eq!(form.general_error.as_deref(), Some(message));
    assert!(form.errors.is_empty());
    assert!(!form.busy, "the form can be submitted again");
    assert_eq!(form.name.value(), "sixth", "input is kept");
    assert!(app.flash.is_none());
    // A retry clears the general error.
    assert!(app.update(press(KeyCode::Enter)).is_some());
    assert_eq!(key_form(&app).general_error, None);
}

#[test]
fn a_store_validation_failure_lands_on_its_field() {
    let mut app = loaded();
    app.update(ch('n'));
    type_text(&mut app, "x");
    app.update(press(KeyCode::Enter));
    app.update(Action::Failed(
        Operation::CreateKey,
        AdminError::Invalid(vec![plexmcp::rules::RuleError {
            field: Field::McpAccess,
            message: "unknown MCP 'gone'".into(),
        }]),
    ));
    let form = key_form(&app);
    assert_eq!(form.error_for(Field::McpAccess), Some("unknown MCP 'gone'"));
    assert_eq!(form.focus, KeyField::Access);
}

// --------------------------------------------------------- show-once key

#[test]
fn issued_key_is_shown_once_copied_then_forgotten() {
    let mut app = loaded();
    app.update(ch('n'));
    type_text(&mut app, "new-one");
    app.update(press(KeyCode::Enter));

    let key = issued_key();
    let text = key.expose().to_string();
    let record = issued_record(&key, "new-one");
    let row = record.row_id;
    let effect = app.update(Action::KeyIssued {
        record: Box::new(record.clone()),
        key,
        replaced: None,
    });
    assert!(effect.is_none());
    match &app.mode {
        Mode::ShowKey(show) => {
            assert_eq!(show.key.expose(), text);
            assert_eq!(show.record.name, "new-one");
            assert!(show.copied.is_none());
        }
        other => panic!("expected ShowKey, got {other:?}"),
    }

    // c copies the whole key and keeps the dialog open.
    match app.update(ch('c')) {
        Some(Effect::Copy(copied)) => assert_eq!(copied.as_str(), text),
        other => panic!("expected Copy, got {other:?}"),
    }
    let report = CopyReport {
        osc52: true,
        system: Err("no display".into()),
    };
    app.update(Action::Copied(report.clone()));
    match &app.mode {
        Mode::ShowKey(show) => assert_eq!(show.copied.as_ref(), Some(&report)),
        other => panic!("expected ShowKey, got {other:?}"),
    }
    // Other keys do nothing here, not even the list's bindings.
    assert!(app.update(ch('r')).is_none());
    assert!(app.update(ch('n')).is_none());
    assert!(!app.quit);
    assert!(matches!(app.mode, Mode::ShowKey(_)));

    // The store's reload arrives while the dialog is open...
    let mut keys = keys();
    keys.insert(0, record);
    let effect = app.update(Action::Loaded(Box::new(snapshot_with(
        keys.clone(),
        mcps(),
    ))));
    assert_eq!(detail_row(effect), row, "the new key is selected");
    assert_eq!(selected_name(&app), "new-one");

    // ...and Enter closes it; the key text is nowhere in the state.
    assert!(app.update(press(KeyCode::Enter)).is_none());
    assert_normal(&app);
    let state = format!("{app:?}");
    assert!(!state.contains(&text[13..]), "key text still in state");
    assert!(
        state.contains(&text[5..13]),
        "the key's id is listed as usual"
    );

    // Later loads keep it selected.
    app.update(Action::Loaded(Box::new(snapshot_with(keys, mcps()))));
    assert_eq!(selected_name(&app), "new-one");
}

fn copied_text(effect: Option<Effect>) -> String {
    match effect {
        Some(Effect::Copy(text)) => text.to_string(),
        other => panic!("expected Copy, got {other:?}"),
    }
}

/// Issue 12 (k9s habits): `y` copies the selected key's prefix by the same
/// effect as the one-time key, and the status bar says what went where.
#[test]
fn y_copies_the_selected_keys_prefix_and_says_so() {
    let mut app = loaded();
    assert_eq!(copied_text(app.update(ch('y'))), "pmcp_Ab3dE5fG");
    assert!(
        app.update(Action::Copied(CopyReport {
            osc52: true,
            system: Err("no display".into()),
        }))
        .is_none()
    );
    let flash = app.flash.clone().expect("the copy is announced");
    assert_eq!(
        flash.text,
        "Copied pmcp_Ab3dE5fG (the key's prefix): sent to your terminal by OSC 52"
    );
    assert!(!flash.error);
    assert_normal(&app);

    // A revoked key's prefix can be copied too (it is still looked up by it).
    app.update(ch('G'));
    assert_eq!(copied_text(app.update(ch('y'))), "pmcp_Mn5Op4Kl");
    app.update(Action::Copied(CopyReport {
        osc52: false,
        system: Err("no display".into()),
    }));
    let flash = app.flash.clone().expect("the failure is announced");
    assert!(flash.error);
    assert!(
        flash.text.contains("Could not copy pmcp_Mn5Op4Kl"),
        "{}",
        flash.text
    );
    assert!(flash.text.ends_with("no display"), "{}", flash.text);
}

#[test]
fn y_without_a_key_copies_nothing_and_a_late_report_is_not_misread() {
    let mut app = loaded_with(snapshot_with(Vec::new(), mcps()), 10);
    assert!(app.update(ch('y')).is_none());
    assert_eq!(
        app.flash.as_ref().map(|f| f.text.as_str()),
        Some("No key selected")
    );
    // A report with no `y` copy behind it says nothing about a prefix.
    app.flash = None;
    app.update(Action::Copied(CopyReport {
        osc52: true,
        system: Ok(()),
    }));
    assert!(app.flash.is_none());
}

#[test]
fn the_new_key_is_selected_when_the_load_comes_after_closing() {
    let mut app = loaded();
    app.update(ch('j'));
    let key = issued_key();
    let record = issued_record(&key, "late");
    app.update(Action::KeyIssued {
        record: Box::new(record.clone()),
        key,
        replaced: None,
    });
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert_normal(&app);
    let mut keys = keys();
    keys.insert(0, record);
    let effect = app.update(Action::Loaded(Box::new(snapshot_with(keys, mcps()))));
    assert_eq!(selected_name(&app), "late");
    assert_eq!(detail_row(effect), 5);
}

/// An app showing a freshly issued key; returns the key's text.
fn showing_a_key() -> (App, String) {
    let mut app = loaded();
    let key = issued_key();
    let text = key.expose().to_string();
    app.update(Action::KeyIssued {
        record: Box::new(issued_record(&key, "k")),
        key,
        replaced: None,
    });
    (app, text)
}

fn assert_showing(app: &App, text: &str) {
    match &app.mode {
        Mode::ShowKey(show) => assert_eq!(show.key.expose(), text),
        other => panic!("expected the key on screen, got {other:?}"),
    }
}

fn assert_asking_to_quit(app: &App) {
    assert!(
        matches!(app.mode, Mode::ConfirmQuit(_)),
        "expected the quit question, got {:?}",
        app.mode
    );
    assert!(!app.quit);
}

#[test]
fn ctrl_c_and_q_on_the_show_once_dialog_ask_before_the_key_is_lost() {
    for quit in [ctrl('c'), ch('q')] {
        let (mut app, text) = showing_a_key();
        let Action::Key(quit_key) = quit else {
            unreachable!()
        };
        assert!(app.update(Action::Key(quit_key)).is_none(), "no quit yet");
        assert_asking_to_quit(&app);
        // Anything but y keeps asking; Ctrl-C again is not a yes.
        for other in [ch('x'), press(KeyCode::Enter), ctrl('c'), ch('q'), ch('c')] {
            assert!(app.update(other).is_none());
            assert_asking_to_quit(&app);
        }
        // n (or Esc) goes back to the key, still there to copy.
        assert!(app.update(ch('n')).is_none());
        assert_showing(&app, &text);
        app.update(Action::Key(quit_key));
        assert!(app.update(press(KeyCode::Esc)).is_none());
        assert_showing(&app, &text);
        // y quits, and the key goes with the dialog.
        app.update(Action::Key(quit_key));
        assert!(matches!(app.update(ch('y')), Some(Effect::Quit)));
        assert!(app.quit);
        assert!(!format!("{app:?}").contains(&text[13..]));
    }
}

// --------------------------------------------------- terminal too small

fn resize(width: u16, height: u16) -> Action {
    Action::Resize { width, height }
}

/// Keys that do something on some screen of the console.
fn every_binding() -> Vec<Action> {
    let mut keys: Vec<Action> = "rRyYnNeEkKjJgGmdaoscx/? ".chars().map(ch).collect();
    for code in [
        KeyCode::Enter,
        KeyCode::Esc,
        KeyCode::Tab,
        KeyCode::BackTab,
        KeyCode::Up,
        KeyCode::Down,
        KeyCode::Left,
        KeyCode::Right,
        KeyCode::PageDown,
        KeyCode::End,
        KeyCode::Delete,
        KeyCode::Backspace,
    ] {
        keys.push(press(code));
    }
    keys.extend([ctrl('d'), ctrl('u')]);
    keys.extend([Action::Click { column: 5, row: 4 }, wheel(3)]);
    keys
}

#[test]
fn the_size_decides_too_small_like_the_screen_does() {
    let mut app = loaded();
    assert!(!app.too_small(), "size unknown: nothing is hidden");
    for (w, h, small) in [
        (60, 20, true),
        (79, 24, true),
        (80, 23, true),
        (80, 24, false),
        (200, 60, false),
    ] {
        app.update(resize(w, h));
        assert_eq!(app.too_small(), small, "{w}x{h}");
    }
}

#[test]
fn a_too_small_terminal_ignores_every_key_but_quit() {
    let mut app = loaded();
    app.update(resize(60, 20));
    for action in every_binding() {
        let shown = format!("{action:?}");
        assert!(app.update(action).is_none(), "{shown} had an effect");
        assert_normal(&app);
    }
    assert_eq!(selected_name(&app), "ci-deploy");
    assert!(!app.quit);
    // Enlarged again, keys work as before.
    app.update(resize(120, 40));
    app.update(ch('r'));
    assert!(matches!(app.mode, Mode::Confirm(_)));
    // q quits from the small screen.
    let mut app = loaded();
    app.update(resize(79, 24));
    assert!(matches!(app.update(ch('q')), Some(Effect::Quit)));
    let mut app = loaded();
    app.update(resize(80, 23));
    assert!(matches!(app.update(ctrl('c')), Some(Effect::Quit)));
}

#[test]
fn a_revoke_confirmation_hidden_by_a_small_terminal_cannot_be_confirmed() {
    let mut app = loaded();
    app.update(resize(120, 40));
    app.update(ch('r'));
    app.update(resize(60, 20));
    for key in [ch('y'), ch('Y'), press(KeyCode::Enter), ch('n')] {
        assert!(app.update(key).is_none(), "the hidden dialog acted");
    }
    assert!(
        matches!(&app.mode, Mode::Confirm(Pending::RevokeKey { name, .. }) if name == "ci-deploy"),
        "{:?}",
        app.mode
    );
    // Once it can be seen again, y revokes.
    app.update(resize(80, 24));
    assert!(matches!(
        app.update(ch('y')),
        Some(Effect::RevokeKey { .. })
    ));
}

#[test]
fn a_form_hidden_by_a_small_terminal_cannot_be_submitted_or_typed_into() {
    let mut app = loaded();
    app.update(resize(120, 40));
    app.update(ch('n'));
    type_text(&mut app, "hidden");
    app.update(resize(79, 30));
    assert!(app.update(press(KeyCode::Enter)).is_none(), "created a key");
    type_text(&mut app, "more");
    assert_eq!(key_form(&app).name.value(), "hidden");
    assert!(!key_form(&app).busy);
    // The rotate dialog likewise.
    let mut app = loaded();
    app.update(resize(120, 40));
    app.update(ch('R'));
    app.update(resize(100, 10));
    assert!(app.update(ch('r')).is_none());
    assert!(app.update(ch('k')).is_none());
    assert!(matches!(app.mode, Mode::Rotate { .. }));
}

#[test]
fn quitting_a_too_small_terminal_with_a_key_on_show_still_asks() {
    let (mut app, text) = showing_a_key();
    app.update(resize(60, 20));
    assert!(app.update(press(KeyCode::Enter)).is_none());
    assert_showing(&app, &text);
    assert!(app.update(ctrl('c')).is_none());
    assert_asking_to_quit(&app);
    assert!(app.update(ch('n')).is_none());
    assert_showing(&app, &text);
    app.update(ch('q'));
    assert!(matches!(app.update(ch('y')), Some(Effect::Quit)));
}

// ----------------------------------------------------------------- revoke

#[test]
fn revoke_asks_first_and_the_dialog_holds_the_pending_action() {
    let mut app = loaded();
    assert!(app.update(ch('r')).is_none());
    let pending = Pending::RevokeKey {
        id: "Ab3dE5fG".into(),
        name: "ci-deploy".into(),
    };
    match &app.mode {
        Mode::Confirm(p) => assert_eq!(*p, pending),
        other => panic!("expected Confirm, got {other:?}"),
    }
    // Unrelated keys leave the question open.
    assert!(app.update(ch('j')).is_none());
    assert!(app.update(ch('q')).is_none());
    assert!(matches!(app.mode, Mode::Confirm(_)));
    assert_eq!(selected_name(&app), "ci-deploy");

    // n and Esc cancel with no effect.
    assert!(app.update(ch('n')).is_none());
    assert_normal(&app);
    app.update(ch('r'));
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert_normal(&app);

    // y revokes the key the dialog named, even if the selection moved since.
    app.update(ch('r'));
    app.selected = 1;
    match app.update(ch('y')) {
        Some(Effect::RevokeKey { org, id }) => {
            assert_eq!(org, ORG);
            assert_eq!(id, "Ab3dE5fG");
        }
        other => panic!("expected RevokeKey, got {other:?}"),
    }
    assert_normal(&app);
    app.update(Action::Done(
        Operation::RevokeKey,
        "Revoked pmcp_Ab3dE5fG (\"ci-deploy\"): it no longer works".into(),
    ));
    let flash = app.flash.as_ref().unwrap();
    assert!(flash.text.starts_with("Revoked pmcp_Ab3dE5fG"));
    assert!(!flash.error);
}

#[test]
fn a_failed_revoke_closes_the_dialog_and_says_why() {
    let mut app = loaded();
    app.update(ch('r'));
    app.update(ch('y'));
    app.update(Action::Failed(
        Operation::RevokeKey,
        AdminError::Internal("database is locked".into()),
    ));
    assert_normal(&app);
    let flash = app.flash.as_ref().unwrap();
    assert_eq!(flash.text, "database is locked");
    assert!(flash.error);
}

#[test]
fn a_revoked_key_can_be_viewed_but_not_changed() {
    let mut app = loaded();
    app.update(ch('G'));
    assert_eq!(selected_name(&app), "intern");
    for c in ['r', 'e', 'R'] {
        app.flash = None;
        assert!(app.update(ch(c)).is_none(), "{c}");
        assert_normal(&app);
        let flash = app.flash.as_ref().expect("an explanation");
        assert!(flash.error);
        assert!(flash.text.contains("pmcp_Mn5Op4Kl"), "{}", flash.text);
        assert!(flash.text.contains("revoked"), "{}", flash.text);
    }
}

#[test]
fn key_actions_without_a_key_say_so() {
    let mut app = loaded_with(snapshot_with(Vec::new(), mcps()), 10);
    for c in ['r', 'e', 'R'] {
        assert!(app.update(ch(c)).is_none());
        assert_normal(&app);
        assert!(app.flash.as_ref().is_some_and(|f| f.error));
    }
}

// ----------------------------------------------------------------- rotate

#[test]
fn rotate_keep_or_revoke_the_old_key() {
    for (choice, revoke_old) in [('k', false), ('r', true)] {
        let mut app = loaded();
        app.update(ch('j'));
        assert!(app.update(ch('R')).is_none());
        match &app.mode {
            Mode::Rotate(dialog) => {
                assert_eq!(dialog.id, "Zx9Yw8Vu");
                assert_eq!(dialog.name, "laptop");
            }
            other => panic!("expected Rotate, got {other:?}"),
        }
        match app.update(ch(choice)) {
            Some(Effect::RotateKey { org, id, handover }) => {
                assert_eq!(org, ORG);
                assert_eq!(id, "Zx9Yw8Vu");
                assert_eq!(
                    handover == plexmcp::domain::Handover::RevokeNow,
                    revoke_old,
                    "{choice}"
                );
            }
            other => panic!("expected RotateKey, got {other:?}"),
        }
        // The replacement arrives as a show-once dialog naming the old key.
        let key = issued_key();
        app.update(Action::KeyIssued {
            record: Box::new(issued_record(&key, "laptop")),
            key,
            replaced: Some(format!("The old key pmcp_Zx9Yw8Vu {revoke_old}")),
        });
        match &app.mode {
            Mode::ShowKey(show) => {
                assert_eq!(
                    show.replaced,
                    Some(format!("The old key pmcp_Zx9Yw8Vu {revoke_old}"))
                )
            }
            other => panic!("expected ShowKey, got {other:?}"),
        }
    }
}

#[test]
fn rotate_cancels_with_esc_or_n() {
    for cancel in [press(KeyCode::Esc), ch('n')] {
        let mut app = loaded();
        app.update(ch('R'));
        assert!(app.update(ch('x')).is_none());
        assert!(matches!(app.mode, Mode::Rotate { .. }));
        assert!(app.update(cancel).is_none());
        assert_normal(&app);
    }
}

/// The third choice: a grace period typed like `--grace`, with an
/// optional idle limit like `--revoke-when-idle`; a bad span is said in
/// the dialog and rotates nothing; Esc goes back to the choice.
#[test]
fn rotate_with_a_typed_grace_period_and_idle_limit() {
    use plexmcp::domain::Handover;
    use plexmcp::tui::app::{DEFAULT_GRACE, GraceField, RotateStep};
    let dialog = |app: &App| match &app.mode {
        Mode::Rotate(dialog) => dialog.clone(),
        other => panic!("expected Rotate, got {other:?}"),
    };
    let mut app = loaded();
    app.update(ch('R'));
    assert!(app.update(ch('g')).is_none());
    let d = dialog(&app);
    assert_eq!(d.step, RotateStep::Grace);
    assert_eq!(d.grace.value(), DEFAULT_GRACE);
    assert_eq!(d.focus, GraceField::Grace);
    // Replace the default with a bad span: refused in the dialog.
    for _ in 0..DEFAULT_GRACE.len() {
        app.update(press(KeyCode::Backspace));
    }
    type_text(&mut app, "2x");
    assert!(app.update(press(KeyCode::Enter)).is_none());
    let d = dialog(&app);
    let error = d.error.expect("a bad grace is said");
    assert!(error.message.contains("'2x'"), "{}", error.message);
    assert!(!error.message.contains('\n'));
    // Fixing it clears the error as it is typed.
    app.update(press(KeyCode::Backspace));
    type_text(&mut app, "h");
    assert!(dialog(&app).error.is_none());
    app.update(press(KeyCode::Tab));
    assert_eq!(dialog(&app).focus, GraceField::Idle);
    type_text(&mut app, "30m");
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::RotateKey { id, handover, .. }) => {
            assert_eq!(id, "Ab3dE5fG");
            assert_eq!(
                handover,
                Handover::Keep {
                    grace: Some(TimeDelta::hours(2)),
                    idle: Some(TimeDelta::minutes(30)),
                }
            );
        }
        other => panic!("expected RotateKey, got {other:?}"),
    }

    // Esc in the grace step goes back to the three choices, not out.
    let mut app = loaded();
    app.update(ch('R'));
    app.update(ch('g'));
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert_eq!(dialog(&app).step, RotateStep::Choose);
    match app.update(ch('k')) {
        Some(Effect::RotateKey { handover, .. }) => {
            assert_eq!(handover, Handover::UNTIL_REVOKED)
        }
        other => panic!("expected RotateKey, got {other:?}"),
    }
}

/// An expired key has nothing to hand over: the dialog offers only the
/// replacement (no keep, no grace), which leaves the old key as it is.
#[test]
fn rotating_an_expired_key_offers_no_grace_and_no_keeping() {
    use plexmcp::domain::Handover;
    let mut app = loaded();
    app.update(ch('j'));
    app.update(ch('j'));
    assert_eq!(app.selected_key().unwrap().name, "old-staging");
    app.update(ch('R'));
    match &app.mode {
        Mode::Rotate(dialog) => assert!(dialog.expired),
        other => panic!("expected Rotate, got {other:?}"),
    }
    for refused in ['g', 'k', 'r'] {
        assert!(app.update(ch(refused)).is_none(), "{refused}");
        assert!(matches!(app.mode, Mode::Rotate(_)), "{refused}");
    }
    match app.update(ch('y')) {
        Some(Effect::RotateKey { id, handover, .. }) => {
            assert_eq!(id, "Qr7St6Uv");
            assert!(!handover.keeps_for_a_while());
            assert_ne!(handover, Handover::RevokeNow);
        }
        other => panic!("expected RotateKey, got {other:?}"),
    }
}

// ------------------------------------------------------------------- edit

#[test]
fn edit_form_is_prefilled_and_unchanged_submit_just_closes() {
    let mut app = loaded();
    app.update(ch('j'));
    // Its MCPs' tool lists were asked for with the first key's details.
    assert!(app.update(ch('e')).is_none());
    let form = key_form(&app);
    assert_eq!(
        form.editing.as_ref().map(|k| k.id.as_str()),
        Some("Zx9Yw8Vu")
    );
    assert_eq!(form.name.value(), "laptop");
    assert_eq!(form.description.value(), "");
    assert!(!form.all_mcps);
    assert_eq!(
        form.mcps,
        [
            ("everything".to_string(), false),
            ("github".to_string(), true)
        ]
    );
    // No expiry field when editing.
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::RateLimit);
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::Access);
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::McpList);

    assert!(app.update(press(KeyCode::Enter)).is_none());
    assert_normal(&app);
}

#[test]
fn edit_submits_only_what_changed() {
    let mut app = loaded();
    app.update(ch('e'));
    assert_eq!(key_form(&app).name.value(), "ci-deploy");
    assert_eq!(
        key_form(&app).description.value(),
        "Deploys from GitHub Actions"
    );
    assert!(key_form(&app).all_mcps);
    type_text(&mut app, "-2");
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::EditKey {
            org,
            id,
            request,
            rate_limit: None,
        }) => {
            assert_eq!(org, ORG);
            assert_eq!(id, "Ab3dE5fG");
            assert_eq!(
                request,
                EditRequest {
                    name: Some("ci-deploy-2".into()),
                    description: None,
                    access: None,
                }
            );
        }
        other => panic!("expected EditKey, got {other:?}"),
    }
    app.update(Action::Done(
        Operation::EditKey,
        "Updated pmcp_Ab3dE5fG (\"ci-deploy-2\")".into(),
    ));
    assert_normal(&app);
    assert!(app.flash.as_ref().is_some_and(|f| !f.error));
}

#[test]
fn edit_to_an_empty_name_is_refused_in_the_form() {
    let mut app = loaded();
    app.update(ch('e'));
    for _ in 0.."ci-deploy".len() {
        app.update(press(KeyCode::Backspace));
    }
    assert!(app.update(press(KeyCode::Enter)).is_none());
    assert!(key_form(&app).error_for(Field::Name).is_some());
}

// ------------------------------------------------------------------- MCPs

#[test]
fn mcps_view_add_flow() {
    let mut app = loaded();
    assert!(app.update(ch('m')).is_none());
    assert!(matches!(app.mode, Mode::Mcps(at) if at.selected == 0));
    app.update(ch('j'));
    assert!(matches!(app.mode, Mode::Mcps(at) if at.selected == 1));
    app.update(ch('j'));
    assert!(
        matches!(app.mode, Mode::Mcps(at) if at.selected == 1),
        "clamped"
    );
    app.update(ch('a'));
    let form = match &app.mode {
        Mode::McpForm(form) => form,
        other => panic!("expected McpForm, got {other:?}"),
    };
    assert_eq!(form.focus, McpField::Id);
    assert!(form.stdio);
    type_text(&mut app, "fs");
    app.update(press(KeyCode::Tab));
    type_text(&mut app, "Files");
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab));
    type_text(
        &mut app,
        "npx -y @modelcontextprotocol/server-filesystem /srv",
    );
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::AddMcp { org, request }) => {
            assert_eq!(org, ORG);
            assert_eq!(
                request,
                McpRequest {
                    slug: "fs".into(),
                    name: Some("Files".into()),
                    stdio: Some("npx -y @modelcontextprotocol/server-filesystem /srv".into()),
                    url: None,
                    env: Vec::new(),
                    inherit_env: Vec::new(),
                    headers: Vec::new(),
                    timeout_secs: Some(30),
                    pinned: false,
                }
            );
        }
        other => panic!("expected AddMcp, got {other:?}"),
    }
    app.update(Action::Done(Operation::AddMcp, "Added MCP 'fs'".into()));
    assert!(matches!(app.mode, Mode::Mcps(_)));
    assert_eq!(app.flash.as_ref().unwrap().text, "Added MCP 'fs'");
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert_normal(&app);
}

#[test]
fn mcp_form_errors_and_url_transport() {
    let mut app = loaded();
    app.update(ch('m'));
    app.update(ch('a'));
    assert!(app.update(press(KeyCode::Enter)).is_none());
    match &app.mode {
        Mode::McpForm(form) => {
            assert!(form.error_for(Field::Slug).is_some(), "{:?}", form.errors);
            assert_eq!(form.focus, McpField::Id);
        }
        other => panic!("expected McpForm, got {other:?}"),
    }
    type_text(&mut app, "web");
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Right)); // URL
    app.update(press(KeyCode::Tab));
    type_text(&mut app, "http://127.0.0.1:9000/mcp");
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Backspace));
    app.update(press(KeyCode::Backspace));
    type_text(&mut app, "soon");
    assert!(app.update(press(KeyCode::Enter)).is_none());
    match &app.mode {
        Mode::McpForm(form) => assert!(form.error_for(Field::Timeout).is_some()),
        other => panic!("expected McpForm, got {other:?}"),
    }
    for _ in 0..4 {
        app.update(press(KeyCode::Backspace));
    }
    type_text(&mut app, "5");
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::AddMcp { request, .. }) => {
            assert_eq!(request.slug, "web");
            assert_eq!(request.name, None);
            assert_eq!(request.stdio, None);
            assert_eq!(request.url.as_deref(), Some("http://127.0.0.1:9000/mcp"));
            assert_eq!(request.timeout_secs, Some(5));
        }
        other => panic!("expected AddMcp, got {other:?}"),
    }
    // A store failure stays in the form.
    app.update(Action::Failed(
        Operation::AddMcp,
        AdminError::Internal("MCP 'web' already exists".into()),
    ));
    match &app.mode {
        Mode::McpForm(form) => {
            assert_eq!(
                form.general_error.as_deref(),
                Some("MCP 'web' already exists")
            );
            assert!(!form.busy);
        }
        other => panic!("expected McpForm, got {other:?}"),
    }
    // Esc goes back to the list of MCPs, not all the way out.
    app.update(press(KeyCode::Esc));
    assert!(matches!(app.mode, Mode::Mcps(_)));
}

#[test]
fn mcps_view_remove_flow() {
    let mut app = loaded();
    app.update(ch('m'));
    app.update(ch('j'));
    assert!(app.update(ch('d')).is_none());
    match &app.mode {
        Mode::Confirm(Pending::RemoveMcp { slug }) => assert_eq!(slug, "github"),
        other => panic!("expected Confirm, got {other:?}"),
    }
    // n goes back to the MCPs view, on the same MCP.
    assert!(app.update(ch('n')).is_none());
    assert!(matches!(app.mode, Mode::Mcps(at) if at.selected == 1));
    app.update(ch('d'));
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert!(matches!(app.mode, Mode::Mcps(at) if at.selected == 1));
    app.update(ch('k'));
    app.update(ch('d'));
    match app.update(ch('y')) {
        Some(Effect::RemoveMcp { org, slug }) => {
            assert_eq!(org, ORG);
            assert_eq!(slug, "everything");
        }
        other => panic!("expected RemoveMcp, got {other:?}"),
    }
    app.update(Action::Done(
        Operation::RemoveMcp,
        "Removed MCP 'everything'".into(),
    ));
    assert!(matches!(app.mode, Mode::Mcps(_)));
}

#[test]
fn p_pins_an_unpinned_mcp_and_unpins_a_pinned_one() {
    let mut app = loaded_pinned();
    app.update(ch('m'));
    match app.update(ch('p')) {
        Some(Effect::SetPinned { org, slug, pinned }) => {
            assert_eq!(
                (org.as_str(), slug.as_str(), pinned),
                (ORG, "everything", true)
            );
        }
        other => panic!("expected SetPinned, got {other:?}"),
    }
    assert!(matches!(app.mode, Mode::Mcps(at) if at.selected == 0));
    app.update(ch('j'));
    match app.update(ch('p')) {
        Some(Effect::SetPinned { slug, pinned, .. }) => {
            assert_eq!((slug.as_str(), pinned), ("github", false));
        }
        other => panic!("expected SetPinned, got {other:?}"),
    }
    app.update(Action::Done(
        Operation::PinMcp,
        "Unpinned MCP 'github'".into(),
    ));
    assert!(
        matches!(app.mode, Mode::Mcps(at) if at.selected == 1),
        "stays on the MCP"
    );
    // With no MCPs there is nothing to pin.
    let mut empty = loaded_with(snapshot_with(keys(), Vec::new()), 10);
    empty.update(ch('m'));
    assert!(empty.update(ch('p')).is_none());
}

#[test]
fn t_on_a_pinned_mcp_lists_only_its_withheld_tools_with_a_diff_and_approves_the_selected() {
    use plexmcp::tui::tool_diff::DiffLine;
    let mut app = loaded_pinned();
    app.update(ch('m'));
    // Unpinned: nothing is withheld, so nothing opens.
    assert!(app.update(ch('t')).is_none());
    assert!(matches!(app.mode, Mode::Mcps(_)));
    assert!(app.flash.as_ref().unwrap().text.contains("not pinned"));
    app.update(ch('j'));
    match app.update(ch('t')) {
        Some(Effect::LoadWithheld { org, slug }) => {
            assert_eq!((org.as_str(), slug.as_str()), (ORG, "github"))
        }
        other => panic!("expected LoadWithheld, got {other:?}"),
    }
    // The wheel moves nothing in an empty list; approving before the tools arrive does nothing.
    assert!(
        app.update(Action::Scroll {
            notches: 1,
            column: 1,
            row: 1
        })
        .is_none()
    );
    assert!(app.update(ch('a')).is_none());
    // A load for another MCP is not this view's.
    app.update(Action::WithheldLoaded {
        org: ORG.into(),
        slug: "everything".into(),
        tools: github_tools(),
    });
    assert!(matches!(&app.mode, Mode::Withheld(v) if !v.loaded));
    app.update(Action::WithheldLoaded {
        org: ORG.into(),
        slug: "github".into(),
        tools: github_tools(),
    });
    let Mode::Withheld(view) = &app.mode else {
        panic!("expected the withheld view, got {:?}", app.mode);
    };
    let names: Vec<&str> = view.tools.iter().map(|(t, _)| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["create_issue", "upload"],
        "approved tools are not listed"
    );
    let (_, diff) = &view.tools[0];
    assert!(
        diff.contains(&DiffLine::Old(
            r#"  "description": "Creates an issue","#.into()
        )),
        "{diff:?}"
    );
    assert!(
        diff.iter()
            .any(|l| matches!(l, DiffLine::New(t) if t.contains("id_rsa"))),
        "{diff:?}"
    );
    assert!(
        view.tools[1]
            .1
            .iter()
            .all(|l| matches!(l, DiffLine::New(_)))
    );
    // The wheel moves the selection, as j does.
    app.update(Action::Scroll {
        notches: 1,
        column: 1,
        row: 1,
    });
    assert!(matches!(&app.mode, Mode::Withheld(v) if v.at.selected == 1));
    match app.update(ch('a')) {
        Some(Effect::ApproveTool { org, slug, tool }) => {
            assert_eq!(
                (org.as_str(), slug.as_str(), tool.as_str()),
                (ORG, "github", "upload")
            );
        }
        other => panic!("expected ApproveTool, got {other:?}"),
    }
    // Done reloads the view; the reload drops what was approved.
    match app.update(Action::Done(Operation::ApproveTool, "Approved".into())) {
        Some(Effect::LoadWithheld { slug, .. }) => assert_eq!(slug, "github"),
        other => panic!("expected LoadWithheld, got {other:?}"),
    }
    let mut rest = github_tools();
    rest.retain(|t| t.name != "upload");
    app.update(Action::WithheldLoaded {
        org: ORG.into(),
        slug: "github".into(),
        tools: rest,
    });
    assert!(matches!(&app.mode, Mode::Withheld(v) if v.tools.len() == 1 && v.at.selected == 0));
    // A failed approval says why and keeps the view.
    app.update(Action::Failed(
        Operation::ApproveTool,
        AdminError::Internal("store failed".into()),
    ));
    assert!(matches!(app.mode, Mode::Withheld(_)));
    assert!(app.flash.as_ref().unwrap().error);
    // Esc goes back to the MCPs view on the same MCP.
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert!(matches!(app.mode, Mode::Mcps(at) if at.selected == 1));
}

#[test]
fn mcps_view_with_no_mcps_removes_nothing() {
    let mut app = loaded_with(snapshot_with(keys(), Vec::new()), 10);
    app.update(ch('m'));
    assert!(app.update(ch('d')).is_none());
    assert!(matches!(app.mode, Mode::Mcps(_)));
    app.update(ch('j'));
    assert!(matches!(app.mode, Mode::Mcps(at) if at.selected == 0));
    app.update(ch('q'));
    assert_normal(&app);
    assert!(!app.quit, "q leaves the view, not the console");
}

// -------------------------------------------------------------- org picker

#[test]
fn org_picker_switches_org_and_forces_a_refresh() {
    let mut app = loaded();
    assert!(app.update(ch('o')).is_none());
    assert!(matches!(app.mode, Mode::Orgs(at) if at.selected == 0));
    // Enter on the current org changes nothing.
    assert!(app.update(press(KeyCode::Enter)).is_none());
    assert_normal(&app);
    assert_eq!(app.org, ORG);

    app.update(ch('o'));
    app.update(ch('j'));
    app.update(ch('j'));
    app.update(ch('j'));
    assert!(
        matches!(app.mode, Mode::Orgs(at) if at.selected == 2),
        "clamped"
    );
    app.update(ch('k'));
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::Refresh {
            org,
            key_row,
            force,
        }) => {
            assert_eq!(org, "beta-labs");
            assert_eq!(key_row, None);
            assert!(force);
        }
        other => panic!("expected Refresh, got {other:?}"),
    }
    assert_normal(&app);
    assert_eq!(app.org, "beta-labs");
    assert!(app.keys.is_empty());
    assert!(app.detail.is_none());
    assert!(!app.loaded);

    // A late load of the old org does not come back.
    assert!(app.update(Action::Loaded(Box::new(snapshot()))).is_none());
    assert!(app.keys.is_empty());
    let mut beta = snapshot_with(many_keys(2), Vec::new());
    beta.org_slug = "beta-labs".into();
    assert_eq!(detail_row(app.update(Action::Loaded(Box::new(beta)))), 2);
    assert_eq!(app.keys.len(), 2);
}

#[test]
fn org_picker_closes_with_esc() {
    let mut app = loaded();
    app.update(ch('o'));
    app.update(ch('j'));
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert_normal(&app);
    assert_eq!(app.org, ORG);
}

// --------------------------------------------------------- help and quit

#[test]
fn help_opens_with_question_mark_and_any_key_closes_it() {
    for close in [ch('x'), ch('q'), press(KeyCode::Esc), press(KeyCode::Enter)] {
        let mut app = loaded();
        assert!(app.update(ch('?')).is_none());
        assert!(matches!(app.mode, Mode::Help(_)));
        assert!(app.update(close).is_none());
        assert_normal(&app);
        assert!(!app.quit);
    }
}

#[test]
fn help_lists_every_binding_of_the_list_view() {
    use plexmcp::tui::action::{BINDINGS, Intent};
    let intents = [
        Intent::Quit,
        Intent::Down,
        Intent::Up,
        Intent::Top,
        Intent::Bottom,
        Intent::PageUp,
        Intent::PageDown,
        Intent::SwitchPane,
        Intent::Filter,
        Intent::ClearFilter,
        Intent::Sort,
        Intent::ReverseSort,
        Intent::CopyPrefix,
        Intent::Create,
        Intent::Edit,
        Intent::Revoke,
        Intent::Rotate,
        Intent::Mcps,
        Intent::Orgs,
        Intent::Audit,
        Intent::Help,
        Intent::Wrap,
    ];
    for intent in intents {
        assert!(
            BINDINGS.iter().any(|b| b.intents.contains(&intent)),
            "{intent:?} missing from help"
        );
    }
}

#[test]
fn q_quits() {
    let mut app = loaded();
    assert!(matches!(app.update(ch('q')), Some(Effect::Quit)));
    assert!(app.quit);
}

#[test]
fn ctrl_c_quits_from_anywhere() {
    let openers: [&[Action]; 7] = [
        &[],
        &[ch('n')],
        &[ch('/')],
        &[ch('r')],
        &[ch('m'), ch('a')],
        &[ch('o')],
        &[ch('?')],
    ];
    for keys in openers {
        let mut app = loaded();
        for key in keys {
            let Action::Key(k) = key else { unreachable!() };
            app.update(Action::Key(*k));
        }
        assert!(
            matches!(app.update(ctrl('c')), Some(Effect::Quit)),
            "{:?}",
            app.mode
        );
        assert!(app.quit);
    }
}

// ------------------------------------------------------- ticks and server

#[test]
fn tick_advances_the_clock_expires_flashes_and_polls_for_changes() {
    let mut app = loaded();
    app.update(ch('s'));
    assert!(app.flash.is_some());
    match app.update(Action::Tick(now() + TimeDelta::seconds(3))) {
        Some(Effect::Refresh {
            org,
            key_row,
            force,
        }) => {
            assert_eq!(org, ORG);
            assert_eq!(key_row, Some(4));
            assert!(!force, "ticks only reload when the database changed");
        }
        other => panic!("expected Refresh, got {other:?}"),
    }
    assert!(app.flash.is_some(), "still showing after 3 s");
    app.update(Action::Tick(now() + TimeDelta::seconds(6)));
    assert!(app.flash.is_none(), "gone after 6 s");
    assert_eq!(app.now, now() + TimeDelta::seconds(6));
}

#[test]
fn time_passing_expires_keys() {
    let mut app = loaded();
    let ci = &app.keys[0];
    let expires = ci.expires_at.unwrap();
    assert_eq!(
        ci.status(app.now),
        plexmcp::domain::KeyStatus::Active,
        "fixture"
    );
    app.update(Action::Tick(expires + TimeDelta::seconds(1)));
    assert_eq!(
        app.keys[0].status(app.now),
        plexmcp::domain::KeyStatus::Expired
    );
}

/// Issue 12 (k9s habits): an active key expiring within 7 days counts as
/// expiring soon; expired, revoked and later keys do not, and time moves it.
#[test]
fn keys_expiring_within_a_week_are_counted() {
    use plexmcp::tui::app::expiring_soon;
    let mut keys = keys();
    keys[0].expires_at = Some(now() + TimeDelta::days(3)); // ci-deploy
    keys[1].expires_at = Some(now() + TimeDelta::days(7) + TimeDelta::hours(1)); // laptop
    keys[3].expires_at = Some(now() + TimeDelta::days(2)); // intern, revoked
    let mut app = loaded_with(snapshot_with(keys, mcps()), 10);
    let soon: Vec<&str> = app
        .keys
        .iter()
        .filter(|k| expiring_soon(k, app.now, app.expiring_within))
        .map(|k| k.name.as_str())
        .collect();
    assert_eq!(
        soon,
        ["ci-deploy"],
        "old-staging has expired, intern is revoked"
    );
    assert_eq!(app.expiring_count(), 1);
    // The count is the org's, whatever the filter shows.
    app.update(ch('/'));
    type_text_or_detail(&mut app, "laptop");
    assert_eq!(app.expiring_count(), 1);
    // Two hours on, laptop is inside the week too.
    app.update(Action::Tick(now() + TimeDelta::hours(2)));
    assert_eq!(app.expiring_count(), 2);
    // Once ci-deploy's time is up it is expired, not expiring.
    app.update(Action::Tick(now() + TimeDelta::days(3)));
    assert_eq!(app.expiring_count(), 1);
}

/// `console.expiring_within` sets the window: with a day, only keys
/// expiring within a day count; with 30 days, the later one counts too.
#[test]
fn the_expiring_window_is_the_configured_one() {
    let mut keys = keys();
    keys[0].expires_at = Some(now() + TimeDelta::hours(20)); // ci-deploy
    keys[1].expires_at = Some(now() + TimeDelta::days(20)); // laptop
    let mut app = loaded_with(snapshot_with(keys, mcps()), 10);
    assert_eq!(app.expiring_count(), 1, "the default week");
    app.expiring_within = TimeDelta::hours(12);
    assert_eq!(app.expiring_count(), 0);
    app.expiring_within = TimeDelta::days(30);
    assert_eq!(app.expiring_count(), 2);
    assert!(app.expiring_soon(&app.keys[1]));
}

#[test]
fn server_status_updates_are_kept() {
    let mut app = loaded();
    let failed = ServerStatus::Failed("127.0.0.1:8470 is in use".into());
    assert!(app.update(Action::Server(failed.clone())).is_none());
    assert_eq!(app.server, failed);
}

#[test]
fn a_failed_load_is_flashed() {
    let mut app = loaded();
    app.update(Action::Failed(
        Operation::Load,
        AdminError::Internal("disk I/O error".into()),
    ));
    assert!(app.flash.as_ref().is_some_and(|f| f.error));
    assert_normal(&app);
}

// ------------------------------------------------------------------ mouse

#[test]
fn clicks_select_rows_and_focus_panes() {
    let mut app = loaded_with(snapshot_with(many_keys(20), Vec::new()), 6);
    // The list is at y=1: border at 1, header at 2, first row at 3.
    assert_eq!(
        detail_row(app.update(Action::Click { column: 5, row: 5 })),
        18
    );
    assert_eq!(app.selected, 2);
    // The same row again: nothing to load.
    assert!(app.update(Action::Click { column: 9, row: 5 }).is_none());
    // Border and header do nothing.
    assert!(app.update(Action::Click { column: 5, row: 1 }).is_none());
    assert!(app.update(Action::Click { column: 5, row: 2 }).is_none());
    assert_eq!(app.selected, 2);
    // Clicking the detail pane focuses it; the list takes focus back.
    assert!(
        app.update(Action::Click {
            column: 80,
            row: 10
        })
        .is_none()
    );
    assert_eq!(app.focus, Focus::Detail);
    app.update(Action::Click { column: 5, row: 3 });
    assert_eq!(app.focus, Focus::List);
    assert_eq!(app.selected, 0);
    // Rows count from the scroll offset.
    app.update(ch('G'));
    assert_eq!(app.offset, 14);
    app.update(Action::Click { column: 5, row: 3 });
    assert_eq!(app.selected, 14);
    // A click outside both panes (status bar) does nothing.
    assert!(app.update(Action::Click { column: 5, row: 0 }).is_none());
    assert_eq!(app.selected, 14);
}

#[test]
fn clicks_below_the_last_row_select_nothing() {
    let mut app = loaded_with(snapshot(), 10);
    assert!(app.update(Action::Click { column: 5, row: 10 }).is_none());
    assert_eq!(app.selected, 0);
}

/// Issue 12: a help taller than the screen scrolls with the list keys,
/// stops with its last line at the bottom, and any other key still closes.
#[test]
fn help_scrolls_on_a_short_screen() {
    let mut app = loaded();
    // The smallest screen the console draws on; 22 rows inside the border.
    app.update(Action::Resize {
        width: 80,
        height: 24,
    });
    app.update(ch('?'));
    app.update(ch('j'));
    app.update(ch('j'));
    assert!(matches!(app.mode, Mode::Help(2)), "{:?}", app.mode);
    app.update(ch('k'));
    assert!(matches!(app.mode, Mode::Help(1)));
    app.update(ch('G'));
    let lines = plexmcp::tui::layout::HELP_LINES;
    let last_top = u16::try_from(lines - 22).unwrap();
    assert!(
        matches!(app.mode, Mode::Help(top) if top == last_top),
        "{:?}",
        app.mode
    );
    app.update(ch('j'));
    assert!(
        matches!(app.mode, Mode::Help(top) if top == last_top),
        "stops at the end"
    );
    app.update(ch('x'));
    assert_normal(&app);
}

#[test]
fn clicks_are_ignored_while_a_dialog_is_open() {
    let mut app = loaded();
    app.update(ch('?'));
    assert!(app.update(Action::Click { column: 5, row: 4 }).is_none());
    assert_eq!(app.selected, 0);
    assert!(matches!(app.mode, Mode::Help(_)));
}

/// Item 9: the wheel scrolls the pane under the pointer, whichever has
/// the focus, and leaves the focus where it was.
#[test]
fn the_wheel_scrolls_the_pane_under_the_pointer() {
    let mut app = loaded_with(snapshot_with(many_keys(10), Vec::new()), 5);
    assert_eq!(detail_row(app.update(wheel(1))), 7);
    assert_eq!(app.selected, 3);
    app.update(wheel(5));
    assert_eq!(app.selected, 9, "clamped to the last key");
    app.update(wheel(-1));
    assert_eq!(app.selected, 6);
    app.update(wheel(-10));
    assert_eq!(app.selected, 0);
    // Details longer than their pane, so they can scroll.
    app.update(Action::DetailLoaded(Box::new(
        plexmcp::tui::action::Detail {
            key_row: 10,
            ..detail()
        },
    )));
    app.update(Action::Layout {
        list: ratatui::layout::Rect::new(0, 1, 70, 8),
        detail: ratatui::layout::Rect::new(70, 1, 50, 12),
    });
    let over_detail = |notches| wheel_at(notches, 90, 6);
    // Over the details with the list focused: the details scroll.
    assert_eq!(app.focus, Focus::List);
    assert!(app.update(over_detail(2)).is_none());
    assert_eq!(app.detail_scroll, 6);
    assert_eq!(app.selected, 0);
    assert_eq!(app.focus, Focus::List, "focus stays");
    app.update(over_detail(-5));
    assert_eq!(app.detail_scroll, 0);
    // Over the list with the details focused: the list moves.
    app.update(press(KeyCode::Tab));
    assert_eq!(detail_row(app.update(wheel(1))), 7);
    assert_eq!(app.focus, Focus::Detail, "focus stays");
    // Over neither (the status bar, the footer): nothing.
    assert!(app.update(wheel_at(1, 5, 0)).is_none());
    assert!(app.update(wheel_at(1, 119, 39)).is_none());
    assert_eq!(app.selected, 3);
    // Not while a dialog is open.
    app.update(ch('?'));
    assert!(app.update(over_detail(1)).is_none());
    assert_eq!(app.detail_scroll, 0);
}

// ------------------------------------------------------ look-alike names

#[test]
fn the_key_form_refuses_invisible_and_direction_changing_characters() {
    for (c, code) in [
        ('\u{202E}', "U+202E"),
        ('\u{200B}', "U+200B"),
        ('\u{FEFF}', "U+FEFF"),
        ('\u{2066}', "U+2066"),
        ('\u{2028}', "U+2028"),
    ] {
        let mut app = loaded();
        app.update(ch('n'));
        type_text(&mut app, &format!("evil{c}gnp"));
        app.update(press(KeyCode::Tab));
        type_text(&mut app, &format!("de{c}sc"));
        assert!(app.update(press(KeyCode::Enter)).is_none(), "{code}");
        let form = key_form(&app);
        let name_error = form.error_for(Field::Name).unwrap_or_default();
        assert!(name_error.contains(code), "{code}: {name_error:?}");
        let description_error = form.error_for(Field::Description).unwrap_or_default();
        assert!(
            description_error.contains(code),
            "{code}: {description_error:?}"
        );
        assert_eq!(form.focus, KeyField::Name);
    }
}

// ------------------------------------------- issue 12: console defects

fn mcps_position(app: &App) -> plexmcp::tui::scroll::ListPosition {
    match &app.mode {
        Mode::Mcps(at) => *at,
        other => panic!("expected the MCPs view, got {other:?}"),
    }
}

/// Item 2: the MCPs view moves like every list, scrolls, and `d` after
/// `G` removes the MCP that is selected (it asked for the first one).
#[test]
fn the_mcps_view_has_every_list_key_and_scrolls_with_its_selection() {
    let mut app = sized(
        loaded_with(snapshot_with(keys(), many_mcps(33)), 10),
        80,
        24,
    );
    app.update(ch('m'));
    let rows = plexmcp::tui::layout::mcps_rows(ratatui::layout::Rect::new(0, 0, 80, 24));
    assert_eq!(
        rows, 14,
        "20 rows inside, less the header and the selected MCP's three lines"
    );
    app.update(ch('G'));
    let at = mcps_position(&app);
    assert_eq!(at.selected, 32);
    assert_eq!(at.offset, 33 - rows, "the last MCP is on screen");
    app.update(ch('d'));
    match &app.mode {
        Mode::Confirm(Pending::RemoveMcp { slug }) => assert_eq!(slug, "mcp-33"),
        other => panic!("expected the remove confirmation, got {other:?}"),
    }
    // Cancelling comes back to the same place.
    app.update(ch('n'));
    assert_eq!(mcps_position(&app).selected, 32);
    app.update(ch('g'));
    assert_eq!(
        mcps_position(&app),
        plexmcp::tui::scroll::ListPosition::default()
    );
    app.update(press(KeyCode::PageDown));
    let at = mcps_position(&app);
    assert_eq!((at.selected, at.offset), (rows, 1));
    app.update(press(KeyCode::End));
    app.update(press(KeyCode::PageUp));
    assert_eq!(mcps_position(&app).selected, 32 - rows);
    app.update(ctrl('u'));
    app.update(press(KeyCode::Home));
    assert_eq!(mcps_position(&app).selected, 0);
    app.update(ctrl('d'));
    assert_eq!(mcps_position(&app).selected, rows);
    // The wheel moves the list in front, not the key list behind it.
    let key_before = app.selected;
    app.update(wheel(1));
    assert_eq!(mcps_position(&app).selected, rows + 3);
    app.update(wheel(-100));
    assert_eq!(mcps_position(&app).selected, 0);
    assert_eq!(app.selected, key_before);
    app.update(press(KeyCode::Down));
    app.update(press(KeyCode::Up));
    app.update(ch('j'));
    assert_eq!(mcps_position(&app).selected, 1);
}

/// Item 2: the organization picker is a list like the others.
#[test]
fn the_org_picker_has_every_list_key() {
    let mut app = loaded();
    app.update(ch('o'));
    app.update(ch('G'));
    assert!(matches!(app.mode, Mode::Orgs(at) if at.selected == 2));
    app.update(ch('g'));
    assert!(matches!(app.mode, Mode::Orgs(at) if at.selected == 0));
    app.update(wheel(1));
    assert!(matches!(app.mode, Mode::Orgs(at) if at.selected == 2));
}

/// Item 1: the checklist's cursor moves with every list key and the wheel.
#[test]
fn the_mcp_checklist_moves_like_every_list() {
    let mut app = loaded_with(snapshot_with(keys(), many_mcps(33)), 10);
    app.update(ch('n'));
    for _ in 0..4 {
        app.update(press(KeyCode::Tab));
    }
    app.update(press(KeyCode::Right)); // specific MCPs
    app.update(press(KeyCode::Tab));
    assert_eq!(key_form(&app).focus, KeyField::McpList);
    app.update(ch('G'));
    assert_eq!(key_form(&app).mcp_cursor, 32);
    app.update(ch(' '));
    app.update(ch('g'));
    assert_eq!(key_form(&app).mcp_cursor, 0);
    app.update(press(KeyCode::PageDown));
    assert_eq!(key_form(&app).mcp_cursor, 8);
    app.update(wheel(-1));
    assert_eq!(key_form(&app).mcp_cursor, 5);
    assert_eq!(key_form(&app).access(), McpAccess::only_mcps(["mcp-33"]));
}

/// Item 3: the details scroll to their last line and no further, so `k`
/// and PgUp move the text at once (they had a blank pane to climb out of).
#[test]
fn the_details_scroll_stops_at_their_last_line() {
    let mut app = loaded();
    app.update(Action::Layout {
        list: ratatui::layout::Rect::new(0, 1, 70, 13),
        detail: ratatui::layout::Rect::new(70, 1, 50, 12),
    });
    app.update(press(KeyCode::Tab));
    let lines = plexmcp::tui::panes::detail::line_count(&app);
    assert!(lines > 20, "the fixture's details are long: {lines}");
    let last_top = u16::try_from(lines - 10).unwrap();
    for _ in 0..20 {
        app.update(press(KeyCode::PageDown));
    }
    assert_eq!(app.detail_scroll, last_top);
    app.update(ch('j'));
    app.update(wheel_at(5, 80, 5));
    assert_eq!(app.detail_scroll, last_top);
    app.update(ch('k'));
    assert_eq!(app.detail_scroll, last_top - 1, "k moves at once");
    app.update(ch('G'));
    assert_eq!(app.detail_scroll, last_top);
    app.update(press(KeyCode::PageUp));
    assert_eq!(app.detail_scroll, last_top - 10);
    // A taller pane shows more, so it scrolls less.
    app.update(layout(10));
    assert!(app.detail_scroll <= u16::try_from(lines.saturating_sub(28)).unwrap());
    // Details that have not arrived do not scroll at all.
    let mut app = loaded_with(snapshot(), 10);
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::PageDown));
    assert_eq!(app.detail_scroll, 0);
}

/// Item 4: after your own revoke or edit the selected key's details (and
/// so its Activity) are fetched again, without moving the selection.
#[test]
fn a_revoke_or_an_edit_reloads_the_selected_keys_activity() {
    let mut app = loaded();
    app.update(ch('r'));
    assert!(matches!(
        app.update(ch('y')),
        Some(Effect::RevokeKey { .. })
    ));
    let effect = app.update(Action::Done(Operation::RevokeKey, "Revoked".into()));
    assert_eq!(detail_row(effect), 4);

    app.update(ch('j'));
    app.update(ch('e'));
    type_text(&mut app, "-2");
    assert!(matches!(
        app.update(press(KeyCode::Enter)),
        Some(Effect::EditKey { .. })
    ));
    let effect = app.update(Action::Done(Operation::EditKey, "Updated".into()));
    assert_eq!(detail_row(effect), 3);
    assert_normal(&app);
}

/// Item 7: once a submit has shown errors, each field's error is about
/// what the field holds now.
#[test]
fn key_form_errors_follow_the_fields_current_value() {
    let mut app = loaded();
    app.update(ch('n'));
    app.update(press(KeyCode::Enter));
    assert!(
        key_form(&app)
            .error_for(Field::Name)
            .is_some_and(|e| e.contains("empty"))
    );
    type_text(&mut app, &"x".repeat(101));
    let error = key_form(&app).error_for(Field::Name).unwrap_or_default();
    assert!(error.contains("101 characters"), "{error:?}");
    app.update(press(KeyCode::Backspace));
    assert_eq!(key_form(&app).error_for(Field::Name), None);
    // Moving between fields changes no value and no error.
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::BackTab));
    assert_eq!(key_form(&app).error_for(Field::Name), None);
}

#[test]
fn mcp_form_errors_follow_the_fields_current_value() {
    let mut app = loaded();
    app.update(ch('m'));
    app.update(ch('a'));
    type_text(&mut app, "Bad Id");
    app.update(press(KeyCode::Enter));
    let form = |app: &App| match &app.mode {
        Mode::McpForm(form) => form.clone(),
        other => panic!("expected McpForm, got {other:?}"),
    };
    assert!(form(&app).error_for(Field::Slug).is_some());
    assert!(form(&app).error_for(Field::Command).is_some());
    // The id corrected: its error goes.
    for _ in 0.."Bad Id".len() {
        app.update(press(KeyCode::Backspace));
    }
    type_text(&mut app, "web");
    assert_eq!(form(&app).error_for(Field::Slug), None);
    assert!(form(&app).error_for(Field::Command).is_some(), "untouched");
    // Another transport: the target's error is about a URL now.
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Right));
    let now = form(&app);
    assert_eq!(now.error_for(Field::Command), None, "{:?}", now.errors);
    app.update(press(KeyCode::Tab));
    type_text(&mut app, "http://127.0.0.1:9000/mcp");
    let now = form(&app);
    assert_eq!(now.error_for(Field::Url), None, "{:?}", now.errors);
    assert_eq!(now.error_for(Field::Command), None);
    assert!(matches!(
        app.update(press(KeyCode::Enter)),
        Some(Effect::AddMcp { .. })
    ));
}

/// Item 11: the custom-date field takes what its hint says, YYYY-MM-DD.
#[test]
fn the_custom_date_field_takes_only_a_date() {
    let mut app = loaded();
    app.update(ch('n'));
    type_text(&mut app, "ci");
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Tab));
    app.update(press(KeyCode::Left));
    app.update(press(KeyCode::Left)); // custom date
    app.update(press(KeyCode::Tab));
    for spec in ["30d", "1y", "never", "2027-01-31T00:00:00Z", "31/01/2027"] {
        type_text(&mut app, spec);
        assert!(app.update(press(KeyCode::Enter)).is_none(), "{spec}");
        let error = key_form(&app).error_for(Field::Expiry).unwrap_or_default();
        assert!(error.contains("YYYY-MM-DD"), "{spec}: {error:?}");
        for _ in 0..spec.len() {
            app.update(press(KeyCode::Backspace));
        }
    }
    type_text(&mut app, "2027-01-31");
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::CreateKey { request, .. }) => assert_eq!(request.expires, "2027-01-31"),
        other => panic!("expected CreateKey, got {other:?}"),
    }
}

/// Item 10: sorting by name reads numbers as numbers.
#[test]
fn name_sort_is_natural() {
    let names = ["key-14", "key-140", "Key-3", "key-141", "key-2", "key-1"];
    let stored = names
        .iter()
        .enumerate()
        .map(|(i, name)| key(i64::try_from(i + 1).unwrap(), &format!("N{i:07}"), name))
        .collect();
    let mut app = loaded_with(snapshot_with(stored, Vec::new()), 10);
    app.update(ch('s'));
    assert_eq!(app.sort, SortKey::Name);
    assert_eq!(
        names_in_view(&app),
        ["key-1", "key-2", "Key-3", "key-14", "key-140", "key-141"]
    );
}

/// Item 13: Esc in the list clears an active filter (and does nothing
/// without one).
#[test]
fn esc_in_the_list_clears_the_filter() {
    let mut app = loaded();
    assert!(app.update(press(KeyCode::Esc)).is_none());
    app.update(ch('/'));
    type_text_or_detail(&mut app, "lap");
    app.update(press(KeyCode::Enter));
    assert_eq!(names_in_view(&app), ["laptop"]);
    assert_normal(&app);
    app.update(press(KeyCode::Esc));
    assert_eq!(app.filter, "");
    assert_eq!(app.view.len(), 4);
    assert_eq!(selected_name(&app), "laptop", "the selection stays");
    assert_normal(&app);
}

/// Item 13: saving an edit that changes nothing says so as it closes.
#[test]
fn saving_an_unchanged_edit_says_so() {
    let mut app = loaded();
    app.update(ch('e'));
    assert!(app.update(press(KeyCode::Enter)).is_none());
    assert_normal(&app);
    let flash = app.flash.as_ref().expect("a message");
    assert!(flash.text.contains("No changes"), "{flash:?}");
    assert!(!flash.error);
}

/// Item 13: switching organization says where you are now.
#[test]
fn switching_organization_says_so() {
    let mut app = loaded();
    app.update(ch('o'));
    app.update(ch('j'));
    app.update(press(KeyCode::Enter));
    assert_eq!(app.org, "beta-labs");
    let flash = app.flash.as_ref().expect("a message");
    assert_eq!(flash.text, "Switched to organization 'beta-labs'");
}

#[test]
fn a_moved_rate_updates_only_the_selected_keys_detail() {
    use plexmcp::server::rate_limits::RateSnapshot;
    let mut app = loaded();
    app.update(Action::DetailLoaded(Box::new(detail())));
    let rate = RateSnapshot {
        last_minute: 14,
        hits: 3,
    };
    // For another key: the shown detail is not touched.
    app.update(Action::RateMoved {
        key_row: 99,
        rate: Some(rate),
    });
    assert_eq!(app.selected_detail().and_then(|d| d.rate), None);
    assert!(
        app.update(Action::RateMoved {
            key_row: 4,
            rate: Some(rate),
        })
        .is_none(),
        "nothing to load"
    );
    assert_eq!(app.selected_detail().and_then(|d| d.rate), Some(rate));
}

// ---------------------------------------------------------- command palette

#[test]
fn every_palette_command_names_the_key_that_does_the_same() {
    use plexmcp::tui::action::intent_for;
    use plexmcp::tui::palette::COMMANDS;
    for command in COMMANDS {
        let code = match command.key {
            "Esc" => KeyCode::Esc,
            one if one.chars().count() == 1 => KeyCode::Char(one.chars().next().unwrap()),
            other => panic!("{}: unexpected key label {other:?}", command.name),
        };
        let event = KeyEvent::new(code, KeyModifiers::NONE);
        assert_eq!(
            intent_for(event),
            Some(command.intent),
            "{} says {}",
            command.name,
            command.key
        );
    }
}

#[test]
fn the_palette_runs_a_command_by_name() {
    let mut app = loaded();
    app.update(ch(':'));
    assert!(matches!(app.mode, Mode::Palette(_)));
    type_text(&mut app, "aud");
    let effect = app.update(press(KeyCode::Enter));
    assert!(matches!(app.mode, Mode::Audit(_)), "{:?}", app.mode);
    assert!(
        matches!(effect, Some(Effect::LoadAudit { .. })),
        "{effect:?}"
    );
}

#[test]
fn the_palette_moves_between_matches_and_closes_with_esc() {
    let mut app = loaded();
    app.update(ch(':'));
    type_text(&mut app, "sort");
    app.update(press(KeyCode::Down));
    // "sort", then "reverse-sort": the second one runs.
    app.update(press(KeyCode::Enter));
    assert_normal(&app);
    assert!(app.sort_reversed);

    app.update(ch(':'));
    type_text(&mut app, "rev");
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert_normal(&app);
    assert!(app.sort_reversed, "Esc ran nothing");
}

#[test]
fn the_palette_switches_org_and_sets_a_filter_with_an_argument() {
    let mut app = loaded();
    app.update(ch(':'));
    type_text(&mut app, "filter ci-dep");
    app.update(press(KeyCode::Enter));
    assert_normal(&app);
    assert_eq!(app.filter, "ci-dep");
    assert_eq!(app.view.len(), 1);

    app.update(ch(':'));
    type_text(&mut app, "org nowhere");
    assert!(app.update(press(KeyCode::Enter)).is_none());
    assert!(matches!(app.mode, Mode::Palette(_)), "stays open to fix");
    let flash = app.flash.as_ref().expect("a message");
    assert_eq!(flash.text, "No organization 'nowhere' (o lists them)");
    assert!(flash.error);

    app.update(press(KeyCode::Esc));
    app.update(ch(':'));
    type_text(&mut app, "org beta-labs");
    match app.update(press(KeyCode::Enter)) {
        Some(Effect::Refresh { org, force, .. }) => {
            assert_eq!(org, "beta-labs");
            assert!(force);
        }
        other => panic!("expected Refresh, got {other:?}"),
    }
    assert_eq!(app.org, "beta-labs");
}

#[test]
fn the_palette_says_when_nothing_matches() {
    let mut app = loaded();
    app.update(ch(':'));
    type_text(&mut app, "zzz");
    assert!(app.update(press(KeyCode::Enter)).is_none());
    assert!(matches!(app.mode, Mode::Palette(_)));
    assert_eq!(
        app.flash.as_ref().map(|f| f.text.as_str()),
        Some("No command matches 'zzz'")
    );
}

// ---------------------------------------------------------------- tool access

fn tools_loaded(lists: Vec<(&str, ToolList)>) -> Action {
    Action::ToolsLoaded {
        org: ORG.into(),
        lists: lists.into_iter().map(|(s, l)| (s.to_owned(), l)).collect(),
    }
}

fn listed(names: &[&str]) -> ToolList {
    ToolList::listed(names.iter().map(|s| s.to_string()).collect())
}

fn asked_for(effect: Option<Effect>) -> Vec<String> {
    match effect {
        Some(Effect::LoadTools { org, slugs }) => {
            assert_eq!(org, ORG);
            slugs
        }
        other => panic!("expected LoadTools, got {other:?}"),
    }
}

/// The edit form of "laptop" (github only), focus on its MCP checklist at github.
fn laptop_checklist() -> App {
    let mut app = loaded_with(snapshot(), 10);
    app.update(ch('j'));
    // Editing asks for the tools of the key's MCPs, for the gains/loses lines.
    assert_eq!(asked_for(app.update(ch('e'))), ["github"]);
    app.update(tools_loaded(vec![(
        "github",
        listed(&["get_issue", "search_issues", "create_issue"]),
    )]));
    for _ in 0..4 {
        app.update(press(KeyCode::Tab));
    }
    assert_eq!(key_form(&app).focus, KeyField::McpList);
    app.update(press(KeyCode::Down));
    app
}

#[test]
fn the_tool_picker_limits_an_mcp_to_the_ticked_tools_and_the_edit_says_what_it_changes() {
    let mut app = laptop_checklist();
    // `t` opens github's picker and asks its upstream again.
    assert_eq!(asked_for(app.update(ch('t'))), ["github"]);
    let picker = key_form(&app).picker.as_ref().expect("picker open");
    assert_eq!(picker.slug, "github");
    assert!(picker.all);
    let screen = screen_text(&mut app, 120, 40);
    assert!(screen.contains("Tools of github"), "{screen}");
    assert!(screen.contains("the upstream lists 3 tools"), "{screen}");
    assert!(screen.contains("[x] All tools"), "{screen}");

    // Tick get_issue: only the ticked ones from now on.
    app.update(press(KeyCode::Down));
    app.update(ch(' '));
    let picker = key_form(&app).picker.as_ref().unwrap();
    assert!(!picker.all);
    assert_eq!(picker.chosen, ["get_issue"]);
    assert!(app.update(press(KeyCode::Enter)).is_none());
    let form = key_form(&app);
    assert!(form.picker.is_none());
    assert_eq!(
        form.tool_limits.get("github").map(Vec::as_slice),
        Some(&["get_issue".to_string()][..])
    );
    let screen = screen_text(&mut app, 120, 40);
    assert!(screen.contains("[x] github  only get_issue"), "{screen}");
    assert!(
        screen.contains("loses: github:search_issues, github:create_issue"),
        "{screen}"
    );

    match app.update(press(KeyCode::Enter)) {
        Some(Effect::EditKey { request, .. }) => assert_eq!(
            request.access,
            Some(McpAccess::only(vec![McpGrant {
                slug: "github".into(),
                tools: ToolAccess::only(vec!["get_issue".into()]),
            }]))
        ),
        other => panic!("expected EditKey, got {other:?}"),
    }
}

#[test]
fn an_unreachable_upstream_says_so_and_tool_names_can_be_typed() {
    let mut app = laptop_checklist();
    app.update(ch('t'));
    app.update(tools_loaded(vec![(
        "github",
        ToolList::Unreachable("cannot reach the upstream".into()),
    )]));
    let screen = screen_text(&mut app, 120, 40);
    assert!(
        screen.contains("cannot reach the upstream: type tool names below"),
        "{screen}"
    );
    // No names listed: the add field is the row after "All tools".
    app.update(press(KeyCode::Down));
    type_text(&mut app, "a b");
    app.update(press(KeyCode::Enter));
    let picker = key_form(&app).picker.as_ref().unwrap();
    let error = picker.error.as_deref().unwrap_or_default();
    assert!(error.contains("no spaces or commas"), "{error}");
    assert!(picker.chosen.is_empty());
    for _ in 0..3 {
        app.update(press(KeyCode::Backspace));
    }
    type_text(&mut app, "search_issues");
    app.update(press(KeyCode::Enter));
    assert_eq!(
        key_form(&app).picker.as_ref().unwrap().chosen,
        ["search_issues"]
    );
    let screen = screen_text(&mut app, 120, 40);
    assert!(
        screen.contains("[x] search_issues  (not listed now)"),
        "{screen}"
    );
    // Enter on the empty field closes the picker with the typed tool.
    app.update(press(KeyCode::Enter));
    let form = key_form(&app);
    assert!(form.picker.is_none());
    assert_eq!(
        form.tools_of("github"),
        ToolAccess::only(vec!["search_issues".into()])
    );
    // Nothing to count against: the edit says the lists are not known.
    let screen = screen_text(&mut app, 120, 40);
    assert!(
        screen.contains("tool lists not known for: github"),
        "{screen}"
    );
}

#[test]
fn ticking_an_mcp_asks_for_its_tools_once() {
    let mut app = laptop_checklist();
    app.update(press(KeyCode::Up)); // everything, not ticked
    assert_eq!(asked_for(app.update(ch(' '))), ["everything"]);
    assert!(app.update(ch(' ')).is_none(), "unticked: nothing to ask");
    assert!(app.update(ch(' ')).is_none(), "asked already");
    app.update(tools_loaded(vec![("everything", listed(&["echo"]))]));
    let screen = screen_text(&mut app, 120, 40);
    assert!(screen.contains("gains: everything:echo"), "{screen}");
}

#[test]
fn the_details_show_what_the_key_can_call_now() {
    let mut app = loaded_with(snapshot(), 10);
    // ci-deploy may use every MCP: both are asked for with its details.
    assert_eq!(
        asked_for(app.update(Action::DetailLoaded(Box::new(detail())))),
        ["everything", "github"]
    );
    let screen = screen_text(&mut app, 160, 60);
    assert!(screen.contains("Can call now"), "{screen}");
    assert!(
        screen.contains("everything  all tools granted · asking the upstream"),
        "{screen}"
    );
    app.update(tools_loaded(vec![
        ("everything", listed(&["echo", "get-sum"])),
        (
            "github",
            ToolList::Unreachable("cannot reach the upstream".into()),
        ),
    ]));
    let screen = screen_text(&mut app, 160, 60);
    assert!(
        screen.contains("everything  all 2 tools: echo, get-sum"),
        "{screen}"
    );
    assert!(
        screen.contains("github      all tools granted · cannot reach the upstream"),
        "{screen}"
    );
    // Within the minute, the same details do not ask again.
    assert!(
        app.update(Action::DetailLoaded(Box::new(detail())))
            .is_none()
    );
}

/// Issue 12: the MCPs view shows each upstream's health as the console's
/// server sees it; an MCP nobody has called has none yet.
#[test]
fn upstream_health_is_kept_by_mcp() {
    let mut app = loaded();
    let github = app
        .mcps
        .iter()
        .find(|m| m.slug == "github")
        .unwrap()
        .clone();
    let everything = app
        .mcps
        .iter()
        .find(|m| m.slug == "everything")
        .unwrap()
        .clone();
    let health = plexmcp::upstream::UpstreamHealth {
        name: plexmcp::server::upstream_name(&github.slug, github.row_id),
        state: plexmcp::upstream::Health::Failing("refused".into()),
        restarts: 3,
    };
    assert!(
        app.update(Action::UpstreamHealth(vec![health.clone()]))
            .is_none()
    );
    assert_eq!(app.health_of(&github), Some(&health));
    assert_eq!(app.health_of(&everything), None);
}

/// Issue 12: `u` opens the selected key's usage chart; any key closes it;
/// with no key selected it says why instead.
#[test]
fn u_opens_the_usage_chart_of_the_selected_key() {
    let mut app = loaded();
    assert!(app.update(ch('u')).is_none());
    assert!(matches!(app.mode, Mode::Chart));
    assert!(app.update(ch('x')).is_none());
    assert_normal(&app);

    let mut empty = loaded_with(snapshot_with(Vec::new(), Vec::new()), 10);
    empty.update(ch('u'));
    assert_normal(&empty);
    assert!(
        empty
            .flash
            .as_ref()
            .is_some_and(|f| f.text.contains("No key selected")),
        "{:?}",
        empty.flash
    );
}
