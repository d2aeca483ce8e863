#!/usr/bin/env bash
# Regenerates host/cli/hot-symbols.txt: every function of fc-host that a
# trivial run and a run with one tool call execute (compile cache warm), which
# the link places together (see build.rs), and host/cli/hot-symbols.inputs,
# what the names were recorded for. A stale list only costs resident memory,
# never correctness. Needs valgrind (apt-get install valgrind).
#
# The names carry each crate's hash, which changes with the toolchain, a
# dependency's version or features, or the dist profile; the link skips a
# name it does not find without a word. So:
# - `benches/orderfile.sh --check-inputs` (run by .ci/run, no build needed)
#   fails when any of those inputs differs from what the list was recorded
#   for, and shows the difference;
# - `benches/orderfile.sh --check` (run by benches/run.sh) says how much of
#   the list the dist binary still has, which also catches functions our
#   own changes renamed.
set -euo pipefail
cd "$(dirname "$0")/.."
# What the dist build's symbol names depend on, without paths (the same on
# every machine): the compiler, the dist profile (with the release profile it
# inherits from), and every package the binary links with its version and
# enabled features.
inputs() {
    echo "# What host/cli/hot-symbols.txt was recorded for (benches/orderfile.sh); do not edit."
    rustc -vV | grep -E '^(release|commit-hash):'
    awk '/^\[/ { on = /^\[profile\.(release|dist)\]$/ } on && !/^(#|$)/' Cargo.toml
    cargo tree --locked -p fc-host --target x86_64-unknown-linux-gnu -e normal,build \
        --prefix none --format '{p} [{f}]' | sed -E 's/ \((\/|registry)[^)]*\)//; s/ \(\*\)$//' | sort -u
}
if [[ ${1:-} == --check-inputs ]]; then
    if ! diff -u --label recorded --label now host/cli/hot-symbols.inputs <(inputs); then
        echo "host/cli/hot-symbols.txt was recorded for other inputs (above): its names no longer match the dist build's, so start-up code is scattered over the binary again. Re-record it with benches/orderfile.sh (needs valgrind; about 15 minutes) and commit both files." >&2
        exit 1
    fi
    echo "Hot-symbol list: recorded for this toolchain, profile and dependency set"
    exit 0
fi
if [[ ${1:-} == --check ]]; then
    bin=target/dist/fc-host
    listed=$(sort -u host/cli/hot-symbols.txt | wc -l)
    present=$(comm -12 <(sort -u host/cli/hot-symbols.txt) \
        <(nm --defined-only "$bin" | awk '{print $3}' | sort -u) | wc -l)
    percent=$((100 * present / listed))
    if ((percent < 90)); then
        echo "Hot-symbol list: STALE, $present of its $listed functions are in $bin ($percent%): start-up code is scattered over the binary; re-record it with benches/orderfile.sh"
    else
        echo "Hot-symbol list: $present of its $listed functions are in $bin ($percent%)"
    fi
    exit 0
fi
cargo build --profile dist -p fc-host --bin fc-host
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/trivial" "$tmp/one/data"
echo hello >"$tmp/one/data/a.txt"
echo '[{"content":"done"}]' >"$tmp/trivial/brain.json"
echo '[{"content":null,"tool_calls":[{"name":"fs.read_file","arguments":{"path":"/data/a.txt"}}]},{"content":"done"}]' >"$tmp/one/brain.json"
header='version = 1\n[brain]\nkind = "scripted"\nscript = "brain.json"\n'
printf "$header" >"$tmp/trivial/policy.toml"
printf "$header"'[capabilities.fs]\ncomponent = "builtin:fs"\ntools = ["read_file"]\nmounts = [{ guest = "/data", host = "data", mode = "ro" }]\n' >"$tmp/one/policy.toml"
for run in trivial one; do
    # The first run fills the compile cache for valgrind's CPU model; the
    # second is the one recorded.
    for out in /dev/null "$tmp/$run.callgrind"; do
        FC_STATE_DIR=$tmp/state valgrind -q --tool=callgrind --smc-check=all --demangle=no \
            --callgrind-out-file="$out" target/dist/fc-host --log-level off run \
            --policy "$tmp/$run/policy.toml" >/dev/null
    done
done
# Callgrind names a function at its first mention, as a caller or a callee.
grep -hoE '^c?fn=\([0-9]+\) .*' "$tmp"/*.callgrind | sed -E 's/^c?fn=\([0-9]+\) //' |
    grep -E '^(_ZN|_R)' | awk '!seen[$0]++' >host/cli/hot-symbols.txt
inputs >host/cli/hot-symbols.inputs
wc -l host/cli/hot-symbols.txt
