//! The console's audit view (`a`): state driven by actions alone, and its
//! screens as insta snapshots at both sizes, from the fixed data of
//! `tui_support` plus a handful of events about its keys.

mod tui_support;

use plexmcp::domain::AuditEvent;
use plexmcp::store::AuditRecord;
use plexmcp::tui::action::Action;
use plexmcp::tui::app::{App, Effect, Mode};
use ratatui::crossterm::event::KeyCode;
use tui_support::*;

fn event(
    id: i64,
    at: plexmcp::domain::Timestamp,
    addr: Option<&str>,
    action: &str,
    kind: &str,
    target: &str,
    detail: Option<&str>,
) -> AuditRecord {
    AuditRecord {
        id,
        org: Some(ORG.into()),
        event: AuditEvent {
            at,
            actor: "alice".into(),
            actor_addr: addr.map(str::to_owned),
            action: action.into(),
            target_kind: kind.into(),
            target_id: target.into(),
            detail: detail.map(str::to_owned),
        },
        prev_hash: Some(format!("{:064x}", id - 1)),
        hash: Some(format!("{id:x}{}", "ab".repeat(31))),
    }
}

/// Newest first, as the store lists them: events about ci-deploy
/// (Ab3dE5fG), laptop (Zx9Yw8Vu), an MCP and the plan.
fn events() -> Vec<AuditRecord> {
    vec![
        event(
            5,
            at(2026, 3, 14, 16, 5),
            Some("203.0.113.9"),
            "key.edited",
            "key",
            "Ab3dE5fG",
            Some("name: \"ci\" -> \"ci-deploy\"; access: all -> github"),
        ),
        event(
            4,
            at(2026, 3, 12, 9, 0),
            None,
            "org.plan_changed",
            "org",
            ORG,
            Some("free -> pro (3 active keys)"),
        ),
        event(
            3,
            at(2026, 3, 10, 8, 30),
            Some("198.51.100.7"),
            "key.created",
            "key",
            "Ab3dE5fG",
            Some("access: all"),
        ),
        event(
            2,
            at(2026, 3, 5, 17, 45),
            None,
            "key.created",
            "key",
            "Zx9Yw8Vu",
            Some("access: github"),
        ),
        event(
            1,
            at(2026, 3, 1, 9, 0),
            None,
            "mcp.added",
            "mcp",
            "github",
            Some("http https://mcp.example/mcp?token=***"),
        ),
    ]
}

/// The loaded app with the audit view open and its events arrived.
fn audit_app() -> App {
    let mut app = loaded();
    let effect = app.update(ch('a'));
    assert!(
        matches!(&effect, Some(Effect::LoadAudit { org }) if org == ORG),
        "{effect:?}"
    );
    app.update(Action::AuditLoaded {
        org: ORG.into(),
        events: events(),
    });
    app
}

fn shown_ids(app: &App) -> Vec<i64> {
    match &app.mode {
        Mode::Audit(view) => view.visible(&app.keys).iter().map(|e| e.id).collect(),
        other => panic!("expected the audit view, got {other:?}"),
    }
}

fn selected_id(app: &App) -> Option<i64> {
    match &app.mode {
        Mode::Audit(view) => view.selected_event(&app.keys).map(|e| e.id),
        other => panic!("expected the audit view, got {other:?}"),
    }
}

#[test]
fn a_opens_the_audit_view_and_esc_leaves_it() {
    let mut app = loaded();
    assert!(matches!(
        app.update(ch('a')),
        Some(Effect::LoadAudit { .. })
    ));
    match &app.mode {
        Mode::Audit(view) => assert!(view.events.is_none(), "loading until events arrive"),
        other => panic!("{other:?}"),
    }
    app.update(Action::AuditLoaded {
        org: ORG.into(),
        events: events(),
    });
    assert_eq!(shown_ids(&app), [5, 4, 3, 2, 1]);
    assert!(app.update(press(KeyCode::Esc)).is_none());
    assert!(matches!(app.mode, Mode::Normal));
}

