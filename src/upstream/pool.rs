//! The process-wide set of upstream connections, keyed by spec name.
//!
//! Each name has a *slot* holding the spec it was created for and the current
//! connection attempt. The rules:
//! - Connections are made lazily, on the first `tools`/`call` for a name.
//! - Callers that arrive while a connection is being made wait for that same
//!   attempt and share its outcome, so a burst of first calls makes exactly
//!   one connection, and a failing upstream is tried once per burst rather
//!   than once per caller.
//! - A connection that died (child exited, session lost) is replaced by a new
//!   attempt on the next use; nothing is retried in the background.
//! - A connect that failed is not retried at once: for a back-off period
//!   (`backoff.rs`) callers get that failure again, so a broken upstream
//!   costs one attempt per period rather than one timeout per request.
//! - A spec arriving under a known name but with different settings replaces
//!   the slot. The old connection closes once calls still running on it end.
//! - [`Upstreams::retain`] closes the slots of names no longer configured
//!   (the server calls it when MCPs are removed), so removed stdio upstreams
//!   do not keep running.
//!
//! Locks here are plain `std` mutexes held only to read or swap an `Arc`,
//! never across an `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::Tool;
use tokio::sync::OnceCell;

use super::backoff::Backoff;
use super::connection::Connection;
use super::{UpstreamError, UpstreamSpec};

/// The longest [`Upstreams::tools_of_each`] waits, whatever the timeouts.
pub const LIST_DEADLINE: Duration = Duration::from_secs(30);

/// One upstream as the metrics and the console show it ([`Upstreams::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHealth {
    pub name: String,
    pub state: Health,
    pub restarts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Connected,
    Connecting,
    /// The last attempt failed (or the connection died), and why.
    Failing(String),
}

impl UpstreamHealth {
    pub fn is_up(&self) -> bool {
        self.state == Health::Connected
    }
}

/// Cheap to clone (Arc inside). One per process.
#[derive(Clone, Default)]
pub struct Upstreams {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    shut_down: AtomicBool,
    /// Connections opened and attempts that failed, since start (for metrics).
    connects: std::sync::atomic::AtomicU64,
    connect_failures: std::sync::atomic::AtomicU64,
}

struct Slot {
    spec: UpstreamSpec,
    /// When the slot was made; [`Upstreams::retain`] judges only older ones.
    created: Instant,
    attempt: Mutex<Arc<Attempt>>,
    backoff: Mutex<Backoff>,
    /// Connections this slot opened: past the first, each is a restart.
    connects: std::sync::atomic::AtomicU64,
    /// Connections opened for this slot (tests use it to check sharing).
    #[cfg(test)]
    opened: std::sync::atomic::AtomicUsize,
}

/// One try at connecting. Empty while in progress; then holds the outcome,
/// which everyone who waited on this attempt receives.
#[derive(Default)]
struct Attempt {
    outcome: OnceCell<Result<Arc<Connection>, UpstreamError>>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = lock(&self.inner.slots).keys().cloned().collect();
        f.debug_struct("Upstreams").field("names", &names).finish()
    }
}

impl Upstreams {
    /// Upstream connections opened, and connection attempts that failed.
    pub fn connect_counts(&self) -> (u64, u64) {
        (
            self.inner.connects.load(Ordering::Relaxed),
            self.inner.connect_failures.load(Ordering::Relaxed),
        )
    }

    /// Each upstream the pool knows, for the metrics: its name, whether it
    /// holds a usable connection now, and how many times it was connected
    /// again after the first (after a crash or a closed connection).
    pub fn health(&self) -> Vec<UpstreamHealth> {
        let slots: Vec<Arc<Slot>> = lock(&self.inner.slots).values().cloned().collect();
        let mut health: Vec<UpstreamHealth> = slots
            .iter()
            .map(|slot| UpstreamHealth {
                name: slot.spec.name.clone(),
                state: slot.health(),
                restarts: slot.connects.load(Ordering::Relaxed).saturating_sub(1),
            })
            .collect();
        health.sort_by(|a, b| a.name.cmp(&b.name));
        health
    }

    /// An empty pool; nothing is started until the first `tools`/`call`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The upstream's tools (cached per spec after the first successful list; refreshed when the connection is re-made).
    pub async fn tools(&self, spec: &UpstreamSpec) -> Result<Arc<Vec<Tool>>, UpstreamError> {
        let connection = self.connection(spec).await?;
        connection.tools().await
    }

