//! What input may do when its effect could not be seen or would lose
//! something for good: behind the "Terminal too small" screen only quitting
//! works, and quitting over the one showing of a new key asks first.

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use zeroize::Zeroizing;

use super::{App, Effect, Mode, ShowKey};
use crate::tui::action::is_force_quit;
use crate::tui::layout;

impl App {
    /// The terminal is too small to draw the console, so only the "too
    /// small" message is on screen and input must not act on what is hidden.
    pub fn too_small(&self) -> bool {
        self.screen
            .is_some_and(|(w, h)| layout::too_small(Rect::new(0, 0, w, h)))
    }

    /// Quits, unless that would lose a key shown once: then asks first.
    pub(super) fn ask_or_quit(&mut self) -> Option<Effect> {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::ShowKey(show) => {
                self.mode = Mode::ConfirmQuit(show);
                None
            }
            Mode::ConfirmQuit(show) => {
                self.mode = Mode::ConfirmQuit(show); // only `y` answers
                None
            }
            _ => self.quit(),
        }
    }

    /// Only "too small" is on screen: quitting (and answering the quit
    /// question, which that screen shows) is all a key may do.
    pub(super) fn key_while_too_small(&mut self, key: KeyEvent) -> Option<Effect> {
        if is_force_quit(&key) || key.code == KeyCode::Char('q') {
            return self.ask_or_quit();
        }
        if matches!(self.mode, Mode::ConfirmQuit(_)) {
            return self.on_key(key);
        }
        None
    }

    /// The one showing of a new key: copy, close, or ask before quitting.
    pub(super) fn show_once_key(&mut self, show: Box<ShowKey>, key: KeyEvent) -> Option<Effect> {
        match key.code {
            KeyCode::Char('q') => {
                self.mode = Mode::ShowKey(show);
                self.ask_or_quit()
            }
            KeyCode::Char('c') => {
                let text = Zeroizing::new(show.key.expose().to_string());
                self.mode = Mode::ShowKey(show);
                Some(Effect::Copy(text))
            }
            // Closing drops `show`, which zeroizes the key.
            KeyCode::Enter | KeyCode::Esc => None,
            _ => {
                self.mode = Mode::ShowKey(show);
                None
            }
        }
    }

    /// "The key will not be shown again. Quit anyway?": only `y` quits.
    pub(super) fn confirm_quit_key(&mut self, show: Box<ShowKey>, key: KeyEvent) -> Option<Effect> {
        match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                drop(show);
                self.quit()
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                self.mode = Mode::ShowKey(show);
                None
            }
            _ => {
                self.mode = Mode::ConfirmQuit(show);
                None
            }
        }
    }
}
