//! The one authorization decision: may this key use that MCP? REST calls,
//! the JSON-RPC methods on `/mcp` and the MCP proxy on `/mcp/{mcp_id}` all
//! ask here, so a rule added once (tools, rate limits) holds everywhere.
//! Unknown, removed and forbidden MCPs answer alike, so the answer never
//! tells a key which MCP ids exist; a name that cannot be an MCP id is not
//! looked up at all (nor cached under the requested string).

use std::sync::Arc;
use std::time::Instant;

use super::{ApiError, AppState};
use crate::domain::{KeyRecord, Mcp};
use crate::rules;

/// Why a key may not use an MCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Not this key's to use, or no such live MCP: one answer for both.
    #[error("Unauthorized MCP")]
    Unauthorized,
    /// The store could not answer (logged here).
    #[error("Internal error")]
    Internal,
}

/// Whether `key` may use the MCP `slug`, from the key alone (no store
/// read): used to filter lists of MCPs already known to be live.
pub fn may_use(key: &KeyRecord, slug: &str) -> bool {
    rules::is_slug(slug) && key.access.allows(slug)
}

/// The live MCP `slug` if `key` may use it.
pub async fn authorize_mcp(
    state: &AppState,
    key: &KeyRecord,
    slug: &str,
) -> Result<Arc<Mcp>, Denied> {
    if !may_use(key, slug) {
        return Err(Denied::Unauthorized);
    }
    match state.verifier.mcp(key.org_id, slug).await {
        Ok(Some(mcp)) => Ok(mcp),
        Ok(None) => Err(Denied::Unauthorized),
        Err(e) => {
            tracing::error!(error = %e, "MCP lookup failed");
            Err(Denied::Internal)
        }
    }
}

/// The rate-limit step of the decision, asked once per request (a REST
/// call, or a JSON-RPC request on any endpoint) as soon as its key is
/// known, whatever it then asks for: a refusal is `KeyRateLimited`, which
/// every endpoint answers in its own shape with `Retry-After`.
pub fn within_rate_limit(state: &AppState, key: &KeyRecord) -> Result<(), ApiError> {
    state
        .rate_limits
        .check(key, Instant::now())
        .map_err(|limited| ApiError::KeyRateLimited {
            limit: limited.limit,
            retry_after: limited.retry_after,
        })
}
