//! The console's forms as plain state: the key form (create and edit) here
//! and the MCP form in `forms/mcp_form.rs`. Each field owns its key
//! handling; a small focus enum moves between fields. Submitting validates
//! with the same rules as the CLI and either returns errors per field or a
//! request for the store.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use std::collections::BTreeMap;

use crate::access_preview::{McpPreview, ToolList, preview};
use crate::admin::{self, AdminError, EditRequest, KeyRequest};
use crate::domain::{KeyRecord, McpAccess, McpGrant, RateLimit, Timestamp, ToolAccess};
use crate::rules::{Expiry, Field, RateLimitSpec, RuleError};
use crate::tui::scroll::{self, Step};

mod mcp_form;
mod tool_picker;
pub use mcp_form::{McpField, McpForm};
pub use tool_picker::{PickerOutcome, ToolPicker};

/// Expiry choices offered by the form, cycled with ←/→.
pub const EXPIRY_CHOICES: [(&str, &str); 5] = [
    ("30 days", "30d"),
    ("90 days", "90d"),
    ("1 year", "1y"),
    ("Never", "never"),
    ("Custom date", ""),
];
const CUSTOM: usize = 4;
/// MCPs PgUp/PgDn move by in the checklist: how many it shows at 80×24
/// with nothing else in the form (its height is only known when drawn).
const CHECKLIST_PAGE: usize = 8;
const DEFAULT_EXPIRY: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    Name,
    Description,
    Expiry,
    CustomDate,
    RateLimit,
    Burst,
    Access,
    McpList,
}

/// What a form wants after a key press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormOutcome<R> {
    Stay,
    Cancel,
    /// Saving an edit that changes nothing: closes, and says so.
    Unchanged,
    Submit(R),
    /// Fetch this MCP's tool list from its upstream (the tool picker opened).
    LoadTools(String),
}

#[derive(Debug, Clone)]
pub struct KeyForm {
    /// The key being edited; `None` when creating.
    pub editing: Option<KeyRecord>,
    pub name: Input,
    pub description: Input,
    pub expiry: usize,
    pub custom_date: Input,
    /// `120/min`, `5/s`, `1000/h`; blank or `none`: no limit of its own.
    pub rate_limit: Input,
    /// Blank: the rate's count.
    pub burst: Input,
    pub all_mcps: bool,
    /// The org's MCPs and whether each is ticked.
    pub mcps: Vec<(String, bool)>,
    /// The MCPs limited to some of their tools (absent: all tools).
    pub tool_limits: BTreeMap<String, Vec<String>>,
    /// The tool picker of one MCP, while it is open (`t`).
    pub picker: Option<ToolPicker>,
    /// The upstreams' tool lists as far as the console knows them, for the
    /// picker and the before/after access lines.
    pub tool_lists: BTreeMap<String, ToolList>,
    pub mcp_cursor: usize,
    pub focus: KeyField,
    pub errors: Vec<RuleError>,
    /// An error not tied to one field (plan limit, store failure).
    pub general_error: Option<String>,
    /// Waiting for the store; further submits are ignored.
    pub busy: bool,
    /// A submit has shown field errors: from now on they follow the values.
    checked: bool,
}

/// A request the form produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySubmit {
    Create {
        request: KeyRequest,
        rate_limit: Option<RateLimit>,
    },
    Edit {
        id: String,
        request: EditRequest,
        /// `None`: the key's rate limit stays as it is.
        rate_limit: Option<RateLimitSpec>,
    },
}

impl KeyForm {
    pub fn create(mcp_slugs: &[String]) -> KeyForm {
        KeyForm {
            editing: None,
            name: Input::default(),
            description: Input::default(),
            expiry: DEFAULT_EXPIRY,
            custom_date: Input::default(),
            rate_limit: Input::default(),
            burst: Input::default(),
            all_mcps: true,
            mcps: mcp_slugs.iter().map(|s| (s.clone(), false)).collect(),
            tool_limits: BTreeMap::new(),
            picker: None,
            tool_lists: BTreeMap::new(),
            mcp_cursor: 0,
            focus: KeyField::Name,
            errors: Vec::new(),
            general_error: None,
            busy: false,
            checked: false,
        }
    }

    pub fn edit(key: &KeyRecord, mcp_slugs: &[String]) -> KeyForm {
        let mut form = KeyForm::create(mcp_slugs);
        form.name = Input::new(key.name.clone());
        form.description = Input::new(key.description.clone().unwrap_or_default());
        if let Some(limit) = key.rate_limit {
            form.rate_limit = Input::new(format!("{}/{}", limit.requests, limit.per.as_str()));
            if limit.burst != limit.requests {
                form.burst = Input::new(limit.burst.to_string());
            }
        }
        if let McpAccess::Only(grants) = &key.access {
            form.all_mcps = false;
            for (slug, on) in &mut form.mcps {
                *on = key.access.allows(slug);
            }
            for grant in grants {
                if let ToolAccess::Only(tools) = &grant.tools {
                    form.tool_limits.insert(grant.slug.clone(), tools.clone());
                }
            }
        }
        form.editing = Some(key.clone());
        form
    }

