//! Which handshake an upstream gets. Every upstream is first asked with
//! `initialize` (the revisions up to 2025-11-25, which almost every server
//! speaks). One that answers it with "unsupported protocol version" speaks
//! only the 2026-07-28 revision: it is asked again with `server/discover`
//! and its name remembered, so its later connections start there (falling
//! back to `initialize` on the same connection if it has changed since).
//! With such an upstream rmcp sends each request's lifecycle `_meta`
//! itself, and a call may come back as an `input_required` result, which
//! `server::mcp_proxy::session_upstream` turns into requests to the client.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use rmcp::model::ProtocolVersion;
use rmcp::service::ClientLifecycleMode;

/// Most names remembered; past it the set starts again (a forgotten one
/// costs one refused `initialize` on its next connection).
const MAX_REMEMBERED: usize = 4096;

fn remembered() -> &'static Mutex<HashSet<String>> {
    static MODERN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    MODERN.get_or_init(Mutex::default)
}

fn set() -> std::sync::MutexGuard<'static, HashSet<String>> {
    remembered()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `upstream` (a spec name) refused `initialize` before.
pub fn known_modern(upstream: &str) -> bool {
    set().contains(upstream)
}

pub fn remember_modern(upstream: &str) {
    let mut set = set();
    if set.len() >= MAX_REMEMBERED {
        set.clear();
    }
    set.insert(upstream.to_owned());
}

/// `server/discover` first, `initialize` if the upstream turns out not to
/// know it.
pub fn modern_first() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    }
}
