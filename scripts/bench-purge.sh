#!/usr/bin/env bash
# bench-purge.sh - pages purged per second by tag, on one memcached node.
#
# Builds memfill's tests (-O2, out of tree, in _build/bench-purge) and runs
# tests/scale_purge: it starts its own memcached (256 MB, one thread) on a
# free loopback port, stores PAGES pages under the tag "site" (a tenth also
# under "sale") three times each through memfill's store path and tag
# indexing, checks the bookkeeping (one marker per page and tag), purges
# the tag, checks that no page is left, and prints the rate. The memcached
# it starts is stopped by PID when it ends.
#
# Settings (environment): PAGES (default 100000), ROUNDS (default 1: run
# that many times, one line each).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
pages=${PAGES:-100000}
rounds=${ROUNDS:-1}
dir=_build/bench-purge

if [ ! -x "$dir/tests/scale_purge" ]; then
    autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
    mkdir -p "$dir"
    (cd "$dir" && CFLAGS="-O2 -g" "$top/configure" >/dev/null && make -j2 >/dev/null &&
        make -j2 tests/scale_purge >/dev/null)
fi
for _ in $(seq "$rounds"); do
    MEMFILL_SCALE_PAGES=$pages CK_FORK=no "$dir/tests/scale_purge" | grep -E '^(stored|purge)'
done