    /// Fields in tab order; hidden ones are skipped.
    fn fields(&self) -> Vec<KeyField> {
        let mut fields = vec![KeyField::Name, KeyField::Description];
        if self.editing.is_none() {
            fields.push(KeyField::Expiry);
            if self.expiry == CUSTOM {
                fields.push(KeyField::CustomDate);
            }
        }
        fields.push(KeyField::RateLimit);
        if self.burst_shown() {
            fields.push(KeyField::Burst);
        }
        fields.push(KeyField::Access);
        if !self.all_mcps && !self.mcps.is_empty() {
            fields.push(KeyField::McpList);
        }
        fields
    }

    fn move_focus(&mut self, forward: bool) {
        let fields = self.fields();
        let at = fields.iter().position(|f| *f == self.focus).unwrap_or(0);
        let next = if forward {
            (at + 1) % fields.len()
        } else {
            (at + fields.len() - 1) % fields.len()
        };
        self.focus = fields[next];
    }

    /// The burst field only means something next to a rate.
    pub fn burst_shown(&self) -> bool {
        let rate = self.rate_limit.value().trim();
        !rate.is_empty() && !rate.eq_ignore_ascii_case("none")
    }

    /// The rate limit the fields ask for: `None` for no limit of its own
    /// (blank or `none`), read by the same rules as `--rate-limit`.
    fn rate_asked(&self) -> Result<Option<RateLimit>, RuleError> {
        if !self.burst_shown() {
            return Ok(None);
        }
        let burst = Some(self.burst.value().trim()).filter(|b| !b.is_empty());
        crate::rules::rate_limit(self.rate_limit.value(), burst).map(RateLimitSpec::limit)
    }

