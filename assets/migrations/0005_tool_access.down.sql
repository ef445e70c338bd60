-- Undoes schema version 5 (back to 4): tool lists go, and every granted
-- MCP is granted with all its tools again.
DROP TRIGGER auth_gen_access_update;
ALTER TABLE key_mcp_access DROP COLUMN tools_json;
