#!/usr/bin/env bash
# Instructions per plan of the core benchmark's case (core/examples/plan_loop.rs), counted by
# valgrind's callgrind: a figure that does not move with the machine's load, for comparing two
# builds where timings on a shared machine differ by more than the change. Needs valgrind.
#
# Usage: bash scripts/plan-instructions.sh [N]   (N plans, default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2000}"
cargo build --quiet --release -p writesync-core --example plan_loop
target_dir="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/release/examples/plan_loop"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
total() {
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.out" "$bin" "$1" >/dev/null 2>&1
  callgrind_annotate "$out/$1.out" | awk '/PROGRAM TOTALS/ && !seen { gsub(",", "", $1); print $1; seen = 1 }'
}
setup=$(total 0)
all=$(total "$n")
echo "instructions per plan: $(( (all - setup) / n )) ($n plans; setup $setup)"
