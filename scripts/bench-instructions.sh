#!/usr/bin/env bash
# Instruction counts for the block framing and decoding micro-benchmarks, which noise
# on a shared machine cannot move: each case runs a fixed number of times
# (DSPS_BENCH_FIXED, see benches/common/mod.rs) under valgrind's callgrind, which
# collects only inside the case's routine. Each case runs twice, RUNS and 2 x RUNS
# times, and the difference is divided by RUNS: that leaves out the one untimed check
# each case makes first and any first-run warm-up. Prints one Markdown table
# (docs/performance.md, "Micro-benchmarks").
#
# Usage: scripts/bench-instructions.sh [RUNS]   (default 200 runs per case)
# Needs valgrind. Bounded: about a minute after the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
LIB_NAME=bench-instructions.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

runs=${1:-200}
case $runs in '' | *[!0-9]* | 0) die "RUNS must be a positive number, not '$runs'" ;; esac
command -v valgrind >/dev/null 2>&1 || die "valgrind is missing (apt-get install -y valgrind)"
ensure_cargo

# The bench executables, as cargo names them (target dir and hash vary).
executable() {
    cargo bench --bench "$1" --no-run 2>&1 |
        sed -n "s|.*Executable benches/$1.rs (\(.*\))|\1|p" | tail -n 1
}
framing=$(executable block_framing)
decoding=$(executable block_decoding)
[ -x "$framing" ] && [ -x "$decoding" ] || die "could not find the bench executables"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# case, binary, routine to collect in, blocks per run
cases=(
    "write_header/short_id $framing header_only 1"
    "write_header/long_id $framing header_only 1"
    "frame_as_relay/16KiB $framing frame_read 1"
    "frame_as_relay/256KiB $framing frame_read 16"
    "segments/16KiB $framing take_segments 1"
    "segments/256KiB $framing take_segments 16"
    "decode_buffer/64x16KiB $decoding decode_buffer 64"
    "decode_buffer/6400x160B $decoding decode_buffer 6400"
    "decode_bytewise/64x160B $decoding decode_bytewise 64"
)

# Instructions executed inside routine $3 of $2 when case $1 runs $4 times.
instructions() {
    local name=$1 bin=$2 routine=$3 n=$4 file
    file="$out/${name//\//_}.$n.cg"
    DSPS_BENCH_FIXED="$name:$n" valgrind --tool=callgrind --callgrind-out-file="$file" \
        --collect-atstart=no --toggle-collect="*::$routine" "$bin" >/dev/null 2>"$file.log" ||
        die "callgrind failed on $name; its log ends:"$'\n'"$(tail -n 5 "$file.log")"
    local total
    total=$(sed -n 's/^summary: *//p' "$file")
    [ -n "$total" ] && [ "$total" -gt 0 ] ||
        die "no instructions collected for $name: is $routine in $bin?"
    echo "$total"
}

echo "| case | instructions per run | instructions per block |"
echo "|---|---:|---:|"
for entry in "${cases[@]}"; do
    read -r name bin routine blocks <<<"$entry"
    once=$(instructions "$name" "$bin" "$routine" "$runs")
    twice=$(instructions "$name" "$bin" "$routine" $((2 * runs)))
    awk -v name="$name" -v d="$((twice - once))" -v runs="$runs" -v blocks="$blocks" 'BEGIN {
        printf "| %s | %.0f | %.0f |\n", name, d / runs, d / runs / blocks }'
done
