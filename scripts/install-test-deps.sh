#!/usr/bin/env bash
# Installs the reference MCP server used by plexmcp's upstream tests
# (@modelcontextprotocol/server-everything, pinned) into <repo>/test-deps/.
# Safe to run repeatedly: npm leaves an already-satisfied install alone.
set -euo pipefail

readonly PACKAGE="@modelcontextprotocol/server-everything"
readonly VERSION="2026.8.31"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$repo/test-deps"
entry="$deps/node_modules/$PACKAGE/dist/index.js"

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found; install Node.js (>= 18) first" >&2
    exit 1
fi

mkdir -p "$deps"
installed=""
if [[ -f "$deps/node_modules/$PACKAGE/package.json" ]]; then
    installed="$(node -p 'require(process.argv[1]).version' \
        "$deps/node_modules/$PACKAGE/package.json" 2>/dev/null || true)"
fi

if [[ "$installed" == "$VERSION" && -f "$entry" ]]; then
    echo "$PACKAGE@$VERSION already installed"
else
    npm install --prefix "$deps" --no-audit --no-fund --save-exact "$PACKAGE@$VERSION"
fi

if [[ ! -f "$entry" ]]; then
    echo "error: expected $entry after install, but it is missing" >&2
    exit 1
fi

echo "server-everything: $entry"
