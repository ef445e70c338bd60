//! The `:` command palette: every action of the list view by name, with
//! the key that does it, for the actions one does not use every day. Pure
//! state; the app runs what it returns.

use tui_input::Input;

use super::action::Intent;
use super::scroll::ListPosition;

/// One action the palette offers. `key` is what does the same in the list
/// view (a test checks that it really does).
#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    pub name: &'static str,
    pub key: &'static str,
    pub does: &'static str,
    pub intent: Intent,
}

const fn command(
    name: &'static str,
    key: &'static str,
    does: &'static str,
    intent: Intent,
) -> Command {
    Command {
        name,
        key,
        does,
        intent,
    }
}

/// In the order shown when nothing is typed: the key's own actions first.
pub const COMMANDS: &[Command] = &[
    command("new", "n", "create a key", Intent::Create),
    command("edit", "e", "edit the selected key", Intent::Edit),
    command(
        "rotate",
        "R",
        "issue a replacement for the selected key",
        Intent::Rotate,
    ),
    command(
        "revoke",
        "r",
        "revoke the selected key (asks first)",
        Intent::Revoke,
    ),
    command(
        "copy-prefix",
        "y",
        "copy the selected key's prefix",
        Intent::CopyPrefix,
    ),
    command(
        "filter",
        "/",
        "filter keys (:filter TEXT sets it at once)",
        Intent::Filter,
    ),
    command(
        "clear-filter",
        "Esc",
        "show every key again",
        Intent::ClearFilter,
    ),
    command("sort", "s", "cycle the sort column", Intent::Sort),
    command(
        "reverse-sort",
        "S",
        "reverse the sort order",
        Intent::ReverseSort,
    ),
    command(
        "wrap",
        "w",
        "details: wrap long lines or cut them",
        Intent::Wrap,
    ),
    command(
        "chart",
        "u",
        "the selected key's requests and errors per day",
        Intent::Chart,
    ),
    command("mcps", "m", "MCP servers: add, remove", Intent::Mcps),
    command(
        "org",
        "o",
        "switch organization (:org SLUG at once)",
        Intent::Orgs,
    ),
    command(
        "audit",
        "a",
        "the organization's audit trail",
        Intent::Audit,
    ),
    command("top", "g", "first key", Intent::Top),
    command("bottom", "G", "last key", Intent::Bottom),
    command("help", "?", "every key binding", Intent::Help),
    command("quit", "q", "leave the console", Intent::Quit),
];

/// What Enter in the palette asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    Intent(Intent),
    /// `:org SLUG`
    SwitchOrg(String),
    /// `:filter TEXT`
    Filter(String),
}

#[derive(Debug, Default)]
pub struct Palette {
    pub input: Input,
    pub at: ListPosition,
}

impl Palette {
    /// The typed command word, before any argument.
    fn word(&self) -> &str {
        self.input.value().split_whitespace().next().unwrap_or("")
    }

    /// The argument after the command word, if any.
    fn argument(&self) -> Option<&str> {
        let value = self.input.value().trim_start();
        let (_, rest) = value.split_once(char::is_whitespace)?;
        let rest = rest.trim();
        (!rest.is_empty()).then_some(rest)
    }

    /// Commands whose name starts with the typed word, then those whose
    /// name or description contains it anywhere (case-insensitive).
    pub fn matches(&self) -> Vec<&'static Command> {
        let word = self.word().to_lowercase();
        if word.is_empty() {
            return COMMANDS.iter().collect();
        }
        let starts = COMMANDS.iter().filter(|c| c.name.starts_with(&word));
        let contains = COMMANDS.iter().filter(|c| {
            !c.name.starts_with(&word)
                && (c.name.contains(&word) || c.does.to_lowercase().contains(&word))
        });
        starts.chain(contains).collect()
    }

    /// What to run for Enter, or why nothing can be.
    pub fn run(&self) -> Result<Run, String> {
        let matches = self.matches();
        let Some(command) = matches.get(self.at.selected.min(matches.len().saturating_sub(1)))
        else {
            return Err(format!("No command matches '{}'", self.word()));
        };
        match (command.intent, self.argument()) {
            (Intent::Orgs, Some(slug)) => Ok(Run::SwitchOrg(slug.to_string())),
            (Intent::Filter, Some(text)) => Ok(Run::Filter(text.to_string())),
            (_, Some(_)) => Err(format!("'{}' takes no argument", command.name)),
            (intent, None) => Ok(Run::Intent(intent)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Palette {
        Palette {
            input: Input::new(text.to_string()),
            at: ListPosition::default(),
        }
    }

    #[test]
    fn a_prefix_ranks_before_a_match_in_the_description() {
        let names: Vec<&str> = typed("re").matches().iter().map(|c| c.name).collect();
        assert_eq!(&names[..2], ["revoke", "reverse-sort"]);
        assert!(
            names.contains(&"rotate"),
            "'replacement' in its description"
        );
    }

    #[test]
    fn arguments_go_to_org_and_filter_only() {
        assert_eq!(typed("org beta").run(), Ok(Run::SwitchOrg("beta".into())));
        assert_eq!(
            typed("filter  team 2 ").run(),
            Ok(Run::Filter("team 2".into()))
        );
        assert_eq!(typed("org").run(), Ok(Run::Intent(Intent::Orgs)));
        assert_eq!(
            typed("wrap now").run(),
            Err("'wrap' takes no argument".to_string())
        );
        assert_eq!(
            typed("frobnicate").run(),
            Err("No command matches 'frobnicate'".to_string())
        );
    }
}
