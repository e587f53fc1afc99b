#!/usr/bin/env bash
# soak.sh [REQUESTS] - sends REQUESTS (default 100000) requests through
# nginx to memfill with wrk, every one a miss that memfill renders and
# stores, and prints the workers' resident memory before and after (flat is
# the goal; a growth above SOAK_MAX_GROWTH_KB, default 4096, per worker
# fails). Uses the build in MEMFILL_BUILD (default _build/default; built
# there first when missing). Not part of scripts/test.sh: it runs for a
# minute or more. See tests/integration/soak.py.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
n=${1:-100000}
build=${MEMFILL_BUILD:-_build/default}
if [ ! -x "$build/src/memfill" ] || [ ! -x "$build/src/memfillctl" ]; then
    [ -x configure ] || autoreconf -fi >/dev/null 2>&1
    mkdir -p "$build"
    (cd "$build" && "$top/configure" >/dev/null && make -j"$(nproc 2>/dev/null || echo 2)" >/dev/null)
fi
export top_srcdir="$top" top_builddir
top_builddir=$(cd "$build" && pwd)
exec python3 tests/integration/soak.py "$n"
