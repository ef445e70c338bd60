#!/usr/bin/env bash
# Installs what plexmcp's tests need beyond Rust: the reference MCP server
# (@modelcontextprotocol/server-everything, pinned) into <repo>/test-deps/,
# and tmux (for the console's end-to-end test) from the system packages.
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

# tmux drives the real console in the end-to-end test; OSC 52 support
# (set-clipboard) has been in every tmux since 2.6.
if ! command -v tmux >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq tmux
    else
        echo "error: tmux not found and apt-get is unavailable; install tmux" >&2
        exit 1
    fi
fi
echo "tmux: $(tmux -V)"
