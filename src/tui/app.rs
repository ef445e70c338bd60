//! The console's state machine. `App::update` takes an `Action` (a key,
//! a tick, an effect's result) and returns at most one `Effect` for the
//! outer loop to carry out against the store or the terminal. No I/O
//! happens here, and the clock arrives in `Tick`s, so every behaviour is
//! tested as a plain function.

mod audit;
mod dialog_lists;
mod guards;
mod list;
mod natural;
mod palette_keys;
mod rotate;
mod tool_lists;
mod withheld;

pub use audit::{AUDIT_LOADED, AuditView};
pub use list::{DEFAULT_EXPIRING_WITHIN, expiring_soon};
pub use rotate::{DEFAULT_GRACE, GraceField, RotateDialog, RotateOutcome, RotateStep};
pub use withheld::{WITHHELD_ROWS, WithheldView};

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;
use zeroize::Zeroizing;

use super::action::{
    Action, CopyReport, Detail, Intent, Operation, OrgChoice, ServerStatus, Snapshot, intent_for,
    is_force_quit,
};
use super::forms::{FormOutcome, KeyForm, KeySubmit, McpForm};
use super::layout;
use super::palette::Palette;
use super::scroll::{self, ListPosition, Step};
use crate::admin::{EditRequest, KeyRequest, McpRequest};
use crate::domain::{Handover, KeyRecord, Plan, Timestamp};
use crate::keys::ApiKey;

/// Work for the outer loop; results come back as `Action`s.
#[derive(Debug)]
pub enum Effect {
    /// Reload the list (and the selected key's detail) if the database
    /// changed since the last load, or always when `force`.
    Refresh {
        org: String,
        key_row: Option<i64>,
        force: bool,
    },
    LoadDetail {
        key_row: i64,
    },
    /// The org's latest audit events, for the audit view.
    LoadAudit {
        org: String,
    },
    CreateKey {
        org: String,
        request: KeyRequest,
        rate_limit: Option<crate::domain::RateLimit>,
    },
    EditKey {
        org: String,
        id: String,
        request: EditRequest,
        /// `None`: the key's rate limit stays as it is.
        rate_limit: Option<crate::rules::RateLimitSpec>,
    },
    RotateKey {
        org: String,
        id: String,
        handover: Handover,
    },
    RevokeKey {
        org: String,
        id: String,
    },
    AddMcp {
        org: String,
        request: McpRequest,
    },
    RemoveMcp {
        org: String,
        slug: String,
    },
    /// Pin (or unpin) an MCP's tools.
    SetPinned {
        org: String,
        slug: String,
        pinned: bool,
    },
    /// An MCP's recorded tools, for the approval view.
    LoadWithheld {
        org: String,
        slug: String,
    },
    /// Approve one withheld tool as its upstream lists it now.
    ApproveTool {
        org: String,
        slug: String,
        tool: String,
    },
    /// Ask these MCPs' upstreams for their tool lists (`Action::ToolsLoaded`).
    LoadTools {
        org: String,
        slugs: Vec<String>,
    },
    /// Put this text on the clipboard (OSC 52 and the system clipboard).
    Copy(Zeroizing<String>),
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    List,
    Detail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Created,
    Name,
    LastUsed,
    Expires,
    Status,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Created => SortKey::Name,
            SortKey::Name => SortKey::LastUsed,
            SortKey::LastUsed => SortKey::Expires,
            SortKey::Expires => SortKey::Status,
            SortKey::Status => SortKey::Created,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Created => "Created",
            SortKey::Name => "Name",
            SortKey::LastUsed => "Last Used",
            SortKey::Expires => "Expires",
            SortKey::Status => "Status",
        }
    }

    /// Whether the column's own order (the one `s` gives) runs from high
    /// to low: newest created and most recently used come first.
    pub fn descending(self) -> bool {
        matches!(self, SortKey::Created | SortKey::LastUsed)
    }

    /// The order in words, for the status message after `S`.
    pub fn order(self, reversed: bool) -> &'static str {
        match (self, reversed) {
            (SortKey::Created, false) => "newest first",
            (SortKey::Created, true) => "oldest first",
            (SortKey::Name, false) => "A to Z",
            (SortKey::Name, true) => "Z to A",
            (SortKey::LastUsed, false) => "most recently used first",
            (SortKey::LastUsed, true) => "never or least recently used first",
            (SortKey::Expires, false) => "soonest expiry first",
            (SortKey::Expires, true) => "never expiring first",
            (SortKey::Status, false) => "active first",
            (SortKey::Status, true) => "revoked first",
        }
    }
}

