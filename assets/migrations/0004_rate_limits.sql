-- Schema version 4: per-key rate limits (token buckets) and an org-wide
-- default for keys without their own. A limit is three columns, all set
-- or all NULL: requests per period, the period in seconds (1, 60, 3600),
-- and the burst (the bucket's size). NULL on a key means "the org's
-- default"; NULL on the org means "no default".
ALTER TABLE api_keys ADD COLUMN rate_requests INTEGER CHECK (rate_requests >= 1);
ALTER TABLE api_keys ADD COLUMN rate_period_secs INTEGER CHECK (rate_period_secs IN (1, 60, 3600));
ALTER TABLE api_keys ADD COLUMN rate_burst INTEGER CHECK (rate_burst >= 1);
ALTER TABLE orgs ADD COLUMN rate_requests INTEGER CHECK (rate_requests >= 1);
ALTER TABLE orgs ADD COLUMN rate_period_secs INTEGER CHECK (rate_period_secs IN (1, 60, 3600));
ALTER TABLE orgs ADD COLUMN rate_burst INTEGER CHECK (rate_burst >= 1);

-- A limit is part of every request's decision: changing one (a key's, or
-- its org's default) bumps the auth generation like a revoke does, so
-- every process's key cache drops the old value before its next request.
DROP TRIGGER auth_gen_key_update;
CREATE TRIGGER auth_gen_key_update
AFTER UPDATE OF name, description, all_mcps, expires_at, revoked_at, secret_hash, org_id,
    rate_requests, rate_period_secs, rate_burst ON api_keys
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER auth_gen_org_rate_update
AFTER UPDATE OF rate_requests, rate_period_secs, rate_burst ON orgs
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
