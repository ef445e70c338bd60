//! The upstreams' tool lists as the console knows them: for the key form's
//! tool picker, the detail pane's "Can call now" and the form's before and
//! after lines. Each is asked for off the UI thread (`Effect::LoadTools`)
//! and arrives as `Action::ToolsLoaded`; one asked for within the last
//! minute is not asked for again on its own (the picker always asks), so
//! moving through the key list does not keep the upstreams busy.

use std::collections::BTreeMap;

use chrono::TimeDelta;

use super::{App, Effect, Mode};
use crate::access_preview::{McpPreview, ToolList, preview};
use crate::domain::{KeyRecord, Timestamp};

/// How long a list is taken as current.
const FRESH_FOR: TimeDelta = TimeDelta::seconds(60);

#[derive(Debug, Default)]
pub struct ToolLists {
    lists: BTreeMap<String, ToolList>,
    asked: BTreeMap<String, Timestamp>,
}

impl ToolLists {
    pub fn get(&self, slug: &str) -> &ToolList {
        self.lists.get(slug).unwrap_or(&ToolList::Pending)
    }

    pub fn all(&self) -> &BTreeMap<String, ToolList> {
        &self.lists
    }

    /// Marks `slugs` as asked for now; those not asked for within
    /// [`FRESH_FOR`] (all of them with `force`) are returned to ask.
    fn ask<'a>(
        &mut self,
        slugs: impl IntoIterator<Item = &'a str>,
        now: Timestamp,
        force: bool,
    ) -> Vec<String> {
        let due: Vec<String> = slugs
            .into_iter()
            .filter(|slug| force || self.asked.get(*slug).is_none_or(|at| now - *at > FRESH_FOR))
            .map(str::to_owned)
            .collect();
        for slug in &due {
            self.asked.insert(slug.clone(), now);
        }
        due
    }
}

impl App {
    /// The effect asking for `slugs`' lists, if any is due.
    pub(super) fn ask_tools<'a>(
        &mut self,
        slugs: impl IntoIterator<Item = &'a str>,
        force: bool,
    ) -> Option<Effect> {
        let slugs = self.tool_lists.ask(slugs, self.now, force);
        (!slugs.is_empty()).then(|| Effect::LoadTools {
            org: self.org.clone(),
            slugs,
        })
    }

    /// Asks for the lists of the MCPs the selected key may use.
    pub(super) fn ask_tools_of_selected(&mut self) -> Option<Effect> {
        let key = self.selected_key()?.clone();
        let slugs: Vec<String> = self
            .mcps
            .iter()
            .filter(|m| key.access.allows(&m.slug))
            .map(|m| m.slug.clone())
            .collect();
        self.ask_tools(slugs.iter().map(String::as_str), false)
    }

    pub(super) fn on_tools_loaded(&mut self, org: &str, lists: Vec<(String, ToolList)>) {
        if org != self.org {
            return; // asked for in an org we have since left
        }
        for (slug, list) in lists {
            if let Mode::KeyForm(form) = &mut self.mode {
                form.tools_loaded(&slug, &list);
            }
            self.tool_lists.lists.insert(slug, list);
        }
    }

    /// What `key` can call now, as far as the lists are known.
    pub fn access_now(&self, key: &KeyRecord) -> Vec<McpPreview> {
        preview(
            &key.access,
            self.mcps.iter().map(|m| m.slug.as_str()),
            |slug| self.tool_lists.get(slug),
        )
    }
}
