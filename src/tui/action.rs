//! What can happen to the console: input from the terminal, time passing,
//! and the results of effects. Also the key bindings of the list view, kept
//! in one table so the help overlay always lists exactly what works.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;

use crate::admin::AdminError;
use crate::domain::{AuditEvent, KeyRecord, Mcp, Plan, Timestamp};
use crate::keys::ApiKey;
use crate::server::live::Health;
use crate::server::rate_limits::RateSnapshot;
use crate::server::usage_writer::Losses;
use crate::store::{AuditRecord, KeyUsage, OrgSummary};

/// Everything the store knows that the list view shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub org_slug: String,
    pub plan: Plan,
    pub active_keys: u32,
    pub orgs: Vec<OrgChoice>,
    pub keys: Vec<KeyRecord>,
    pub mcps: Vec<Mcp>,
    /// Each MCP's pinning at a glance, by MCP id.
    pub pins: std::collections::HashMap<String, crate::store::PinSummary>,
}

/// One organization as the picker lists it: enough to choose by plan and
/// room left, without switching first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgChoice {
    pub slug: String,
    pub plan: Plan,
    /// Keys counting against the plan (neither revoked nor expired).
    pub active_keys: u32,
}

impl From<OrgSummary> for OrgChoice {
    fn from(summary: OrgSummary) -> Self {
        OrgChoice {
            slug: summary.org.slug,
            plan: summary.org.plan,
            active_keys: summary.active_keys,
        }
    }
}

/// How many recent requests, and how many audit events, the details list.
pub const DETAIL_RECENT: usize = 12;

/// The selected key's statistics and audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub key_row: i64,
    pub usage: KeyUsage,
    pub audit: Vec<AuditEvent>,
    /// The key has older requests than the `DETAIL_RECENT` in `usage.recent`.
    pub more_requests: bool,
    /// The key has older audit events than the `DETAIL_RECENT` in `audit`.
    pub more_events: bool,
    /// Rate limit counts from the server this console runs; `None` when
    /// it runs none (`--no-server`, or the port was taken).
    pub rate: Option<RateSnapshot>,
}

/// How the background server is doing, for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStatus {
    /// Started with `--no-server`.
    Off,
    /// Could not start (e.g. the port is taken); the console works anyway.
    Failed(String),
    Running {
        addr: String,
        per_minute: u64,
        errors_per_minute: u64,
        /// Usage events the writer could not record, since start.
        usage_lost: Losses,
    },
}

impl ServerStatus {
    /// The status bar's view of a running server's counters.
    pub fn running(addr: impl Into<String>, health: &Health) -> ServerStatus {
        ServerStatus::Running {
            addr: addr.into(),
            per_minute: health.requests,
            errors_per_minute: health.errors,
            usage_lost: health.usage_lost,
        }
    }
}

/// What a copy to the clipboard achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The OSC 52 sequence was written to the terminal.
    pub osc52: bool,
    /// The system clipboard took it, or why not.
    pub system: Result<(), String>,
}

/// Which operation an error belongs to, so it is shown in the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Load,
    CreateKey,
    EditKey,
    RotateKey,
    RevokeKey,
    AddMcp,
    RemoveMcp,
    PinMcp,
    ApproveTool,
}

#[derive(Debug)]
pub enum Action {
    /// A key press; the app routes it by mode, dialogs first.
    Key(KeyEvent),
    Click {
        column: u16,
        row: u16,
    },
    /// Mouse wheel notches (positive scrolls down) with the pointer's
    /// cell: the pane under the pointer scrolls, focused or not.
    Scroll {
        notches: i32,
        column: u16,
        row: u16,
    },
    /// Where the list and detail panes were drawn, for paging and clicks.
    Layout {
        list: Rect,
        detail: Rect,
    },
    /// The terminal's size: sets the layout and whether it is too small.
    Resize {
        width: u16,
        height: u16,
    },
    Tick(Timestamp),
    Server(ServerStatus),
    Loaded(Box<Snapshot>),
    DetailLoaded(Box<Detail>),
    /// Only the selected key's rate counts moved (nothing in the store did).
    RateMoved {
        key_row: i64,
        rate: Option<RateSnapshot>,
    },
    /// The console's server's upstream connections changed (connected,
    /// failing, restarted): for the MCPs view.
    UpstreamHealth(Vec<crate::upstream::UpstreamHealth>),
    /// Tool lists asked of the upstreams (`Effect::LoadTools`), one per MCP.
    ToolsLoaded {
        org: String,
        lists: Vec<(String, crate::access_preview::ToolList)>,
    },
    /// The org's latest audit events, newest first.
    AuditLoaded {
        org: String,
        events: Vec<AuditRecord>,
    },
    /// The recorded tools of an MCP, for the approval view.
    WithheldLoaded {
        org: String,
        slug: String,
        tools: Vec<crate::store::ToolRecord>,
    },
    /// A key was just made (create or rotate): its one showing.
    KeyIssued {
        record: Box<KeyRecord>,
        key: ApiKey,
        /// For rotation: what became of the old key, in a sentence.
        replaced: Option<String>,
    },
    /// A change succeeded; the message says what happened.
    Done(Operation, String),
    Failed(Operation, AdminError),
    Copied(CopyReport),
}

