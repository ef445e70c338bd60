//! The key form's tool picker for one MCP (`t` on a row of the MCP
//! checklist): all tools, or only the ticked ones. The names come from the
//! upstream's live list, fetched off the UI thread (it arrives as
//! `Action::ToolsLoaded`); until then, or when the upstream cannot be
//! reached, names can be typed in and added. Typed names are checked with
//! the CLI's rules, so the console accepts exactly what `--mcp` does.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::access_preview::ToolList;
use crate::domain::ToolAccess;
use crate::rules;

#[derive(Debug, Clone)]
pub struct ToolPicker {
    pub slug: String,
    /// Every tool, including ones the upstream adds later.
    pub all: bool,
    /// What the upstream lists (as far as is known).
    pub listed: ToolList,
    /// The ticked names, sorted.
    pub chosen: Vec<String>,
    /// 0 is the "All tools" row, then one row per name, then the add field.
    pub cursor: usize,
    pub typed: Input,
    pub error: Option<String>,
}

/// What a key press in the picker asks of the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickerOutcome {
    Stay,
    /// Keep this choice for the MCP.
    Done(ToolAccess),
    /// Close without changing the MCP's tools.
    Cancel,
}

impl ToolPicker {
    /// A picker for `slug`, starting from what the form has for it now.
    pub fn open(slug: &str, tools: &ToolAccess, listed: ToolList) -> ToolPicker {
        let (all, chosen) = match tools {
            ToolAccess::All => (true, Vec::new()),
            ToolAccess::Only(names) => (false, names.clone()),
        };
        ToolPicker {
            slug: slug.to_owned(),
            all,
            listed,
            chosen,
            cursor: 0,
            typed: Input::default(),
            error: None,
        }
    }

    /// The rows' names: the upstream's, then chosen names it does not list
    /// (typed, or granted before), each with whether the upstream lists it.
    pub fn names(&self) -> Vec<(&str, bool)> {
        let listed: &[String] = match &self.listed {
            ToolList::Listed { names, .. } => names,
            _ => &[],
        };
        let mut rows: Vec<(&str, bool)> = listed.iter().map(|n| (n.as_str(), true)).collect();
        rows.extend(
            self.chosen
                .iter()
                .filter(|c| !listed.contains(c))
                .map(|c| (c.as_str(), false)),
        );
        rows
    }

    /// The row of the add field.
    pub fn add_row(&self) -> usize {
        self.names().len() + 1
    }

    pub fn is_ticked(&self, name: &str) -> bool {
        self.chosen.iter().any(|c| c == name)
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> PickerOutcome {
        let add_row = self.add_row();
        match key.code {
            KeyCode::Esc => return PickerOutcome::Cancel,
            KeyCode::Up => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Down | KeyCode::Tab => self.cursor = (self.cursor + 1).min(add_row),
            KeyCode::BackTab => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Enter if self.cursor == add_row && !self.typed.value().trim().is_empty() => {
                self.add_typed()
            }
            KeyCode::Enter => return self.done(),
            _ if self.cursor == add_row => {
                self.typed.handle_event(&Event::Key(key));
                self.error = None;
            }
            KeyCode::Char(' ') if self.cursor == 0 => self.all = !self.all,
            KeyCode::Char(' ') => {
                let name = self
                    .names()
                    .get(self.cursor - 1)
                    .map(|(n, _)| n.to_string());
                if let Some(name) = name {
                    self.toggle(name);
                }
            }
            _ => {}
        }
        PickerOutcome::Stay
    }

    fn toggle(&mut self, name: String) {
        // Ticking a tool means "only the ticked ones".
        self.all = false;
        match self.chosen.binary_search(&name) {
            Ok(at) => {
                self.chosen.remove(at);
            }
            Err(at) => self.chosen.insert(at, name),
        }
    }

    fn add_typed(&mut self) {
        match rules::tool_name(self.typed.value().trim()) {
            Ok(name) => {
                if !self.is_ticked(&name) {
                    self.toggle(name);
                }
                self.all = false;
                self.typed = Input::default();
                self.error = None;
            }
            Err(e) => self.error = Some(e.message),
        }
    }

    fn done(&mut self) -> PickerOutcome {
        if self.all {
            return PickerOutcome::Done(ToolAccess::All);
        }
        if self.chosen.is_empty() {
            self.error = Some("tick at least one tool, or choose All tools".into());
            return PickerOutcome::Stay;
        }
        match rules::tool_list(self.chosen.iter().map(String::as_str)) {
            Ok(tools) => PickerOutcome::Done(tools),
            Err(e) => {
                self.error = Some(e.message);
                PickerOutcome::Stay
            }
        }
    }

    /// The upstream's answer, if it is about this picker's MCP.
    pub fn listed(&mut self, slug: &str, list: &ToolList) {
        if slug == self.slug {
            self.listed = list.clone();
            self.cursor = self.cursor.min(self.add_row());
        }
    }
}
