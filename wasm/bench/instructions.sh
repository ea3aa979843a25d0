#!/usr/bin/env bash
# Instructions per pushing invoice write of the wasm package in node, counted by valgrind's
# callgrind: the instructions of 2N writes less those of N (so that node's start, the module's
# compilation and the setup cancel out), divided by N. A figure that moves far less with the
# machine's load than the timings of bench/throughput.mjs, for comparing two builds (about
# +-1 % between runs of one build). node runs with --single-threaded (compilation on the main
# thread, where callgrind counts it in step with the work) and --no-liftoff (the module is
# compiled once by the optimizing compiler instead of tiering up at times that vary).
# Counted instructions include the JS wrapper, the host and V8's own work (garbage collection,
# the calls that memory.copy becomes); they are not a timing: an allocation of an ArrayBuffer,
# for one, costs more time than its instructions say. Needs valgrind; takes about a minute.
#
# Usage: bash bench/instructions.sh [N] [PACKAGE_DIR]   (N default 1000; PACKAGE_DIR: another
# build of the package, with js/ and pkg/, to measure instead of this one)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
dir="${2:-}"
count() {
  valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file=/dev/null \
    node --single-threaded --no-liftoff bench/instructions.mjs "$1" $dir 2>&1 |
    awk '/Collected :/ { print $4 }'
}
one=$(count "$n")
two=$(count $((2 * n)))
echo "instructions per write: $(( (two - one) / n )) ($((2 * n)) writes less $n)"
