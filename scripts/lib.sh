# Shared by scripts/test.sh, demo.sh, soak.sh and bench.sh; source it, do not run it.
# shellcheck shell=bash

# Prints a message on stderr and exits 1.
die() {
    echo "${LIB_NAME:-dsps}: error: $*" >&2
    exit 1
}

# Prints a progress note on stderr.
note() {
    echo "${LIB_NAME:-dsps}: $*" >&2
}

# Puts cargo on PATH (rustup's ~/.cargo/env) and checks that rustfmt and clippy exist.
ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck source=/dev/null
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found; install Rust 1.80 or later (https://rustup.rs) and try again"
}

# Makes sure rustfmt and clippy are there (rustup minimal profiles lack them).
ensure_cargo_tools() {
    if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
        return 0
    fi
    command -v rustup >/dev/null 2>&1 ||
        die "cargo fmt or cargo clippy is missing and rustup is not available to add them"
    note "adding rustfmt and clippy with rustup"
    rustup component add rustfmt clippy
}

# Installs Prosody from the distribution when prosodyctl is missing (Debian/Ubuntu).
# Uses sudo only when not root. Fails loudly if Prosody is still missing afterwards.
ensure_prosody() {
    if command -v prosodyctl >/dev/null 2>&1 && command -v prosody >/dev/null 2>&1; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "Prosody is not installed and apt-get is not available; install the prosody package"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            die "Prosody is not installed; run as root or install sudo (apt-get install -y prosody)"
        sudo=(sudo)
    fi
    note "installing Prosody: apt-get update && apt-get install -y prosody"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y prosody
    command -v prosodyctl >/dev/null 2>&1 && command -v prosody >/dev/null 2>&1 ||
        die "Prosody is still missing after apt-get install prosody"
    note "installed $(dpkg-query -W prosody 2>/dev/null || echo prosody)"
}

# ensure_commands CMD:PACKAGE...: installs the Debian package of each missing command
# (apt-get, with sudo only when not root), like ensure_prosody; fails loudly if one is
# still missing afterwards.
ensure_commands() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and apt-get is not available to install them"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            die "missing ${missing[*]}; run as root or install sudo (apt-get install -y ${missing[*]})"
        sudo=(sudo)
    fi
    note "installing ${missing[*]}: apt-get update && apt-get install -y ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 ||
            die "${pair%%:*} is still missing after apt-get install ${pair#*:}"
    done
}

# ---- private Prosody and processes (demo.sh, soak.sh, bench.sh) ------------------------

# Waits until file $1 contains the fixed string $2; fails if process $3 exits first
# or after $4 seconds.
wait_for_line() {
    local file=$1 needle=$2 pid=$3 secs=$4
    local deadline=$((SECONDS + secs))
    until grep -qF -- "$needle" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || return 1
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# A 127.0.0.1 TCP port nobody is using right now (not listening, not connected).
# Another process may still take it before we do; Prosody's log tells, and we retry.
free_port() {
    local used port
    used=" $(for f in /proc/net/tcp /proc/net/tcp6; do
        [ -r "$f" ] && tail -n +2 "$f" | while read -r _ addr _; do
            printf '%d ' "$((16#${addr##*:}))"
        done
    done) "
    while :; do
        port=$((20000 + RANDOM % 40000))
        case "$used" in *" $port "*) continue ;; esac
        echo "$port"
        return
    done
}

random_word() {
    od -An -N12 -tx1 /dev/urandom | tr -d ' \n'
}

# The callers below use these globals: WORK (temp dir), DOMAIN (component domain),
# SECRET (component secret), START_TIMEOUT (seconds), PIDS (array of PIDs to stop).

# Writes $WORK/prosody.cfg.lua from conf/demo-prosody.cfg.lua.in with ports $1 and $2;
# c2s requires TLS unless PROSODY_REQUIRE_TLS=false. Makes the server's self-signed
# certificate for "localhost" ($WORK/certs/localhost.crt) on first use, with
# `$BIN/dsps gen-cert`.
write_prosody_config() {
    if [ ! -s "$WORK/certs/localhost.crt" ]; then
        "$BIN/dsps" gen-cert --out "$WORK/certs" --name localhost >/dev/null ||
            die "dsps gen-cert failed"
        mv "$WORK/certs/cert.pem" "$WORK/certs/localhost.crt"
        mv "$WORK/certs/key.pem" "$WORK/certs/localhost.key"
    fi
    sed -e "s|@DIR@|$WORK|g" -e "s|@C2S_PORT@|$1|g" \
        -e "s|@COMPONENT_PORT@|$2|g" -e "s|@DOMAIN@|$DOMAIN|g" \
        -e "s|@SECRET@|$SECRET|g" -e "s|@REQUIRE_TLS@|${PROSODY_REQUIRE_TLS:-true}|g" \
        conf/demo-prosody.cfg.lua.in >"$WORK/prosody.cfg.lua"
    if [ -n "${PROXY65_DOMAIN:-}" ]; then
        # mod_proxy65's ports are global options (first in the file); the component
        # comes last. Its streamhost is advertised as 127.0.0.1.
        {
            echo "proxy65_ports = { ${PROXY65_PORT:-0} }; proxy65_interfaces = { \"127.0.0.1\" }"
            cat "$WORK/prosody.cfg.lua"
            echo "Component \"$PROXY65_DOMAIN\" \"proxy65\""
            echo "    proxy65_address = \"127.0.0.1\""
        } >"$WORK/prosody.cfg.lua.new"
        mv "$WORK/prosody.cfg.lua.new" "$WORK/prosody.cfg.lua"
    fi
}

