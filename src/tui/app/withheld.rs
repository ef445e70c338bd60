//! Tool pinning in the console (part of the pure `App` state machine):
//! `p` in the MCPs view pins or unpins the selected MCP, `t` opens a
//! pinned MCP's withheld tools — each with the diff of what was approved
//! against what its upstream lists now — and `a`/Enter approves the
//! selected one. The store work is the effects'; this only asks for it.

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::{App, Effect, Mode};
use crate::store::ToolRecord;
use crate::tui::scroll::{self, ListPosition};
use crate::tui::tool_diff::{DiffLine, tool_diff};

/// A pinned MCP's withheld tools, as the approval view shows them.
#[derive(Debug, Clone)]
pub struct WithheldView {
    pub slug: String,
    /// New or changed tools still listed, by name, each with its diff.
    pub tools: Vec<(ToolRecord, Vec<DiffLine>)>,
    pub at: ListPosition,
    /// The first load has arrived.
    pub loaded: bool,
}

impl WithheldView {
    fn loading(slug: String) -> WithheldView {
        WithheldView {
            slug,
            tools: Vec::new(),
            at: ListPosition::default(),
            loaded: false,
        }
    }

    pub fn selected(&self) -> Option<&(ToolRecord, Vec<DiffLine>)> {
        self.tools.get(self.at.selected)
    }
}

/// Rows of tools the approval view lists at once; the diff gets the rest.
pub const WITHHELD_ROWS: usize = 5;

impl App {
    /// `p` in the MCPs view: pin the selected MCP, or unpin a pinned one.
    pub(super) fn toggle_pin(&mut self, at: ListPosition) -> Option<Effect> {
        self.mode = Mode::Mcps(at);
        let slug = self.mcps.get(at.selected)?.slug.clone();
        let pinned = !self.pin_summary(&slug).pinned;
        Some(Effect::SetPinned {
            org: self.org.clone(),
            slug,
            pinned,
        })
    }

    /// `t` in the MCPs view: the selected pinned MCP's withheld tools.
    pub(super) fn open_withheld(&mut self, at: ListPosition) -> Option<Effect> {
        self.mode = Mode::Mcps(at);
        let slug = self.mcps.get(at.selected)?.slug.clone();
        if !self.pin_summary(&slug).pinned {
            self.flash(
                format!("MCP '{slug}' is not pinned: it withholds nothing (p pins it)"),
                false,
            );
            return None;
        }
        self.mode = Mode::Withheld(Box::new(WithheldView::loading(slug.clone())));
        Some(Effect::LoadWithheld {
            org: self.org.clone(),
            slug,
        })
    }

    pub(super) fn withheld_key(
        &mut self,
        mut view: Box<WithheldView>,
        key: KeyEvent,
    ) -> Option<Effect> {
        if let Some(step) = scroll::step_for(&key) {
            view.at.step(step, view.tools.len(), WITHHELD_ROWS);
            self.mode = Mode::Withheld(view);
            return None;
        }
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('t') => {
                self.back_to_mcps(&view.slug);
                None
            }
            KeyCode::Char('a') | KeyCode::Enter => {
                let Some((tool, _)) = view.selected() else {
                    self.mode = Mode::Withheld(view);
                    return None;
                };
                let effect = Effect::ApproveTool {
                    org: self.org.clone(),
                    slug: view.slug.clone(),
                    tool: tool.name.clone(),
                };
                self.mode = Mode::Withheld(view);
                Some(effect)
            }
            _ => {
                self.mode = Mode::Withheld(view);
                None
            }
        }
    }

    /// The MCPs view with the cursor on `slug`.
    fn back_to_mcps(&mut self, slug: &str) {
        let selected = self.mcps.iter().position(|m| m.slug == slug);
        let mut at = ListPosition::at(selected.unwrap_or(0));
        at.clamp(self.mcps.len(), self.mcps_rows());
        self.mode = Mode::Mcps(at);
    }

    /// A load of `slug`'s tools: shown if its view is still open.
    pub(super) fn on_withheld_loaded(&mut self, org: &str, slug: &str, tools: Vec<ToolRecord>) {
        let Mode::Withheld(view) = &mut self.mode else {
            return;
        };
        if org != self.org || view.slug != slug {
            return;
        }
        let keep = view.selected().map(|(t, _)| t.name.clone());
        view.tools = tools
            .into_iter()
            .filter(|t| t.state.is_pending())
            .map(|t| {
                let diff = tool_diff(t.approved_tool.as_deref(), &t.seen_tool);
                (t, diff)
            })
            .collect();
        view.loaded = true;
        let at = keep
            .and_then(|name| view.tools.iter().position(|(t, _)| t.name == name))
            .unwrap_or(view.at.selected);
        view.at = ListPosition::at(at);
        view.at.clamp(view.tools.len(), WITHHELD_ROWS);
    }

    /// The effect that reloads the open approval view, if one is open.
    pub(super) fn reload_withheld(&self) -> Option<Effect> {
        match &self.mode {
            Mode::Withheld(view) => Some(Effect::LoadWithheld {
                org: self.org.clone(),
                slug: view.slug.clone(),
            }),
            _ => None,
        }
    }

    /// Pinning at a glance for `slug` (nothing recorded: unpinned, no tools).
    pub fn pin_summary(&self, slug: &str) -> crate::store::PinSummary {
        self.pins.get(slug).copied().unwrap_or_default()
    }

    /// How the console's server's connection to `mcp` is doing; `None`
    /// when it has not been started (nothing has called it yet).
    pub fn health_of(&self, mcp: &crate::domain::Mcp) -> Option<&crate::upstream::UpstreamHealth> {
        let name = crate::server::upstream_name(&mcp.slug, mcp.row_id);
        self.upstream_health.iter().find(|h| h.name == name)
    }
}
