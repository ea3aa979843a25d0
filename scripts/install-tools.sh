#!/usr/bin/env bash
# Installs the tools the test suite needs beyond Rust, gcc, node/npm and python3.
# Idempotent: each tool is installed only when missing (or at the wrong version).
set -euo pipefail
WASM_BINDGEN_VERSION=0.2.130

rustup target list --installed | grep -qx wasm32-unknown-unknown \
  || rustup target add wasm32-unknown-unknown

if ! command -v wasm-bindgen >/dev/null 2>&1 \
  || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  # Without --locked: the registry mirror lags the CLI's lock file (see shared/guide/toolchain.md).
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --quiet
fi

command -v cbindgen >/dev/null 2>&1 || cargo install cbindgen --version 0.29.4 --quiet

python3 -c "import openapi_spec_validator" 2>/dev/null \
  || python3 -m pip install --quiet openapi-spec-validator==0.9.0

if ! command -v valgrind >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
