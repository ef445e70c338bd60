//! How the aggregate endpoint `/mcp` names what it gathers from several
//! upstreams, and how it finds the upstream again from a name a client
//! sends back. Both directions are exact inverses, so nothing is looked up
//! in a table that could grow or go stale:
//!
//! - tools and prompts: `<mcp_id>__<name>` (MCP ids never contain `_`, so
//!   the first `__` is the split);
//! - resources and resource templates: `plexmcp://<mcp_id>/<upstream uri>`,
//!   the upstream's URI (or URI template) kept verbatim after the first
//!   `/`, so a template expands to a URI that maps back the same way.

use crate::rules;

/// Separates the MCP id from the upstream's own tool or prompt name.
pub const SEPARATOR: &str = "__";
/// Scheme of every resource URI on `/mcp`.
pub const URI_SCHEME: &str = "plexmcp://";

/// `name` of MCP `slug` as listed on `/mcp`.
pub fn prefixed(slug: &str, name: &str) -> String {
    format!("{slug}{SEPARATOR}{name}")
}

/// The MCP id and upstream name in a name listed on `/mcp`, if it is one.
pub fn split_name(name: &str) -> Option<(&str, &str)> {
    let (slug, rest) = name.split_once(SEPARATOR)?;
    (rules::is_slug(slug) && !rest.is_empty()).then_some((slug, rest))
}

/// The upstream URI `uri` of MCP `slug` as listed on `/mcp`.
pub fn wrap_uri(slug: &str, uri: &str) -> String {
    format!("{URI_SCHEME}{slug}/{uri}")
}

/// The MCP id and upstream URI in a URI listed on `/mcp`, if it is one.
pub fn unwrap_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix(URI_SCHEME)?;
    let (slug, upstream) = rest.split_once('/')?;
    (rules::is_slug(slug) && !upstream.is_empty()).then_some((slug, upstream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_back_to_their_upstream() {
        let listed = prefixed("everything", "get-sum");
        assert_eq!(listed, "everything__get-sum");
        assert_eq!(split_name(&listed), Some(("everything", "get-sum")));
        // The upstream's own name may contain the separator: only the first splits.
        assert_eq!(split_name("gh__a__b"), Some(("gh", "a__b")));
        for foreign in ["echo", "__echo", "Not An Id__echo", "gh__", "a_b__c"] {
            assert_eq!(split_name(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn uris_and_templates_map_back_verbatim() {
        let upstream = "demo://resource/dynamic/text/{id}?q=a/b#frag";
        let listed = wrap_uri("everything", upstream);
        assert_eq!(
            listed,
            "plexmcp://everything/demo://resource/dynamic/text/{id}?q=a/b#frag"
        );
        assert_eq!(unwrap_uri(&listed), Some(("everything", upstream)));
        // A template expanded by the client still maps back.
        let expanded = listed.replace("{id}", "7");
        assert_eq!(
            unwrap_uri(&expanded),
            Some(("everything", "demo://resource/dynamic/text/7?q=a/b#frag"))
        );
        for foreign in [
            "demo://x",
            "plexmcp://",
            "plexmcp://everything",
            "plexmcp://everything/",
            "plexmcp://Bad Id/x",
        ] {
            assert_eq!(unwrap_uri(foreign), None, "{foreign}");
        }
    }
}
