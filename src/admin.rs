//! Administrative operations shared by the CLI and the console: validate
//! with `rules`, make key material with `keys`, persist with `store`. Each
//! front end only gathers input and shows the outcome, so both enforce the
//! same rules by calling the same function.

use crate::domain::{
    Actor, Handover, KeyRecord, KeyStatus, Mcp, McpAccess, McpTransport, Org, Plan, RateLimit,
    Timestamp,
};
use crate::keys::{self, ApiKey};
use crate::rules::{self, Expiry, Field, RateLimitSpec, RuleError};
use crate::store::{KeyEdit, NewKey, NewMcp, Store, StoreError};

mod pins;
pub use pins::{approve_tools, mcp_tools, pin_summary, set_mcp_pinned};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// One or more inputs broke a rule; each names its field for forms.
    #[error("{}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<RuleError>),
    #[error("{0}")]
    LimitReached(String),
    #[error("{0}")]
    Store(StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LimitReached {
                plan,
                limit,
                active,
                org,
            } => {
                AdminError::LimitReached(rules::plan_limit_message(plan, limit, active, &org, None))
            }
            StoreError::UnknownMcp { .. } => AdminError::Invalid(vec![RuleError {
                field: Field::McpAccess,
                message: e.to_string(),
            }]),
            other => AdminError::Store(other),
        }
    }
}

impl From<RuleError> for AdminError {
    fn from(e: RuleError) -> Self {
        AdminError::Invalid(vec![e])
    }
}

pub type Result<T, E = AdminError> = std::result::Result<T, E>;

/// What an operator asks for when creating a key, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    pub name: String,
    pub description: Option<String>,
    /// An expiry spec such as `90d` or `2027-01-31` (see `rules::Expiry`).
    pub expires: String,
    pub access: McpAccess,
}

/// A validated key request, anchored at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidKeyRequest {
    pub name: String,
    pub description: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub access: McpAccess,
    /// Its own rate limit (already read by `rules::rate_limit`).
    pub rate_limit: Option<RateLimit>,
}

fn access_rule(access: &McpAccess) -> Result<(), RuleError> {
    match access {
        McpAccess::Only(slugs) if slugs.is_empty() => Err(RuleError {
            field: Field::McpAccess,
            message: "choose at least one MCP, or all MCPs".into(),
        }),
        _ => Ok(()),
    }
}

