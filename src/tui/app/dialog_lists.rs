//! The lists that open over the key list (the MCPs view and the
//! organization picker) and the mouse wheel, which moves whatever list or
//! text is under it. Part of the pure `App` state machine, split out by
//! meaning; every list moves through `tui::scroll`.

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;

use super::{App, Effect, Mode, Pending};
use crate::tui::layout;
use crate::tui::scroll::{self, ListPosition, Step};

impl App {
    /// Rows of MCPs the MCPs view shows on this screen.
    pub(super) fn mcps_rows(&self) -> usize {
        layout::mcps_rows(self.screen_area())
    }

    /// The whole screen; unknown (tests that only set a layout) hides nothing.
    /// The help's first line after `step`: it stops with its last line at
    /// the bottom of the screen (lines as written; a narrow screen that
    /// wraps them is clamped again when drawn).
    pub(super) fn help_scrolled(&self, offset: u16, step: Step) -> u16 {
        let shown = usize::from(self.screen_area().height.saturating_sub(2));
        let last_top = layout::HELP_LINES.saturating_sub(shown);
        let moved = crate::tui::scroll::moved(usize::from(offset), step, last_top + 1, shown);
        u16::try_from(moved).unwrap_or(0)
    }

    pub(super) fn screen_area(&self) -> Rect {
        let (width, height) = self.screen.unwrap_or((u16::MAX, u16::MAX));
        Rect::new(0, 0, width, height)
    }

    pub(super) fn mcps_key(&mut self, key: KeyEvent, mut at: ListPosition) -> Option<Effect> {
        if let Some(step) = scroll::step_for(&key) {
            at.step(step, self.mcps.len(), self.mcps_rows());
            self.mode = Mode::Mcps(at);
            return None;
        }
        match key.code {
            KeyCode::Char('a') | KeyCode::Char('n') => self.mode = Mode::McpForm(Box::default()),
            KeyCode::Char('p') => return self.toggle_pin(at),
            KeyCode::Char('t') | KeyCode::Enter => return self.open_withheld(at),
            KeyCode::Char('d') | KeyCode::Char('x') | KeyCode::Delete => {
                match self.mcps.get(at.selected) {
                    Some(mcp) => {
                        self.mode = Mode::Confirm(Pending::RemoveMcp {
                            slug: mcp.slug.clone(),
                        })
                    }
                    None => self.mode = Mode::Mcps(at),
                }
            }
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('m') => {}
            _ => self.mode = Mode::Mcps(at),
        }
        None
    }

    pub(super) fn orgs_key(&mut self, key: KeyEvent, mut at: ListPosition) -> Option<Effect> {
        if let Some(step) = scroll::step_for(&key) {
            at.step(
                step,
                self.orgs.len(),
                layout::picker_rows(self.screen_area()),
            );
            self.mode = Mode::Orgs(at);
            return None;
        }
        match key.code {
            KeyCode::Enter => {
                let org = self.orgs.get(at.selected)?.slug.clone();
                self.switch_org(org)
            }
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('o') => None,
            _ => {
                self.mode = Mode::Orgs(at);
                None
            }
        }
    }

    /// Shows another organization (from the picker or `:org SLUG`).
    pub(super) fn switch_org(&mut self, org: String) -> Option<Effect> {
        if org == self.org {
            return None;
        }
        self.org = org;
        self.keys.clear();
        self.view.clear();
        self.detail = None;
        self.selected = 0;
        self.offset = 0;
        self.loaded = false;
        self.flash(format!("Switched to organization '{}'", self.org), false);
        Some(self.refresh(true))
    }

    /// The wheel moves whatever list or text is in front: a dialog's list
    /// when one is open, otherwise the pane under the pointer.
    pub(super) fn on_wheel(&mut self, notches: i32, column: u16, row: u16) -> Option<Effect> {
        let step = Step::Wheel(notches);
        if matches!(self.mode, Mode::Normal) {
            // The pane under the pointer, as in any terminal or browser;
            // focus stays where the keyboard left it.
            let under = ratatui::layout::Position::new(column, row);
            if self.detail_area.contains(under) {
                self.scroll_detail(notches.saturating_mul(scroll::WHEEL_ROWS));
                return None;
            }
            if self.list_area.contains(under) {
                return self.step_list(step);
            }
            return None;
        }
        let (mcps_rows, picker_rows) = (self.mcps_rows(), layout::picker_rows(self.screen_area()));
        let palette_rows = layout::palette_rows(self.screen_area());
        match &mut self.mode {
            Mode::Mcps(at) => at.step(step, self.mcps.len(), mcps_rows),
            Mode::Orgs(at) => at.step(step, self.orgs.len(), picker_rows),
            Mode::KeyForm(form) => form.wheel(notches),
            Mode::Palette(palette) => {
                let len = palette.matches().len();
                palette.at.step(step, len, palette_rows)
            }
            Mode::Withheld(view) => {
                let len = view.tools.len();
                view.at.step(step, len, super::WITHHELD_ROWS)
            }
            _ => {}
        }
        None
    }
}
