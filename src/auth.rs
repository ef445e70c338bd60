//! API-key verification for the server. Cheap checks run first: the
//! integrity tag rejects forged or mistyped keys in microseconds without
//! touching the database or argon2. A key that passes is looked up by id,
//! its argon2 hash verified once per process (on a blocking thread, with a
//! concurrency cap, and only if the caller's failure budget allows), and
//! the success remembered by fingerprint. Status, expiry and MCP access are
//! re-checked on every request against key state that is dropped as soon
//! as another connection changes anything that can alter a decision, so a
//! revoke from the CLI or a console is honoured by the very next request.
//!
//! The async side never waits for the database. It asks a connection that
//! fails instead of waiting whether anything changed (`data_version`, no
//! I/O); every real read goes to one reader connection on a blocking
//! thread, so a slow or locked database holds up only the requests that
//! need it. Only what exists is cached: names that are not in the store
//! leave nothing behind.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OnceCell, Semaphore};

use crate::domain::{KeyRecord, KeyStatus, Mcp, Timestamp};
use crate::keys::{self, ServerSecret};
use crate::rules;
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
    /// The key needed argon2 and the caller's failure budget refused it.
    #[error("too many failed authentication attempts")]
    Throttled,
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
    /// The time of the request that read it from the store.
    read_at: Timestamp,
}

impl Cached {
    /// A copy read before the key's idle end may have missed requests other
    /// processes accepted since (usage writes do not clear caches), so it
    /// cannot tell that the key went unused: only a copy read after that
    /// moment can. Costs one read per idle limit while the key is in use.
    fn idle_unsure(&self, now: Timestamp) -> bool {
        self.key
            .succession
            .idle_end()
            .is_some_and(|end| end <= now && self.read_at < end)
    }
}

/// Per-process verifier over two connections: a probe and a reader.
pub struct Verifier {
    secret: ServerSecret,
    /// Held only for in-memory work and the probe's non-waiting check.
    known: Arc<Mutex<Known>>,
    /// Every store read, one at a time, on a blocking thread.
    reader: Arc<tokio::sync::Mutex<Store>>,
    /// Fingerprints of presented keys whose argon2 check succeeded.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// One argon2 run per fingerprint at a time; racers share its outcome.
    in_flight: Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
    argon2: Arc<Semaphore>,
    argon2_runs: AtomicUsize,
}

/// What the store said, valid while its auth generation stays `generation`.
struct Known {
    /// A connection that only answers "did anything change?" and fails
    /// rather than wait, so async code may ask it on every request.
    probe: Store,
    /// The probe's `data_version` when `generation` was last confirmed.
    seen: Option<i64>,
    generation: i64,
    keys: HashMap<String, Arc<Cached>>,
    /// Live MCPs by org and slug; absent ones are never remembered.
    mcps: HashMap<i64, HashMap<String, Arc<Mcp>>>,
}

