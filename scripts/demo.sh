#!/usr/bin/env bash
# End-to-end demo on this machine, loopback only: a private Prosody that requires
# STARTTLS (like any production server), dsps attached to it, and a 64 MiB file sent
# from alice to bob and carol through the relay with `dsps-client`.
#
#   1. builds dsps, dsps-client and the loopback_baseline example (release);
#   2. starts Prosody from conf/demo-prosody.cfg.lua.in in a temp dir on free
#      127.0.0.1 ports, with a self-signed certificate for "localhost" (made by
#      `dsps gen-cert`), and registers alice, bob and carol (random passwords);
#   3. starts dsps (relay on a free 127.0.0.1 port) and waits until it is online;
#   4. starts `dsps-client recv` for bob and carol, runs `dsps-client send` from
#      alice to both (every login over STARTTLS + SCRAM, trusting the certificate
#      with --ca), and checks that both received the file intact.
#
# Every process it starts is stopped by its PID on exit, and the temp dir is removed.
# Nothing else is touched; a system-wide Prosody (if any) keeps running.
# Environment: DEMO_SIZE_MIB (default 64), DEMO_PROFILE (release; "dev" builds faster
# but transfers slower), DEMO_VIA (default; or http, tls, http+tls: the receivers
# connect by that method, with an [http] listener and/or a certificate made by
# `dsps gen-cert` for 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
LIB_NAME=demo.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

SIZE_MIB=${DEMO_SIZE_MIB:-64}
PROFILE=${DEMO_PROFILE:-release}
VIA=${DEMO_VIA:-default}
case "$VIA" in default | http | tls | http+tls) ;; *) die "DEMO_VIA=$VIA: expected default, http, tls or http+tls" ;; esac
DOMAIN=dsps.localhost
START_TIMEOUT=15 # seconds for Prosody, dsps and each receiver to get ready

ensure_cargo
ensure_prosody

# ---- processes and cleanup ------------------------------------------------------------

PIDS=()
WORK=""
cleanup() {
    local status=$?
    stop_pids
    if [ "$status" -ne 0 ] && [ -n "$WORK" ]; then
        local log
        for log in prosody.log dsps.log bob.err carol.err; do
            if [ -s "$WORK/$log" ]; then
                echo "--- last lines of $log ---" >&2
                tail -n 15 "$WORK/$log" >&2
            fi
        done
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build ----------------------------------------------------------------------------

note "building dsps and dsps-client ($PROFILE)"
cargo build --profile "$PROFILE" --bin dsps --bin dsps-client --example loopback_baseline
case "$PROFILE" in dev) OUT=debug ;; *) OUT=$PROFILE ;; esac
BIN="${CARGO_TARGET_DIR:-target}/$OUT"
for b in "$BIN/dsps" "$BIN/dsps-client" "$BIN/examples/loopback_baseline"; do
    [ -x "$b" ] || die "build did not produce $b"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dsps-demo.XXXXXX")
mkdir -p "$WORK/data" "$WORK/certs"
SECRET=$(random_word)
PASSWORD=$(random_word)

# ---- Prosody --------------------------------------------------------------------------

register_accounts "$PASSWORD" alice bob carol
start_prosody_retrying

# ---- dsps -----------------------------------------------------------------------------

EXTRA=""
RECV_VIA=(--via "$VIA")
case "$VIA" in http*) EXTRA+=$'[http]\nlisten = "127.0.0.1:0"\n' ;; esac
case "$VIA" in *tls)
    "$BIN/dsps" gen-cert --out "$WORK/tls" --name 127.0.0.1 >/dev/null
    EXTRA+="[tls]"$'\n'"cert = \"$WORK/tls/cert.pem\""$'\n'"key = \"$WORK/tls/key.pem\""$'\n'
    RECV_VIA+=(--relay-ca "$WORK/tls/cert.pem")
    ;;
esac
start_dsps "$EXTRA"
note "dsps is online as $DOMAIN, relay on $RELAY (pid $DSPS_PID)"
case "$VIA" in http*)
    HTTP=$(grep -o 'http=[0-9.:]*' "$WORK/dsps.log" | head -n 1 | cut -d= -f2)
    [ -n "$HTTP" ] || die "dsps did not log its HTTP listener"
    RECV_VIA+=(--relay-addr "$HTTP")
    ;;
esac
[ "$VIA" = default ] || note "the receivers connect via $VIA"

# ---- the transfer ---------------------------------------------------------------------

note "creating a random $SIZE_MIB MiB file"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/payload.bin"

RECEIVERS=(bob carol)
RECV_PIDS=()
export DSPS_PASSWORD=$PASSWORD
# Every login: STARTTLS to the demo Prosody, trusting its self-signed certificate.
CLIENT=("$BIN/dsps-client" --server "127.0.0.1:$C2S_PORT" --ca "$WORK/certs/localhost.crt"
    --dsps "$DOMAIN" --timeout 60)
for user in "${RECEIVERS[@]}"; do
    mkdir -p "$WORK/$user"
    "${CLIENT[@]}" --jid "$user@localhost/recv" "${RECV_VIA[@]}" recv --out "$WORK/$user" \
        </dev/null >"$WORK/$user.out" 2>"$WORK/$user.err" &
    pid=$!
    PIDS+=("$pid")
    RECV_PIDS+=("$pid")
    # An invitation to a client that is not logged in yet would be refused.
    wait_for_line "$WORK/$user.err" "is waiting for an invitation" "$pid" "$START_TIMEOUT" ||
        die "dsps-client recv for $user did not log in: $(tail -n 1 "$WORK/$user.err")"
done

note "alice sends $SIZE_MIB MiB to bob and carol"
# Every wait inside dsps-client is bounded; its progress bar shows on a terminal.
SENT=$("${CLIENT[@]}" --jid alice@localhost/send \
    send "$WORK/payload.bin" --to bob@localhost/recv --to carol@localhost/recv) ||
    die "dsps-client send failed"

failed=false
for i in "${!RECEIVERS[@]}"; do
    user=${RECEIVERS[$i]}
    if ! wait "${RECV_PIDS[$i]}"; then
        note "dsps-client recv for $user failed: $(tail -n 1 "$WORK/$user.err")"
        failed=true
    elif ! cmp -s "$WORK/payload.bin" "$WORK/$user/payload.bin"; then
        note "$user's copy differs from the original"
        failed=true
    fi
done
$failed && die "the transfer did not complete"

rate() { sed -nE 's/.*\(([0-9.]+) MiB\/s\).*/\1/p' <<<"$1"; }
BOB=$(cat "$WORK/bob.out")
CAROL=$(cat "$WORK/carol.out")
echo "alice: $SENT"
echo "bob:   $BOB"
echo "carol: $CAROL"
# Baseline in the same run: the same file over one direct loopback connection, hashed
# and written by the receiver like dsps-client recv does, with no XMPP and no relay.
BASE=$("$BIN/examples/loopback_baseline" "$WORK/payload.bin" "$WORK/direct.bin") ||
    die "the loopback baseline failed"
echo "base:  $BASE"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "demo OK: $SIZE_MIB MiB from alice to bob and carol through dsps;" \
    "sender $(rate "$SENT") MiB/s, bob $(rate "$BOB") MiB/s, carol $(rate "$CAROL") MiB/s;" \
    "direct loopback copy $(rate "$BASE") MiB/s;" \
    "bob/direct $(ratio "$(rate "$BOB")" "$(rate "$BASE")"), carol/direct $(ratio "$(rate "$CAROL")" "$(rate "$BASE")")"
