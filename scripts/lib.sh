# Shared by scripts/test.sh and scripts/demo.sh; source it, do not run it.
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