    /// Makes the next `tools`/`call` for `spec` list the upstream's tools
    /// afresh rather than trust the cached list (a pinned MCP's tools are
    /// judged as the upstream lists them now, not as it did on connecting).
    /// No connection yet: nothing to do, the first use lists anyway.
    pub fn relist_next(&self, spec: &UpstreamSpec) {
        let slot = lock(&self.inner.slots).get(&spec.name).cloned();
        if let Some(connection) = slot.filter(|s| s.spec == *spec).and_then(|s| s.current()) {
            connection.mark_tools_stale();
        }
    }

    /// Call a tool. Checks the cached tool list first: an unknown tool is UnknownTool without a round trip
    /// (after the list is known; connecting + listing on first use is fine). Returns the upstream's
    /// CallToolResult serialized as JSON (serde_json::Value), passed through as-is.
    pub async fn call(
        &self,
        spec: &UpstreamSpec,
        tool: &str,
        arguments: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<serde_json::Value, UpstreamError> {
        let connection = self.connection(spec).await?;
        let tools = connection.tools().await?;
        if !tools.iter().any(|t| t.name == tool) {
            return Err(UpstreamError::UnknownTool(tool.to_owned()));
        }
        let started = Instant::now();
        let answer = connection.call(tool, arguments).await;
        super::call_time::add(started.elapsed());
        answer
    }

    /// The tools of each of `specs`, in order, asked all at once: the whole
    /// answer takes as long as the slowest upstream's timeout, at most
    /// [`LIST_DEADLINE`], rather than the sum. An upstream still connecting
    /// at the deadline goes on connecting in the background for the next ask.
    pub async fn tools_of_each(
        &self,
        specs: &[UpstreamSpec],
    ) -> Vec<Result<Arc<Vec<Tool>>, UpstreamError>> {
        let wait = specs
            .iter()
            .map(|spec| spec.timeout)
            .max()
            .unwrap_or_default()
            .min(LIST_DEADLINE);
        let deadline = tokio::time::Instant::now() + wait;
        let asks: Vec<_> = specs
            .iter()
            .map(|spec| {
                let (pool, spec) = (self.clone(), spec.clone());
                tokio::spawn(async move { pool.tools(&spec).await })
            })
            .collect();
        let mut answers = Vec::with_capacity(asks.len());
        for ask in asks {
            answers.push(match tokio::time::timeout_at(deadline, ask).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => Err(UpstreamError::Failed(format!("listing tools failed: {e}"))),
                Err(_) => Err(UpstreamError::Timeout(wait)),
            });
        }
        answers
    }

    /// Closes and forgets every upstream whose name is not in `live`, except
    /// those first used at or after `as_of` (the moment `live` was known to
    /// be current): a list read earlier cannot tell whether they are live.
    pub async fn retain(&self, live: &HashSet<String>, as_of: Instant) {
        let gone: Vec<(String, Arc<Slot>)> = {
            let mut slots = lock(&self.inner.slots);
            let names: Vec<String> = slots
                .iter()
                .filter(|(name, slot)| !live.contains(*name) && slot.created < as_of)
                .map(|(name, _)| name.clone())
                .collect();
            names
                .into_iter()
                .filter_map(|name| slots.remove(&name).map(|slot| (name, slot)))
                .collect()
        };
        let mut closing = tokio::task::JoinSet::new();
        for (name, slot) in gone {
            if let Some(connection) = slot.current() {
                tracing::info!(target: "plexmcp::upstream", upstream = %name, "no longer configured; closing");
                closing.spawn(async move { connection.close().await });
            }
        }
        while closing.join_next().await.is_some() {}
    }

    /// Closes the connection for `name`, if any (e.g. when an upstream is
    /// removed from the configuration). Calls still running on it finish or fail.
    pub async fn remove(&self, name: &str) {
        let slot = lock(&self.inner.slots).remove(name);
        if let Some(connection) = slot.and_then(|slot| slot.current()) {
            connection.close().await;
        }
    }

