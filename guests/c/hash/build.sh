#!/usr/bin/env bash
# Builds the C `hash` capability into a component: C bindings from the WIT
# (witc), a reactor core module (zig cc with its wasi-libc), then the
# component with the WASI preview1 adapter (witc). The bindings' object file
# carries the world's component type into the module.
# Usage: guests/c/hash/build.sh OUT.wasm   (toolchains: guests/toolchains.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
guests=$(dirname "$(dirname "$here")")
out=${1:?usage: $0 OUT.wasm}
witc=$guests/c/witc/target/release/witc
python=$guests/.venv/bin/python
for tool in "$witc" "$python"; do
    [[ -x $tool ]] || { echo "$0: $tool is missing: run guests/toolchains.sh" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$witc" bindgen "$guests/../host/runtime/wit" capability "$work"
# -s: without it DWARF makes the module 40 times larger.
"$python" -m ziglang cc --target=wasm32-wasi -O2 -s -std=c11 -Wall -Werror \
    -mexec-model=reactor -Wl,--no-entry -I"$work" \
    "$here/hash.c" "$here/sha256.c" "$work/capability.c" "$work/capability_component_type.o" -o "$work/core.wasm"
"$witc" component "$work/core.wasm" "$out"
