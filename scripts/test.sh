#!/usr/bin/env bash
# The whole test suite of writesync, runnable on a fresh machine that has the Rust toolchain,
# gcc, node/npm and python3: it installs what else it needs (idempotently), then runs every
# check. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

steps=0
step() { steps=$((steps + 1)); printf '\n=== %s ===\n' "$*"; }

step "install: wasm32 target, pinned wasm-bindgen-cli, cbindgen, openapi-spec-validator"
bash scripts/install-tools.sh

step "format"
cargo fmt --all -- --check

step "clippy (all crates, all targets, warnings denied)"
cargo clippy --workspace --all-targets -- -D warnings

step "docs (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo test --workspace"
cargo test --workspace

step "API fuzzing from the OpenAPI document (schemathesis against writesync serve)"
bash scripts/schemathesis.sh

step "load and crash test: 20,000 pushing writes, 8 clients, SIGKILLs (release build)"
cargo test --release -p writesync-server --test reliability_load -- --ignored --nocapture

if rustup toolchain list | grep -q '^nightly'; then
  step "fuzz targets, a short bounded run each (nightly present)"
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --quiet
  (cd fuzz && cargo +nightly fuzz build -O)
  for target in request validators engine; do
    mkdir -p "fuzz/artifacts/$target"
    # Short smoke runs (the long runs are documented), seeded from the committed corpus
    # fuzz/crashers/<target>/, which stays read only: libFuzzer writes new inputs to the first
    # directory only, a temporary one.
    corpus=$(mktemp -d)
    (cd fuzz && "./target/x86_64-unknown-linux-gnu/release/$target" "$corpus" "crashers/$target" \
        -dict=writesync.dict -max_total_time=20 -rss_limit_mb=2048 -artifact_prefix="artifacts/$target/" \
        >/dev/null 2>"../target/fuzz-$target.log") \
      || { echo "fuzz target $target found a crash:"; tail -40 "target/fuzz-$target.log"; rm -rf "$corpus"; exit 1; }
    rm -rf "$corpus"
    grep -h "^Done" "target/fuzz-$target.log" | sed "s/^/  $target: /" || true
  done
else
  printf '\n=== fuzz targets skipped: no nightly toolchain ===\n'
fi

step "core builds for wasm32-unknown-unknown"
cargo build -p writesync-core --target wasm32-unknown-unknown --release --quiet

step "OpenAPI document validates"
python3 scripts/check_openapi.py

if [ -x ffi/run-tests.sh ] || [ -f ffi/run-tests.sh ]; then
  step "C FFI: header, C tests (static and shared), valgrind, example, Python ctypes"
  bash ffi/run-tests.sh
fi

if [ -f wasm/run-tests.sh ]; then
  step "WASM: package build, node tests, miniflare, headless Chromium, size"
  bash wasm/run-tests.sh
fi

printf '\n=== all checks passed ===\nsuite: %d passed, 0 failed\n' "$steps"
