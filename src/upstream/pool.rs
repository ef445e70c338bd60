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
//! - A spec arriving under a known name but with different settings replaces
//!   the slot. The old connection closes once calls still running on it end.
//!
//! Locks here are plain `std` mutexes held only to read or swap an `Arc`,
//! never across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::Tool;
use tokio::sync::OnceCell;

use super::connection::Connection;
use super::{UpstreamError, UpstreamSpec};

/// Cheap to clone (Arc inside). One per process.
#[derive(Clone, Default)]
pub struct Upstreams {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    shut_down: AtomicBool,
}

struct Slot {
    spec: UpstreamSpec,
    attempt: Mutex<Arc<Attempt>>,
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
    /// An empty pool; nothing is started until the first `tools`/`call`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The upstream's tools (cached per spec after the first successful list; refreshed when the connection is re-made).
    pub async fn tools(&self, spec: &UpstreamSpec) -> Result<Arc<Vec<Tool>>, UpstreamError> {
        let connection = self.connection(spec).await?;
        connection.tools().await
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
        connection.call(tool, arguments).await
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
                    Ok(connection) => Ok(Arc::new(connection)),
                    Err(e) => {
                        tracing::warn!(target: "plexmcp::upstream", upstream = %spec.name, "connect failed: {e}");
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
            attempt: Mutex::new(Arc::new(Attempt::default())),
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