    /// Close every connection and kill child processes (used at shutdown).
    pub async fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::Release);
        let slots: Vec<Arc<Slot>> = lock(&self.inner.slots).drain().map(|(_, s)| s).collect();
        let mut closing = tokio::task::JoinSet::new();
        for connection in slots.iter().filter_map(|slot| slot.current()) {
            closing.spawn(async move { connection.close().await });
        }
        while closing.join_next().await.is_some() {}
    }

    /// A usable connection for `spec`, connecting if needed.
    async fn connection(&self, spec: &UpstreamSpec) -> Result<Arc<Connection>, UpstreamError> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(shutting_down());
        }
        let slot = self.slot(spec);
        let attempt = {
            let mut current = lock(&slot.attempt);
            match current.outcome.get() {
                Some(Ok(connection)) if connection.is_usable() => return Ok(connection.clone()),
                // Still connecting: wait for that attempt.
                None => current.clone(),
                // Failed only just now: the same answer until the back-off ends.
                Some(Err(e)) if lock(&slot.backoff).waiting(Instant::now()) => {
                    return Err(e.clone());
                }
                // Failed earlier, or the connection has since died: start over.
                Some(_) => {
                    *current = Arc::new(Attempt::default());
                    current.clone()
                }
            }
        };
        let outcome = attempt
            .outcome
            .get_or_init(|| async {
                #[cfg(test)]
                slot.opened.fetch_add(1, Ordering::Relaxed);
                match Connection::open(spec).await {
                    Ok(connection) => {
                        self.inner.connects.fetch_add(1, Ordering::Relaxed);
                        slot.connects.fetch_add(1, Ordering::Relaxed);
                        lock(&slot.backoff).succeeded();
                        Ok(Arc::new(connection))
                    }
                    Err(e) => {
                        self.inner.connect_failures.fetch_add(1, Ordering::Relaxed);
                        let pause = lock(&slot.backoff).failed(Instant::now());
                        tracing::warn!(target: "plexmcp::upstream", upstream = %spec.name, "connect failed: {e}; not retried for {pause:?}");
                        Err(e)
                    }
                }
            })
            .await
            .clone();
        let connection = outcome?;
        if self.inner.shut_down.load(Ordering::Acquire) {
            // Lost a race with shutdown: do not leave this one running.
            connection.close().await;
            return Err(shutting_down());
        }
        Ok(connection)
    }

    /// The slot for `spec.name`, replacing it if the spec behind the name changed.
    fn slot(&self, spec: &UpstreamSpec) -> Arc<Slot> {
        let mut slots = lock(&self.inner.slots);
        if let Some(slot) = slots.get(&spec.name)
            && slot.spec == *spec
        {
            return slot.clone();
        }
        let slot = Arc::new(Slot {
            spec: spec.clone(),
            created: Instant::now(),
            attempt: Mutex::new(Arc::new(Attempt::default())),
            backoff: Mutex::new(Backoff::default()),
            connects: std::sync::atomic::AtomicU64::new(0),
            #[cfg(test)]
            opened: std::sync::atomic::AtomicUsize::new(0),
        });
        if slots.insert(spec.name.clone(), slot.clone()).is_some() {
            tracing::info!(target: "plexmcp::upstream", upstream = %spec.name, "configuration changed; reconnecting");
        }
        slot
    }

    /// Test helper: the connection currently held for `name`, if connected.
    #[cfg(test)]
    pub(super) fn current(&self, name: &str) -> Option<Arc<Connection>> {
        lock(&self.inner.slots).get(name).and_then(|s| s.current())
    }

    /// Test helper: how many connections were opened for `name`'s current slot.
    #[cfg(test)]
    pub(super) fn opened(&self, name: &str) -> usize {
        lock(&self.inner.slots)
            .get(name)
            .map_or(0, |s| s.opened.load(Ordering::Relaxed))
    }
}

impl Slot {
    fn health(&self) -> Health {
        match lock(&self.attempt).outcome.get() {
            None => Health::Connecting,
            Some(Ok(connection)) if connection.is_usable() => Health::Connected,
            Some(Ok(_)) => Health::Failing("the connection closed".to_owned()),
            Some(Err(e)) => Health::Failing(e.to_string()),
        }
    }

    /// The connection of the latest attempt, if that attempt succeeded.
    fn current(&self) -> Option<Arc<Connection>> {
        match lock(&self.attempt).outcome.get() {
            Some(Ok(connection)) => Some(connection.clone()),
            _ => None,
        }
    }
}

fn shutting_down() -> UpstreamError {
    UpstreamError::Failed("gateway is shutting down".to_owned())
}

/// Locks a std mutex, ignoring poisoning (only `Arc`s and maps are guarded,
/// and no code panics while holding these locks).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
