#!/usr/bin/env bash
# Side-by-side benchmark on this machine, loopback only (issue 9): dsps against a
# direct TCP connection, socat, Prosody's mod_proxy65 and ncat --broker, with the
# same senders and receivers (examples/bench) for every system.
#
#   scripts/bench.sh [--quick] [--case NAME[,NAME...]] [--tsv FILE] [--json FILE]
#
# Cases: memory, 1to1, 1toN, many, small, setup (default: all). --quick: fewer runs
# and smaller sizes, about a minute. Builds release, starts a private Prosody (its
# own data dir and free ports in a temp dir, with a proxy65 component) and a release
# dsps, runs examples/bench (bounded by BENCH_TIMEOUT seconds, default 600), prints
# the table on stdout, and stops everything it started by PID on every exit path.
# Not part of CI or scripts/test.sh. Installs prosody, socat and ncat if missing.
# BENCH_KEEP=1 keeps the temp dir (configs and logs). BENCH_LOOPBACK_CONGESTION=NAME
# sets dsps's relay.loopback_congestion (default reno; "" for the system's choice, the
# one the baselines use).
set -euo pipefail
cd "$(dirname "$0")/.."
LIB_NAME=bench.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

case "${1:-}" in -h | --help) sed -n '2,16p' "$0"; exit 0 ;; esac
BENCH_TIMEOUT=${BENCH_TIMEOUT:-600}
DOMAIN=dsps.localhost
PROXY65_DOMAIN=proxy.localhost
START_TIMEOUT=15

ensure_cargo
ensure_prosody
ensure_commands socat:socat ncat:ncat

PIDS=()
WORK=""
cleanup() {
    local status=$?
    stop_pids
    if [ "$status" -ne 0 ] && [ -n "$WORK" ]; then
        local log
        for log in prosody.log dsps.log; do
            if [ -s "$WORK/$log" ]; then
                echo "--- last lines of $log ---" >&2
                tail -n 20 "$WORK/$log" >&2
            fi
        done
    fi
    if [ -n "$WORK" ]; then
        if [ "${BENCH_KEEP:-}" = 1 ]; then note "kept $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note "building dsps and the bench (release)"
cargo build --release --bins --example bench
BIN="${CARGO_TARGET_DIR:-target}/release"
for b in "$BIN/dsps" "$BIN/examples/bench"; do
    [ -x "$b" ] || die "build did not produce $b"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dsps-bench.XXXXXX")
mkdir -p "$WORK/data" "$WORK/certs"
SECRET=$(random_word)
BENCH_PASSWORD=$(random_word)
export BENCH_PASSWORD

# The bench logs in without TLS (loopback; SCRAM still keeps the password off the link).
PROSODY_REQUIRE_TLS=false
register_accounts "$BENCH_PASSWORD" bench
start_prosody_retrying
note "proxy65 is $PROXY65_DOMAIN on 127.0.0.1:$PROXY65_PORT"

# 10 000 idle peers plus the other cases' connections, all from 127.0.0.1, and
# thousands of streams made by a few full JIDs: raise the limits that guard a public
# service against one source. The file descriptors follow.
ulimit -n "$(ulimit -Hn)"
congestion="" loopback="reno (its default)"
if [ -n "${BENCH_LOOPBACK_CONGESTION+set}" ]; then
    congestion="loopback_congestion = \"$BENCH_LOOPBACK_CONGESTION\""
    loopback=${BENCH_LOOPBACK_CONGESTION:-the system\'s}
fi
start_dsps "$congestion
max_connections = 15000
max_connections_per_ip = 15000
max_pending_per_ip = 1024

[limits]
streams = 15000
streams_per_jid = 15000
streams_per_account = 15000"
note "dsps is online as $DOMAIN, relay on $RELAY (pid $DSPS_PID)"
note "TCP congestion control: the system's is $(cat /proc/sys/net/ipv4/tcp_congestion_control) (the baselines and the bench's own sockets), dsps's for loopback peers $loopback"
note "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"

status=0
timeout --kill-after=10 "$BENCH_TIMEOUT" "$BIN/examples/bench" \
    --server "127.0.0.1:$C2S_PORT" --dsps "$DOMAIN" --relay-addr "$RELAY" \
    --proxy65 "$PROXY65_DOMAIN" --account bench@localhost --dsps-pid "$DSPS_PID" \
    "$@" </dev/null || status=$?
case "$status" in
0) ;;
124 | 137) die "the bench did not finish within $BENCH_TIMEOUT s" ;;
*) die "the bench failed (exit $status)" ;;
esac
kill -0 "$DSPS_PID" 2>/dev/null || die "dsps is no longer running"
if grep -qF "component link lost" "$WORK/dsps.log"; then
    die "dsps lost its component link during the bench"
fi
note "bench OK"
