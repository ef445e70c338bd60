-- Undoes schema version 4 (back to 3): the rate limit columns and the
-- auth generation triggers as they were before them.
DROP TRIGGER auth_gen_org_rate_update;
DROP TRIGGER auth_gen_key_update;
ALTER TABLE api_keys DROP COLUMN rate_requests;
ALTER TABLE api_keys DROP COLUMN rate_period_secs;
ALTER TABLE api_keys DROP COLUMN rate_burst;
ALTER TABLE orgs DROP COLUMN rate_requests;
ALTER TABLE orgs DROP COLUMN rate_period_secs;
ALTER TABLE orgs DROP COLUMN rate_burst;
CREATE TRIGGER auth_gen_key_update
AFTER UPDATE OF name, description, all_mcps, expires_at, revoked_at, secret_hash, org_id ON api_keys
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