/// Intents of the list view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Quit,
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    SwitchPane,
    Filter,
    /// Esc in the list: drop an active filter.
    ClearFilter,
    Sort,
    /// `S`: the same column, the other way round.
    ReverseSort,
    /// `y`: the selected key's prefix to the clipboard (never the secret).
    CopyPrefix,
    Create,
    Edit,
    Revoke,
    Rotate,
    Mcps,
    Orgs,
    Audit,
    Help,
    /// `:`: every action by name.
    Palette,
    /// Long lines of the details: cut with `…` (the default) or wrapped whole.
    Wrap,
    /// `u`: the selected key's requests and errors per day, as a chart.
    Chart,
}

/// Lines under the bindings in the help: the keys of the dialogs and views.
pub const HELP_NOTES: &[&str] = &[
    " In dialogs: y confirm · n/Esc cancel · c copy a new key",
    " Key form: Tab move · ←/→ choose · Space tick · t MCP tools",
    " MCPs view: a add · d remove · p pin/unpin · t withheld tools",
    " Mouse: click selects, the wheel scrolls what it is over",
    " Press any key to close (j/k scroll when it does not fit)",
];

/// One row of the help overlay: keys as shown, what they do, the intents.
/// Related keys share a row; the help scrolls when the screen is too short.
pub struct Binding {
    pub keys: &'static str,
    pub does: &'static str,
    pub intents: &'static [Intent],
}

pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: "j k / ↓ ↑",
        does: "next / previous key (or scroll focused details)",
        intents: &[Intent::Down, Intent::Up],
    },
    Binding {
        keys: "g / Home",
        does: "first key",
        intents: &[Intent::Top],
    },
    Binding {
        keys: "G / End",
        does: "last key",
        intents: &[Intent::Bottom],
    },
    Binding {
        keys: "PgUp / PgDn",
        does: "page up / down (also Ctrl-U / Ctrl-D)",
        intents: &[Intent::PageUp, Intent::PageDown],
    },
    Binding {
        keys: "Tab",
        does: "switch focus: key list / details",
        intents: &[Intent::SwitchPane],
    },
    Binding {
        keys: "/ · Esc",
        does: "filter by name, prefix, description · clear it",
        intents: &[Intent::Filter, Intent::ClearFilter],
    },
    Binding {
        keys: "s · S",
        does: "cycle sort column · reverse it",
        intents: &[Intent::Sort, Intent::ReverseSort],
    },
    Binding {
        keys: "y",
        does: "copy the key's prefix (OSC 52)",
        intents: &[Intent::CopyPrefix],
    },
    Binding {
        keys: "n",
        does: "new key",
        intents: &[Intent::Create],
    },
    Binding {
        keys: "e",
        does: "edit name, description, rate limit, access",
        intents: &[Intent::Edit],
    },
    Binding {
        keys: "r",
        does: "revoke (asks first)",
        intents: &[Intent::Revoke],
    },
    Binding {
        keys: "R",
        does: "rotate: issue a replacement",
        intents: &[Intent::Rotate],
    },
    Binding {
        keys: "m",
        does: "MCP servers (add, remove, pin, approve tools)",
        intents: &[Intent::Mcps],
    },
    Binding {
        keys: "o",
        does: "switch organization",
        intents: &[Intent::Orgs],
    },
    Binding {
        keys: "a",
        does: "audit trail of the organization",
        intents: &[Intent::Audit],
    },
    Binding {
        keys: "w · u",
        does: "details: wrap long lines · usage chart (30 days)",
        intents: &[Intent::Wrap, Intent::Chart],
    },
    Binding {
        keys: "? · :",
        does: "this help · command palette (actions by name)",
        intents: &[Intent::Help, Intent::Palette],
    },
    Binding {
        keys: "q / Ctrl-C",
        does: "quit (asks first while a new key is shown)",
        intents: &[Intent::Quit],
    },
];

/// The list view's key map.
pub fn intent_for(key: KeyEvent) -> Option<Intent> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            KeyCode::Char('c') => Some(Intent::Quit),
            KeyCode::Char('d') => Some(Intent::PageDown),
            KeyCode::Char('u') => Some(Intent::PageUp),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Intent::Quit,
        KeyCode::Char('j') | KeyCode::Down => Intent::Down,
        KeyCode::Char('k') | KeyCode::Up => Intent::Up,
        KeyCode::Char('g') | KeyCode::Home => Intent::Top,
        KeyCode::Char('G') | KeyCode::End => Intent::Bottom,
        KeyCode::PageUp => Intent::PageUp,
        KeyCode::PageDown => Intent::PageDown,
        KeyCode::Tab | KeyCode::BackTab => Intent::SwitchPane,
        KeyCode::Char('/') => Intent::Filter,
        KeyCode::Esc => Intent::ClearFilter,
        KeyCode::Char('s') => Intent::Sort,
        KeyCode::Char('S') => Intent::ReverseSort,
        KeyCode::Char('y') => Intent::CopyPrefix,
        KeyCode::Char('n') => Intent::Create,
        KeyCode::Char('e') => Intent::Edit,
        KeyCode::Char('r') => Intent::Revoke,
        KeyCode::Char('R') => Intent::Rotate,
        KeyCode::Char('m') => Intent::Mcps,
        KeyCode::Char('o') => Intent::Orgs,
        KeyCode::Char('a') => Intent::Audit,
        KeyCode::Char('?') => Intent::Help,
        KeyCode::Char(':') => Intent::Palette,
        KeyCode::Char('w') => Intent::Wrap,
        KeyCode::Char('u') => Intent::Chart,
        _ => return None,
    })
}

/// Ctrl-C quits from anywhere, even inside a form.
pub fn is_force_quit(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c')
}
