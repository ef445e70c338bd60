//! API-key verification for the server. Cheap checks run first: the
//! integrity tag rejects forged or mistyped keys in microseconds without
//! touching the database or argon2. A key that passes is looked up by id,
//! its argon2 hash verified once per process (on a blocking thread, with a
//! concurrency cap), and the success remembered by fingerprint. Status,
//! expiry and MCP access are re-checked on every request against key state
//! that is dropped as soon as another connection changes anything that can
//! alter a decision, so a revoke from the CLI or a console is honoured by
//! the very next request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OnceCell, Semaphore};

use crate::domain::{KeyRecord, KeyStatus, Mcp, Timestamp};
use crate::keys::{self, ServerSecret};
use crate::store::{Store, StoreError};

/// At most this many argon2 verifications run at once; each takes ~19 MiB
/// and tens of milliseconds, so an unbounded number would starve the host.
pub const ARGON2_CONCURRENCY: usize = 2;

/// Why a key was refused; serialized as the 401's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Missing,
    Malformed,
    NotFound,
    Revoked,
    Expired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::NotFound => "not_found",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key was refused; `key_row` is set when the lookup found a key,
    /// so the attempt can be counted against it.
    #[error("invalid API key ({})", reason.as_str())]
    Refused {
        reason: Reason,
        key_row: Option<i64>,
    },
    #[error("key store unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("verification failed: {0}")]
    Internal(String),
}

/// What the store says about a key right now, minus its hash.
pub type KeyState = Arc<KeyRecord>;

struct Cached {
    key: KeyState,
    hash: String,
}

/// Per-process verifier over one reader connection.
pub struct Verifier {
    secret: ServerSecret,
    reader: Mutex<Reader>,
    /// Fingerprints of presented keys whose argon2 check succeeded.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// One argon2 run per fingerprint at a time; racers share its outcome.
    in_flight: Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
    argon2: Arc<Semaphore>,
}

struct Reader {
    store: Store,
    data_version: i64,
    generation: i64,
    keys: HashMap<String, Arc<Cached>>,
    mcps: HashMap<(i64, String), Option<Arc<Mcp>>>,
}

impl Reader {
    /// Drops cached key and MCP state if another connection changed them.
    /// `data_version` is an in-memory check; the generation query runs only
    /// after some commit, and ignores usage writes.
    fn refresh(&mut self) -> Result<(), StoreError> {
        let version = self.store.data_version()?;
        if version == self.data_version {
            return Ok(());
        }
        self.data_version = version;
        let generation = self.store.auth_generation()?;
        if generation != self.generation {
            self.generation = generation;
            self.keys.clear();
            self.mcps.clear();
        }
        Ok(())
    }
}

impl Verifier {
    pub fn new(store: Store) -> Result<Verifier, StoreError> {
        let secret = store.server_secret()?;
        let data_version = store.data_version()?;
        let generation = store.auth_generation()?;
        Ok(Verifier {
            secret,
            reader: Mutex::new(Reader {
                store,
                data_version,
                generation,
                keys: HashMap::new(),
                mcps: HashMap::new(),
            }),
            verified: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(HashMap::new()),
            argon2: Arc::new(Semaphore::new(ARGON2_CONCURRENCY)),
        })
    }