/// Checks every field and reports every broken rule at once.
pub fn validate_key_request(req: &KeyRequest, now: Timestamp) -> Result<ValidKeyRequest> {
    let name = rules::key_name(&req.name);
    let description = rules::key_description(req.description.as_deref());
    let expires_at = Expiry::parse(&req.expires).and_then(|e| e.resolve(now));
    let access = access_rule(&req.access);
    match (name, description, expires_at, access) {
        (Ok(name), Ok(description), Ok(expires_at), Ok(())) => Ok(ValidKeyRequest {
            name,
            description,
            expires_at,
            access: req.access.clone(),
            rate_limit: None,
        }),
        (name, description, expires_at, access) => Err(AdminError::Invalid(
            [
                name.err(),
                description.err(),
                expires_at.err(),
                access.err(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        )),
    }
}

/// Generates key material and stores it; retries the (astronomically
/// unlikely) lookup-id collision with fresh randomness.
fn issue_key(
    store: &mut Store,
    org: &Org,
    valid: &ValidKeyRequest,
    mut save: impl FnMut(&mut Store, &NewKey<'_>) -> Result<KeyRecord, StoreError>,
) -> Result<(KeyRecord, ApiKey)> {
    let server = store.server_secret()?;
    for _ in 0..3 {
        let key = keys::generate(&server);
        let hash = keys::hash_key(&key).map_err(|e| AdminError::Internal(e.to_string()))?;
        let new = NewKey {
            org_id: org.row_id,
            lookup_id: key.id(),
            name: &valid.name,
            description: valid.description.as_deref(),
            secret_hash: &hash,
            access: &valid.access,
            expires_at: valid.expires_at,
            rate_limit: valid.rate_limit,
        };
        match save(store, &new) {
            Ok(record) => return Ok((record, key)),
            Err(StoreError::IdCollision) => continue,
            // The remedy names this database, so pasting it changes this one.
            Err(StoreError::LimitReached {
                plan,
                limit,
                active,
                org,
            }) => {
                return Err(AdminError::LimitReached(rules::plan_limit_message(
                    plan,
                    limit,
                    active,
                    &org,
                    Some(store.path()),
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::Internal(
        "could not allocate a unique key id; try again".into(),
    ))
}

/// Creates a key. The returned `ApiKey` is the only copy of the secret.
pub fn create_key(
    store: &mut Store,
    org: &Org,
    req: &KeyRequest,
    actor: &Actor,
    now: Timestamp,
) -> Result<(KeyRecord, ApiKey)> {
    create_key_limited(store, org, req, None, actor, now)
}

/// [`create_key`] with the key's own rate limit (`None`: the org's default).
pub fn create_key_limited(
    store: &mut Store,
    org: &Org,
    req: &KeyRequest,
    rate_limit: Option<RateLimit>,
    actor: &Actor,
    now: Timestamp,
) -> Result<(KeyRecord, ApiKey)> {
    let valid = ValidKeyRequest {
        rate_limit,
        ..validate_key_request(req, now)?
    };
    issue_key(store, org, &valid, |s, new| s.create_key(new, actor, now))
}

/// A rotation's outcome: the new key (its only copy of the secret in
/// `key`) and the old key as the rotation left it.
#[derive(Debug)]
pub struct Rotated {
    pub new: KeyRecord,
    pub key: ApiKey,
    pub old: KeyRecord,
}

/// Issues a replacement with the same name, description, access, rate
/// limit and expiry length — a full term from now, even when the old key
/// has expired — and hands the old key over as asked. An expired key has
/// nothing to hand over: a grace or idle limit for it is refused.
pub fn rotate_key(
    store: &mut Store,
    org: &Org,
    old: &KeyRecord,
    handover: Handover,
    actor: &Actor,
    now: Timestamp,
) -> Result<Rotated> {
    if old.revoked_at.is_some() {
        return Err(StoreError::Revoked(old.prefix()).into());
    }
    let now = rules::truncate(now);
    if handover.keeps_for_a_while() && old.status(now) == KeyStatus::Expired {
        return Err(RuleError {
            field: Field::Grace,
            message: format!(
                "key {} has expired, so it has no time left to hand over: rotate it without a grace period or idle limit",
                old.prefix()
            ),
        }
        .into());
    }
    let expires_at = old
        .expires_at
        .map(|at| now + (at - old.created_at).max(chrono::TimeDelta::seconds(1)));
    let valid = ValidKeyRequest {
        name: old.name.clone(),
        description: old.description.clone(),
        expires_at,
        access: old.access.clone(),
        rate_limit: old.rate_limit,
    };
    let mut old_after = None;
    let (new, key) = issue_key(store, org, &valid, |s, new| {
        let (new, old) = s.rotate_key(old, new, &handover, actor, now)?;
        old_after = Some(old);
        Ok(new)
    })?;
    let old = old_after.ok_or_else(|| AdminError::Internal("rotation left no old key".into()))?;
    Ok(Rotated { new, key, old })
}

/// What became of the old key after a rotation with `handover`, in one
/// sentence for the CLI and the console.
pub fn handover_summary(old: &KeyRecord, handover: Handover, now: Timestamp) -> String {
    let prefix = old.prefix();
    if old.revoked_at.is_some() {
        return format!("The old key {prefix} is revoked.");
    }
    if old.status(now) == KeyStatus::Expired {
        return format!("The old key {prefix} had already expired; it stays listed as expired.");
    }
    let Handover::Keep { grace, idle } = handover else {
        return format!("The old key {prefix} is revoked.");
    };
    let until = match (grace, old.expires_at) {
        (Some(_), Some(at)) => format!(
            "until {} (in {}), then expires",
            at.format("%Y-%m-%d %H:%M UTC"),
            rules::time_left(now, at)
        ),
        _ if idle.is_some() => "until it goes unused, then expires".to_owned(),
        _ => return format!("The old key {prefix} keeps working until you revoke it."),
    };
    match idle {
        Some(idle) if grace.is_some() => format!(
            "The old key {prefix} keeps working {until}; sooner once unused for {}.",
            rules::span_words(idle)
        ),
        Some(idle) => format!(
            "The old key {prefix} keeps working until it goes unused for {}, then expires.",
            rules::span_words(idle)
        ),
        None => format!("The old key {prefix} keeps working {until}."),
    }
}

pub fn revoke_key(
    store: &mut Store,
    key: &KeyRecord,
    actor: &Actor,
    now: Timestamp,
) -> Result<KeyRecord> {
    Ok(store.revoke_key(key, actor, now)?)
}

/// Edits as typed; `None` leaves a field alone, an empty description clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EditRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub access: Option<McpAccess>,
}

/// Checks an edit without touching the store (forms call this before submitting).
pub fn validate_edit_request(req: &EditRequest) -> Result<()> {
    edit_from_request(req).map(|_| ())
}

fn edit_from_request(req: &EditRequest) -> Result<KeyEdit> {
    let name = req.name.as_deref().map(rules::key_name).transpose();
    let description = req
        .description
        .as_deref()
        .map(|d| rules::key_description(Some(d)))
        .transpose();
    let access = req.access.as_ref().map(access_rule).transpose();
    match (name, description, access) {
        (Ok(name), Ok(description), Ok(_)) => Ok(KeyEdit {
            name,
            description,
            access: req.access.clone(),
            rate_limit: None,
        }),
        (name, description, access) => Err(AdminError::Invalid(
            [name.err(), description.err(), access.err()]
                .into_iter()
                .flatten()
                .collect(),
        )),
    }
}

pub fn edit_key(
    store: &mut Store,
    key: &KeyRecord,
    req: &EditRequest,
    actor: &Actor,
    now: Timestamp,
) -> Result<KeyRecord> {
    edit_key_limited(store, key, req, None, actor, now)
}

/// [`edit_key`] that may also set or remove the key's own rate limit, in
/// the same transaction (`None` leaves the limit as it is).
pub fn edit_key_limited(
    store: &mut Store,
    key: &KeyRecord,
    req: &EditRequest,
    rate_limit: Option<RateLimitSpec>,
    actor: &Actor,
    now: Timestamp,
) -> Result<KeyRecord> {
    let edit = KeyEdit {
        rate_limit: rate_limit.map(RateLimitSpec::limit),
        ..edit_from_request(req)?
    };
    Ok(store.edit_key(key, &edit, actor, now)?)
}

/// Finds a key of the org by id (`Ab3dE9xQ`), display prefix
/// (`pmcp_Ab3dE9xQ`) or even the full key, without echoing what was typed.
pub fn find_key(store: &Store, org: &Org, ident: &str) -> Result<KeyRecord> {
    let ident = ident.trim();
    let rest = ident.strip_prefix(keys::KEY_PREFIX).unwrap_or(ident);
    let id = if rest.len() == keys::KEY_LEN - keys::KEY_PREFIX.len() {
        rest.get(..keys::ID_LEN).unwrap_or(rest)
    } else {
        rest
    };
    if !keys::is_valid_id(id) {
        return Err(AdminError::Invalid(vec![RuleError {
            field: Field::Name,
            message: format!(
                "not a key id or prefix (expected {}XXXXXXXX: 8 letters or digits; see `plexmcp keys list`)",
                keys::KEY_PREFIX
            ),
        }]));
    }
    store.key_by_lookup(org.row_id, id)?.ok_or_else(|| {
        AdminError::Store(StoreError::NotFound(format!(
            "no key {}{id} in organization '{}' (see `plexmcp keys list`)",
            keys::KEY_PREFIX,
            org.slug
        )))
    })
}

/// An MCP registration as typed on the command line or in the console.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpRequest {
    pub slug: String,
    pub name: Option<String>,
    /// A command line, split like a shell would.
    pub stdio: Option<String>,
    pub url: Option<String>,
    pub env: Vec<String>,
    /// Names of the gateway's environment variables a stdio MCP also gets.
    pub inherit_env: Vec<String>,
    pub headers: Vec<String>,
    pub timeout_secs: Option<u64>,
    /// Withhold new or changed tools until approved (tool pinning).
    pub pinned: bool,
}

/// Keeps a rule's value, or records its error so every problem is reported at once.
fn keep<T>(errors: &mut Vec<RuleError>, r: Result<T, RuleError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

pub fn validate_mcp_request(req: &McpRequest) -> Result<NewMcp> {
    let mut errors = Vec::new();
    let slug = keep(&mut errors, rules::slug(&req.slug, "MCP id"));
    let name = match &req.name {
        Some(n) => keep(&mut errors, rules::mcp_name(n)),
        None => Some(req.slug.clone()),
    };
    let timeout = keep(
        &mut errors,
        rules::timeout_secs(req.timeout_secs.unwrap_or(rules::DEFAULT_TIMEOUT.as_secs())),
    );
    let misplaced = |field, message: &str| RuleError {
        field,
        message: message.to_string(),
    };
    let transport = match (&req.stdio, &req.url) {
        (Some(cmd), None) => {
            if !req.headers.is_empty() {
                errors.push(misplaced(
                    Field::Header,
                    "--header applies to --url MCPs only",
                ));
            }
            let command = keep(&mut errors, rules::stdio_command(cmd));
            let env: Vec<_> = req
                .env
                .iter()
                .filter_map(|e| keep(&mut errors, rules::env_pair(e)))
                .collect();
            let mut inherit_env: Vec<String> = Vec::new();
            for raw in &req.inherit_env {
                let Some(name) = keep(&mut errors, rules::inherit_env_name(raw)) else {
                    continue;
                };
                if env.iter().any(|(k, _)| *k == name) {
                    errors.push(misplaced(
                        Field::Env,
                        &format!("{name} is given by both --env and --inherit-env; keep one"),
                    ));
                } else if !inherit_env.contains(&name) {
                    inherit_env.push(name);
                }
            }
            command.map(|(command, args)| McpTransport::Stdio {
                command,
                args,
                env,
                inherit_env,
            })
        }
        (None, Some(url)) => {
            if !req.env.is_empty() {
                errors.push(misplaced(Field::Env, "--env applies to --stdio MCPs only"));
            }
            if !req.inherit_env.is_empty() {
                errors.push(misplaced(
                    Field::Env,
                    "--inherit-env applies to --stdio MCPs only",
                ));
            }
            let url = keep(&mut errors, rules::http_url(url));
            let headers: Vec<_> = req
                .headers
                .iter()
                .filter_map(|h| keep(&mut errors, rules::header_pair(h)))
                .collect();
            url.map(|url| McpTransport::Http { url, headers })
        }
        _ => {
            errors.push(misplaced(
                Field::Command,
                "give exactly one of a stdio command or an HTTP URL",
            ));
            None
        }
    };
    match (slug, name, timeout, transport) {
        (Some(slug), Some(name), Some(timeout), Some(transport)) if errors.is_empty() => {
            Ok(NewMcp {
                slug,
                name,
                transport,
                timeout,
                pinned: req.pinned,
            })
        }
        _ => Err(AdminError::Invalid(errors)),
    }
}

pub fn add_mcp(
    store: &mut Store,
    org: &Org,
    req: &McpRequest,
    actor: &Actor,
    now: Timestamp,
) -> Result<Mcp> {
    let new = validate_mcp_request(req)?;
    Ok(store.add_mcp(org.row_id, &new, actor, now)?)
}

pub fn remove_mcp(
    store: &mut Store,
    org: &Org,
    slug: &str,
    actor: &Actor,
    now: Timestamp,
) -> Result<()> {
    Ok(store.remove_mcp(org.row_id, slug, actor, now)?)
}

pub fn create_org(store: &mut Store, slug: &str, actor: &Actor, now: Timestamp) -> Result<Org> {
    let slug = rules::slug(slug, "organization")?;
    Ok(store.create_org(&slug, actor, now)?)
}

/// What a plan change did, so front ends can warn about keys over the new limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    pub old: Plan,
    pub new: Plan,
    pub active_keys: u32,
}

impl PlanChange {
    /// A warning when the org now has more active keys than its plan allows.
    pub fn over_limit_warning(&self) -> Option<String> {
        let limit = self.new.key_limit()?;
        (self.active_keys > limit).then(|| {
            format!(
                "the {} plan allows {limit} active keys and this organization has {}: existing keys keep working, but no new key can be created until some are revoked or expire",
                self.new, self.active_keys
            )
        })
    }
}

/// Sets (or with `RateLimitSpec::None` clears) the org's default rate
/// limit; returns the one it replaced.
pub fn set_org_rate_limit(
    store: &mut Store,
    org: &Org,
    limit: RateLimitSpec,
    actor: &Actor,
    now: Timestamp,
) -> Result<Option<RateLimit>> {
    Ok(store.set_org_rate_limit(org.row_id, limit.limit(), actor, now)?)
}

pub fn set_plan(
    store: &mut Store,
    org: &Org,
    plan: Plan,
    actor: &Actor,
    now: Timestamp,
) -> Result<PlanChange> {
    let (old, active_keys) = store.set_plan(org.row_id, plan, actor, now)?;
    Ok(PlanChange {
        old,
        new: plan,
        active_keys,
    })
}
