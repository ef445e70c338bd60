//! The rotate dialog as plain state: first the choice of what becomes of
//! the old key (keep it until revoked, revoke it now, or a grace period),
//! then, for a grace period, its length and an optional idle limit, read
//! with the same parser as `keys rotate --grace` and `--revoke-when-idle`.
//! An expired key has no time left to hand over, so it is offered only a
//! replacement: the dialog never says it "keeps working".

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::domain::{Handover, KeyRecord, KeyStatus, Timestamp};
use crate::rules::{self, Field, RuleError};

/// The grace the dialog starts with: a day covers most deploy cycles.
pub const DEFAULT_GRACE: &str = "24h";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateStep {
    /// `k` keep, `r` revoke now, `g` grace period.
    Choose,
    /// The grace period's fields.
    Grace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraceField {
    Grace,
    Idle,
}

/// What a key press in the dialog asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    Stay,
    Cancel,
    Rotate(Handover),
}

#[derive(Debug, Clone)]
pub struct RotateDialog {
    pub id: String,
    pub name: String,
    /// The key has expired: nothing is handed over, no grace is offered.
    pub expired: bool,
    pub step: RotateStep,
    pub grace: Input,
    /// Empty: no idle limit.
    pub idle: Input,
    pub focus: GraceField,
    /// The first problem with the fields; once shown, it follows their values.
    pub error: Option<RuleError>,
}

impl RotateDialog {
    pub fn new(key: &KeyRecord, now: Timestamp) -> RotateDialog {
        RotateDialog {
            id: key.id.clone(),
            name: key.name.clone(),
            expired: key.status(now) == KeyStatus::Expired,
            step: RotateStep::Choose,
            grace: Input::new(DEFAULT_GRACE.to_owned()),
            idle: Input::default(),
            focus: GraceField::Grace,
            error: None,
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> RotateOutcome {
        match self.step {
            RotateStep::Choose => self.choose_key(key),
            RotateStep::Grace => self.grace_key(key),
        }
    }

    fn choose_key(&mut self, key: KeyEvent) -> RotateOutcome {
        match (key.code, self.expired) {
            (KeyCode::Esc | KeyCode::Char('n'), _) => RotateOutcome::Cancel,
            // The expired key stays as it is: listed, expired.
            (KeyCode::Char('y') | KeyCode::Enter, true) => {
                RotateOutcome::Rotate(Handover::UNTIL_REVOKED)
            }
            (KeyCode::Char('k'), false) => RotateOutcome::Rotate(Handover::UNTIL_REVOKED),
            (KeyCode::Char('r'), false) => RotateOutcome::Rotate(Handover::RevokeNow),
            (KeyCode::Char('g'), false) => {
                self.step = RotateStep::Grace;
                RotateOutcome::Stay
            }
            _ => RotateOutcome::Stay,
        }
    }

    fn grace_key(&mut self, key: KeyEvent) -> RotateOutcome {
        match key.code {
            // Back to the choice, not out: the operator may prefer another.
            KeyCode::Esc => {
                self.step = RotateStep::Choose;
                RotateOutcome::Stay
            }
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
                self.focus = match self.focus {
                    GraceField::Grace => GraceField::Idle,
                    GraceField::Idle => GraceField::Grace,
                };
                RotateOutcome::Stay
            }
            KeyCode::Enter => match self.handover() {
                Ok(handover) => RotateOutcome::Rotate(handover),
                Err(e) => {
                    self.focus = if e.message.contains("idle") {
                        GraceField::Idle
                    } else {
                        GraceField::Grace
                    };
                    self.error = Some(e);
                    RotateOutcome::Stay
                }
            },
            _ => {
                let input = match self.focus {
                    GraceField::Grace => &mut self.grace,
                    GraceField::Idle => &mut self.idle,
                };
                input.handle_event(&Event::Key(key));
                // An error on screen is about the values on screen.
                if self.error.is_some() {
                    self.error = self.handover().err();
                }
                RotateOutcome::Stay
            }
        }
    }

    /// The hand-over the fields describe, or the first thing wrong with them.
    pub fn handover(&self) -> Result<Handover, RuleError> {
        let grace = rules::span(self.grace.value(), "grace period", Field::Grace)?;
        let idle = match self.idle.value().trim() {
            "" => None,
            idle => Some(rules::span(idle, "idle limit", Field::Grace)?),
        };
        Ok(Handover::Keep {
            grace: Some(grace),
            idle,
        })
    }
}
