#!/usr/bin/env bash
# Builds the Go `count` capability into a component: Go bindings from the
# WIT (witc), a core module from Go's own wasip1 port (c-shared, so the
# `go:wasmexport` functions are the exports), then the component with the
# world's type embedded and the WASI preview1 adapter (witc). The bindings
# import `go.bytecodealliance.org/pkg`, which guests/toolchains.sh copies
# from the wit-bindgen-go crate: the build needs no Go module proxy.
# Usage: guests/go/count/build.sh OUT.wasm   (toolchains: guests/toolchains.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
guests=$(dirname "$(dirname "$here")")
out=$(realpath -m "${1:?usage: $0 OUT.wasm}")
witc=$guests/c/witc/target/release/witc
go=$guests/.venv/bin/go
pkg=$guests/go/.pkg
for tool in "$witc" "$go" "$pkg/go.mod"; do
    [[ -e $tool ]] || { echo "$0: $tool is missing: run guests/toolchains.sh" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$witc" bindgen-go "$guests/../host/runtime/wit" capability "$work"
mkdir -p "$work/export_femtoclaw_runtime_tool_provider"
cp "$here/count.go" "$work/export_femtoclaw_runtime_tool_provider/"
cd "$work"
# The generated go.mod names the runtime module; point it at the local copy.
"$go" mod edit -go=1.27.1 -replace "go.bytecodealliance.org/pkg=$pkg"
# -checklinkname=0: the bindings' runtime links to Go runtime internals.
# -s -w: no symbol table or DWARF.
GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOOS=wasip1 GOARCH=wasm \
    GOCACHE=${GOCACHE:-$guests/go/.cache} \
    "$go" build -buildmode=c-shared -ldflags="-checklinkname=0 -s -w" -o "$work/core.wasm" .
"$witc" component "$work/core.wasm" "$out" "$guests/../host/runtime/wit" capability
