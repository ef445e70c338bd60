//! Keys of the `:` command palette: type to narrow, move, Enter runs.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use tui_input::backend::crossterm::EventHandler;

use super::{App, Effect, Mode};
use crate::tui::layout;
use crate::tui::palette::{Palette, Run};
use crate::tui::scroll::Step;

impl App {
    pub(super) fn palette_key(
        &mut self,
        mut palette: Box<Palette>,
        key: KeyEvent,
    ) -> Option<Effect> {
        let rows = layout::palette_rows(self.screen_area());
        let len = palette.matches().len();
        let step = match key.code {
            KeyCode::Up => Some(Step::Up),
            KeyCode::Down => Some(Step::Down),
            KeyCode::PageUp => Some(Step::PageUp),
            KeyCode::PageDown => Some(Step::PageDown),
            _ => None,
        };
        if let Some(step) = step {
            palette.at.step(step, len, rows);
            self.mode = Mode::Palette(palette);
            return None;
        }
        match key.code {
            KeyCode::Esc => None,
            KeyCode::Enter => match palette.run() {
                Ok(Run::Intent(intent)) => self.run_intent(intent),
                Ok(Run::SwitchOrg(slug)) => {
                    if self.orgs.iter().any(|o| o.slug == slug) {
                        self.switch_org(slug)
                    } else {
                        self.flash(format!("No organization '{slug}' (o lists them)"), true);
                        self.mode = Mode::Palette(palette);
                        None
                    }
                }
                Ok(Run::Filter(text)) => {
                    self.filter = text;
                    self.rebuild_view(self.selected_key().map(|k| k.row_id));
                    self.selected_key()
                        .map(|k| Effect::LoadDetail { key_row: k.row_id })
                }
                Err(why) => {
                    self.flash(why, true);
                    self.mode = Mode::Palette(palette);
                    None
                }
            },
            _ => {
                palette.input.handle_event(&Event::Key(key));
                // A new word is a new list: start again at its best match.
                palette.at = Default::default();
                self.mode = Mode::Palette(palette);
                None
            }
        }
    }
}
