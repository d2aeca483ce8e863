#!/usr/bin/env bash
# Prints FemtoClaw's benchmark table. Rerun with: benches/run.sh
# Builds fc-host and the suite in the dist profile (what we ship: fat LTO
# and the hot-symbol layout), builds the bare baseline
# embedding (benches/bare: runtime-only wasmtime, once with Cranelift to
# precompile its input), then runs every benchmark with state on tmpfs.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /dev/shm/fc-bench.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -z ${1:-} || ${1:-} == fleet ]]; then
    # The fleet part runs serve nodes on PostgreSQL: an fc-host built with
    # the feature, kept beside the default build (which is built last).
    cargo build --profile dist -p fc-host --bin fc-host --features postgres
    cp target/dist/fc-host "$tmp/fc-host-postgres"
    export FC_BENCH_FLEET_HOST="$tmp/fc-host-postgres"
fi
cargo build --profile dist -p fc-host --bin fc-host
cargo build --profile dist -p fc-host-bench
if [[ ${1:-} == static ]]; then
    # The statically linked build beside the glibc one (musl-gcc: Debian's musl-tools).
    rustup target add x86_64-unknown-linux-musl
    CC_x86_64_unknown_linux_musl=musl-gcc \
        cargo build --profile dist --target x86_64-unknown-linux-musl -p fc-host --bin fc-host
fi
(cd benches/bare && cargo build --release --features compile --target-dir target-compile -q && cargo build --release -q)
# Peak RSS is measured through a small launcher (see its source).
cc -O2 -static -o "$tmp/launch" benches/launch/launch.c
export FC_BENCH_LAUNCHER="$tmp/launch"
cap=$(grep -oh '"[^"]*/release/cap_fs.wasm"' target/dist/build/fc-host-runtime-*/out/guests.rs | head -n1 | tr -d '"')
benches/bare/target-compile/release/bare-host precompile "$cap" "$tmp/cap_fs.cwasm"
# The journal and fleet parts measure PostgreSQL beside the redb file.
if [[ -z ${1:-} || ${1:-} == journal || ${1:-} == fleet ]]; then
    .ci/postgres >/dev/null
fi
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr); $(date -u +%F)"
benches/orderfile.sh --check
echo
BARE_HOST=benches/bare/target/release/bare-host BARE_CWASM="$tmp/cap_fs.cwasm" target/dist/fc-bench "$@"
