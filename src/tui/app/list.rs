//! The key list as a view: filtering, sorting, selection, scrolling and
//! clicks. Part of the pure `App` state machine, split out by meaning.

use ratatui::layout::Rect;

use super::natural::natural_key;
use super::{App, Effect, Focus, Mode, SortKey};
use crate::domain::KeyStatus;
use crate::tui::panes::detail;
use crate::tui::scroll::{self, Step};

impl App {
    /// Recomputes filter and sort, keeping `keep` selected if still visible.
    pub(super) fn rebuild_view(&mut self, keep: Option<i64>) {
        let needle = self.filter.to_lowercase();
        let mut view: Vec<usize> = self
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| {
                needle.is_empty()
                    || k.name.to_lowercase().contains(&needle)
                    || k.prefix().to_lowercase().contains(&needle)
            })
            .map(|(i, _)| i)
            .collect();
        let keys = &self.keys;
        let now = self.now;
        match self.sort {
            // The store lists newest first already.
            SortKey::Created => {}
            SortKey::Name => view.sort_by_cached_key(|&i| natural_key(&keys[i].name)),
            SortKey::LastUsed => view.sort_by_key(|&i| std::cmp::Reverse(keys[i].last_used_at)),
            SortKey::Expires => {
                view.sort_by_key(|&i| (keys[i].expires_at.is_none(), keys[i].expires_at))
            }
            SortKey::Status => view.sort_by_key(|&i| match keys[i].status(now) {
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