/// The one showing of a new key. Dropping it zeroizes the key text.
#[derive(Debug)]
pub struct ShowKey {
    pub key: ApiKey,
    pub record: KeyRecord,
    /// For a rotation: what became of the old key, in a sentence.
    pub replaced: Option<String>,
    pub copied: Option<CopyReport>,
}

/// A destructive action waiting for `y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    RevokeKey { id: String, name: String },
    RemoveMcp { slug: String },
}

#[derive(Debug)]
pub enum Mode {
    Normal,
    Filter(Input),
    /// The help screen, scrolled this many lines down.
    Help(u16),
    KeyForm(Box<KeyForm>),
    ShowKey(Box<ShowKey>),
    Confirm(Pending),
    /// Quit asked for while a new key is on screen: it would be lost.
    ConfirmQuit(Box<ShowKey>),
    /// What to do with the old key of a rotation.
    Rotate(Box<RotateDialog>),
    /// The org's MCP servers; the position scrolls like every list.
    Mcps(ListPosition),
    McpForm(Box<McpForm>),
    Orgs(ListPosition),
    /// The organization's audit trail (`a`).
    Audit(Box<AuditView>),
    /// The `:` command palette.
    Palette(Box<Palette>),
    /// A pinned MCP's withheld tools, old against new (`t` in the MCPs view).
    Withheld(Box<WithheldView>),
    /// The selected key's usage per day as a chart (`u`); any key closes it.
    Chart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    pub until: Timestamp,
}

/// How long a status message stays.
const FLASH_SECS: i64 = 6;

#[derive(Debug)]
pub struct App {
    pub now: Timestamp,
    pub org: String,
    pub plan: Plan,
    pub active_keys: u32,
    pub orgs: Vec<OrgChoice>,
    pub keys: Vec<KeyRecord>,
    pub mcps: Vec<crate::domain::Mcp>,
    /// Each MCP's pinning at a glance, by MCP id.
    pub pins: std::collections::HashMap<String, crate::store::PinSummary>,
    /// The console's server's connections to the upstreams, by pool name.
    pub upstream_health: Vec<crate::upstream::UpstreamHealth>,
    /// The upstreams' tool lists, for the access previews and the picker.
    pub tool_lists: tool_lists::ToolLists,
    /// Indices into `keys` that pass the filter, in sort order.
    pub view: Vec<usize>,
    /// Position in `view`.
    pub selected: usize,
    /// First row of `view` drawn in the list.
    pub offset: usize,
    pub filter: String,
    pub sort: SortKey,
    /// `S` turned the column's own order round.
    pub sort_reversed: bool,
    pub focus: Focus,
    pub detail: Option<Detail>,
    pub detail_scroll: u16,
    /// Long detail lines wrap (`w`) instead of ending in `…`.
    pub detail_wrap: bool,
    pub server: ServerStatus,
    pub mode: Mode,
    pub flash: Option<Flash>,
    /// What the copy in flight holds (`y`), for the message when it lands.
    pub copying: Option<String>,
    pub loaded: bool,
    /// A key to select once the next load lists it (a key just issued).
    pub select_on_load: Option<i64>,
    pub list_area: Rect,
    pub detail_area: Rect,
    /// The terminal's size once the event loop has said; `None` (tests that
    /// only set a layout) hides nothing.
    pub screen: Option<(u16, u16)>,
    pub quit: bool,
    /// Keys expiring within this are flagged (`console.expiring_within`).
    pub expiring_within: chrono::TimeDelta,
}

impl App {
    pub fn new(org: &str, now: Timestamp, server: ServerStatus) -> App {
        App {
            now,
            org: org.to_string(),
            plan: Plan::Free,
            active_keys: 0,
            orgs: Vec::new(),
            keys: Vec::new(),
            mcps: Vec::new(),
            pins: std::collections::HashMap::new(),
            upstream_health: Vec::new(),
            tool_lists: Default::default(),
            view: Vec::new(),
            selected: 0,
            offset: 0,
            filter: String::new(),
            sort: SortKey::Created,
            sort_reversed: false,
            focus: Focus::List,
            detail: None,
            detail_scroll: 0,
            detail_wrap: false,
            server,
            mode: Mode::Normal,
            flash: None,
            copying: None,
            loaded: false,
            select_on_load: None,
            list_area: Rect::default(),
            detail_area: Rect::default(),
            screen: None,
            quit: false,
            expiring_within: DEFAULT_EXPIRING_WITHIN,
        }
    }

