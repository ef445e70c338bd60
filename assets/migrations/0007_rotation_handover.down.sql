-- Undoes the rotation hand-over columns (back to the version before).
DROP TRIGGER auth_gen_key_handover;
ALTER TABLE api_keys DROP COLUMN replaced_by;
ALTER TABLE api_keys DROP COLUMN replaced_at;
ALTER TABLE api_keys DROP COLUMN idle_limit_secs;
ALTER TABLE api_keys DROP COLUMN last_accepted_at;
