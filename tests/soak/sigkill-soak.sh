#!/usr/bin/env bash
# SIGKILL soak: `plexmcp serve` killed with SIGKILL under load, ROUNDS
# times (default 100), on one database. Each round restarts the server on
# what the kill left behind, checks `PRAGMA integrity_check`, and counts the
# usage events lost (requests answered minus events stored); a last round
# stops gracefully and must lose nothing. It is the test
# `serve_killed_under_load_stays_sound_and_loses_at_most_one_writer_batch`
# of tests/durability.rs with more rounds; see README.md next to this file.
#
# Usage: tests/soak/sigkill-soak.sh [ROUNDS]      (from anywhere in the repo)
# Needs node; the test installs the reference MCP server on first use.
# Writes the full per-kill log to target/soak/sigkill-<ROUNDS>.log.
set -euo pipefail

rounds="${1:-100}"
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [ROUNDS]   (a positive number, default 100)" >&2
    exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
mkdir -p target/soak
log="target/soak/sigkill-$rounds.log"

echo "SIGKILL soak: $rounds rounds; log in $log"
PLEXMCP_SIGKILL_ROUNDS="$rounds" cargo test --test durability -- \
    --exact serve_killed_under_load_stays_sound_and_loses_at_most_one_writer_batch \
    --nocapture 2>&1 | tee "$log" | grep -E '^kill |SIGKILLs in|test result|panicked'
status="${PIPESTATUS[0]}"
if [[ "$status" -ne 0 ]]; then
    echo "soak FAILED (exit $status); see $log" >&2
    exit "$status"
fi
echo "soak passed: $(grep -E 'SIGKILLs in' "$log")"
