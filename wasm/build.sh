#!/usr/bin/env bash
# Build the npm package into wasm/pkg/:
#   cargo (wasm32-unknown-unknown, profile wasm-release) -> wasm-bindgen --target web -> wasm-opt
#   (-Oz, tuned for the gzipped size)
# Installs what is missing: the rustup target, the pinned wasm-bindgen-cli, the npm devDependencies.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

WASM_BINDGEN_VERSION=0.2.130 # must equal the `wasm-bindgen = "=..."` pin in Cargo.toml
export PATH="$HOME/.cargo/bin:$PATH"

# The module is compiled by a pinned nightly that rebuilds the standard library with panics as an
# immediate trap (-Zbuild-std, -Cpanic=immediate-abort): with panic = "abort" alone, every
# panic site still carried its message, location and the formatting code to print them,
# although nothing on wasm32-unknown-unknown ever printed them (a panic traps either way, and
# the JS wrapper turns a trap into `engine_panic`/`engine_poisoned`). README "Size and speed"
# has the figures. WRITESYNC_WASM_TOOLCHAIN=stable builds with the stable toolchain and the
# prebuilt standard library instead (a larger module, over the size budget).
WASM_NIGHTLY=nightly-2026-05-20
toolchain="${WRITESYNC_WASM_TOOLCHAIN:-$WASM_NIGHTLY}"
if command -v rustup >/dev/null; then
  if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$toolchain" --profile minimal
  fi
  if ! rustup target list --toolchain "$toolchain" --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown --toolchain "$toolchain"
  fi
  if [ "$toolchain" = "$WASM_NIGHTLY" ] &&
    ! rustup component list --toolchain "$toolchain" --installed | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain "$toolchain"
  fi
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

# Panic locations name their source files; the registry's path depends on CARGO_HOME, so it is
# remapped to a fixed name: the module is then the same bytes on every machine (its gzipped
# size is held to 250 KB by scripts/check-size.mjs).
# SIMD (simd128): every target runtime has it (Node >= 16.4, Chromium >= 91, Firefox >= 89,
# Safari >= 16.4, workerd), and LLVM's 16-byte copies and compares make this module 1.3 KB
# smaller gzipped (248,496 against 249,844 bytes), with throughput unchanged within the
# benchmark's noise. Bulk memory and the other post-MVP features rustc enables by default for
# wasm32-unknown-unknown are on already.
# LLVM's inline threshold 10 instead of opt-level "z"'s 5: small functions that the size
# setting kept out of line (Vec and Layout helpers, serde_json's writes) are inlined, for 4-5 %
# fewer instructions per pushing write and 134 bytes more gzipped (README "Size and speed";
# 15 gave 2 % more for 395 bytes, 20 and 25 are over the budget).
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
flags="-C target-feature=+simd128 -C llvm-args=-inline-threshold=10 --remap-path-prefix=$cargo_home/registry/src=/cargo/registry/src"
std_args=()
if [ "$toolchain" = "$WASM_NIGHTLY" ]; then
  # The standard library's sources sit under the toolchain's directory, which differs between
  # machines: remapped like the registry's, so the module stays the same bytes everywhere.
  sysroot="$(rustup run "$toolchain" rustc --print sysroot)"
  flags="$flags -Zunstable-options -Cpanic=immediate-abort --remap-path-prefix=$sysroot/lib/rustlib/src/rust=/rustc/src"
  std_args=(-Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size)
fi
RUSTFLAGS="${RUSTFLAGS:-} $flags" \
  cargo "+$toolchain" build -p writesync-wasm --target wasm32-unknown-unknown --profile wasm-release "${std_args[@]}"
rm -rf pkg
mkdir -p pkg
# The raw module as rustc linked it, kept for the import check (scripts/check-imports.mjs).
cp "$raw" pkg/writesync_wasm_raw.wasm
wasm-bindgen --target web --no-typescript --out-dir pkg --out-name writesync_wasm "$raw"
# -Oz, less what makes the gzipped module larger (each measured on this module; README "Size
# and speed"): inlining functions that have a single caller (-ocimfs 0 turns it off; LLVM has
# already inlined what pays), local CSE, memory packing and the merging of similar functions
# save raw bytes but compress worse. Functions are then ordered by name, which puts the
# instances of one generic function side by side, where gzip's 32 KB window finds their common
# code. Names exist only in the input (wasm-bindgen keeps them); the output has none.
node_modules/.bin/wasm-opt -Oz \
  --one-caller-inline-max-function-size 0 \
  --skip-pass local-cse --skip-pass memory-packing --skip-pass merge-similar-functions \
  --reorder-functions-by-name \
  --strip-debug --strip-producers \
  pkg/writesync_wasm_bg.wasm -o pkg/writesync_wasm_bg.wasm.opt
mv pkg/writesync_wasm_bg.wasm.opt pkg/writesync_wasm_bg.wasm
# The OpenAPI document, which the module is built without (core feature `openapi` off): a JS
# module whose default export is the exact text of core/openapi.json, imported by js/engine.js
# and handed to each engine. A module rather than a .json file: every host (Node, browsers,
# Workers, bundlers) imports it as it is, and a JSON import would give a parsed object, not the
# text byte for byte.
node -e '
const fs = require("node:fs");
const text = fs.readFileSync(process.argv[1], "utf8");
fs.writeFileSync(process.argv[2],
  "// Generated by wasm/build.sh from core/openapi.json: the document served at GET /openapi.json.\n" +
  "export default " + JSON.stringify(text) + ";\n");
' ../core/openapi.json pkg/writesync_openapi.js

size=$(stat -c %s pkg/writesync_wasm_bg.wasm)
gz=$(gzip -9 -c pkg/writesync_wasm_bg.wasm | wc -c)
echo "wasm/pkg/writesync_wasm_bg.wasm: $size bytes raw, $gz bytes gzipped (-9)"