    fn reader(&self) -> MutexGuard<'_, Reader> {
        // A panic while holding the lock leaves only caches behind; keep going.
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks a presented key and returns the key's current state if it may
    /// be used now. The secret is never logged or kept, only its fingerprint.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        now: Timestamp,
    ) -> Result<KeyState, AuthError> {
        let refused = |reason, key_row| AuthError::Refused { reason, key_row };
        let Some(presented) = presented else {
            return Err(refused(Reason::Missing, None));
        };
        let parsed = keys::parse_and_check(presented, &self.secret)
            .map_err(|_| refused(Reason::Malformed, None))?;
        let cached = self
            .lookup(parsed.id())?
            .ok_or_else(|| refused(Reason::NotFound, None))?;
        let fingerprint = keys::fingerprint(presented);
        if !self.is_verified(&fingerprint)
            && !self
                .verify_slow(presented, fingerprint, &cached.hash)
                .await?
        {
            // Wrong secret for a real id: reported like an unknown key.
            return Err(refused(Reason::NotFound, Some(cached.key.row_id)));
        }
        match cached.key.status(now) {
            KeyStatus::Active => Ok(cached.key.clone()),
            KeyStatus::Revoked => Err(refused(Reason::Revoked, Some(cached.key.row_id))),
            KeyStatus::Expired => Err(refused(Reason::Expired, Some(cached.key.row_id))),
        }
    }

    /// The live MCP `slug` of an org, or `None` if it does not exist or was removed.
    /// Callers authenticate first, which already dropped stale state; a
    /// second change check here would only cost another read transaction.
    pub fn mcp(&self, org_id: i64, slug: &str) -> Result<Option<Arc<Mcp>>, StoreError> {
        let mut reader = self.reader();
        if let Some(hit) = reader.mcps.get(&(org_id, slug.to_string())) {
            return Ok(hit.clone());
        }
        let mcp = reader.store.mcp_by_slug(org_id, slug)?.map(Arc::new);
        reader.mcps.insert((org_id, slug.to_string()), mcp.clone());
        Ok(mcp)
    }

    /// Every live MCP of an org (for listing tools to MCP clients).
    pub fn live_mcps(&self, org_id: i64) -> Result<Vec<Arc<Mcp>>, StoreError> {
        let reader = self.reader();
        Ok(reader
            .store
            .list_mcps(org_id)?
            .into_iter()
            .map(Arc::new)
            .collect())
    }

    fn lookup(&self, lookup_id: &str) -> Result<Option<Arc<Cached>>, StoreError> {
        let mut reader = self.reader();
        reader.refresh()?;
        if let Some(hit) = reader.keys.get(lookup_id) {
            return Ok(Some(hit.clone()));
        }
        let Some((key, hash)) = reader.store.key_for_auth(lookup_id)? else {
            return Ok(None);
        };
        let cached = Arc::new(Cached {
            key: Arc::new(key),
            hash,
        });
        reader.keys.insert(lookup_id.to_string(), cached.clone());
        Ok(Some(cached))
    }

    fn is_verified(&self, fingerprint: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(fingerprint)
    }

    /// Runs argon2 at most once at a time per presented key; concurrent
    /// requests with the same key wait for and share that one result.
    async fn verify_slow(
        &self,
        presented: &str,
        fingerprint: [u8; 32],
        hash: &str,
    ) -> Result<bool, AuthError> {
        let cell = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(fingerprint)
            .or_default()
            .clone();
        let ok = *cell
            .get_or_try_init(|| async {
                // A racer that found no cell may arrive just after the winner
                // removed its own: the success is recorded by then.
                if self.is_verified(&fingerprint) {
                    return Ok(true);
                }
                let permit = self
                    .argon2
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| AuthError::Internal(e.to_string()))?;
                let presented = zeroize::Zeroizing::new(presented.to_string());
                let hash = hash.to_string();
                // The permit goes with the work: if the request is dropped
                // (its client hung up), the blocking thread runs on, and it
                // must keep its slot until it is done.
                tokio::task::spawn_blocking(move || {
                    let ok = keys::verify_hash(&presented, &hash);
                    drop(permit);
                    ok
                })
                .await
                .map_err(|e| AuthError::Internal(e.to_string()))
            })
            .await?;
        if ok {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(fingerprint);
        }
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fingerprint);
        Ok(ok)
    }

    /// True if `presented` is well formed and already passed argon2 here:
    /// costs a tag check and a hash, no database or argon2 work.
    pub fn is_known_good(&self, presented: &str) -> bool {
        keys::parse_and_check(presented, &self.secret).is_ok()
            && self.is_verified(&keys::fingerprint(presented))
    }

    /// How many distinct keys have passed argon2 in this process.
    pub fn verified_count(&self) -> usize {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}
