//! What a key can call right now: its grant intersected with the tools each
//! upstream lists. `plexmcp keys access`, the console's detail pane and the
//! key form's before/after lines all show this, so it is one pure function
//! of the grant and the lists (fetched by the caller, which owns the I/O).

use crate::domain::{McpAccess, ToolAccess};

/// What is known of one upstream's tool list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolList {
    /// Not asked yet, or the answer is on its way.
    Pending,
    /// The names the upstream lists now that clients are shown, and those
    /// it lists that tool pinning holds back until an operator approves them.
    Listed {
        names: Vec<String>,
        withheld: Vec<String>,
    },
    /// It could not be reached; the text says so without any detail that
    /// could hold a secret (commands, URLs).
    Unreachable(String),
}

impl ToolList {
    /// A list with nothing withheld.
    pub fn listed(names: Vec<String>) -> ToolList {
        ToolList::Listed {
            names,
            withheld: Vec::new(),
        }
    }
}

/// One MCP the key may use, and what it can call there now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpPreview {
    pub slug: String,
    pub granted: ToolAccess,
    pub now: Callable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callable {
    /// The upstream answered: these of its `offered` tools can be called;
    /// `withheld` are granted tools it lists that pinning holds back;
    /// `missing` are granted names it does not list now.
    Tools {
        callable: Vec<String>,
        offered: usize,
        withheld: Vec<String>,
        missing: Vec<String>,
    },
    Unreachable(String),
    Pending,
}

/// The preview for `access` over the org's live MCPs, with each MCP's tool
/// list as `list_of` knows it.
pub fn preview<'a>(
    access: &McpAccess,
    live_mcps: impl IntoIterator<Item = &'a str>,
    list_of: impl Fn(&str) -> &'a ToolList,
) -> Vec<McpPreview> {
    live_mcps
        .into_iter()
        .filter_map(|slug| {
            let granted = access.tools_of(slug)?.clone();
            let now = match list_of(slug) {
                ToolList::Pending => Callable::Pending,
                ToolList::Unreachable(why) => Callable::Unreachable(why.clone()),
                ToolList::Listed { names, withheld } => {
                    let granted_of = |list: &[String]| -> Vec<String> {
                        list.iter().filter(|n| granted.allows(n)).cloned().collect()
                    };
                    let missing = match &granted {
                        ToolAccess::All => Vec::new(),
                        ToolAccess::Only(wanted) => wanted
                            .iter()
                            .filter(|w| !names.contains(w) && !withheld.contains(w))
                            .cloned()
                            .collect(),
                    };
                    Callable::Tools {
                        callable: granted_of(names),
                        offered: names.len(),
                        withheld: granted_of(withheld),
                        missing,
                    }
                }
            };
            Some(McpPreview {
                slug: slug.to_owned(),
                granted,
                now,
            })
        })
        .collect()
}

/// `1 tool`, `3 tools`.
pub fn tools(n: usize) -> String {
    if n == 1 {
        "1 tool".to_owned()
    } else {
        format!("{n} tools")
    }
}

/// `all tools` or the granted names.
pub fn granted_text(granted: &ToolAccess) -> String {
    match granted {
        ToolAccess::All => "all tools".to_owned(),
        ToolAccess::Only(names) => names.join(", "),
    }
}

impl McpPreview {
    /// One line, without the MCP id: `2 of 13 tools: echo, get-sum`.
    pub fn summary(&self) -> String {
        match &self.now {
            Callable::Tools {
                callable,
                offered,
                withheld,
                missing,
            } => {
                let mut text = match (callable.len(), &self.granted) {
                    (0, _) => format!("no tools (it lists {}, none granted)", tools(*offered)),
                    (n, ToolAccess::All) => format!("all {}: {}", tools(n), callable.join(", ")),
                    (n, ToolAccess::Only(_)) => {
                        format!("{n} of {}: {}", tools(*offered), callable.join(", "))
                    }
                };
                if !withheld.is_empty() {
                    text.push_str(&format!(
                        " (withheld until an operator approves them: {})",
                        withheld.join(", ")
                    ));
                }
                if !missing.is_empty() {
                    text.push_str(&format!(
                        " (granted but not listed by the upstream now: {})",
                        missing.join(", ")
                    ));
                }
                text
            }
            // The grant first: in a narrow pane it is what must show.
            Callable::Unreachable(why) => {
                format!("{} granted · {why}", granted_text(&self.granted))
            }
            Callable::Pending => format!(
                "{} granted · asking the upstream",
                granted_text(&self.granted)
            ),
        }
    }
}

