#!/usr/bin/env bash
# The C-level checks of writesync-ffi, runnable locally and from CI:
#   1. build the crate in release (cdylib + staticlib),
#   2. check that ffi/include/writesync.h is what cbindgen generates,
#   3. compile the C tests with gcc -Wall -Wextra -Werror against the static and the shared
#      library and run both (vectors from tests/vectors, or the directory given as $1),
#   4. run the shared-library build under valgrind --leak-check=full --error-exitcode=1,
#   5. write target/release/writesync.pc and build the example with the documented cc command
#      and with pkg-config, and run it,
#   6. run the Python ctypes smoke test.
# Needs: cargo, gcc (cc), valgrind, python3, pkg-config (installed with apt-get when missing and
# running as root); installs cbindgen 0.29.4 when missing.
# Ends with "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
vectors="${1:-${WRITESYNC_VECTORS_DIR:-$root/tests/vectors}}"
release="${CARGO_TARGET_DIR:-$root/target}/release"
out="${CARGO_TARGET_DIR:-$root/target}/ffi-tests"
static_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
cflags=(-std=c11 -Wall -Wextra -Werror -g -I"$here/include" -I"$here/tests/c")
sources=("$here"/tests/c/*.c)

passed=0
failed=0
stage() { # stage NAME STATUS: count one pass or failure of a step without its own counts
  if [[ "$2" == 0 ]]; then passed=$((passed + 1)); echo "ok: $1"; else failed=$((failed + 1)); echo "FAILED: $1"; fi
}
counted() { # counted NAME LOGFILE STATUS: add the "N passed, M failed" line of a test run
  local line p f
  line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$2" | tail -n 1)"
  if [[ -z "$line" ]]; then stage "$1 (no result line)" 1; return; fi
  p="${line%% passed*}"; f="${line#*, }"; f="${f%% failed*}"
  passed=$((passed + p)); failed=$((failed + f))
  if [[ "$3" != 0 && "$f" == 0 ]]; then failed=$((failed + 1)); fi
  echo "$([[ "$3" == 0 ]] && echo ok || echo FAILED): $1: $line"
}
# A fresh machine may lack the C tools: install them from Debian's packages when we can.
missing=()
for pair in gcc:gcc cc:gcc valgrind:valgrind python3:python3 pkg-config:pkg-config; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "run-tests: installing ${missing[*]}" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
fi
for tool in cargo gcc cc valgrind python3 pkg-config; do
  command -v "$tool" >/dev/null 2>&1 || { echo "run-tests: $tool is required" >&2; exit 1; }
done

echo "== build"
(cd "$root" && cargo build -p writesync-ffi --release) || { echo "run-tests: build failed"; echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$out"

echo "== header"
"$here/check-header.sh"; stage "header is up to date" $?

echo "== C tests"
gcc "${cflags[@]}" "${sources[@]}" "$release/libwritesync_ffi.a" $static_libs -o "$out/c_tests_static"
stage "compile against the static library" $?
gcc "${cflags[@]}" "${sources[@]}" -L"$release" -lwritesync_ffi -Wl,-rpath,"$release" -lpthread -o "$out/c_tests_shared"
stage "compile against the shared library" $?
if [[ -x "$out/c_tests_static" ]]; then
  "$out/c_tests_static" "$vectors" >"$out/static.log" 2>&1; rc=$?
  grep -E '^(FAIL|vector)' "$out/static.log" | head -n 50
  counted "C tests, static library" "$out/static.log" $rc
fi
if [[ -x "$out/c_tests_shared" ]]; then
  "$out/c_tests_shared" "$vectors" >"$out/shared.log" 2>&1; rc=$?
  grep -E '^FAIL' "$out/shared.log" | head -n 50
  counted "C tests, shared library" "$out/shared.log" $rc
  echo "== valgrind"
  valgrind --leak-check=full --error-exitcode=1 --quiet "$out/c_tests_shared" "$vectors" >"$out/valgrind.log" 2>&1; rc=$?
  grep -E '^(FAIL|==[0-9]+==)' "$out/valgrind.log" | head -n 80
  counted "C tests under valgrind" "$out/valgrind.log" $rc
fi

echo "== example and pkg-config"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
sed -e "s|@PREFIX@|$root|" -e "s|@LIBDIR@|$release|" -e "s|@INCLUDEDIR@|$here/include|" \
    -e "s|@VERSION@|$version|" "$here/writesync.pc.in" >"$release/writesync.pc"
PKG_CONFIG_PATH="$release" pkg-config --exists --print-errors writesync; stage "pkg-config finds writesync.pc" $?
# The one-line command of ffi/README.md and examples/quickstart.c, from the repository root.
(cd "$root" && cc -Iffi/include ffi/examples/quickstart.c -Ltarget/release -lwritesync_ffi -Wl,-rpath,"$PWD/target/release" -o "$out/quickstart")
stage "example builds with the documented cc command" $?
# shellcheck disable=SC2046
cc "$here/examples/quickstart.c" $(PKG_CONFIG_PATH="$release" pkg-config --cflags --libs writesync) \
   -Wl,-rpath,"$release" -o "$out/quickstart-pc"
stage "example builds with pkg-config" $?
tmp="$(mktemp -d)"
"$out/quickstart" "$tmp/quickstart.db" >"$out/quickstart.log" 2>&1 && grep -q 'nothing more is owed' "$out/quickstart.log"
stage "example runs" $?
"$out/quickstart-pc" "$tmp/quickstart-pc.db" >/dev/null 2>&1; stage "pkg-config example runs" $?
rm -rf "$tmp"

echo "== Python ctypes smoke test"
python3 "$here/tests/python/smoke.py" "$release/libwritesync_ffi.so" >"$out/python.log" 2>&1; rc=$?
grep -E '^FAIL' "$out/python.log" | head -n 50
counted "Python ctypes smoke test" "$out/python.log" $rc

echo "$passed passed, $failed failed"
[[ "$failed" == 0 ]]
