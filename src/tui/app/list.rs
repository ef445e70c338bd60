//! The key list as a view: filtering, sorting, selection, scrolling,
//! clicks and copying the selected key's prefix. Part of the pure `App`
//! state machine, split out by meaning.

use ratatui::layout::Rect;

use super::natural::natural_key;
use zeroize::Zeroizing;

use super::{App, Effect, Focus, Mode, SortKey};
use crate::domain::{KeyRecord, KeyStatus, Timestamp};
use crate::tui::action::CopyReport;
use crate::tui::panes::detail;
use crate::tui::scroll::{self, Step};

/// Active keys this close to their expiry stand out in the list and are
/// counted in the status bar unless `console.expiring_within` says
/// otherwise: a week is time to rotate them.
pub const DEFAULT_EXPIRING_WITHIN: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// The key still works but stops within `within`.
pub fn expiring_soon(key: &KeyRecord, now: Timestamp, within: chrono::TimeDelta) -> bool {
    key.status(now) == KeyStatus::Active && key.expires_at.is_some_and(|at| at - now <= within)
}

impl App {
    /// The key expires within the console's warning window.
    pub fn expiring_soon(&self, key: &KeyRecord) -> bool {
        expiring_soon(key, self.now, self.expiring_within)
    }

    /// The org's keys (filtered out or not) that expire soon.
    pub fn expiring_count(&self) -> usize {
        self.keys.iter().filter(|k| self.expiring_soon(k)).count()
    }

    /// Recomputes filter and sort, keeping `keep` selected if still visible.
    pub(super) fn rebuild_view(&mut self, keep: Option<i64>) {
        let needle = self.filter.to_lowercase();
        let mut view: Vec<usize> = self
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| {
                // Descriptions say whose a key is ("team-2"), which names often do not.
                needle.is_empty()
                    || k.name.to_lowercase().contains(&needle)
                    || k.prefix().to_lowercase().contains(&needle)
                    || k.description
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().contains(&needle))
            })
            .map(|(i, _)| i)
            .collect();
        let keys = &self.keys;
        let now = self.now;
        let reversed = self.sort_reversed;
        match self.sort {
            // The store lists newest first already, so no sort (100k keys).
            SortKey::Created if reversed => view.reverse(),
            SortKey::Created => {}
            SortKey::Name => sort_view(&mut view, reversed, |i| natural_key(&keys[i].name)),
            SortKey::LastUsed => sort_view(&mut view, reversed, |i| {
                std::cmp::Reverse(keys[i].last_used_at)
            }),
            SortKey::Expires => sort_view(&mut view, reversed, |i| {
                (keys[i].expires_at.is_none(), keys[i].expires_at)
            }),
            SortKey::Status => sort_view(&mut view, reversed, |i| match keys[i].status(now) {
                KeyStatus::Active => 0,
                KeyStatus::Expired => 1,
                KeyStatus::Revoked => 2,
            }),
        }
        self.view = view;
        self.selected = keep
            .and_then(|row| self.view.iter().position(|&i| self.keys[i].row_id == row))
            .unwrap_or(0)
            .min(self.view.len().saturating_sub(1));
        self.keep_selection_visible();
    }

    pub(super) fn keep_selection_visible(&mut self) {
        self.offset = scroll::follow(
            self.selected,
            self.offset,
            self.view.len(),
            self.page_rows(),
        );
    }

    /// Moves the selection like every list does; returns the detail load
    /// for the new key.
    pub(super) fn step_list(&mut self, step: Step) -> Option<Effect> {
        if self.view.is_empty() {
            return None;
        }
        let target = scroll::moved(self.selected, step, self.view.len(), self.page_rows());
        self.select(target)
    }

    pub(super) fn select(&mut self, index: usize) -> Option<Effect> {
        let before = self.selected_key().map(|k| k.row_id);
        self.selected = index.min(self.view.len().saturating_sub(1));
        self.keep_selection_visible();
        let after = self.selected_key().map(|k| k.row_id);
        if after != before {
            self.detail_scroll = 0;
        }
        match after {
            Some(key_row) if after != before => Some(Effect::LoadDetail { key_row }),
            _ => None,
        }
    }

    /// Scrolls the details by `delta` lines, never past their last line.
    pub(super) fn scroll_detail(&mut self, delta: i32) {
        let next = i32::from(self.detail_scroll)
            .saturating_add(delta)
            .clamp(0, i32::from(self.detail_last_top()));
        self.detail_scroll = u16::try_from(next).unwrap_or(0);
    }

    /// The furthest the details scroll: their last line at the pane's bottom.
    pub(super) fn detail_last_top(&self) -> u16 {
        let rows = usize::from(self.detail_area.height.saturating_sub(2));
        u16::try_from(detail::line_count(self).saturating_sub(rows)).unwrap_or(u16::MAX)
    }

    /// After the details or the pane's size changed.
    pub(super) fn clamp_detail_scroll(&mut self) {
        self.detail_scroll = self.detail_scroll.min(self.detail_last_top());
    }

    /// `y`: the selected key's public prefix, which every CLI command takes
    /// (revoked keys too: they can still be looked up).
    pub(super) fn copy_prefix(&mut self) -> Option<Effect> {
        let Some(prefix) = self.selected_key().map(KeyRecord::prefix) else {
            self.flash("No key selected", true);
            return None;
        };
        self.copying = Some(prefix.clone());
        Some(Effect::Copy(Zeroizing::new(prefix)))
    }

    /// Says where the prefix went; OSC 52 cannot report back, so "sent".
    pub(super) fn copied_message(&mut self, prefix: &str, report: &CopyReport) {
        let (text, error) = match (report.osc52, &report.system) {
            (true, Ok(())) => (
                format!(
                    "Copied {prefix} (the key's prefix): sent by OSC 52 and to the system clipboard"
                ),
                false,
            ),
            (true, Err(_)) => (
                format!("Copied {prefix} (the key's prefix): sent to your terminal by OSC 52"),
                false,
            ),
            (false, Ok(())) => (
                format!("Copied {prefix} (the key's prefix) to the system clipboard"),
                false,
            ),
            (false, Err(why)) => (
                format!(
                    "Could not copy {prefix}: the terminal write failed and the system clipboard said: {why}"
                ),
                true,
            ),
        };
        self.flash(text, error);
    }

    pub(super) fn on_click(&mut self, column: u16, row: u16) -> Option<Effect> {
        if !matches!(self.mode, Mode::Normal) {
            return None;
        }
        let inside =
            |r: Rect| column >= r.x && column < r.x + r.width && row >= r.y && row < r.y + r.height;
        if inside(self.detail_area) {
            self.focus = Focus::Detail;
            return None;
        }
        if inside(self.list_area) {
            self.focus = Focus::List;
            // Border and header take the first two rows.
            let first = self.list_area.y + 2;
            if row >= first {
                let index = self.offset + usize::from(row - first);
                if index < self.view.len() {
                    return self.select(index);
                }
            }
        }
        None
    }
}

/// Sorts `view` by `key`, or by its reverse; both are stable, so keys that
/// tie stay newest first either way.
fn sort_view<K: Ord>(view: &mut [usize], reversed: bool, key: impl Fn(usize) -> K) {
    if reversed {
        view.sort_by_cached_key(|&i| std::cmp::Reverse(key(i)));
    } else {
        view.sort_by_cached_key(|&i| key(i));
    }
}
