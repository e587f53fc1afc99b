#!/usr/bin/env bash
# fuzz.sh [SECONDS] - builds the libFuzzer targets in tests/fuzz/ and runs
# them: first a regression pass over every seed (tests/fuzz/corpus/<target>/)
# and every past crash (tests/fuzz/regressions/<target>/), then each target
# for SECONDS (default 20) of fuzzing, two at a time. A crash, leak, timeout
# or sanitizer report fails the script; its input is kept under
# tests/fuzz/crashes/ (reproduce with: _build/fuzz/<target> <file>).
#
# Build: _build/fuzz is configured with CC=clang --enable-sanitizers and
# -fsanitize=fuzzer-no-link so the library is instrumented; each target
# links it with -fsanitize=fuzzer,address,undefined. Inputs the fuzzer finds
# interesting go to _build/fuzz/corpus/<target>/ (not to the source tree).
#
# Environment: FUZZ_TARGETS="fuzz_key fuzz_route" runs a subset;
# FUZZ_JOBS (default 2) targets run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
secs=${1:-20}
jobs=${FUZZ_JOBS:-2}
targets=${FUZZ_TARGETS:-"fuzz_config fuzz_key fuzz_template fuzz_route fuzz_cachepolicy fuzz_nodesel fuzz_fcgi fuzz_relay"}
build=$top/_build/fuzz
mkdir -p "$build" tests/fuzz/crashes

command -v clang >/dev/null || { echo "fuzz.sh: clang is not installed (scripts/install-deps.sh)"; exit 1; }
[ -x configure ] || autoreconf -fi >/dev/null 2>&1

# ---- build ----
if [ ! -f "$build/config.status" ] || [ configure -nt "$build/config.status" ]; then
    (cd "$build" && CC=clang CFLAGS="-g -O1 -fsanitize=fuzzer-no-link" \
        "$top/configure" --enable-sanitizers >/dev/null)
fi
make -C "$build" -s -j"$(nproc 2>/dev/null || echo 2)" src/libmemfill.a >/dev/null

pkgs="fcgi jansson libcurl libpcre2-8 zlib"
# shellcheck disable=SC2046
cflags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
-fno-sanitize-recover=undefined -I$build -I$top/include $(pkg-config --cflags $pkgs)"
libs="$build/src/libmemfill.a $(pkg-config --libs $pkgs) -ldl"
for t in $targets; do
    src=tests/fuzz/$t.c
    bin=$build/$t
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ tests/fuzz/fuzzutil.h -nt "$bin" ] ||
        [ "$build/src/libmemfill.a" -nt "$bin" ]; then
        # shellcheck disable=SC2086
        clang $cflags "$src" $libs -o "$bin"
    fi
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export FUZZ_FCGI_DIR=$build/fcgi-tree # the files fuzz_fcgi's handlers read
fail=0

# ---- regression: every seed and every past crash, once ----
for t in $targets; do
    files=$(find "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" -type f 2>/dev/null | sort || true)
    [ -n "$files" ] || continue
    n=$(echo "$files" | wc -l)
    # shellcheck disable=SC2086
    if "$build/$t" -runs=1 $files >"$build/$t.regress.log" 2>&1; then
        echo "fuzz regression $t: $n inputs ok"
    else
        echo "fuzz regression $t: FAILED"; tail -40 "$build/$t.regress.log"; fail=1
    fi
done

# ---- fuzzing ----
run_one() { # target
    local t=$1 work=$build/corpus/$1
    mkdir -p "$work"
    "$build/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 -artifact_prefix="$top/tests/fuzz/crashes/$t-" \
        "$work" "tests/fuzz/corpus/$t" >"$build/$t.fuzz.log" 2>&1
}
if [ "$secs" -gt 0 ]; then
    pids=() names=()
    for t in $targets; do
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 0.2; done
        run_one "$t" &
        pids+=($!) names+=("$t")
    done
    for i in "${!pids[@]}"; do
        t=${names[$i]}
        if wait "${pids[$i]}"; then
            execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$t.fuzz.log")
            cov=$(grep -o 'cov: [0-9]*' "$build/$t.fuzz.log" | tail -1)
            echo "fuzz $t: ${secs}s, ${execs:-?} runs, $cov, no crash"
        else
            echo "fuzz $t: FAILED (input kept in tests/fuzz/crashes/)"
            grep -A30 'ERROR\|invariant failed\|deadly signal' "$build/$t.fuzz.log" | head -60
            fail=1
        fi
    done
fi
exit $fail