    /// The first effect: load everything.
    pub fn start(&self) -> Effect {
        self.refresh(true)
    }

    pub fn selected_key(&self) -> Option<&KeyRecord> {
        self.view.get(self.selected).and_then(|&i| self.keys.get(i))
    }

    /// The selected key's detail, if it has arrived.
    pub fn selected_detail(&self) -> Option<&Detail> {
        let key = self.selected_key()?;
        self.detail.as_ref().filter(|d| d.key_row == key.row_id)
    }

    /// `▼` when the list runs from high to low (newest, latest, Z), else `▲`.
    pub fn sort_arrow(&self) -> &'static str {
        if self.sort.descending() != self.sort_reversed {
            "▼"
        } else {
            "▲"
        }
    }

    /// Rows of keys the list pane shows at once.
    pub fn page_rows(&self) -> usize {
        usize::from(self.list_area.height.saturating_sub(3)).max(1)
    }

    fn refresh(&self, force: bool) -> Effect {
        Effect::Refresh {
            org: self.org.clone(),
            key_row: self.selected_key().map(|k| k.row_id),
            force,
        }
    }

    fn flash(&mut self, text: impl Into<String>, error: bool) {
        let text = text.into();
        // Long messages stay long enough to be read (about 15 characters a second).
        let chars = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
        let secs = FLASH_SECS.max(chars / 15);
        self.flash = Some(Flash {
            text,
            error,
            until: self.now + chrono::TimeDelta::seconds(secs),
        });
    }

    pub fn update(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Key(key) => {
                if self.too_small() {
                    return self.key_while_too_small(key);
                }
                if is_force_quit(&key) {
                    return self.ask_or_quit();
                }
                self.on_key(key)
            }
            // Nothing under the pointer is on screen when the terminal is too small.
            Action::Click { .. } | Action::Scroll { .. } if self.too_small() => None,
            Action::Click { column, row } => self.on_click(column, row),
            Action::Scroll {
                notches,
                column,
                row,
            } => self.on_wheel(notches, column, row),
            Action::Layout { list, detail } => {
                self.list_area = list;
                self.detail_area = detail;
                self.keep_selection_visible();
                self.clamp_detail_scroll();
                None
            }
            Action::Resize { width, height } => {
                self.screen = Some((width, height));
                let areas = layout::areas(Rect::new(0, 0, width, height));
                self.update(Action::Layout {
                    list: areas.list,
                    detail: areas.detail,
                })
            }
            Action::Tick(now) => {
                self.now = now;
                if self.flash.as_ref().is_some_and(|f| f.until <= now) {
                    self.flash = None;
                }
                Some(self.refresh(false))
            }
            Action::Server(status) => {
                self.server = status;
                None
            }
            Action::Loaded(snapshot) => self.on_loaded(*snapshot),
            Action::DetailLoaded(detail) => {
                self.detail = Some(*detail);
                self.clamp_detail_scroll();
                self.ask_tools_of_selected()
            }
            Action::ToolsLoaded { org, lists } => {
                self.on_tools_loaded(&org, lists);
                None
            }
            Action::UpstreamHealth(health) => {
                self.upstream_health = health;
                None
            }
            Action::RateMoved { key_row, rate } => {
                if let Some(detail) = self.detail.as_mut().filter(|d| d.key_row == key_row) {
                    detail.rate = rate;
                }
                None
            }
            Action::WithheldLoaded { org, slug, tools } => {
                self.on_withheld_loaded(&org, &slug, tools);
                None
            }
            Action::AuditLoaded { org, events } => {
                self.on_audit_loaded(org, events);
                None
            }
            Action::KeyIssued {
                record,
                key,
                replaced,
            } => {
                self.select_on_load = Some(record.row_id);
                self.mode = Mode::ShowKey(Box::new(ShowKey {
                    key,
                    record: *record,
                    replaced,
                    copied: None,
                }));
                None
            }
            Action::Done(op, message) => {
                self.flash(message, false);
                match op {
                    Operation::AddMcp | Operation::RemoveMcp => {
                        self.mode = Mode::Mcps(ListPosition::default());
                        None
                    }
                    Operation::ApproveTool => self.reload_withheld(),
                    Operation::EditKey | Operation::RevokeKey => {
                        self.mode = Mode::Normal;
                        // The change is committed: its audit event belongs in
                        // the Activity list now, and a reload of the list
                        // alone would not fetch it (the selection is the same).
                        self.selected_key()
                            .map(|k| Effect::LoadDetail { key_row: k.row_id })
                    }
                    _ => None,
                }
            }
            Action::Failed(op, error) => {
                match (&mut self.mode, op) {
                    (Mode::KeyForm(form), Operation::CreateKey | Operation::EditKey) => {
                        form.show_error(error)
                    }
                    (Mode::McpForm(form), Operation::AddMcp) => form.show_error(error),
                    _ => {
                        if matches!(self.mode, Mode::Confirm(_) | Mode::Rotate { .. }) {
                            self.mode = Mode::Normal;
                        }
                        self.flash(error.to_string(), true);
                    }
                }
                None
            }
            Action::Copied(report) => {
                let copying = self.copying.take();
                if let Mode::ShowKey(show) = &mut self.mode {
                    show.copied = Some(report);
                } else if let Some(prefix) = copying {
                    self.copied_message(&prefix, &report);
                }
                None
            }
        }
    }

    fn quit(&mut self) -> Option<Effect> {
        self.quit = true;
        // Leaving the show-once dialog drops (and zeroizes) the key.
        self.mode = Mode::Normal;
        Some(Effect::Quit)
    }

    fn on_loaded(&mut self, snapshot: Snapshot) -> Option<Effect> {
        let previous = self.selected_key().map(|k| k.row_id);
        if snapshot.org_slug != self.org {
            return None; // a load for an org we have since left
        }
        self.plan = snapshot.plan;
        self.active_keys = snapshot.active_keys;
        self.orgs = snapshot.orgs;
        self.keys = snapshot.keys;
        self.mcps = snapshot.mcps;
        self.pins = snapshot.pins;
        self.loaded = true;
        let keep = self.select_on_load.take().or(previous);
        self.rebuild_view(keep);
        self.clamp_detail_scroll();
        // The database changed: what the audit view shows may have too.
        if matches!(self.mode, Mode::Audit(_)) {
            return Some(self.load_audit());
        }
        // And so may the withheld tools (a new change, an approval elsewhere).
        if matches!(self.mode, Mode::Withheld(_)) {
            return self.reload_withheld();
        }
        let now_selected = self.selected_key().map(|k| k.row_id);
        match now_selected {
            Some(row) if self.detail.as_ref().is_none_or(|d| d.key_row != row) => {
                Some(Effect::LoadDetail { key_row: row })
            }
            _ => None,
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Option<Effect> {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.normal_key(key),
            Mode::Chart => None,
            Mode::Help(offset) => {
                // The list keys scroll a help taller than the screen; any
                // other key closes it.
                if let Some(step) = scroll::step_for(&key) {
                    self.mode = Mode::Help(self.help_scrolled(offset, step));
                }
                None
            }
            Mode::Filter(mut input) => {
                match key.code {
                    KeyCode::Esc => {
                        self.filter.clear();
                        self.rebuild_view(self.selected_key().map(|k| k.row_id));
                    }
                    KeyCode::Enter => {}
                    _ => {
                        input.handle_event(&ratatui::crossterm::event::Event::Key(key));
                        self.filter = input.value().to_string();
                        let keep = self.selected_key().map(|k| k.row_id);
                        self.rebuild_view(keep);
                        self.mode = Mode::Filter(input);
                    }
                }
                self.selected_key()
                    .map(|k| Effect::LoadDetail { key_row: k.row_id })
            }
            Mode::KeyForm(mut form) => match form.handle_key(key, self.now) {
                FormOutcome::Stay => {
                    self.mode = Mode::KeyForm(form);
                    None
                }
                FormOutcome::Cancel => None,
                FormOutcome::Unchanged => {
                    self.flash("No changes to save: the key is as it was", false);
                    None
                }
                FormOutcome::LoadTools(slug) => {
                    self.mode = Mode::KeyForm(form);
                    self.ask_tools([slug.as_str()], true)
                }
                FormOutcome::Submit(submit) => {
                    self.mode = Mode::KeyForm(form);
                    let org = self.org.clone();
                    Some(match submit {
                        KeySubmit::Create {
                            request,
                            rate_limit,
                        } => Effect::CreateKey {
                            org,
                            request,
                            rate_limit,
                        },
                        KeySubmit::Edit {
                            id,
                            request,
                            rate_limit,
                        } => Effect::EditKey {
                            org,
                            id,
                            request,
                            rate_limit,
                        },
                    })
                }
            },
            Mode::ShowKey(show) => self.show_once_key(show, key),
            Mode::ConfirmQuit(show) => self.confirm_quit_key(show, key),
            Mode::Confirm(pending) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    let org = self.org.clone();
                    Some(match pending {
                        Pending::RevokeKey { id, .. } => Effect::RevokeKey { org, id },
                        Pending::RemoveMcp { slug } => Effect::RemoveMcp { org, slug },
                    })
                }
                KeyCode::Char('n') | KeyCode::Esc => {
                    // Back to the MCPs view with the cursor where it was.
                    if let Pending::RemoveMcp { slug } = &pending {
                        let selected = self.mcps.iter().position(|m| m.slug == *slug);
                        let mut at = ListPosition::at(selected.unwrap_or(0));
                        at.clamp(self.mcps.len(), self.mcps_rows());
                        self.mode = Mode::Mcps(at);
                    }
                    None
                }
                _ => {
                    self.mode = Mode::Confirm(pending);
                    None
                }
            },
            Mode::Rotate(mut dialog) => match dialog.handle_key(key) {
                RotateOutcome::Stay => {
                    self.mode = Mode::Rotate(dialog);
                    None
                }
                RotateOutcome::Cancel => None,
                RotateOutcome::Rotate(handover) => Some(Effect::RotateKey {
                    org: self.org.clone(),
                    id: dialog.id.clone(),
                    handover,
                }),
            },
            Mode::Mcps(at) => self.mcps_key(key, at),
            Mode::Audit(view) => self.audit_key(view, key),
            Mode::McpForm(mut form) => match form.handle_key(key) {
                FormOutcome::Stay => {
                    self.mode = Mode::McpForm(form);
                    None
                }
                FormOutcome::Cancel | FormOutcome::Unchanged | FormOutcome::LoadTools(_) => {
                    self.mode = Mode::Mcps(ListPosition::default());
                    None
                }
                FormOutcome::Submit(request) => {
                    self.mode = Mode::McpForm(form);
                    Some(Effect::AddMcp {
                        org: self.org.clone(),
                        request,
                    })
                }
            },
            Mode::Orgs(at) => self.orgs_key(key, at),
            Mode::Palette(palette) => self.palette_key(palette, key),
            Mode::Withheld(view) => self.withheld_key(view, key),
        }
    }

    fn normal_key(&mut self, key: KeyEvent) -> Option<Effect> {
        let intent = intent_for(key)?;
        if self.focus == Focus::Detail {
            match intent {
                Intent::Down => {
                    self.scroll_detail(1);
                    return None;
                }
                Intent::Up => {
                    self.scroll_detail(-1);
                    return None;
                }
                Intent::PageDown => {
                    self.scroll_detail(i32::from(self.detail_area.height.max(2) - 2));
                    return None;
                }
                Intent::PageUp => {
                    self.scroll_detail(-i32::from(self.detail_area.height.max(2) - 2));
                    return None;
                }
                Intent::Top => {
                    self.detail_scroll = 0;
                    return None;
                }
                Intent::Bottom => {
                    self.detail_scroll = self.detail_last_top();
                    return None;
                }
                _ => {}
            }
        }
        self.run_intent(intent)
    }

    /// What an intent of the list view does, from its key or the palette.
    fn run_intent(&mut self, intent: Intent) -> Option<Effect> {
        match intent {
            Intent::Quit => self.quit(),
            Intent::Down => self.step_list(Step::Down),
            Intent::Up => self.step_list(Step::Up),
            Intent::Top => self.step_list(Step::Top),
            Intent::Bottom => self.step_list(Step::Bottom),
            Intent::PageDown => self.step_list(Step::PageDown),
            Intent::PageUp => self.step_list(Step::PageUp),
            Intent::SwitchPane => {
                self.focus = match self.focus {
                    Focus::List => Focus::Detail,
                    Focus::Detail => Focus::List,
                };
                None
            }
            Intent::Filter => {
                self.mode = Mode::Filter(Input::new(self.filter.clone()));
                None
            }
            Intent::ClearFilter => {
                if self.filter.is_empty() {
                    return None;
                }
                let before = self.selected_key().map(|k| k.row_id);
                self.filter.clear();
                self.rebuild_view(before);
                let after = self.selected_key().map(|k| k.row_id);
                after
                    .filter(|_| after != before)
                    .map(|key_row| Effect::LoadDetail { key_row })
            }
            Intent::Sort => {
                // A new column starts in its own, most useful order.
                self.sort = self.sort.next();
                self.sort_reversed = false;
                self.rebuild_view(self.selected_key().map(|k| k.row_id));
                self.flash(format!("Sorted by {}", self.sort.label()), false);
                None
            }
            Intent::ReverseSort => {
                self.sort_reversed = !self.sort_reversed;
                self.rebuild_view(self.selected_key().map(|k| k.row_id));
                self.flash(
                    format!(
                        "Sorted by {} {}: {}",
                        self.sort.label(),
                        self.sort_arrow(),
                        self.sort.order(self.sort_reversed)
                    ),
                    false,
                );
                None
            }
            Intent::CopyPrefix => self.copy_prefix(),
            Intent::Create => {
                let slugs: Vec<String> = self.mcps.iter().map(|m| m.slug.clone()).collect();
                let mut form = KeyForm::create(&slugs);
                form.tool_lists = self.tool_lists.all().clone();
                self.mode = Mode::KeyForm(Box::new(form));
                // Upstreams are asked only for what the form needs: an
                // MCP's list when it is ticked or its picker opens.
                None
            }
            Intent::Edit | Intent::Revoke | Intent::Rotate => self.key_action(intent),
            Intent::Mcps => {
                self.mode = Mode::Mcps(ListPosition::default());
                None
            }
            Intent::Orgs => {
                let selected = self
                    .orgs
                    .iter()
                    .position(|o| o.slug == self.org)
                    .unwrap_or(0);
                let mut at = ListPosition::at(selected);
                at.clamp(self.orgs.len(), layout::picker_rows(self.screen_area()));
                self.mode = Mode::Orgs(at);
                None
            }
            Intent::Help => {
                self.mode = Mode::Help(0);
                None
            }
            Intent::Palette => {
                self.mode = Mode::Palette(Box::default());
                None
            }
            Intent::Audit => self.open_audit(),
            Intent::Wrap => {
                self.detail_wrap = !self.detail_wrap;
                self.clamp_detail_scroll();
                None
            }
            Intent::Chart => {
                if self.selected_key().is_some() {
                    self.mode = Mode::Chart;
                } else {
                    self.flash(
                        "No key selected: the chart shows the selected key's usage",
                        false,
                    );
                }
                None
            }
        }
    }

    /// Edit, revoke and rotate act on the selected key, never a revoked one.
    fn key_action(&mut self, intent: Intent) -> Option<Effect> {
        let Some(key) = self.selected_key().cloned() else {
            self.flash("No key selected", true);
            return None;
        };
        if key.revoked_at.is_some() {
            self.flash(
                format!("{} is revoked: it can be viewed, not changed", key.prefix()),
                true,
            );
            return None;
        }
        let slugs: Vec<String> = self.mcps.iter().map(|m| m.slug.clone()).collect();
        if intent == Intent::Edit {
            let mut form = KeyForm::edit(&key, &slugs);
            form.tool_lists = self.tool_lists.all().clone();
            self.mode = Mode::KeyForm(Box::new(form));
            // What it can call now, for the form's gains/loses lines.
            return self.ask_tools_of_selected();
        }
        self.mode = match intent {
            Intent::Revoke => Mode::Confirm(Pending::RevokeKey {
                id: key.id.clone(),
                name: key.name.clone(),
            }),
            _ => Mode::Rotate(Box::new(RotateDialog::new(&key, self.now))),
        };
        None
    }
}
