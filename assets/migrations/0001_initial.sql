-- plexmcp schema, version 1.
-- Times are unix seconds (UTC) unless a column name says otherwise.

-- Marks the file as a plexmcp database ("PMCP"), so another SQLite file is
-- recognised and refused before anything writes to it.
PRAGMA application_id = 1347240784;

CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE orgs (
    id         INTEGER PRIMARY KEY,
    slug       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    plan       TEXT NOT NULL DEFAULT 'free'
               CHECK (plan IN ('free', 'pro', 'team', 'enterprise')),
    created_at INTEGER NOT NULL
) STRICT;

INSERT INTO orgs (slug, name, plan, created_at)
VALUES ('default', 'Default', 'free', unixepoch());

CREATE TABLE mcps (
    id         INTEGER PRIMARY KEY,
    org_id     INTEGER NOT NULL REFERENCES orgs (id),
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    transport  TEXT NOT NULL CHECK (transport IN ('stdio', 'http')),
    command    TEXT,
    args_json  TEXT NOT NULL DEFAULT '[]',
    env_json   TEXT NOT NULL DEFAULT '[]',
    url        TEXT,
    headers_json TEXT NOT NULL DEFAULT '[]',
    timeout_ms INTEGER NOT NULL DEFAULT 30000,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
) STRICT;

-- A slug names one live MCP per org; a removed MCP frees its slug but keeps
-- its row so old usage still names it.
CREATE UNIQUE INDEX mcps_live_slug ON mcps (org_id, slug) WHERE deleted_at IS NULL;

CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
    org_id        INTEGER NOT NULL REFERENCES orgs (id),
    lookup_id     TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    description   TEXT,
    secret_hash   TEXT NOT NULL,
    all_mcps      INTEGER NOT NULL CHECK (all_mcps IN (0, 1)),
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    revoked_by    TEXT,
    rotated_from  INTEGER REFERENCES api_keys (id),
    last_used_at  INTEGER,
    request_count INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX api_keys_org ON api_keys (org_id, created_at);

-- Revocation is final: the database itself refuses to clear revoked_at.
CREATE TRIGGER api_keys_revoke_is_final
BEFORE UPDATE OF revoked_at ON api_keys
WHEN OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS NOT OLD.revoked_at
BEGIN
    SELECT RAISE(ABORT, 'revoked keys cannot be reactivated');
END;

CREATE TABLE key_mcp_access (
    key_id INTEGER NOT NULL REFERENCES api_keys (id),
    mcp_id INTEGER NOT NULL REFERENCES mcps (id),
    PRIMARY KEY (key_id, mcp_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE usage_events (
    id          INTEGER PRIMARY KEY,
    key_id      INTEGER NOT NULL REFERENCES api_keys (id),
    mcp_slug    TEXT,
    tool        TEXT,
    outcome     TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    latency_us  INTEGER NOT NULL,
    client_ip   TEXT,
    user_agent  TEXT,
    at_ms       INTEGER NOT NULL
) STRICT;

CREATE INDEX usage_events_key_time ON usage_events (key_id, at_ms);
CREATE INDEX usage_events_time ON usage_events (at_ms);

-- Hourly roll-ups keep statistics cheap to read and outlive pruned events.
CREATE TABLE usage_hourly (
    key_id     INTEGER NOT NULL REFERENCES api_keys (id),
    hour       INTEGER NOT NULL, -- unix seconds at the start of the hour
    mcp_slug   TEXT NOT NULL,
    tool       TEXT NOT NULL,
    requests   INTEGER NOT NULL,
    errors     INTEGER NOT NULL,
    latency_us_sum INTEGER NOT NULL,
    PRIMARY KEY (key_id, hour, mcp_slug, tool)
) STRICT, WITHOUT ROWID;

CREATE TABLE key_clients (
    key_id     INTEGER NOT NULL REFERENCES api_keys (id),
    client_ip  TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    requests   INTEGER NOT NULL,
    PRIMARY KEY (key_id, client_ip)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER REFERENCES orgs (id),
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    actor_addr  TEXT,
    action      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    detail      TEXT
) STRICT;

CREATE INDEX audit_events_target ON audit_events (target_kind, target_id, at);
CREATE INDEX audit_events_org_time ON audit_events (org_id, at);

-- Bumped by every change that can alter an authentication decision, so the
-- server's in-memory key cache can tell key changes from usage writes.
CREATE TABLE auth_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
) STRICT;
INSERT INTO auth_generation (id, value) VALUES (1, 0);

CREATE TRIGGER auth_gen_key_insert AFTER INSERT ON api_keys
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER auth_gen_key_update
AFTER UPDATE OF name, description, all_mcps, expires_at, revoked_at, secret_hash, org_id ON api_keys
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER auth_gen_access_insert AFTER INSERT ON key_mcp_access
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER auth_gen_access_delete AFTER DELETE ON key_mcp_access
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER auth_gen_mcp_insert AFTER INSERT ON mcps
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER auth_gen_mcp_update AFTER UPDATE ON mcps
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
