-- Rotation with a hand-over. A rotated key names the key
-- that replaced it and when; during a grace period its expires_at is
-- brought forward to the grace's end (so it expires by itself, checked at
-- every request like any expiry). It may also end early once unused for
-- idle_limit_secs: "unused" is measured from last_accepted_at, the last
-- request the key was accepted for (refused attempts do not count, so a
-- client still trying an ended key cannot bring it back), or from the
-- rotation when it has not been used since.
ALTER TABLE api_keys ADD COLUMN replaced_by INTEGER REFERENCES api_keys (id);
ALTER TABLE api_keys ADD COLUMN replaced_at INTEGER;
ALTER TABLE api_keys ADD COLUMN idle_limit_secs INTEGER CHECK (idle_limit_secs >= 1);
ALTER TABLE api_keys ADD COLUMN last_accepted_at INTEGER;

-- The idle limit is part of every request's decision: setting it bumps the
-- auth generation like a revoke does. A trigger of its own, so the key
-- trigger of earlier versions stays as it is. last_accepted_at is written
-- with usage and bumps nothing: the verifier re-reads a key whose idle end
-- seems to have passed (see auth.rs).
CREATE TRIGGER auth_gen_key_handover
AFTER UPDATE OF replaced_by, replaced_at, idle_limit_secs ON api_keys
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