# Registers accounts $2... on localhost with password $1. prosodyctl writes them into
# data_path, which the server reads; the ports in the config do not matter for this,
# so register once, before the first start.
register_accounts() {
    local password=$1 user
    shift
    write_prosody_config 0 0
    for user in "$@"; do
        prosodyctl --config "$WORK/prosody.cfg.lua" register "$user" localhost "$password" \
            </dev/null >"$WORK/prosodyctl.out" 2>&1 ||
            die "prosodyctl register $user failed: $(tail -n 3 "$WORK/prosodyctl.out")"
    done
}

# Starts Prosody on two free ports; sets C2S_PORT, COMPONENT_PORT and PROSODY_PID.
# With PROXY65_DOMAIN set, also a mod_proxy65 component of that name on a third
# free port, PROXY65_PORT.
start_prosody() {
    C2S_PORT=$(free_port)
    COMPONENT_PORT=$(free_port)
    [ "$C2S_PORT" != "$COMPONENT_PORT" ] || return 1
    local proxy65_line=""
    if [ -n "${PROXY65_DOMAIN:-}" ]; then
        PROXY65_PORT=$(free_port)
        [ "$PROXY65_PORT" != "$C2S_PORT" ] && [ "$PROXY65_PORT" != "$COMPONENT_PORT" ] || return 1
        proxy65_line="Activated service 'proxy65' on [127.0.0.1]:$PROXY65_PORT"
    fi
    write_prosody_config "$C2S_PORT" "$COMPONENT_PORT"
    : >"$WORK/prosody.log"
    prosody -F --config "$WORK/prosody.cfg.lua" </dev/null >"$WORK/prosody.out" 2>&1 &
    PROSODY_PID=$!
    PIDS+=("$PROSODY_PID")
    # Prosody keeps running when a port is taken, so an open port proves nothing:
    # wait for its own log line for each listener.
    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        if grep -qF "Activated service 'c2s' on [127.0.0.1]:$C2S_PORT" "$WORK/prosody.log" &&
            grep -qF "Activated service 'component' on [127.0.0.1]:$COMPONENT_PORT" "$WORK/prosody.log" &&
            { [ -z "$proxy65_line" ] || grep -qF "$proxy65_line" "$WORK/prosody.log"; }; then
            return 0
        fi
        if grep -qF "Failed to open server port" "$WORK/prosody.log" ||
            ! kill -0 "$PROSODY_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            kill -TERM "$PROSODY_PID" 2>/dev/null || true
            wait "$PROSODY_PID" 2>/dev/null || true
            return 1
        fi
        sleep 0.1
    done
}

# start_prosody, up to three times on fresh ports; dies if none works.
start_prosody_retrying() {
    local attempt
    for attempt in 1 2 3; do
        if start_prosody; then
            note "Prosody is up: c2s 127.0.0.1:$C2S_PORT, component 127.0.0.1:$COMPONENT_PORT (pid $PROSODY_PID)"
            return 0
        fi
        note "Prosody did not come up (attempt $attempt); retrying on other ports"
    done
    die "Prosody did not start; see its log above"
}

# start_dsps EXTRA: writes $WORK/dsps.toml for component $DOMAIN on the running Prosody
# (secret $SECRET), relay on a free loopback port advertised as 127.0.0.1, with EXTRA
# (more TOML sections) appended; starts $BIN/dsps logging to $WORK/dsps.log, adds it
# to PIDS, waits for "component online" and sets DSPS_PID and RELAY (ip:port).
start_dsps() {
    cat >"$WORK/dsps.toml" <<EOF
[component]
jid = "$DOMAIN"
server = "127.0.0.1:$COMPONENT_PORT"
secret = "$SECRET"

[relay]
# Port 0: the system picks a free port and dsps advertises the one it got.
listen = "127.0.0.1:0"
host = "127.0.0.1"
$1
EOF
    RUST_LOG=${DSPS_LOG:-info} "$BIN/dsps" --config "$WORK/dsps.toml" </dev/null 2>"$WORK/dsps.log" &
    DSPS_PID=$!
    PIDS+=("$DSPS_PID")
    wait_for_line "$WORK/dsps.log" "component online" "$DSPS_PID" "$START_TIMEOUT" ||
        die "dsps did not come online within $START_TIMEOUT s"
    RELAY=$(grep -o 'relay=[0-9.:]*' "$WORK/dsps.log" | head -n 1 | cut -d= -f2)
    [ -n "$RELAY" ] || die "dsps did not log its relay address"
}

# Sends SIGTERM to every PID in PIDS, gives each 5 s (Prosody takes about a second),
# then SIGKILL. Only our own children are touched, by PID.
stop_pids() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
