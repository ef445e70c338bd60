-- Undoes 0006_tool_pins.sql.
DROP TRIGGER auth_gen_tool_insert;
DROP TRIGGER auth_gen_tool_update;
DROP TRIGGER auth_gen_tool_delete;
DROP TABLE mcp_tools;
ALTER TABLE mcps DROP COLUMN pinned;
