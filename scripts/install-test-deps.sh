#!/usr/bin/env bash
# Installs what plexmcp's tests need beyond Rust: the reference MCP server
# (@modelcontextprotocol/server-everything, pinned) into <repo>/test-deps/,
# and tmux, sqlite3 and python3 (for end-to-end tests) from the system packages.
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

# System tools: tmux drives the real console in end-to-end tests (OSC 52
# support, set-clipboard, has been in every tmux since 2.6); the sqlite3
# command and Python's sqlite3 module play the outside clients an operator
# runs against a live database (backups, ad-hoc queries).
missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [[ ${#missing[@]} -gt 0 ]]; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    else
        echo "error: ${missing[*]} not found and apt-get is unavailable; install them" >&2
        exit 1
    fi
fi
if ! python3 -c 'import sqlite3' 2>/dev/null; then
    echo "error: python3 has no sqlite3 module; install a Python built with it" >&2
    exit 1
fi
echo "tmux: $(tmux -V)"
echo "sqlite3: $(sqlite3 --version | cut -d' ' -f1)"