/// The tools (`mcp:tool`) an edit from `before` to `after` would make
/// callable and those it would take away, for what the upstreams list now.
pub fn changes(before: &[McpPreview], after: &[McpPreview]) -> (Vec<String>, Vec<String>) {
    let callable = |shown: &[McpPreview]| -> Vec<String> {
        shown
            .iter()
            .flat_map(|p| match &p.now {
                Callable::Tools { callable, .. } => callable
                    .iter()
                    .map(|t| format!("{}:{t}", p.slug))
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect()
    };
    let (was, will) = (callable(before), callable(after));
    let gains = will.iter().filter(|t| !was.contains(t)).cloned().collect();
    let loses = was.iter().filter(|t| !will.contains(t)).cloned().collect();
    (gains, loses)
}

/// [`changes`] as the CLI and the console say it: `gains: …`, `loses: …`,
/// or that nothing callable changes.
pub fn change_lines(before: &[McpPreview], after: &[McpPreview]) -> Vec<String> {
    let (gains, loses) = changes(before, after);
    let mut lines = Vec::new();
    if !gains.is_empty() {
        lines.push(format!("gains: {}", gains.join(", ")));
    }
    if !loses.is_empty() {
        lines.push(format!("loses: {}", loses.join(", ")));
    }
    // An upstream not heard from cannot be counted either way: say so,
    // rather than claim nothing changes there.
    let mut unknown: Vec<&str> = before
        .iter()
        .chain(after)
        .filter(|p| !matches!(p.now, Callable::Tools { .. }))
        .map(|p| p.slug.as_str())
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        lines.push(format!("tool lists not known for: {}", unknown.join(", ")));
    } else if lines.is_empty() {
        lines.push("no change to what it can call now".to_owned());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::McpGrant;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_grant_meets_the_live_lists() {
        let access = McpAccess::only(vec![
            McpGrant {
                slug: "everything".into(),
                tools: ToolAccess::only(names(&["get-sum", "echo", "gone"])),
            },
            McpGrant::all_tools("github"),
        ]);
        let everything = ToolList::listed(names(&["echo", "get-sum", "get-env"]));
        let github = ToolList::Unreachable("cannot reach the upstream".into());
        let other = ToolList::listed(names(&["x"]));
        let shown = preview(
            &access,
            ["everything", "github", "other"],
            |slug| match slug {
                "everything" => &everything,
                "github" => &github,
                _ => &other,
            },
        );
        assert_eq!(shown.len(), 2, "an MCP outside the grant is not shown");
        assert_eq!(
            shown[0].summary(),
            "2 of 3 tools: echo, get-sum (granted but not listed by the upstream now: gone)"
        );
        assert_eq!(
            shown[1].summary(),
            "all tools granted · cannot reach the upstream"
        );
        let all = preview(&McpAccess::All, ["other"], |_| &other);
        assert_eq!(all[0].summary(), "all 1 tool: x");
        // A granted tool that pinning holds back is said so, not called missing.
        let pinned = ToolList::Listed {
            names: names(&["echo"]),
            withheld: names(&["get-sum", "get-env"]),
        };
        let held = preview(&access, ["everything"], |_| &pinned);
        assert_eq!(
            held[0].summary(),
            "1 of 1 tool: echo (withheld until an operator approves them: get-sum) \
             (granted but not listed by the upstream now: gone)"
        );
    }

    #[test]
    fn an_edit_says_what_it_gains_and_loses() {
        let everything = ToolList::listed(names(&["echo", "get-sum", "get-env"]));
        let before = McpAccess::only(vec![McpGrant {
            slug: "everything".into(),
            tools: ToolAccess::only(names(&["echo", "get-sum"])),
        }]);
        let after = McpAccess::only(vec![McpGrant {
            slug: "everything".into(),
            tools: ToolAccess::only(names(&["echo", "get-env"])),
        }]);
        let shown = |a: &McpAccess| preview(a, ["everything"], |_| &everything);
        assert_eq!(
            change_lines(&shown(&before), &shown(&after)),
            ["gains: everything:get-env", "loses: everything:get-sum"]
        );
        assert_eq!(
            change_lines(&shown(&before), &shown(&before)),
            ["no change to what it can call now"]
        );
        // A list not known yet is said so, not taken as "no change".
        let pending = ToolList::Pending;
        let unknown = |a: &McpAccess| preview(a, ["everything"], |_| &pending);
        assert_eq!(
            change_lines(&unknown(&before), &unknown(&after)),
            ["tool lists not known for: everything"]
        );
    }
}
