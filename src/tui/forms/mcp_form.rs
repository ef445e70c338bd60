//! The MCP form: id, name, a stdio command or a Streamable HTTP URL, and
//! a timeout. Validated with the same rules as `plexmcp mcps add`; its
//! errors follow the fields' values once a submit has shown them, as the
//! key form's do.

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use tui_input::Input;

use super::{FormOutcome, place_error, replace_errors, text_key};
use crate::admin::{self, AdminError, McpRequest};
use crate::rules::{Field, RuleError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpField {
    Id,
    Name,
    Transport,
    Target,
    Timeout,
}

const MCP_FIELDS: [McpField; 5] = [
    McpField::Id,
    McpField::Name,
    McpField::Transport,
    McpField::Target,
    McpField::Timeout,
];

/// Registering an MCP: id, name, stdio command or URL, timeout.
#[derive(Debug, Clone)]
pub struct McpForm {
    pub id: Input,
    pub name: Input,
    /// `true` for a stdio command, `false` for a Streamable HTTP URL.
    pub stdio: bool,
    pub target: Input,
    pub timeout: Input,
    pub focus: McpField,
    pub errors: Vec<RuleError>,
    pub general_error: Option<String>,
    pub busy: bool,
    /// A submit has shown field errors: from now on they follow the values.
    checked: bool,
}

impl Default for McpForm {
    fn default() -> Self {
        McpForm {
            id: Input::default(),
            name: Input::default(),
            stdio: true,
            target: Input::default(),
            timeout: Input::new("30".into()),
            focus: McpField::Id,
            errors: Vec::new(),
            general_error: None,
            busy: false,
            checked: false,
        }
    }
}

impl McpForm {
    pub fn handle_key(&mut self, key: KeyEvent) -> FormOutcome<McpRequest> {
        let at = MCP_FIELDS
            .iter()
            .position(|f| *f == self.focus)
            .unwrap_or(0);
        match key.code {
            KeyCode::Esc => return FormOutcome::Cancel,
            KeyCode::Tab => self.focus = MCP_FIELDS[(at + 1) % MCP_FIELDS.len()],
            KeyCode::BackTab => {
                self.focus = MCP_FIELDS[(at + MCP_FIELDS.len() - 1) % MCP_FIELDS.len()]
            }
            KeyCode::Enter => return self.submit(),
            _ => {
                let before = self.values();
                match self.focus {
                    McpField::Id => text_key(&mut self.id, key),
                    McpField::Name => text_key(&mut self.name, key),
                    McpField::Target => text_key(&mut self.target, key),
                    McpField::Timeout => text_key(&mut self.timeout, key),
                    McpField::Transport => {
                        if matches!(
                            key.code,
                            KeyCode::Left | KeyCode::Right | KeyCode::Char(' ')
                        ) {
                            self.stdio = !self.stdio;
                        }
                    }
                }
                if self.values() != before {
                    self.revalidate();
                }
            }
        }
        FormOutcome::Stay
    }

    /// What the fields say now, to tell an edit from a cursor move.
    fn values(&self) -> (String, String, bool, String, String) {
        (
            self.id.value().to_string(),
            self.name.value().to_string(),
            self.stdio,
            self.target.value().to_string(),
            self.timeout.value().to_string(),
        )
    }

    /// As the key form does: after a submit showed errors, the changed
    /// field's error follows its value. The transport decides what the
    /// target field is, so switching it re-checks the target too.
    fn revalidate(&mut self) {
        if !self.checked {
            return;
        }
        let touched: &[Field] = match self.focus {
            McpField::Id => &[Field::Slug],
            McpField::Name => &[Field::Name],
            McpField::Transport | McpField::Target => &[Field::Command, Field::Url],
            McpField::Timeout => &[Field::Timeout],
        };
        let fresh = match self.build() {
            Ok(_) => Vec::new(),
            Err(AdminError::Invalid(errors)) => errors,
            Err(_) => return,
        };
        replace_errors(&mut self.errors, fresh, touched);
    }

    pub fn error_for(&self, field: Field) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    fn submit(&mut self) -> FormOutcome<McpRequest> {
        if self.busy {
            return FormOutcome::Stay;
        }
        self.general_error = None;
        match self.build() {
            Ok(request) => {
                self.errors.clear();
                self.busy = true;
                FormOutcome::Submit(request)
            }
            Err(e) => {
                self.show_error(e);
                FormOutcome::Stay
            }
        }
    }

    /// The request the fields make, or every broken rule at once.
    fn build(&self) -> Result<McpRequest, AdminError> {
        let timeout = self.timeout.value().trim();
        let timeout_secs = timeout.parse::<u64>().ok();
        let name = self.name.value().trim();
        let target = self.target.value().to_string();
        let request = McpRequest {
            slug: self.id.value().trim().to_string(),
            name: (!name.is_empty()).then(|| name.to_string()),
            stdio: self.stdio.then(|| target.clone()),
            url: (!self.stdio).then_some(target),
            env: Vec::new(),
            inherit_env: Vec::new(),
            headers: Vec::new(),
            timeout_secs,
            // Pinned from the MCP list (a key), as `mcps pin` does.
            pinned: false,
        };
        let mut errors = match admin::validate_mcp_request(&request) {
            Ok(_) => Vec::new(),
            Err(AdminError::Invalid(errors)) => errors,
            Err(e) => return Err(e),
        };
        if timeout_secs.is_none() {
            errors.retain(|e| e.field != Field::Timeout);
            errors.push(RuleError {
                field: Field::Timeout,
                message: format!("timeout '{timeout}' is not a whole number of seconds"),
            });
        }
        if errors.is_empty() {
            Ok(request)
        } else {
            Err(AdminError::Invalid(errors))
        }
    }

    pub fn show_error(&mut self, error: AdminError) {
        let first = place_error(
            error,
            &mut self.errors,
            &mut self.general_error,
            &mut self.busy,
            &mut self.checked,
        );
        if let Some(field) = first {
            self.focus = match field {
                Field::Slug => McpField::Id,
                Field::Name => McpField::Name,
                Field::Timeout => McpField::Timeout,
                _ => McpField::Target,
            };
        }
    }
}
