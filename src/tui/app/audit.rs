//! The audit view's state: the organization's latest audit events, as the
//! store last loaded them, narrowed to one key by a typed filter (name or
//! prefix, like the key list's) or to the key selected in the list. The
//! filter runs over the loaded events in memory, so typing never waits on
//! the store; a change to the database reloads them (see `on_loaded`).

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::{App, Effect, Mode};
use crate::domain::KeyRecord;
use crate::store::AuditRecord;

/// How many of the latest events the view loads; `audit export` has them all.
pub const AUDIT_LOADED: u32 = 1000;

#[derive(Debug, Default)]
pub struct AuditView {
    /// Newest first; `None` until the first load arrives.
    pub events: Option<Vec<AuditRecord>>,
    /// Key name or prefix; empty shows every event.
    pub filter: Input,
    /// The filter has the keyboard (after `/`, until Enter or Esc).
    pub typing: bool,
    /// Position in `visible()`.
    pub selected: usize,
}

impl AuditView {
    /// The loaded events the filter lets through, newest first. With a
    /// filter, only events about a key whose name or prefix contains it.
    pub fn visible<'a>(&'a self, keys: &[KeyRecord]) -> Vec<&'a AuditRecord> {
        let events = self.events.as_deref().unwrap_or_default();
        let needle = self.filter.value().trim().to_lowercase();
        if needle.is_empty() {
            return events.iter().collect();
        }
        let matching: Vec<&str> = keys
            .iter()
            .filter(|k| {
                k.name.to_lowercase().contains(&needle)
                    || k.prefix().to_lowercase().contains(&needle)
            })
            .map(|k| k.id.as_str())
            .collect();
        events
            .iter()
            .filter(|e| {
                e.event.target_kind == "key" && matching.contains(&e.event.target_id.as_str())
            })
            .collect()
    }

    /// The event under the cursor, if any.
    pub fn selected_event<'a>(&'a self, keys: &[KeyRecord]) -> Option<&'a AuditRecord> {
        self.visible(keys).get(self.selected).copied()
    }

    /// Whether the load may have left older events out.
    pub fn truncated(&self) -> bool {
        self.events
            .as_ref()
            .is_some_and(|e| e.len() >= AUDIT_LOADED as usize)
    }

    fn clamp(&mut self, keys: &[KeyRecord]) {
        self.selected = self
            .selected
            .min(self.visible(keys).len().saturating_sub(1));
    }
}

impl App {
    /// `a` in the list: the audit view, loading its events.
    pub(super) fn open_audit(&mut self) -> Option<Effect> {
        self.mode = Mode::Audit(Box::default());
        Some(self.load_audit())
    }

    pub(super) fn load_audit(&self) -> Effect {
        Effect::LoadAudit {
            org: self.org.clone(),
        }
    }

    pub(super) fn on_audit_loaded(&mut self, org: String, events: Vec<AuditRecord>) {
        if org != self.org {
            return; // a load for an org we have since left
        }
        if let Mode::Audit(view) = &mut self.mode {
            view.events = Some(events);
            view.clamp(&self.keys);
        }
    }

    pub(super) fn audit_key(&mut self, mut view: Box<AuditView>, key: KeyEvent) -> Option<Effect> {
        if view.typing {
            match key.code {
                KeyCode::Enter => view.typing = false,
                KeyCode::Esc => {
                    view.typing = false;
                    view.filter.reset();
                }
                _ => {
                    view.filter.handle_event(&Event::Key(key));
                }
            }
            view.selected = 0;
            self.mode = Mode::Audit(view);
            return None;
        }
        let count = view.visible(&self.keys).len();
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('a') => return None,
            KeyCode::Char('j') | KeyCode::Down => {
                view.selected = (view.selected + 1).min(count.saturating_sub(1))
            }
            KeyCode::Char('k') | KeyCode::Up => view.selected = view.selected.saturating_sub(1),
            KeyCode::Char('g') | KeyCode::Home => view.selected = 0,
            KeyCode::Char('G') | KeyCode::End => view.selected = count.saturating_sub(1),
            KeyCode::Char('/') => view.typing = true,
            // The key selected in the list, or back to every event.
            KeyCode::Char('f') => {
                let prefix = self.selected_key().map(KeyRecord::prefix);
                view.filter = match prefix {
                    Some(p) if view.filter.value() != p => Input::new(p),
                    _ => Input::default(),
                };
                view.selected = 0;
            }
            _ => {}
        }
        self.mode = Mode::Audit(view);
        None
    }
}