#[test]
fn events_for_another_org_are_ignored() {
    let mut app = loaded();
    app.update(ch('a'));
    app.update(Action::AuditLoaded {
        org: "other".into(),
        events: events(),
    });
    match &app.mode {
        Mode::Audit(view) => assert!(view.events.is_none()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn moving_stays_within_the_events() {
    let mut app = audit_app();
    assert_eq!(selected_id(&app), Some(5));
    app.update(ch('j'));
    app.update(press(KeyCode::Down));
    assert_eq!(selected_id(&app), Some(3));
    app.update(ch('G'));
    assert_eq!(selected_id(&app), Some(1));
    app.update(ch('j'));
    assert_eq!(selected_id(&app), Some(1), "clamped at the end");
    app.update(ch('g'));
    assert_eq!(selected_id(&app), Some(5));
    app.update(ch('k'));
    assert_eq!(selected_id(&app), Some(5), "clamped at the start");
}

#[test]
fn slash_filters_by_key_name_or_prefix() {
    let mut app = audit_app();
    app.update(ch('/'));
    type_text(&mut app, "lap");
    assert_eq!(shown_ids(&app), [2], "laptop's events only");
    app.update(press(KeyCode::Enter));
    // The filter is kept; j/k move again instead of typing.
    assert_eq!(shown_ids(&app), [2]);
    app.update(ch('j'));
    assert_eq!(shown_ids(&app), [2]);

    app.update(ch('/'));
    for _ in 0..3 {
        app.update(press(KeyCode::Backspace));
    }
    type_text(&mut app, "pmcp_ab3d");
    assert_eq!(shown_ids(&app), [5, 3], "by prefix, any case");
    app.update(press(KeyCode::Esc));
    assert_eq!(shown_ids(&app), [5, 4, 3, 2, 1], "Esc clears the filter");
    assert!(matches!(app.mode, Mode::Audit(_)), "and stays in the view");

    app.update(ch('/'));
    type_text(&mut app, "nobody");
    assert_eq!(shown_ids(&app), Vec::<i64>::new());
}

#[test]
fn f_narrows_to_the_key_selected_in_the_list_and_back() {
    let mut app = audit_app();
    assert_eq!(
        app.selected_key().map(|k| k.name.as_str()),
        Some("ci-deploy")
    );
    app.update(ch('f'));
    assert_eq!(shown_ids(&app), [5, 3]);
    app.update(ch('f'));
    assert_eq!(shown_ids(&app), [5, 4, 3, 2, 1]);
}

#[test]
fn a_change_to_the_database_reloads_the_view() {
    let mut app = audit_app();
    let effect = app.update(Action::Loaded(Box::new(snapshot())));
    assert!(
        matches!(&effect, Some(Effect::LoadAudit { org }) if org == ORG),
        "{effect:?}"
    );
    let mut newer = events();
    newer.insert(
        0,
        event(
            6,
            at(2026, 3, 15, 11, 0),
            None,
            "key.revoked",
            "key",
            "Zx9Yw8Vu",
            None,
        ),
    );
    app.update(Action::AuditLoaded {
        org: ORG.into(),
        events: newer,
    });
    assert_eq!(shown_ids(&app), [6, 5, 4, 3, 2, 1]);
}

// ------------------------------------------------------------ screens

fn screens(name: &str, make: impl Fn() -> App) {
    for (width, height) in [(80, 24), (120, 40)] {
        let mut app = make();
        let screen = screen_text(&mut app, width, height);
        insta::with_settings!({ snapshot_suffix => format!("{width}x{height}") }, {
            insta::assert_snapshot!(name, screen);
        });
    }
}

#[test]
fn audit_view_screens() {
    screens("audit_all_events", audit_app);
    screens("audit_second_event_selected", || {
        let mut app = audit_app();
        app.update(ch('j'));
        app
    });
    screens("audit_filtered_while_typing", || {
        let mut app = audit_app();
        app.update(ch('/'));
        type_text(&mut app, "ci-dep");
        app
    });
    screens("audit_loading", || {
        let mut app = loaded();
        app.update(ch('a'));
        app
    });
    screens("audit_empty", || {
        let mut app = loaded();
        app.update(ch('a'));
        app.update(Action::AuditLoaded {
            org: ORG.into(),
            events: Vec::new(),
        });
        app
    });
}

#[test]
fn old_and_new_values_and_addresses_are_on_screen() {
    let mut app = audit_app();
    let screen = screen_text(&mut app, 120, 40);
    for text in [
        "\"ci\" -> \"ci-deploy\"",
        "203.0.113.9",
        "key.edited",
        "pmcp_Ab3dE5fG",
        "ssh from 203.0.113.9",
        "\"ci-deploy\"",
    ] {
        assert!(screen.contains(text), "{text} missing:\n{screen}");
    }
}

#[test]
fn stored_text_cannot_drive_the_terminal() {
    let mut app = loaded();
    app.update(ch('a'));
    let mut evil = events();
    evil[0].event.detail = Some("name: evil\u{202E}gnp.exe\u{1b}[2J".into());
    evil[0].event.actor = "mallory\u{200B}".into();
    evil[0].hash = Some("ß".repeat(40));
    app.update(Action::AuditLoaded {
        org: ORG.into(),
        events: evil,
    });
    let screen = screen_text(&mut app, 120, 40);
    for c in ['\u{202E}', '\u{1b}', '\u{200B}'] {
        assert!(!screen.contains(c), "raw {c:?} on screen");
    }
    assert!(screen.contains("evil\\u{202E}gnp"), "{screen}");
}