impl Known {
    /// Takes `generation`, read after the probe showed `version`: anything
    /// cached under another generation may be stale and goes.
    fn confirm(&mut self, generation: i64, version: Option<i64>) {
        if generation != self.generation {
            self.generation = generation;
            self.keys.clear();
            self.mcps.clear();
        }
        // Unknown (the probe could not answer): the next request asks again.
        self.seen = version;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves only caches behind; keep going.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Verifier {
    pub fn new(store: Store) -> Result<Verifier, StoreError> {
        let secret = store.server_secret()?;
        let probe = store.reopen()?;
        probe.never_wait()?;
        let seen = probe.data_version().ok();
        let generation = store.auth_generation()?;
        Ok(Verifier {
            secret,
            known: Arc::new(Mutex::new(Known {
                probe,
                seen,
                generation,
                keys: HashMap::new(),
                mcps: HashMap::new(),
            })),
            reader: Arc::new(tokio::sync::Mutex::new(store)),
            verified: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(HashMap::new()),
            argon2: Arc::new(Semaphore::new(ARGON2_CONCURRENCY)),
            argon2_runs: AtomicUsize::new(0),
        })
    }

    /// Checks a presented key and returns the key's current state if it may
    /// be used now. The secret is never logged or kept, only its fingerprint.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        now: Timestamp,
    ) -> Result<KeyState, AuthError> {
        self.authenticate_within(presented, now, || true).await
    }

    /// As [`Verifier::authenticate`], asking `budget` first whenever the key
    /// needs an argon2 run (it is asked at most once): `false` answers
    /// [`AuthError::Throttled`] without hashing.
    pub async fn authenticate_within(
        &self,
        presented: Option<&str>,
        now: Timestamp,
        budget: impl FnOnce() -> bool + Send,
    ) -> Result<KeyState, AuthError> {
        let refused = |reason, key_row| AuthError::Refused { reason, key_row };
        let Some(presented) = presented else {
            return Err(refused(Reason::Missing, None));
        };
        let parsed = keys::parse_and_check(presented, &self.secret)
            .map_err(|_| refused(Reason::Malformed, None))?;
        let cached = self
            .lookup(parsed.id(), now)
            .await?
            .ok_or_else(|| refused(Reason::NotFound, None))?;
        let fingerprint = keys::fingerprint(presented);
        if !self.is_verified(&fingerprint)
            && !self
                .verify_slow(presented, fingerprint, &cached.hash, budget)
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

    /// The current record of the key with public id `lookup_id`, without
    /// its secret: for work already authorized by it (open MCP sessions)
    /// that must stop once the key is revoked or expires.
    pub async fn key_state(&self, lookup_id: &str) -> Result<Option<KeyState>, AuthError> {
        Ok(self
            .lookup(lookup_id, chrono::Utc::now())
            .await?
            .map(|cached| cached.key.clone()))
    }

    /// The live MCP `slug` of an org, or `None` if it does not exist, was
    /// removed, or `slug` is not an MCP id at all (then nothing is read).
    /// Callers authenticate first, which already dropped stale state; a
    /// second change check here would only cost another read transaction.
    pub async fn mcp(&self, org_id: i64, slug: &str) -> Result<Option<Arc<Mcp>>, AuthError> {
        if !rules::is_slug(slug) {
            return Ok(None);
        }
        let generation = {
            let known = lock(&self.known);
            if let Some(hit) = known.mcps.get(&org_id).and_then(|m| m.get(slug)) {
                return Ok(Some(hit.clone()));
            }
            known.generation
        };
        let known = self.known.clone();
        let slug = slug.to_string();
        self.read(move |store| {
            let Some(mcp) = store.mcp_by_slug(org_id, &slug)?.map(Arc::new) else {
                return Ok(None);
            };
            let mut known = lock(&known);
            // Read under an older generation: correct for this request only.
            if known.generation == generation {
                known
                    .mcps
                    .entry(org_id)
                    .or_default()
                    .insert(slug, mcp.clone());
            }
            Ok(Some(mcp))
        })
        .await
    }

    /// Every live MCP of an org (for listing tools to MCP clients).
    pub async fn live_mcps(&self, org_id: i64) -> Result<Vec<Arc<Mcp>>, AuthError> {
        self.read(move |store| Ok(store.list_mcps(org_id)?.into_iter().map(Arc::new).collect()))
            .await
    }

    /// Runs `work` on the reader, on a blocking thread, after any reads
    /// queued before it. A request dropped meanwhile leaves the work to
    /// finish on its own.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let reader = self.reader.clone().lock_owned().await;
        let done = tokio::task::spawn_blocking(move || work(&reader))
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        Ok(done?)
    }

    /// The cached state of `lookup_id` if nothing changed since it was
    /// read; otherwise the probe's answer (`None`: it could not tell).
    fn known_key(&self, lookup_id: &str, now: Timestamp) -> Result<Arc<Cached>, Option<i64>> {
        let mut known = lock(&self.known);
        // A busy or failing database only means "ask the reader".
        let version = known.probe.data_version().ok();
        if version.is_none() {
            return Err(version);
        }
        if version != known.seen {
            // Some connection committed, most often the usage writer. The
            // probe never waits for a lock, so asking it here is as cheap
            // as the question; only when it cannot answer at once does the
            // request go to the reader on a blocking thread.
            match known.probe.auth_generation() {
                Ok(generation) => known.confirm(generation, version),
                Err(_) => return Err(version),
            }
        }
        known
            .keys
            .get(lookup_id)
            .filter(|c| !c.idle_unsure(now))
            .cloned()
            .ok_or(version)
    }

    async fn lookup(
        &self,
        lookup_id: &str,
        now: Timestamp,
    ) -> Result<Option<Arc<Cached>>, AuthError> {
        let version = match self.known_key(lookup_id, now) {
            Ok(hit) => return Ok(Some(hit)),
            Err(version) => version,
        };
        let known = self.known.clone();
        let lookup_id = lookup_id.to_string();
        self.read(move |store| {
            // Another request may have confirmed this version while we queued.
            let confirmed = {
                let known = lock(&known);
                (version.is_some() && known.seen == version).then_some(known.generation)
            };
            let generation = match confirmed {
                Some(generation) => generation,
                None => {
                    let generation = store.auth_generation()?;
                    lock(&known).confirm(generation, version);
                    generation
                }
            };
            if let Some(hit) = lock(&known)
                .keys
                .get(&lookup_id)
                .filter(|c| !c.idle_unsure(now))
            {
                return Ok(Some(hit.clone()));
            }
            let Some((key, hash)) = store.key_for_auth(&lookup_id)? else {
                return Ok(None);
            };
            let cached = Arc::new(Cached {
                key: Arc::new(key),
                hash,
                read_at: now,
            });
            let mut known = lock(&known);
            if known.generation == generation {
                known.keys.insert(lookup_id, cached.clone());
            }
            Ok(Some(cached))
        })
        .await
    }

    fn is_verified(&self, fingerprint: &[u8; 32]) -> bool {
        lock(&self.verified).contains(fingerprint)
    }

    /// Runs argon2 at most once at a time per presented key; concurrent
    /// requests with the same key wait for and share that one result.
    async fn verify_slow(
        &self,
        presented: &str,
        fingerprint: [u8; 32],
        hash: &str,
        budget: impl FnOnce() -> bool + Send,
    ) -> Result<bool, AuthError> {
        let cell = lock(&self.in_flight)
            .entry(fingerprint)
            .or_default()
            .clone();
        let _leave = Sharing {
            in_flight: &self.in_flight,
            fingerprint,
            cell: &cell,
        };
        let ok = *cell
            .get_or_try_init(|| async {
                // A racer that found no cell may arrive just after the winner
                // removed its own: the success is recorded by then.
                if self.is_verified(&fingerprint) {
                    return Ok(true);
                }
                // Charged before hashing, so concurrent attempts from one
                // client cannot run more than its budget allows.
                if !budget() {
                    return Err(AuthError::Throttled);
                }
                self.argon2_runs.fetch_add(1, Ordering::Relaxed);
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
            lock(&self.verified).insert(fingerprint);
        }
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
        lock(&self.verified).len()
    }

    /// How many argon2 verifications this process has started.
    pub fn argon2_runs(&self) -> usize {
        self.argon2_runs.load(Ordering::Relaxed)
    }

    /// The auth generation this process last confirmed: every
    /// authentication confirms it first, so a request that passed one
    /// decides by it (tool pins are cached under it).
    pub fn generation(&self) -> i64 {
        lock(&self.known).generation
    }

    /// Keys and MCPs held in memory; only ones that exist are kept.
    pub fn cache_size(&self) -> usize {
        let known = lock(&self.known);
        known.keys.len() + known.mcps.values().map(HashMap::len).sum::<usize>()
    }
}

/// One request's share of an in-flight verification. The last one to
/// leave, however it leaves (done, failed, or dropped when its client hung
/// up), removes the entry, so none is left behind.
struct Sharing<'a> {
    in_flight: &'a Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
    fingerprint: [u8; 32],
    cell: &'a Arc<OnceCell<bool>>,
}

impl Drop for Sharing<'_> {
    fn drop(&mut self) {
        let mut in_flight = lock(self.in_flight);
        // Others clone the cell only under this lock: two owners (the map
        // and this request) means nobody else still waits on it.
        if in_flight
            .get(&self.fingerprint)
            .is_some_and(|c| Arc::ptr_eq(c, self.cell) && Arc::strong_count(c) == 2)
        {
            in_flight.remove(&self.fingerprint);
        }
    }
}
