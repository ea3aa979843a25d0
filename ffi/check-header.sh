#!/usr/bin/env bash
# Regenerate the C header into a temporary file and compare it with the committed
# ffi/include/writesync.h. Exits 1 (printing the diff) when they differ: run
#   cbindgen --config ffi/cbindgen.toml --crate writesync-ffi --output ffi/include/writesync.h
# from the workspace root and commit the result.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
CBINDGEN_VERSION=0.29.4
if ! command -v cbindgen >/dev/null 2>&1 || [[ "$(cbindgen --version)" != "cbindgen $CBINDGEN_VERSION" ]]; then
  echo "check-header: installing cbindgen $CBINDGEN_VERSION" >&2
  cargo install cbindgen --version "$CBINDGEN_VERSION" --locked >&2
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && cbindgen -q --config ffi/cbindgen.toml --crate writesync-ffi --output "$tmp/writesync.h")
if ! diff -u "$root/ffi/include/writesync.h" "$tmp/writesync.h"; then
  echo "check-header: ffi/include/writesync.h is stale; regenerate it with cbindgen (see above)" >&2
  exit 1
fi
echo "check-header: ffi/include/writesync.h is up to date"
