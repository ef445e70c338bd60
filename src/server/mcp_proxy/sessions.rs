//! Which key and MCP each `Mcp-Session-Id` belongs to, and the caps on how
//! many sessions there may be. rmcp owns the sessions themselves; this book
//! only remembers who opened them, so a session is never served to another
//! key or on another MCP's path, and so the caps can be counted per key.
//! Entries of sessions rmcp has ended (idle expiry, DELETE) are dropped
//! whenever the book is counted, so it never outgrows the live sessions.

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use std::sync::Arc;

use super::relay::{Link, lock};

/// Who opened a session, and on which endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub key_row: i64,
    /// The key's public lookup id, to re-check it while the session lives.
    pub key_id: String,
    pub scope: Scope,
}

/// The MCPs a session serves: one (`/mcp/{mcp_id}`) or those the key
/// could use when the session opened (`/mcp`), as (row, MCP id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    One(i64, String),
    All(Vec<(i64, String)>),
}

impl Scope {
    /// The MCPs served, as (row, MCP id).
    pub fn members(&self) -> Vec<(i64, &str)> {
        match self {
            Scope::One(row, slug) => vec![(*row, slug.as_str())],
            Scope::All(members) => members.iter().map(|(r, s)| (*r, s.as_str())).collect(),
        }
    }
}

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("this API key already has {0} open MCP sessions; end one (DELETE) or let it expire")]
    PerKey(usize),
    #[error("the gateway already has {0} open MCP sessions; try again later")]
    Total(usize),
}

/// A bound session: who opened it and its links to its upstreams.
struct Entry {
    binding: Binding,
    links: Vec<Arc<Link>>,
}

impl Entry {
    /// A single-MCP session whose upstream connection ended cannot be
    /// served any more; on `/mcp` a lost member only fails its own requests.
    fn lost(&self) -> bool {
        matches!(self.binding.scope, Scope::One(..)) && self.links.iter().any(|l| l.upstream_lost())
    }
}

#[derive(Default)]
pub struct SessionBook {
    bindings: Mutex<HashMap<String, Entry>>,
    /// Sessions admitted but whose `initialize` has not answered yet.
    opening: Mutex<HashMap<i64, usize>>,
}

impl SessionBook {
    pub fn get(&self, session: &str) -> Option<Binding> {
        lock(&self.bindings)
            .get(session)
            .map(|entry| entry.binding.clone())
    }

    /// Every bound session with who opened it and whether its upstream is gone.
    pub fn all(&self) -> Vec<(String, Binding, bool)> {
        lock(&self.bindings)
            .iter()
            .map(|(session, entry)| (session.clone(), entry.binding.clone(), entry.lost()))
            .collect()
    }

    /// Sessions bound and open.
    pub fn open_count(&self) -> usize {
        lock(&self.bindings).len()
    }

    pub fn bind(&self, session: String, binding: Binding, links: Vec<Arc<Link>>) {
        lock(&self.bindings).insert(session, Entry { binding, links });
    }

    pub fn forget(&self, session: &str) {
        lock(&self.bindings).remove(session);
    }

    /// Admits one more session for `key_row` if both caps allow it; the
    /// returned guard holds its place until the handshake has answered.
    pub async fn admit<'a>(
        &'a self,
        sessions: &LocalSessionManager,
        key_row: i64,
        per_key: usize,
        total: usize,
    ) -> Result<Opening<'a>, Full> {
        let live = sessions.sessions.read().await;
        let mut bindings = lock(&self.bindings);
        bindings.retain(|id, _| live.contains_key(id.as_str()));
        let mut opening = lock(&self.opening);
        let pending: usize = opening.values().sum();
        // rmcp's own count includes sessions not yet bound here.
        if bindings.len().max(live.len()) + pending >= total {
            return Err(Full::Total(total));
        }
        let of_key = bindings
            .values()
            .filter(|entry| entry.binding.key_row == key_row)
            .count()
            + opening.get(&key_row).copied().unwrap_or(0);
        if of_key >= per_key {
            return Err(Full::PerKey(per_key));
        }
        *opening.entry(key_row).or_default() += 1;
        Ok(Opening {
            book: self,
            key_row,
        })
    }
}

/// A session being opened; counted against the caps until dropped.
pub struct Opening<'a> {
    book: &'a SessionBook,
    key_row: i64,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        let mut opening = lock(&self.book.opening);
        if let Some(count) = opening.get_mut(&self.key_row) {
            *count -= 1;
            if *count == 0 {
                opening.remove(&self.key_row);
            }
        }
    }
}
