-- Names of gateway environment variables a stdio MCP receives on top of the
-- fixed allowlist (`mcps add --inherit-env NAME`); a JSON array of strings.
ALTER TABLE mcps ADD COLUMN inherit_env_json TEXT NOT NULL DEFAULT '[]';
