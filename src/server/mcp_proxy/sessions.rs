//! Which key and MCP each `Mcp-Session-Id` belongs to, when it was last
//! used, and the caps on how many sessions there may be. rmcp owns the
//! sessions themselves; this book remembers who opened them, so a session
//! is never served to another key or on another MCP's path, and so the caps
//! can be counted per key. Entries of sessions rmcp has ended (DELETE, a
//! closed upstream) are dropped with them (`session_manager`) and whenever
//! the book is counted, so it never outgrows the live sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::RequestId;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio_util::sync::CancellationToken;

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

/// A bound session: who opened it, its links to its upstreams, and how
/// busy it is.
struct Entry {
    binding: Binding,
    links: Vec<Arc<Link>>,
    activity: Arc<Activity>,
    direct: Option<Arc<Direct>>,
}

/// How busy a session is: it is idle when no stream of it is open and no
/// request came for the idle time (a client listening on its `GET` stream
/// for hours is using it).
#[derive(Debug)]
pub struct Activity {
    last: Mutex<Instant>,
    open: std::sync::atomic::AtomicUsize,
    /// Calls forwarded by `session_manager` itself, by JSON-RPC id, so the
    /// client's `notifications/cancelled` reaches them.
    calls: Mutex<HashMap<RequestId, CancellationToken>>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            last: Mutex::new(Instant::now()),
            open: Default::default(),
            calls: Mutex::default(),
        }
    }
}

impl Activity {
    pub fn touch(&self) {
        *lock(&self.last) = Instant::now();
    }

    /// Counts a stream (or a call) as open until the guard is dropped.
    pub fn open(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Open(self.clone())
    }

    fn idle_for(&self, idle: Duration) -> bool {
        self.open.load(std::sync::atomic::Ordering::Acquire) == 0
            && lock(&self.last).elapsed() >= idle
    }

    /// Registers a call the client may cancel by `id`, until the guard drops.
    pub fn call(self: &Arc<Self>, id: RequestId) -> Call {
        let cancel = CancellationToken::new();
        lock(&self.calls).insert(id.clone(), cancel.clone());
        Call {
            activity: self.clone(),
            id,
            cancel,
        }
    }

    /// The client cancelled request `id`: if it is one of the calls, it ends.
    pub fn cancel(&self, id: &RequestId) {
        if let Some(cancel) = lock(&self.calls).get(id) {
            cancel.cancel();
        }
    }
}

/// A stream or call of a session being open.
pub struct Open(Arc<Activity>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.touch();
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A call the client may cancel.
pub struct Call {
    activity: Arc<Activity>,
    id: RequestId,
    pub cancel: CancellationToken,
}

impl Drop for Call {
    fn drop(&mut self) {
        lock(&self.activity.calls).remove(&self.id);
    }
}

/// What a `/mcp/{mcp_id}` session's plain tool calls need to be forwarded
/// without rmcp's per-request stream (`session_manager`): its upstream,
/// named and timed as the handler would.
pub struct Direct {
    pub link: Arc<Link>,
    pub slug: String,
    pub timeout: Duration,
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

    pub fn bind(
        &self,
        session: String,
        binding: Binding,
        links: Vec<Arc<Link>>,
        direct: Option<Direct>,
    ) {
        let entry = Entry {
            binding,
            links,
            activity: Arc::default(),
            direct: direct.map(Arc::new),
        };
        lock(&self.bindings).insert(session, entry);
    }

    /// A bound session's activity and, on `/mcp/{mcp_id}`, its direct route.
    pub fn activity(&self, session: &str) -> Option<(Arc<Activity>, Option<Arc<Direct>>)> {
        lock(&self.bindings)
            .get(session)
            .map(|entry| (entry.activity.clone(), entry.direct.clone()))
    }

    /// Sessions idle for at least `idle`.
    pub fn idle(&self, idle: Duration) -> Vec<String> {
        lock(&self.bindings)
            .iter()
            .filter(|(_, entry)| entry.activity.idle_for(idle))
            .map(|(session, _)| session.clone())
            .collect()
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
