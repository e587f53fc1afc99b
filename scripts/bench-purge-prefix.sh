#!/usr/bin/env bash
# bench-purge-prefix.sh - pages purged per second by `memfillctl purge
# --prefix` on one memcached node.
#
# Starts one memcached (MEM MiB, on a free 127.0.0.1 port, ended by PID on
# exit), stores PAGES pages of VALUE bytes under /treks/ and OTHERS pages
# elsewhere (escaped as nginx escapes keys, pipelined), then times
# `memfillctl purge --prefix /treks/` and checks that every /treks/ page
# is gone and every other page is still there. Repeats ROUNDS times (a
# fresh fill each time) and prints each round and the median.
#
# Settings (environment): PAGES 100000, OTHERS 10000, VALUE 2048 (bytes),
# MEM 1024 (MiB), ROUNDS 3, BUILD (a build folder holding src/memfillctl;
# default _build/default).
set -euo pipefail

cd "$(dirname "$0")/.."
PAGES=${PAGES:-100000}
OTHERS=${OTHERS:-10000}
VALUE=${VALUE:-2048}
MEM=${MEM:-1024}
ROUNDS=${ROUNDS:-3}
BUILD=${BUILD:-_build/default}
CTL="$BUILD/src/memfillctl"
[ -x "$CTL" ] || { echo "bench-purge-prefix: no $CTL: build first" >&2; exit 1; }
command -v memcached >/dev/null || { echo "bench-purge-prefix: memcached not found" >&2; exit 1; }

TMP=$(mktemp -d)
MC_PID=""
cleanup() {
    [ -n "$MC_PID" ] && kill "$MC_PID" 2>/dev/null && wait "$MC_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket,random
while True:
    p = random.randint(20000, 31999); s = socket.socket()
    try: s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: s.close()')
USER_OPT=()
[ "$(id -u)" = 0 ] && USER_OPT=(-u nobody)
memcached "${USER_OPT[@]}" -l 127.0.0.1 -p "$PORT" -U 0 -m "$MEM" -t 2 &
MC_PID=$!
printf '{"memcached": {"servers": ["127.0.0.1:%s"]}}\n' "$PORT" > "$TMP/memfill.json"

fill_and_verify() { # $1: fill | verify
    python3 - "$1" "$PORT" "$PAGES" "$OTHERS" "$VALUE" <<'EOF'
import socket, sys, time
mode, port, pages, others, vlen = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:])
def esc(raw):
    return b"".join(b"%%%02X" % c if c <= 0x20 or c == 0x25 else bytes([c]) for c in raw)
def keys():
    for i in range(pages):
        yield True, esc(b"/treks/caf\xc3\xa9 page %d" % i)
    for i in range(others):
        yield False, esc(b"/news/%d" % i)
end = time.monotonic() + 30
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30); break
    except OSError:
        if time.monotonic() > end: raise
        time.sleep(0.05)
f = s.makefile("rb")
if mode == "fill":
    value = b"x" * vlen
    batch = []
    for _, k in keys():
        batch.append(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, vlen, value))
        if len(batch) == 1000:
            s.sendall(b"".join(batch)); batch = []
    s.sendall(b"".join(batch) + b"mn\r\n")
    line = f.readline()
    if line != b"MN\r\n":
        sys.exit(f"fill: {line!r}")
else:
    left = {True: 0, False: 0}
    ks = list(keys())
    for i in range(0, len(ks), 100):
        part = ks[i:i + 100]
        s.sendall(b"get " + b" ".join(k for _, k in part) + b"\r\n")
        got = set()
        while True:
            line = f.readline()
            if line == b"END\r\n":
                break
            k, n = line.split()[1], int(line.split()[3])
            f.read(n + 2)
            got.add(k)
        for m, k in part:
            left[m] += k in got
    if left[True] or left[False] != others:
        sys.exit(f"verify: {left[True]} /treks/ pages left, {left[False]} of {others} others")
EOF
}

results=()
for round in $(seq 1 "$ROUNDS"); do
    fill_and_verify fill
    start=$(date +%s.%N)
    out=$("$CTL" -c "$TMP/memfill.json" purge --prefix /treks/)
    end=$(date +%s.%N)
    fill_and_verify verify
    rate=$(python3 -c "import json,sys
r = json.loads(sys.argv[1]); t = float(sys.argv[3]) - float(sys.argv[2])
assert r['purged'] == int(sys.argv[4]) and r['complete'], r
print(f\"{r['purged'] / t:.0f} {r['scanned']} {t:.3f}\")" "$out" "$start" "$end" "$PAGES")
    set -- $rate
    echo "round $round: purged $PAGES of $2 keys in $3 s: $1 pages/s"
    results+=("$1")
done
median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median: $median pages/s purged by prefix ($PAGES pages of $VALUE bytes + $OTHERS others, one node)"
