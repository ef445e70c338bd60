-- Tool pinning (protection against "tool poisoning"): every tool an
-- upstream lists is fingerprinted (a SHA-256 of the canonical JSON of its
-- name, description and input schema) and kept here, one row per tool of
-- an MCP, with the fingerprint the operator approved. On a pinned MCP a
-- tool whose seen fingerprint is not its approved one is withheld from
-- clients until approved; on an unpinned MCP every fingerprint seen is
-- approved as it comes, so the rows only tell when tools last changed.
ALTER TABLE mcps ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1));

CREATE TABLE mcp_tools (
    mcp_id        INTEGER NOT NULL REFERENCES mcps (id),
    name          TEXT NOT NULL,
    -- What the upstream lists now (or listed last, once removed).
    seen_hash     TEXT NOT NULL,
    seen_tool     TEXT NOT NULL, -- canonical JSON: name, description, inputSchema
    -- What the operator approved (NULL: never approved, a new tool).
    approved_hash TEXT,
    approved_tool TEXT,
    first_seen_at INTEGER NOT NULL,
    -- When seen_hash last changed (or the tool appeared, went or came back).
    changed_at    INTEGER NOT NULL,
    -- Set while a complete listing no longer has the tool.
    removed_at    INTEGER,
    PRIMARY KEY (mcp_id, name)
) STRICT;

-- On a pinned MCP the rows decide which tools a request may see and call:
-- any change to them bumps the auth generation, so every process drops
-- its cached decisions before its next request. Unpinned MCPs' rows
-- decide nothing and leave the generation alone.
CREATE TRIGGER auth_gen_tool_insert AFTER INSERT ON mcp_tools
WHEN (SELECT pinned FROM mcps WHERE id = NEW.mcp_id) = 1
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER auth_gen_tool_update AFTER UPDATE ON mcp_tools
WHEN (SELECT pinned FROM mcps WHERE id = NEW.mcp_id) = 1
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER auth_gen_tool_delete AFTER DELETE ON mcp_tools
WHEN (SELECT pinned FROM mcps WHERE id = OLD.mcp_id) = 1
BEGIN UPDATE auth_generation SET value = value + 1 WHERE id = 1; END;
