-- Schema version 5: per-tool access. Each MCP a key may use carries either
-- every tool (tools_json NULL: today's rows, and tools the upstream adds
-- later) or a JSON array of the tool names it may call.
ALTER TABLE key_mcp_access ADD COLUMN tools_json TEXT
    CHECK (tools_json IS NULL OR (json_valid(tools_json) AND json_type(tools_json) = 'array'));

-- Access rows are rewritten (deleted and inserted) on every edit, which the
-- existing triggers count; an UPDATE of a tool list changes a request's
-- decision just the same, so it bumps the auth generation too.
CREATE TRIGGER auth_gen_access_update AFTER UPDATE ON key_mcp_access
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
