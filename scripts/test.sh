#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy (warnings are errors), all tests
# including the ones against a real Prosody, and the doctests.
#
# Installs Prosody, systemd-analyze and ss (apt-get) and the rustfmt/clippy components
# when they are missing.
# The XMPP integration tests start their own private Prosody on loopback ports; no
# system-wide Prosody configuration is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
LIB_NAME=test.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_cargo
ensure_cargo_tools
ensure_prosody
# tests/ops_systemd.rs checks conf/dsps.service with `systemd-analyze verify`;
# tests/relay_tcp_options.rs reads the relay's socket options with `ss`.
ensure_commands systemd-analyze:systemd ss:iproute2

started=$SECONDS
step() {
    local name=$1
    shift
    note "== $name: $*"
    if ! "$@"; then
        echo "test.sh: FAILED at $name ($*) after $((SECONDS - started)) s" >&2
        exit 1
    fi
}

step fmt cargo fmt --all -- --check
step clippy cargo clippy --all-targets -- -D warnings
step tests cargo test --all-targets
step doctests cargo test --doc

echo "test.sh: OK: fmt, clippy, tests and doctests passed in $((SECONDS - started)) s"
