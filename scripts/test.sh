#!/usr/bin/env bash
# test.sh - installs what is missing, builds, and runs every test:
#   1. the normal build with -Werror, `make check` (unit suites with Check,
#      integration suites with real nginx, memcached and spawn-fcgi);
#   2. the same suites built with ASan + UBSan (--enable-sanitizers);
#   3. the libFuzzer targets (scripts/fuzz.sh: seeds and past crashes, then
#      20 s each, two at a time);
#   4. the unit suites under valgrind.
# MEMFILL_NO_SKIP=1 is set: a test that would skip for a missing binary
# fails instead. Builds go to _build/ (out of tree).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
export MEMFILL_NO_SKIP=1

scripts/install-deps.sh
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi

jobs=$(nproc 2>/dev/null || echo 2)
step() { printf '\n==== %s ====\n' "$*"; }

run_check() { # dir, extra configure args...
    local dir=$1; shift
    mkdir -p "$dir"
    (cd "$dir" && "$top/configure" --enable-werror "$@" >/dev/null &&
        make -j"$jobs" >/dev/null && make -j"$jobs" check) ||
        { find "$dir/tests" -name '*.log' -newer "$dir/config.status" \
              -exec sh -c 'grep -q "^# FAIL\|FAIL:\|ERROR:" "$1" && { echo "---- $1"; tail -50 "$1"; }' _ {} \; ; return 1; }
}

step "build and make check (-Werror)"
run_check _build/default

step "ASan + UBSan build and make check"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_check _build/asan --enable-sanitizers

step "fuzzing: regressions, then 20 s per libFuzzer target"
scripts/fuzz.sh 20

step "valgrind over the unit suites"
scripts/valgrind-tests.sh _build/default

echo
echo "all tests passed"
