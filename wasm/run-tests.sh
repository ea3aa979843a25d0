#!/usr/bin/env bash
# Build the npm package and run every check of it. Exits non-zero when any check fails.
#
#   unit tests of the binding and of the core's openapi route without the built-in document
#   (cargo) - build (build.sh) - no `env` imports - size budget - TypeScript types - node tests
#   (vectors, flow, poisoning, the OpenAPI document, reads on demand, the layout-1 fixture refused
#   and its migrated.json read) - the Cloudflare Worker example under miniflare - the browser
#   check in headless Chromium - the throughput and cold start benchmarks (figures only)
#
# Works on a fresh machine with Rust, node/npm, gcc and python3: installs the wasm32 target, the
# pinned wasm-bindgen-cli, the npm devDependencies and Debian's chromium when they are missing.
# WRITESYNC_WASM_BENCH=0 skips the benchmarks; =check also fails when wasm is below 0.5 of native.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
fi

passed=()
failed=()
check() {
  local name="$1"
  shift
  echo
  echo "=== wasm: $name"
  if "$@"; then
    passed+=("$name")
  else
    echo "=== wasm: $name FAILED"
    failed+=("$name")
  fi
}

check "binding unit tests" cargo test -p writesync-wasm --lib
# The module is built with the core's `openapi` feature off; its test of GET /openapi.json in
# that configuration.
check "core without the openapi feature" cargo test -p writesync-core --no-default-features --test openapi
check "build" ./build.sh
if [ ! -f pkg/writesync_wasm_bg.wasm ]; then
  echo "no package was built; stopping"
  exit 1
fi
check "no imports from env" node scripts/check-imports.mjs
check "size (at most 250 KB gzipped)" node scripts/check-size.mjs
check "TypeScript types" node_modules/.bin/tsc -p tsconfig.json
check "node tests" node --test test/vectors.test.mjs test/flow.test.mjs test/poison.test.mjs test/openapi.test.mjs test/ondemand.test.mjs test/layout.test.mjs
check "Cloudflare Worker under miniflare" node --test examples/cloudflare-worker/test/
check "headless Chromium" node --test test/browser/
case "${WRITESYNC_WASM_BENCH:-1}" in
  0) ;;
  check) check "throughput benchmark" node bench/throughput.mjs --n 3000 --rounds 3 --check ;;
  *) check "throughput benchmark" node bench/throughput.mjs --n 3000 --rounds 3 ;;
esac
# Cold start and memory on a host of 20,000 pushed invoices: figures only, never a failed target.
[ "${WRITESYNC_WASM_BENCH:-1}" = 0 ] || check "cold start figures" node bench/coldstart.mjs --n 20000

echo
for c in "${failed[@]}"; do echo "FAILED: $c"; done
echo "wasm checks: ${#passed[@]} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
