#!/usr/bin/env bash
# Bounded soak on this machine, loopback only: a private Prosody, dsps attached to it,
# and the examples/soak.rs harness running many streams and peers (joining, leaving,
# dropping, reconnecting) with hostile traffic mixed in for --duration.
#
#   scripts/soak.sh [--duration 3m] [--workers 4] [--no-hostile-xml] [--seed N]
#                   [--hostile-kinds deep-message,long-value,...]  (default: all eight)
#
# Not part of CI or scripts/test.sh. It ends with one figures line (streams, peers,
# bytes, errors, hostile stanzas, RSS) and exits non-zero on any failure: a lost or
# corrupted byte, a leaked seat, a lost component link, dsps gone, RSS growth past
# the bound, or dsps not exiting 0 on SIGTERM at the end. Every process it starts is
# stopped by its PID on exit and the temp dir is removed (SOAK_KEEP=1 keeps it).
# Environment: SOAK_PROFILE (release; "dev" builds faster, runs slower).
set -euo pipefail
cd "$(dirname "$0")/.."
LIB_NAME=soak.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

DURATION=3m
WORKERS=4
HARNESS_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --no-hostile-xml) HARNESS_ARGS+=(--no-hostile-xml); shift ;;
    --hostile-kinds) HARNESS_ARGS+=(--hostile-kinds "$2"); shift 2 ;;
    --seed) HARNESS_ARGS+=(--seed "$2"); shift 2 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done

PROFILE=${SOAK_PROFILE:-release}
DOMAIN=dsps.localhost
START_TIMEOUT=15
# Short timeouts so abandoned seats and stalled handshakes turn over during the run.
WAIT_MS=3000
HANDSHAKE_MS=3000
# The harness's accounts: 5 per worker (1 master, 4 slaves) and 1 hostile sender.
ACCOUNTS=$((WORKERS * 5 + 1))

ensure_cargo
ensure_prosody

PIDS=()
WORK=""
cleanup() {
    local status=$?
    stop_pids
    if [ "$status" -ne 0 ] && [ -n "$WORK" ]; then
        local log
        for log in prosody.log dsps.log soak.err; do
            if [ -s "$WORK/$log" ]; then
                echo "--- last lines of $log ---" >&2
                tail -n 20 "$WORK/$log" >&2
            fi
        done
    fi
    if [ -n "$WORK" ]; then
        if [ "${SOAK_KEEP:-}" = 1 ]; then
            note "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note "building dsps and the soak harness ($PROFILE)"
cargo build --profile "$PROFILE" --bin dsps --example soak
case "$PROFILE" in dev) OUT=debug ;; *) OUT=$PROFILE ;; esac
BIN="${CARGO_TARGET_DIR:-target}/$OUT"
for b in "$BIN/dsps" "$BIN/examples/soak"; do
    [ -x "$b" ] || die "build did not produce $b"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dsps-soak.XXXXXX")
mkdir -p "$WORK/data" "$WORK/certs"
SECRET=$(random_word)
PASSWORD=$(random_word)

# The harness's hostile raw clients log in without TLS (see the Prosody template).
PROSODY_REQUIRE_TLS=false
note "registering $ACCOUNTS accounts"
mapfile -t USERS < <(seq -f 'soak%g' 1 "$ACCOUNTS")
register_accounts "$PASSWORD" "${USERS[@]}"
start_prosody_retrying

start_dsps "[timeouts]
wait = $WAIT_MS
handshake = $HANDSHAKE_MS"
note "dsps is online as $DOMAIN, relay on $RELAY (pid $DSPS_PID); soaking for $DURATION"

status=0
"$BIN/examples/soak" --server "127.0.0.1:$C2S_PORT" --dsps "$DOMAIN" --relay-addr "$RELAY" \
    --password "$PASSWORD" --duration "$DURATION" --workers "$WORKERS" \
    --wait-ms "$WAIT_MS" --handshake-ms "$HANDSHAKE_MS" \
    --dsps-pid "$DSPS_PID" --dsps-log "$WORK/dsps.log" "${HARNESS_ARGS[@]}" \
    </dev/null >"$WORK/soak.out" 2>"$WORK/soak.err" || status=$?
FIGURES=$(cat "$WORK/soak.out")

# dsps must still be up, and must drain and exit 0 on SIGTERM.
if ! kill -0 "$DSPS_PID" 2>/dev/null; then
    note "dsps is no longer running"
    status=1
else
    kill -TERM "$DSPS_PID"
    dsps_status=0
    for _ in $(seq 150); do
        kill -0 "$DSPS_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$DSPS_PID" 2>/dev/null; then
        note "dsps did not exit within 15 s of SIGTERM"
        status=1
    else
        wait "$DSPS_PID" || dsps_status=$?
        if [ "$dsps_status" -ne 0 ]; then
            note "dsps exited $dsps_status on SIGTERM"
            status=1
        fi
    fi
fi
if grep -qF "component link lost" "$WORK/dsps.log"; then
    note "dsps lost its component link $(grep -cF "component link lost" "$WORK/dsps.log") times"
    status=1
fi

echo "$FIGURES"
[ "$status" -eq 0 ] || die "the soak failed (see above)"
echo "soak.sh OK: $DURATION, $WORKERS workers, log lines: dsps $(wc -l <"$WORK/dsps.log"), prosody $(wc -l <"$WORK/prosody.log")"
