#!/usr/bin/env bash
# Build the npm package into wasm/pkg/:
#   cargo (wasm32-unknown-unknown, profile wasm-release) -> wasm-bindgen --target web -> wasm-opt -Oz
# Installs what is missing: the rustup target, the pinned wasm-bindgen-cli, the npm devDependencies.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

WASM_BINDGEN_VERSION=0.2.130 # must equal the `wasm-bindgen = "=..."` pin in Cargo.toml
export PATH="$HOME/.cargo/bin:$PATH"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION"; then
  # Without --locked: the crates mirror may lag behind the CLI's lock file (docs: toolchain.md).
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
if [ ! -x node_modules/.bin/wasm-opt ]; then
  npm ci --no-audit --no-fund
fi

target_dir="$(cargo metadata --format-version 1 --no-deps |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
raw="$target_dir/wasm32-unknown-unknown/wasm-release/writesync_wasm.wasm"

cargo build -p writesync-wasm --target wasm32-unknown-unknown --profile wasm-release
rm -rf pkg
mkdir -p pkg
# The raw module as rustc linked it, kept for the import check (scripts/check-imports.mjs).
cp "$raw" pkg/writesync_wasm_raw.wasm
wasm-bindgen --target web --no-typescript --out-dir pkg --out-name writesync_wasm "$raw"
node_modules/.bin/wasm-opt -Oz pkg/writesync_wasm_bg.wasm -o pkg/writesync_wasm_bg.wasm.opt
mv pkg/writesync_wasm_bg.wasm.opt pkg/writesync_wasm_bg.wasm

size=$(stat -c %s pkg/writesync_wasm_bg.wasm)
gz=$(gzip -9 -c pkg/writesync_wasm_bg.wasm | wc -c)
echo "wasm/pkg/writesync_wasm_bg.wasm: $size bytes raw, $gz bytes gzipped (-9)"