    pub fn error_for(&self, field: Field) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    pub fn access(&self) -> McpAccess {
        if self.all_mcps {
            McpAccess::All
        } else {
            McpAccess::only(
                self.mcps
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(slug, _)| McpGrant {
                        slug: slug.clone(),
                        tools: self.tools_of(slug),
                    })
                    .collect(),
            )
        }
    }

    /// The tools the form grants of `slug` if it is ticked.
    pub fn tools_of(&self, slug: &str) -> ToolAccess {
        match self.tool_limits.get(slug) {
            Some(tools) => ToolAccess::only(tools.clone()),
            None => ToolAccess::All,
        }
    }

    /// What the key can call now (`None` when creating: nothing yet).
    pub fn access_before(&self) -> Option<Vec<McpPreview>> {
        let key = self.editing.as_ref()?;
        Some(self.preview_of(&key.access))
    }

    /// What it could call once the form is saved.
    pub fn access_after(&self) -> Vec<McpPreview> {
        self.preview_of(&self.access())
    }

    fn preview_of(&self, access: &McpAccess) -> Vec<McpPreview> {
        preview(access, self.mcps.iter().map(|(s, _)| s.as_str()), |slug| {
            self.tool_lists.get(slug).unwrap_or(&ToolList::Pending)
        })
    }

    /// An upstream's tool list arrived (or could not be had).
    pub fn tools_loaded(&mut self, slug: &str, list: &ToolList) {
        self.tool_lists.insert(slug.to_owned(), list.clone());
        if let Some(picker) = &mut self.picker {
            picker.listed(slug, list);
        }
    }

    /// Opens the tool picker on the MCP under the checklist's cursor.
    fn open_picker(&mut self) -> Option<String> {
        let (slug, _) = self.mcps.get(self.mcp_cursor)?;
        let slug = slug.clone();
        let listed = self
            .tool_lists
            .get(&slug)
            .cloned()
            .unwrap_or(ToolList::Pending);
        self.picker = Some(ToolPicker::open(&slug, &self.tools_of(&slug), listed));
        Some(slug)
    }

    pub fn expiry_spec(&self) -> String {
        if self.expiry == CUSTOM {
            self.custom_date.value().trim().to_string()
        } else {
            EXPIRY_CHOICES[self.expiry].1.to_string()
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent, now: Timestamp) -> FormOutcome<KeySubmit> {
        if let Some(picker) = &mut self.picker {
            match picker.handle_key(key) {
                PickerOutcome::Stay => {}
                PickerOutcome::Cancel => self.picker = None,
                PickerOutcome::Done(tools) => {
                    let slug = picker.slug.clone();
                    self.picker = None;
                    match tools {
                        ToolAccess::All => self.tool_limits.remove(&slug),
                        ToolAccess::Only(names) => self.tool_limits.insert(slug.clone(), names),
                    };
                    // Choosing its tools grants the MCP.
                    if let Some((_, on)) = self.mcps.iter_mut().find(|(s, _)| *s == slug) {
                        *on = true;
                    }
                    self.revalidate(now);
                }
            }
            return FormOutcome::Stay;
        }
        if self.focus == KeyField::McpList && key.code == KeyCode::Char('t') {
            return match self.open_picker() {
                Some(slug) => FormOutcome::LoadTools(slug),
                None => FormOutcome::Stay,
            };
        }
        if self.focus == KeyField::McpList && key.code == KeyCode::Char(' ') {
            self.field_key(key);
            self.revalidate(now);
            // A newly ticked MCP's tools are asked for once, so an edit's
            // gains/loses lines can count them.
            return match self.mcps.get(self.mcp_cursor) {
                Some((slug, true)) if !self.tool_lists.contains_key(slug) => {
                    let slug = slug.clone();
                    self.tool_lists.insert(slug.clone(), ToolList::Pending);
                    FormOutcome::LoadTools(slug)
                }
                _ => FormOutcome::Stay,
            };
        }
        match key.code {
            KeyCode::Esc => return FormOutcome::Cancel,
            KeyCode::Tab => self.move_focus(true),
            KeyCode::BackTab => self.move_focus(false),
            KeyCode::Enter => return self.submit(now),
            _ => {
                let before = self.values();
                self.field_key(key);
                if self.values() != before {
                    self.revalidate(now);
                }
            }
        }
        FormOutcome::Stay
    }

    /// What the fields say now, to tell an edit from a cursor move.
    fn values(&self) -> (String, String, usize, String, [String; 2], McpAccess) {
        (
            self.name.value().to_string(),
            self.description.value().to_string(),
            self.expiry,
            self.custom_date.value().to_string(),
            [
                self.rate_limit.value().to_string(),
                self.burst.value().to_string(),
            ],
            self.access(),
        )
    }

    /// Once a submit has shown errors, each change re-checks the form so
    /// the errors on screen are about the values on screen: fixed ones go,
    /// changed ones say what is wrong now. A field the user did not touch
    /// keeps its error (it may have come from the store).
    fn revalidate(&mut self, now: Timestamp) {
        if !self.checked {
            return;
        }
        let touched = match self.focus {
            KeyField::Name => Field::Name,
            KeyField::Description => Field::Description,
            KeyField::Expiry | KeyField::CustomDate => Field::Expiry,
            KeyField::RateLimit | KeyField::Burst => Field::RateLimit,
            KeyField::Access | KeyField::McpList => Field::McpAccess,
        };
        let fresh = match self.build(now) {
            Ok(_) => Vec::new(),
            Err(AdminError::Invalid(errors)) => errors,
            Err(_) => return,
        };
        replace_errors(&mut self.errors, fresh, &[touched]);
    }

    fn field_key(&mut self, key: KeyEvent) {
        let cycle = |value: &mut usize, len: usize, code: KeyCode| match code {
            KeyCode::Left => *value = (*value + len - 1) % len,
            KeyCode::Right | KeyCode::Char(' ') => *value = (*value + 1) % len,
            _ => {}
        };
        match self.focus {
            KeyField::Name => text_key(&mut self.name, key),
            KeyField::Description => text_key(&mut self.description, key),
            KeyField::CustomDate => text_key(&mut self.custom_date, key),
            KeyField::RateLimit => text_key(&mut self.rate_limit, key),
            KeyField::Burst => text_key(&mut self.burst, key),
            KeyField::Expiry => cycle(&mut self.expiry, EXPIRY_CHOICES.len(), key.code),
            KeyField::Access => {
                if matches!(
                    key.code,
                    KeyCode::Left | KeyCode::Right | KeyCode::Char(' ')
                ) {
                    self.all_mcps = !self.all_mcps;
                }
            }
            KeyField::McpList => match scroll::step_for(&key) {
                Some(step) => self.step_checklist(step),
                None => {
                    if key.code == KeyCode::Char(' ')
                        && let Some((_, on)) = self.mcps.get_mut(self.mcp_cursor)
                    {
                        *on = !*on;
                    }
                }
            },
        }
    }

    fn step_checklist(&mut self, step: Step) {
        self.mcp_cursor = scroll::moved(self.mcp_cursor, step, self.mcps.len(), CHECKLIST_PAGE);
    }

    /// The wheel moves through the MCP checklist while it is shown.
    pub fn wheel(&mut self, notches: i32) {
        if !self.all_mcps && !self.mcps.is_empty() {
            self.focus = KeyField::McpList;
            self.step_checklist(Step::Wheel(notches));
        }
    }

    fn submit(&mut self, now: Timestamp) -> FormOutcome<KeySubmit> {
        if self.busy {
            return FormOutcome::Stay;
        }
        self.general_error = None;
        match self.build(now) {
            Ok(Some(submit)) => {
                self.errors.clear();
                self.busy = true;
                FormOutcome::Submit(submit)
            }
            Ok(None) => FormOutcome::Unchanged,
            Err(e) => {
                self.show_error(e);
                FormOutcome::Stay
            }
        }
    }

    /// The request the fields make, every broken rule at once, or `None`
    /// for an edit that changes nothing.
    fn build(&self, now: Timestamp) -> Result<Option<KeySubmit>, AdminError> {
        let description = Some(self.description.value().to_string());
        match &self.editing {
            None => {
                let request = KeyRequest {
                    name: self.name.value().to_string(),
                    description,
                    expires: self.expiry_spec(),
                    access: self.access(),
                };
                let checked = admin::validate_key_request(&request, now).map(|_| ());
                // The custom date's hint says YYYY-MM-DD, so only a date is one.
                let date = if self.expiry == CUSTOM {
                    Expiry::parse_date(&request.expires).map(|_| ())
                } else {
                    Ok(())
                };
                let mut errors = match checked {
                    Ok(()) => Vec::new(),
                    Err(AdminError::Invalid(errors)) => errors,
                    Err(e) => return Err(e),
                };
                if let Err(e) = date {
                    match errors.iter_mut().find(|x| x.field == Field::Expiry) {
                        Some(expiry) => *expiry = e,
                        None => errors.push(e),
                    }
                }
                let rate_limit = self.rate_asked().map_err(|e| errors.push(e)).ok();
                match rate_limit {
                    Some(rate_limit) if errors.is_empty() => Ok(Some(KeySubmit::Create {
                        request,
                        rate_limit,
                    })),
                    _ => Err(AdminError::Invalid(errors)),
                }
            }
            Some(key) => {
                // Only what changed, so the audit trail names real edits.
                let name = self.name.value().trim().to_string();
                let old_description = key.description.clone().unwrap_or_default();
                let access = self.access();
                let request = EditRequest {
                    name: (name != key.name).then_some(name),
                    description: description.filter(|d| d.trim() != old_description),
                    access: (access != key.access).then_some(access),
                };
                // Every broken rule at once: the edit's and the rate's.
                let (checked, asked) = (admin::validate_edit_request(&request), self.rate_asked());
                let rate_limit = match (checked, asked) {
                    (Ok(()), Ok(asked)) if asked == key.rate_limit => None,
                    (Ok(()), Ok(Some(limit))) => Some(RateLimitSpec::Limit(limit)),
                    (Ok(()), Ok(None)) => Some(RateLimitSpec::None),
                    (Err(AdminError::Invalid(mut errors)), Err(e)) => {
                        errors.push(e);
                        return Err(AdminError::Invalid(errors));
                    }
                    (Ok(()), Err(e)) => return Err(AdminError::Invalid(vec![e])),
                    (Err(e), _) => return Err(e),
                };
                if request == EditRequest::default() && rate_limit.is_none() {
                    return Ok(None);
                }
                Ok(Some(KeySubmit::Edit {
                    id: key.id.clone(),
                    request,
                    rate_limit,
                }))
            }
        }
    }

    /// Puts an error from validation or the store where it belongs.
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
                Field::Name => KeyField::Name,
                Field::Description => KeyField::Description,
                Field::Expiry if self.expiry == CUSTOM => KeyField::CustomDate,
                Field::Expiry => KeyField::Expiry,
                Field::RateLimit => KeyField::RateLimit,
                _ => KeyField::Access,
            };
        }
    }
}

/// Shared by both forms: rule errors go beside their fields (the first
/// field is returned so the form can focus it), anything else becomes the
/// form's general error; either way the form is no longer busy.
fn place_error(
    error: AdminError,
    errors: &mut Vec<RuleError>,
    general: &mut Option<String>,
    busy: &mut bool,
    checked: &mut bool,
) -> Option<Field> {
    *busy = false;
    match error {
        AdminError::Invalid(invalid) => {
            *errors = invalid;
            *checked = true;
            errors.first().map(|e| e.field)
        }
        other => {
            *general = Some(other.to_string());
            None
        }
    }
}

/// The errors of the `touched` fields as `fresh` validation sees them;
/// the others' as they were.
fn replace_errors(errors: &mut Vec<RuleError>, fresh: Vec<RuleError>, touched: &[Field]) {
    errors.retain(|e| !touched.contains(&e.field));
    errors.extend(fresh.into_iter().filter(|e| touched.contains(&e.field)));
}

/// Text editing keys for a tui-input field.
fn text_key(input: &mut Input, key: KeyEvent) {
    input.handle_event(&Event::Key(key));
}
