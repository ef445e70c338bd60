-- Schema version 3: the audit trail becomes a hash chain (store/audit_chain.rs).
-- Every event carries the hash of the event before it (by id, across the
-- whole database) and its own hash over its content and that link. The
-- migration's hook fills both for the rows that already exist, inside this
-- same transaction, so an upgraded database verifies from its first event.
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
