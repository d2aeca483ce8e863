#!/usr/bin/env bash
# Builds the Python `text` capability into a component with componentize-py
# (CPython and app.py, pre-initialised, in one component).
# Usage: guests/python/text/build.sh OUT.wasm   (toolchains: guests/toolchains.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
guests=$(dirname "$(dirname "$here")")
out=$(realpath -m "${1:?usage: $0 OUT.wasm}")
componentize=$guests/.venv/bin/componentize-py
[[ -x $componentize ]] || { echo "$0: $componentize is missing: run guests/toolchains.sh" >&2; exit 1; }
cd "$here"
"$componentize" -d "$guests/../host/runtime/wit" -w capability componentize app -o "$out"
