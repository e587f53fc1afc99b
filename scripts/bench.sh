#!/usr/bin/env bash
# bench.sh - memfill side by side with the ways a site could do without it.
#
# Builds memfill (out of tree, -O2, in _build/bench) and the reference
# FastCGI application (bench/ref_app.c), then starts under a throw-away
# prefix, on 127.0.0.1 high ports: memcached, a front nginx (1 worker,
# pinned to the first CPU) with two server blocks (the peers' locations and
# exactly what `memfillctl nginx-conf` prints for the bench's memfill
# config), an origin nginx (the HTTP application memfill relays to), the
# reference app under spawn-fcgi and memfill itself. wrk (one thread,
# pinned to the last CPU) drives each scenario at each connection level and
# the script prints one line per run, then the ratios memfill is judged
# by. Everything it starts is ended by PID on exit, and the prefix removed.
#
# Scenarios (SCENARIOS, space separated), in the default order:
#   static     nginx sends a 2 KiB file: the ceiling of any hit
#   fcache     fastcgi_cache hit (nginx's disk cache before the ref app)
#   hit        memcached_pass hit on a 2 KiB value, tuned (keepalive pool)
#   mf-hit     the same hit through the nginx config memfillctl generates
#   mf-mixed   HIT_PCT% hits over HOT_N warmed keys, the rest mf-miss misses
#   mf-miss    memcached miss -> memfill renders a Mustache template over
#              JSON (~2 KiB), answers, then stores
#   mf-relay   memcached miss -> memfill relays the origin's page, stores
#   ref-mixed  HIT_PCT% hits, the rest ref-store misses
#   ref        the reference app alone, a new URI per request
#   ref-store  the naive writer: memcached miss -> error_page -> ref app,
#              which sets the page (blocking) and then answers
#   srcache    srcache_fetch miss -> ref app -> srcache_store (nginx stores)
# Why this order: over TCP (REF_LISTEN=tcp, the default, as the naive
# writer is usually run) every request to the reference app leaves a
# loopback TIME-WAIT socket for 60 s, tens of thousands per run; at 2000
# connections whatever runs next inherits that (seconds-long connection
# stalls, connections reset). So the scenarios that use the reference app
# the most run last, each after its own kind; the tw column of RESULTS
# shows the TIME-WAIT count each run started with.
#
# Settings (environment):
#   SCENARIOS   default: all of the above
#   CONNS       "50 500 2000"      DURATION 5 (s)   WARMUP 1 (s)
#   ROUNDS      1: run the whole list this many times and judge the medians
#               (a busy machine makes single runs noisy: see the othr column)
#   MF_WORKERS  memfill workers (4)          MF_LISTEN unix | tcp (unix)
#   REF_FORKS   reference app processes (4)  REF_LISTEN tcp | unix (tcp)
#   MC_KEEPALIVE  memcached pool of the tuned hit (2048)
#   MF_MC_KEEPALIVE  memcached pool in memfill's generated config
#               (memfillctl nginx-conf --keepalive; default: MC_KEEPALIVE;
#               "default" = what memfillctl prints without the option)
#   MF_FCGI_KEEPALIVE  experiment: N > 0 adds FastCGI keep-alive (N idle
#               connections, fastcgi_keep_conn on) to the generated config
#               (libfcgi pins a worker to a kept connection: N < MF_WORKERS)
#   HOT_N 1000  HIT_PCT 90  PAGE_BYTES 2048
#   BASE_PORT   61080 (uses +0..+6): keep it outside the kernel's ephemeral
#               range (net.ipv4.ip_local_port_range, 32768-60999 on Debian),
#               or the bench's own outgoing connections may hold the port
#   NGX_CPU / WRK_CPU  CPU lists for taskset (auto: first / last CPU;
#               none: unpinned)
#   MEMFILL_BUILD  build directory (default _build/bench); MEMFILL / MEMFILLCTL
#               use these binaries instead of building
#   PROFILE=1   also record the memfill workers with `perf record -g`
#               during each measured mf-miss/mf-relay run and print the top
#               symbols (needs perf)
#   RESULTS=file  append tab-separated rows;  KEEP=1  keep the prefix
#
# Columns: req/s = completed requests / wrk's duration; p50 and p99 from
# wrk's histogram (closed loop, so p99 understates an open-loop tail);
# non2xx = HTTP status >= 400; sockerr = connect+read+write+timeout errors;
# CPU in % of one core over the measured run (nginx = front nginx, mc =
# memcached, app = the reference app or memfill, orig = origin nginx, wrk,
# othr = busy time of the machine charged to none of these: other programs,
# so a run with a large othr was disturbed); us/req = server CPU (nginx + mc
# + app + orig) per request, app-us = the app's part of it (CPU ticks are
# 10 ms, so short runs are coarse); mc/req = memcached get hits, get misses
# and sets per request (proves each scenario did what it says).
set -uo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
ASSETS=$TOP/bench

SCENARIOS=${SCENARIOS:-"static fcache hit mf-hit mf-mixed mf-miss mf-relay ref-mixed ref ref-store srcache"}
CONNS=${CONNS:-"50 500 2000"}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-1}
MF_WORKERS=${MF_WORKERS:-4}
MF_LISTEN=${MF_LISTEN:-unix}
REF_FORKS=${REF_FORKS:-4}
REF_LISTEN=${REF_LISTEN:-tcp}
MC_KEEPALIVE=${MC_KEEPALIVE:-2048}
MF_FCGI_KEEPALIVE=${MF_FCGI_KEEPALIVE:-0}
MF_MC_KEEPALIVE=${MF_MC_KEEPALIVE:-$MC_KEEPALIVE}
HOT_N=${HOT_N:-1000}
HIT_PCT=${HIT_PCT:-90}
PAGE_BYTES=${PAGE_BYTES:-2048}
BASE_PORT=${BASE_PORT:-61080}
NGX_CPU=${NGX_CPU:-auto}
WRK_CPU=${WRK_CPU:-auto}
MEMFILL_BUILD=${MEMFILL_BUILD:-$TOP/_build/bench}
PROFILE=${PROFILE:-0}
RESULTS=${RESULTS:-}
KEEP=${KEEP:-0}

PORT=$BASE_PORT              # front nginx, peers' server
MF_PORT=$((BASE_PORT + 1))   # front nginx, memfill's generated server
ORIGIN_PORT=$((BASE_PORT + 2))
MC_PORT=$((BASE_PORT + 3))
REF_PORT=$((BASE_PORT + 4))
MF_TCP_PORT=$((BASE_PORT + 5))
ADMIN_PORT=$((BASE_PORT + 6))   # memfill's status (memfillctl stats)

WORK=
NGX_PID= ORIGIN_PID= MC_PID= MF_PID= REF_PIDS=

say() { printf '%s\n' "$*" >&2; }
die() {
    say "bench.sh: $*"
    [[ -n $WORK && -s $WORK/logs/error.log ]] && { say "--- nginx error.log:"; tail -n 15 "$WORK/logs/error.log" >&2; }
    [[ -n $WORK && -s $WORK/logs/memfill.log ]] && { say "--- memfill.log:"; tail -n 15 "$WORK/logs/memfill.log" >&2; }
    exit 1
}

# ------------------------------------------------------------ processes

running() { # pid: true while it exists and is not a zombie
    local line
    { read -r line < "/proc/$1/stat"; } 2> /dev/null || return 1
    line=${line##*) }
    [[ -n $line && ${line:0:1} != Z ]]
}

children_of() { # pid -> its direct children, one per line
    local f line rest
    for f in /proc/[0-9]*/stat; do
        { read -r line < "$f"; } 2>/dev/null || continue
        rest=${line##*) }
        rest=${rest#* }
        [[ ${rest%% *} == "$1" ]] && echo "${line%% *}"
    done
}

stop_pids() { # sig pid...: signal these PIDs, wait up to 5 s, then KILL them
    local sig=$1 p i left
    shift
    (($#)) || return 0
    for p in "$@"; do kill "-$sig" "$p" 2>/dev/null; done
    for i in $(seq 50); do
        left=0
        for p in "$@"; do running "$p" && left=1; done
        ((left)) || return 0
        sleep 0.1
    done
    for p in "$@"; do running "$p" && kill -KILL "$p" 2>/dev/null; done
    return 0
}

cleanup() {
    trap - EXIT INT TERM
    local kids
    if [[ -n $MF_PID ]]; then
        kids=$(children_of "$MF_PID")
        stop_pids TERM "$MF_PID"
        stop_pids KILL $kids
    fi
    [[ -n $REF_PIDS ]] && stop_pids TERM $REF_PIDS
    if [[ -n $NGX_PID ]]; then
        kids=$(children_of "$NGX_PID")
        stop_pids QUIT "$NGX_PID"
        stop_pids KILL $kids
    fi
    if [[ -n $ORIGIN_PID ]]; then
        kids=$(children_of "$ORIGIN_PID")
        stop_pids QUIT "$ORIGIN_PID"
        stop_pids KILL $kids
    fi
    [[ -n $MC_PID ]] && stop_pids TERM "$MC_PID"
    wait 2>/dev/null
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ $KEEP == 1 ]]; then say "kept: $WORK"; else rm -rf "$WORK"; fi
    fi
}

wait_http() { # url pid what
    local i
    for i in $(seq 100); do
        curl -s -o /dev/null "$1" && return 0
        running "$2" || break
        sleep 0.05
    done
    die "$3 did not start"
}

# ------------------------------------------------------------ memcached

mc() { # "command" -> reply lines (CR removed)
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$MC_PORT" || return 1
    printf '%s\r\nquit\r\n' "$1" >&"$fd"
    timeout 5 cat <&"$fd" | tr -d '\r'
    exec {fd}>&-
}

mc_set_file() { # key file
    local fd reply
    exec {fd}<>"/dev/tcp/127.0.0.1/$MC_PORT" || return 1
    { printf 'set %s 0 0 %s\r\n' "$1" "$(stat -c %s "$2")"; cat "$2"; printf '\r\nquit\r\n'; } >&"$fd"
    reply=$(timeout 5 cat <&"$fd" | tr -d '\r')
    exec {fd}>&-
    [[ $reply == STORED* ]] || die "memcached refused to store $1: $reply"
}

mc_has() { # key [tries]: true once memcached holds key (memfill stores after answering)
    local i
    for i in $(seq "${2:-40}"); do
        mc "get $1" | grep -q '^VALUE ' && return 0
        sleep 0.05
    done
    return 1
}

MC_COUNTS=()
mc_counts() { # -> MC_COUNTS=(get_hits get_misses cmd_set)
    MC_COUNTS=($(mc stats | awk '$1 == "STAT" { v[$2] = $3 }
        END { print v["get_hits"] + 0, v["get_misses"] + 0, v["cmd_set"] + 0 }'))
}

# ------------------------------------------------------------ set-up

fill() { # template output: replace @NAME@ placeholders
    sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$PORT|g" -e "s|@MF_PORT@|$MF_PORT|g" \
        -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" -e "s|@MC_PORT@|$MC_PORT|g" \
        -e "s|@REF_ADDR@|$REF_ADDR|g" -e "s|@MF_LISTEN@|$MF_ADDR|g" \
        -e "s|@MF_WORKERS@|$MF_WORKERS|g" -e "s|@MC_KEEPALIVE@|$MC_KEEPALIVE|g" \
        -e "s|@ADMIN_PORT@|$ADMIN_PORT|g" -e "s|@LISTEN_MODE@|$MF_MODE|g" \
        -e "s|@BACKLOG@|$BACKLOG|g" -e "s|@NOFILE@|$NGX_NOFILE|g" \
        -e "s|@WORKER_CONNECTIONS@|$NGX_CONNS|g" "$1" > "$2"
}

make_page() { # file: an HTML page of exactly PAGE_BYTES bytes
    local end=$'</ul>\n</body>\n</html>\n' i
    {
        printf '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        printf '<title>A static page</title>\n</head>\n<body>\n<h1>A static page</h1>\n<ul>\n'
        for ((i = 0; i < PAGE_BYTES / 40 + 1; i++)); do
            printf '<li>Line %04d of the static page.</li>\n' "$i"
        done
    } | head -c $((PAGE_BYTES - ${#end})) > "$1"
    printf '%s' "$end" >> "$1"
}

build() {
    if [[ -n ${MEMFILL:-} ]]; then
        MEMFILLCTL=${MEMFILLCTL:-$(dirname "$MEMFILL")/memfillctl}
    else
        if [[ ! -x $TOP/configure ]]; then
            (cd "$TOP" && autoreconf -fi > /dev/null 2>&1) || die "autoreconf failed"
        fi
        mkdir -p "$MEMFILL_BUILD"
        if [[ ! -f $MEMFILL_BUILD/Makefile ]]; then
            (cd "$MEMFILL_BUILD" && "$TOP/configure" CFLAGS="-O2 -g" > configure.log 2>&1) ||
                die "configure failed (see $MEMFILL_BUILD/configure.log)"
        fi
        make -C "$MEMFILL_BUILD" -j"$NCPU" src/memfill src/memfillctl > "$MEMFILL_BUILD/bench-make.log" 2>&1 ||
            { tail -n 20 "$MEMFILL_BUILD/bench-make.log" >&2; die "building memfill failed"; }
        MEMFILL=$MEMFILL_BUILD/src/memfill
        MEMFILLCTL=$MEMFILL_BUILD/src/memfillctl
    fi
    cc -O2 -Wall -o "$WORK/ref_app" "$ASSETS/ref_app.c" -lfcgi -lmemcached ||
        die "building bench/ref_app.c failed"
}

start_memcached() {
    local -a as=()
    [[ $(id -u) == 0 ]] && as=(-u root)
    memcached -l 127.0.0.1 -p "$MC_PORT" -U 0 -t 4 -m 1024 -c "$MC_CONNS" "${as[@]}" \
        > "$WORK/logs/memcached.log" 2>&1 &
    MC_PID=$!
    local i
    for i in $(seq 100); do
        mc version 2>/dev/null | grep -q ^VERSION && return 0
        running "$MC_PID" || break
        sleep 0.05
    done
    die "memcached did not start"
}

start_origin() {
    fill "$ASSETS/origin.conf.in" "$WORK/conf/origin.conf"
    nginx -p "$WORK/" -c conf/origin.conf -g 'daemon off;' > "$WORK/logs/origin.out" 2>&1 &
    ORIGIN_PID=$!
    wait_http "http://127.0.0.1:$ORIGIN_PORT/" "$ORIGIN_PID" "the origin nginx"
}

start_memfill() {
    mkdir -p "$WORK/site"
    cp "$ASSETS/site/page.mustache" "$ASSETS/site/page.json" "$WORK/site/"
    fill "$ASSETS/memfill.json.in" "$WORK/memfill.json"
    "$MEMFILL" -t -c "$WORK/memfill.json" > "$WORK/logs/memfill-t.log" 2>&1 ||
        { cat "$WORK/logs/memfill-t.log" >&2; die "memfill -t rejected the bench config"; }
    # the nginx side, generated (keepalive pool sized like the tuned hit's)
    local listen="127.0.0.1:$MF_PORT backlog=$BACKLOG"
    local -a ka=(--keepalive "$MF_MC_KEEPALIVE")
    [[ $MF_MC_KEEPALIVE == default ]] && ka=()
    "$MEMFILLCTL" -c "$WORK/memfill.json" nginx-conf --listen "$listen" \
        --server-name memfill "${ka[@]}" > "$WORK/conf/memfill.conf" ||
        die "memfillctl nginx-conf failed"
    if ((MF_FCGI_KEEPALIVE > 0)); then
        # experiment: FastCGI keep-alive from nginx to memfill (libfcgi
        # pins a worker to a kept connection: keep it below MF_WORKERS)
        sed -i -e "/^upstream memfill_app {/a\\    keepalive $MF_FCGI_KEEPALIVE;" \
            -e 's/^\( *\)fastcgi_pass memfill_app;/\1fastcgi_keep_conn on;\n&/' "$WORK/conf/memfill.conf"
    fi
    "$MEMFILL" -c "$WORK/memfill.json" > "$WORK/logs/memfill.out" 2>&1 &
    MF_PID=$!
    local i
    for i in $(seq 100); do
        if [[ $MF_LISTEN == unix ]]; then [[ -S $WORK/memfill.sock ]] && break
        else (exec 3<>"/dev/tcp/127.0.0.1/$MF_TCP_PORT") 2>/dev/null && break; fi
        running "$MF_PID" || die "memfill exited at start"
        sleep 0.05
    done
    sleep 0.2
    MF_WORKER_PIDS=$(children_of "$MF_PID" | tr '\n' ' ')
    [[ -n $MF_WORKER_PIDS ]] || die "memfill started no workers"
}

start_ref() { # store? (0/1): (re)start the reference app with or without -s
    local want="ref$1"
    [[ ${REF_RUNNING:-} == "$want" ]] && return 0
    [[ -n $REF_PIDS ]] && stop_pids TERM $REF_PIDS
    REF_PIDS=
    local -a listen=(-a 127.0.0.1 -p "$REF_PORT")
    if [[ $REF_LISTEN == unix ]]; then
        rm -f "$WORK/ref.sock"
        listen=(-s "$WORK/ref.sock" -M 0666)
    fi
    local -a args=(-m "127.0.0.1:$MC_PORT" -p "ref:" -b "$PAGE_BYTES")
    (($1)) && args+=(-s)
    rm -f "$WORK/ref.pid"
    spawn-fcgi "${listen[@]}" -F "$REF_FORKS" -b "$BACKLOG" -P "$WORK/ref.pid" \
        -- "$WORK/ref_app" "${args[@]}" >> "$WORK/logs/ref.log" 2>&1 || die "spawn-fcgi failed"
    REF_PIDS=$(tr '\n' ' ' < "$WORK/ref.pid")
    REF_RUNNING=$want
    sleep 0.1
}

start_nginx() {
    local mods
    mods=$(nginx -V 2>&1 | tr ' ' '\n' | sed -n 's/^--modules-path=//p')
    [[ -d $mods ]] || die "cannot find nginx's module directory"
    ln -sfn "$mods" "$WORK/modules"
    cp "$ASSETS/fastcgi.params" "$WORK/conf/"
    fill "$ASSETS/nginx.conf.in" "$WORK/conf/nginx.conf"
    nginx -p "$WORK/" -c conf/nginx.conf -t > "$WORK/logs/nginx-t.log" 2>&1 ||
        { cat "$WORK/logs/nginx-t.log" >&2; die "nginx -t failed"; }
    local -a pin=()
    [[ -n $NGX_PIN ]] && pin=(taskset -c "$NGX_PIN")
    "${pin[@]}" nginx -p "$WORK/" -c conf/nginx.conf -g 'daemon off;' > "$WORK/logs/nginx.out" 2>&1 &
    NGX_PID=$!
    wait_http "http://127.0.0.1:$PORT/static/page.html" "$NGX_PID" "nginx"
}

# ------------------------------------------------------------ measuring

CPU=()
cpu_snap() { # -> CPU=(nginx mc app orig wrk busy total) in clock ticks
    local g p sum line
    local -a f out=()
    for g in "$G_NGX" "$MC_PID" "$G_APP" "$G_ORIG"; do
        sum=0
        for p in $g; do
            { read -r line < "/proc/$p/stat"; } 2>/dev/null || continue
            read -ra f <<< "${line##*) }"
            sum=$((sum + f[11] + f[12]))
        done
        out+=("$sum")
    done
    read -r line < "/proc/$$/stat"      # wrk: reaped children of this shell
    read -ra f <<< "${line##*) }"
    out+=($((f[13] + f[14])))
    read -ra f < /proc/stat
    local idle=$((f[4] + f[5])) total=$((f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7] + f[8]))
    CPU=("${out[@]}" $((total - idle)) "$total")
}

WRK=()
run_wrk() { # port conns seconds path -> WRK=(requests duration_us p50 p99 non2xx conn read write timeout)
    local -a pin=()
    [[ -n $WRK_PIN ]] && pin=(taskset -c "$WRK_PIN")
    "${pin[@]}" wrk -t1 -c"$2" -d"$3"s --timeout 10s -s "$ASSETS/wrk.lua" \
        "http://127.0.0.1:$1$4" > "$WORK/wrk.out" 2>&1
    local line
    line=$(grep '^BENCH ' "$WORK/wrk.out")
    [[ -n $line ]] || { cat "$WORK/wrk.out" >&2; die "wrk printed no result"; }
    read -ra WRK <<< "${line#BENCH }"
}

expect_200() { # url what
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1")
    [[ $code == 200 ]] || die "$2: $1 answered $code"
}

warm() { # port prefix what: GET prefix1..prefixHOT_N once each, all must be 200
    local codes
    codes=$(curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$1$2[1-$HOT_N]" | sort | uniq -c | awk '{ print $1, $2 }')
    [[ $codes == "$HOT_N 200" ]] || die "$3: warming gave: $codes"
}

# Prepares a scenario: starts what it needs, checks it really takes the
# path its name says, and sets TARGET_PORT/TARGET_PATH and wrk's mode.
setup() { # scenario
    export BENCH_MODE=fixed BENCH_HOT_N=$HOT_N BENCH_HIT_PCT=$HIT_PCT
    export BENCH_MISS_PREFIX=/ BENCH_HOT_PREFIX=/
    TARGET_PORT=$PORT
    G_APP=
    local u=http://127.0.0.1:$PORT m=http://127.0.0.1:$MF_PORT t
    case $1 in
    static)
        TARGET_PATH=/static/page.html
        expect_200 "$u$TARGET_PATH" static ;;
    hit)
        TARGET_PATH=/p/page
        mc_set_file "ref:$TARGET_PATH" "$WORK/html/static/page.html"
        start_ref 1; G_APP=$REF_PIDS
        cmp -s <(curl -s "$u$TARGET_PATH") "$WORK/html/static/page.html" || die "hit: wrong body" ;;
    fcache)
        start_ref 0; G_APP=$REF_PIDS
        TARGET_PATH=/c/page
        expect_200 "$u$TARGET_PATH" fcache
        t=$(curl -s -D - -o /dev/null "$u$TARGET_PATH" | tr -d '\r' | sed -n 's/^X-Cache: //ip')
        [[ $t == HIT ]] || die "fcache: the second request was X-Cache: $t" ;;
    ref)
        start_ref 0; G_APP=$REF_PIDS
        BENCH_MODE=miss BENCH_MISS_PREFIX=/d/u/
        TARGET_PATH=/d/u/check
        expect_200 "$u$TARGET_PATH" ref ;;
    ref-store | ref-mixed)
        start_ref 1; G_APP=$REF_PIDS
        mc flush_all > /dev/null
        BENCH_MODE=miss BENCH_MISS_PREFIX=/p/m/
        TARGET_PATH=/p/m/check-$RANDOM
        expect_200 "$u$TARGET_PATH" "$1"
        mc_has "ref:$TARGET_PATH" 1 || die "$1: the ref app did not store ref:$TARGET_PATH"
        if [[ $1 == ref-mixed ]]; then
            BENCH_MODE=mix BENCH_HOT_PREFIX=/p/h/
            warm "$PORT" /p/h/ ref-mixed
            mc_has "ref:/p/h/$HOT_N" 1 || die "ref-mixed: hot keys missing"
            TARGET_PATH=/
        fi ;;
    srcache)
        start_ref 0; G_APP=$REF_PIDS
        mc flush_all > /dev/null
        BENCH_MODE=miss BENCH_MISS_PREFIX=/s/m/
        TARGET_PATH=/s/m/check-$RANDOM
        expect_200 "$u$TARGET_PATH" srcache
        mc_has "sc:$TARGET_PATH" || die "srcache: nothing stored for $TARGET_PATH" ;;
    mf-miss | mf-relay | mf-mixed)
        G_APP="$MF_PID $MF_WORKER_PIDS"
        [[ $1 == mf-relay ]] && G_ORIG="$ORIGIN_PID $(children_of "$ORIGIN_PID")"
        TARGET_PORT=$MF_PORT
        mc flush_all > /dev/null
        local pfx=/t/m/
        [[ $1 == mf-relay ]] && pfx=/r/m/
        BENCH_MODE=miss BENCH_MISS_PREFIX=$pfx
        TARGET_PATH=${pfx}check-$RANDOM
        expect_200 "$m$TARGET_PATH" "$1"
        mc_has "$TARGET_PATH" || die "$1: memfill did not store $TARGET_PATH"
        if [[ $1 == mf-mixed ]]; then
            BENCH_MODE=mix BENCH_HOT_PREFIX=/t/h/
            warm "$MF_PORT" /t/h/ mf-mixed
            mc_has "/t/h/$HOT_N" || die "mf-mixed: hot keys missing"
            TARGET_PATH=/
        fi ;;
    mf-hit)
        G_APP="$MF_PID $MF_WORKER_PIDS"
        TARGET_PORT=$MF_PORT
        TARGET_PATH=/t/hot
        expect_200 "$m$TARGET_PATH" mf-hit
        mc_has "$TARGET_PATH" || die "mf-hit: memfill did not store $TARGET_PATH"
        # a memcached_pass hit carries nginx's default_type, memfill's
        # own answer says charset=utf-8: so this proves the hit path
        t=$(curl -s -D - -o /dev/null "$m$TARGET_PATH" | tr -d '\r' | sed -n 's/^Content-Type: //ip')
        [[ $t == text/html ]] || die "mf-hit: not served from memcached (Content-Type: $t)" ;;
    *)
        die "unknown scenario: $1" ;;
    esac
}

declare -A RPS P99 ERRS

# One result line; remembers req/s, p99 and errors for the ratios.
print_row() { # scenario conns fields... (as measure's awk prints them, then
              # the socket errors: connect read write timeout)
    local s=$1 c=$2
    shift 2
    local -a o=("$@")
    printf '%-10s %5s %8s %8s %8s %6s %6s | %4s %4s %4s %4s %4s %4s | %6s %6s | %5s %5s %5s' \
        "$s" "$c" "${o[0]}" "${o[1]}" "${o[2]}" "${o[3]}" "${o[4]}" "${o[5]}" "${o[6]}" \
        "${o[7]}" "${o[8]}" "${o[9]}" "${o[10]}" "${o[11]}" "${o[15]}" "${o[12]}" "${o[13]}" "${o[14]}"
    if ((o[4] > 0)); then
        printf '  [socket errors: connect %s, read %s, write %s, timeout %s]' \
            "${o[16]}" "${o[17]}" "${o[18]}" "${o[19]}"
    fi
    printf '\n'
    RPS[$s@$c]=${o[0]}
    P99[$s@$c]=${o[2]}
    ERRS[$s@$c]=$((o[3] + o[4]))
}

# With ROUNDS > 1: one line per (scenario, conns) holding the median of
# every column over the rounds, except the error counts, which are summed.
print_medians() {
    echo
    echo "# median of $ROUNDS rounds (errors: total of the rounds)"
    local s c line
    for s in $SCENARIOS; do
        for c in $conns_ok; do
            line=$(awk -F'\t' -v s="$s" -v c="$c" '
                $1 == s && $2 == c { n++; for (i = 4; i <= NF; i++) v[i, n] = $i; nf = NF }
                END {
                    if (!n) exit
                    for (i = 4; i <= nf; i++) {
                        if (i == 7 || i == 8 || (i >= 20 && i <= 23)) { # errors: sum
                            t = 0; for (k = 1; k <= n; k++) t += v[i, k]
                            out = out " " t; continue
                        }
                        for (k = 1; k <= n; k++) a[k] = v[i, k] + 0
                        for (k = 2; k <= n; k++)          # insertion sort
                            for (j = k; j > 1 && a[j - 1] > a[j]; j--) { x = a[j]; a[j] = a[j - 1]; a[j - 1] = x }
                        m = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
                        f = (i == 5 || i == 6 || (i >= 16 && i <= 18)) ? "%.2f" : \
                            (i == 15 || i == 19) ? "%.1f" : "%.0f"
                        out = out " " sprintf(f, m)
                    }
                    print substr(out, 2)
                }' "$WORK/rows.tsv")
            [[ -n $line ]] && print_row "$s" "$c" $line
        done
    done
}

measure() { # scenario conns
    local s=$1 c=$2
    mc_counts
    local -a m0=("${MC_COUNTS[@]}")
    ((WARMUP > 0)) && run_wrk "$TARGET_PORT" "$c" "$WARMUP" "$TARGET_PATH"
    local perf_pid=
    if [[ $PROFILE == 1 && ($s == mf-miss || $s == mf-relay) ]]; then
        perf record -F 499 -g -o "$WORK/perf-$s-$c.data" -p "${MF_WORKER_PIDS// /,}" \
            -- sleep "$DURATION" > /dev/null 2>&1 &
        perf_pid=$!
    fi
    mc_counts
    local -a m1=("${MC_COUNTS[@]}")
    local tw0
    tw0=$(awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "tw") print $(i + 1) }' /proc/net/sockstat)
    cpu_snap
    local -a c0=("${CPU[@]}")
    run_wrk "$TARGET_PORT" "$c" "$DURATION" "$TARGET_PATH"
    cpu_snap
    local -a c1=("${CPU[@]}")
    mc_counts
    local -a m2=("${MC_COUNTS[@]}")
    local line
    line=$(awk -v ncpu="$NCPU" -v a="${c0[*]}" -v b="${c1[*]}" -v ma="${m1[*]}" -v mb="${m2[*]}" \
        -v w="${WRK[*]}" '
        BEGIN {
            split(a, x); split(b, y); split(ma, p); split(mb, q); split(w, r)
            wall = (y[7] - x[7]) / ncpu
            for (i = 1; i <= 6; i++) pc[i] = wall > 0 ? 100 * (y[i] - x[i]) / wall : 0
            n = r[1] > 0 ? r[1] : 1
            rps = r[1] / (r[2] / 1e6)
            # server CPU per request: ticks are 1/100 s
            srv = 0; for (i = 1; i <= 4; i++) srv += y[i] - x[i]
            us = srv * 10000 / n
            app = (y[3] - x[3]) * 10000 / n
            # other: busy time not charged to any of ours (other programs)
            other = pc[6]; for (i = 1; i <= 5; i++) other -= pc[i]
            if (other < 0) other = 0
            printf "%.0f %.2f %.2f %d %d %.0f %.0f %.0f %.0f %.0f %.0f %.1f %.2f %.2f %.2f %.1f",
                rps, r[3] / 1000, r[4] / 1000, r[5], r[6] + r[7] + r[8] + r[9],
                pc[1], pc[2], pc[3], pc[4], pc[5], other, us,
                (q[1] - p[1]) / n, (q[2] - p[2]) / n, (q[3] - p[3]) / n, app
        }')
    line+=" ${WRK[5]} ${WRK[6]} ${WRK[7]} ${WRK[8]} $tw0"
    printf '%s\t%s\t%s\t%s\n' "$s" "$c" "$ROUND" "$(tr ' ' '\t' <<< "$line")" >> "$WORK/rows.tsv"
    [[ -n $RESULTS ]] &&
        printf '%s\t%s\t%s\t%s\n' "$s" "$c" "$ROUND" "$(tr ' ' '\t' <<< "$line")" >> "$RESULTS"
    print_row "$s" "$c" $line
    if [[ -n $perf_pid ]]; then
        wait "$perf_pid"
        perf report -i "$WORK/perf-$s-$c.data" --no-children --sort symbol --stdio 2> /dev/null |
            grep -E '^ +[0-9.]+%' | head -n 25 | sed "s/^/    [perf $s $c] /"
    fi
}

# ------------------------------------------------------------ the report

ratio() { # a b -> a/b with 2 decimals, or "-"
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

report() {
    local c line verdict
    echo
    echo "# ratios (same run)                         $(for c in $conns_ok; do printf '%9s' "$c"; done)   target"
    row() { # label target-test target-text num-kind a b (kind: rps or p99)
        local label=$1 test=$2 text=$3 kind=$4 a=$5 b=$6 ok=1 any=0 v
        printf '%-44s' "$label"
        for c in $conns_ok; do
            if [[ $kind == rps ]]; then v=$(ratio "${RPS[$a@$c]:-}" "${RPS[$b@$c]:-}")
            else v=$(ratio "${P99[$a@$c]:-}" "${P99[$b@$c]:-}"); fi
            printf '%9s' "$v"
            if [[ $v != - && -n $test ]]; then
                any=1
                awk -v v="$v" "BEGIN { exit !($test) }" || ok=0
            fi
        done
        if [[ -z $test ]]; then printf '   %s\n' "$text"
        elif ((any == 0)); then printf '   %s (not measured)\n' "$text"
        elif ((ok)); then printf '   %s: met\n' "$text"
        else printf '   %s: MISSED\n' "$text"; fi
    }
    row "mf-miss / srcache (req/s)" "v >= 1.25" ">= 1.25" rps mf-miss srcache
    row "mf-miss / ref-store (req/s)" "v >= 1.15" ">= 1.15" rps mf-miss ref-store
    row "mf-relay / ref-store (req/s)" "" "(information)" rps mf-relay ref-store
    row "mf-miss / ref, no store (req/s)" "" "(information)" rps mf-miss ref
    row "mf-hit / tuned hit (req/s)" "v >= 0.95" ">= 0.95" rps mf-hit hit
    row "mf-mixed / ref-mixed (req/s)" "" "(information)" rps mf-mixed ref-mixed
    row "mf-mixed / ref-mixed (p99)" "" "<= 0.50 at 500 (below)" p99 mf-mixed ref-mixed
    local v
    v=$(ratio "${P99[mf-mixed@500]:-}" "${P99[ref-mixed@500]:-}")
    if [[ $v == - ]]; then verdict="not measured"
    elif awk -v v="$v" 'BEGIN { exit !(v <= 0.5) }'; then verdict=met
    else verdict=MISSED; fi
    printf '%-44s%9s   <= 0.50: %s\n' "mixed p99 at 500 conns, memfill / ref" "$v" "$verdict"
    local errs=0 seen=0 s
    for s in mf-miss mf-relay mf-hit mf-mixed; do
        [[ -n ${ERRS[$s@2000]:-} ]] && { seen=1; errs=$((errs + ERRS[$s@2000])); }
    done
    if ((seen)); then
        printf '%-44s%9s   0: %s\n' "memfill errors at 2000 conns" "$errs" "$( ((errs == 0)) && echo met || echo MISSED)"
    fi
    if [[ -n $MF_PID ]]; then
        # memfill's own account (memfillctl stats, from the scoreboard):
        # requests per worker, and every store outcome that was not "stored"
        local stats
        stats=$("$MEMFILLCTL" -c "$WORK/memfill.json" stats 2> /dev/null)
        local p rss max=0 list= reqs total=0 line
        for p in $MF_WORKER_PIDS; do
            rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2> /dev/null)
            reqs=$(grep -o "\"pid\":$p,[^}]*\"requests\":[0-9]*" <<< "$stats" | grep -o '[0-9]*$')
            [[ -n $rss ]] || { list+=" $p: gone;"; continue; }
            list+=" $p: ${reqs:-?} requests, ${rss} kB;"
            total=$((total + ${reqs:-0}))
            ((rss > max)) && max=$rss
        done
        [[ $(children_of "$MF_PID" | sort | tr '\n' ' ') == "$(tr ' ' '\n' <<< "$MF_WORKER_PIDS" | sed '/^$/d' | sort | tr '\n' ' ')" ]] ||
            say "note: memfill's workers changed during the run (a respawn): RSS is of fresh workers"
        if ((total >= 100000)); then
            verdict=$( ((max <= 8192)) && echo met || echo MISSED)
        else
            verdict="not judged: only $total requests"
        fi
        printf '%-44s%9s   <= 8192 kB after >= 100k requests: %s\n' \
            "memfill worker VmRSS, max (kB)" "$max" "$verdict"
        echo "  memfill workers ($total requests in all):$list"
        line=$(grep -o '"counters":{[^}]*}' <<< "$stats" | tr -d '{}"' | sed 's/^counters://' |
            tr ',' '\n' | awk -F: '$2 != 0 { printf " %s %s", $1, $2 }')
        echo "  memfill counters (non-zero):${line:- (status not available)}"
    fi
}

# ------------------------------------------------------------ main

# All of the work is in one function, so bash has read the whole file
# before it starts: editing the script during a long run cannot change it.
main() {
    NCPU=$(nproc)
    for tool in nginx memcached spawn-fcgi curl cc taskset awk timeout; do
        command -v "$tool" > /dev/null || die "missing tool: $tool (scripts/install-deps.sh installs it)"
    done
    if ! command -v wrk > /dev/null; then
        "$TOP/scripts/install-deps.sh" || die "installing wrk failed"
        command -v wrk > /dev/null || die "wrk is still missing"
    fi
    [[ $MF_LISTEN == unix || $MF_LISTEN == tcp ]] || die "MF_LISTEN must be unix or tcp"
    [[ $REF_LISTEN == unix || $REF_LISTEN == tcp ]] || die "REF_LISTEN must be unix or tcp"
    if [[ $PROFILE == 1 ]] && ! command -v perf > /dev/null; then
        say "PROFILE=1 needs perf; profiling is off"
        PROFILE=0
    fi

    pin_of() { # setting default -> cpu list or empty
        local v=$1
        [[ $v == none ]] && return 0
        [[ $v == auto ]] && v=$2
        [[ -n $v ]] && taskset -c "$v" true 2> /dev/null && echo "$v"
    }
    if ((NCPU > 1)); then
        WRK_PIN=$(pin_of "$WRK_CPU" $((NCPU - 1)))
        NGX_PIN=$(pin_of "$NGX_CPU" 0)
    else
        WRK_PIN= NGX_PIN=
    fi

    # File descriptors: wrk one per connection; nginx a client and up to two
    # upstream connections per request; memcached one per pooled connection.
    maxc=0
    for c in $CONNS; do ((c > maxc)) && maxc=$c; done
    want=$((4 * maxc + 4096))
    if (($(ulimit -n) < want)); then
        ulimit -Hn "$want" 2> /dev/null
        ulimit -n "$want" 2> /dev/null || ulimit -n "$(ulimit -Hn)"
    fi
    soft=$(ulimit -n)
    conns_ok=
    for c in $CONNS; do
        if ((3 * c + 1024 <= soft)); then conns_ok+=" $c"
        else say "skipping $c connections: open file limit $soft"; fi
    done
    [[ -n $conns_ok ]] || die "no connection level fits the open file limit ($soft)"
    NGX_CONNS=$((3 * maxc + 1024))
    NGX_NOFILE=$soft
    MC_CONNS=$((MC_KEEPALIVE * 2 + 2 * maxc + 1024))
    BACKLOG=$(cat /proc/sys/net/core/somaxconn 2> /dev/null || echo 4096)
    ((BACKLOG > 4096)) && BACKLOG=4096

    read -r eph_lo eph_hi < /proc/sys/net/ipv4/ip_local_port_range 2> /dev/null || eph_lo=0 eph_hi=0
    if ((BASE_PORT + 6 >= eph_lo && BASE_PORT <= eph_hi)); then
        say "note: ports $BASE_PORT-$((BASE_PORT + 6)) lie in the ephemeral range $eph_lo-$eph_hi"
    fi
    for ((p = BASE_PORT; p <= BASE_PORT + 6; p++)); do
        if (exec 3<> "/dev/tcp/127.0.0.1/$p") 2> /dev/null; then
            die "port $p is already in use (set BASE_PORT)"
        fi
    done

    WORK=$(mktemp -d -t memfill-bench.XXXXXX) || die "mktemp failed"
    chmod 755 "$WORK"   # nginx's workers may run as another user
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$WORK/logs" "$WORK/conf" "$WORK/tmp" "$WORK/cache" "$WORK/html/static"
    make_page "$WORK/html/static/page.html"

    REF_ADDR=127.0.0.1:$REF_PORT
    [[ $REF_LISTEN == unix ]] && REF_ADDR=unix:$WORK/ref.sock
    # nginx's workers may run as another user: the socket is for everyone
    MF_ADDR=unix:$WORK/memfill.sock MF_MODE=' "listen_mode": "0666",'
    [[ $MF_LISTEN == tcp ]] && MF_ADDR=127.0.0.1:$MF_TCP_PORT MF_MODE=

    build
    start_memcached
    start_origin
    need_mf=0
    for s in $SCENARIOS; do [[ $s == mf-* ]] && need_mf=1; done
    if ((need_mf)); then
        start_memfill
    else
        : > "$WORK/conf/memfill.conf"
    fi
    start_nginx
    G_NGX="$NGX_PID $(children_of "$NGX_PID" | tr '\n' ' ')"
    G_ORIG=

    echo "# memfill bench $(date -u +%Y-%m-%dT%H:%M:%SZ): nproc $NCPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), kernel $(uname -r)"
    echo "# $(nginx -v 2>&1 | sed 's/.*: //'), memcached $(memcached -V | cut -d' ' -f2), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
    echo "# nginx pinned to ${NGX_PIN:-none}, wrk to ${WRK_PIN:-none}; ${DURATION}s runs after ${WARMUP}s warm-up; memfill: $MF_WORKERS workers on $MF_LISTEN; ref app: $REF_FORKS processes on $REF_LISTEN; memcached keepalive $MC_KEEPALIVE"
    printf '%-10s %5s %8s %8s %8s %6s %6s | %4s %4s %4s %4s %4s %4s | %6s %6s | %s\n' \
        scenario conns req/s p50ms p99ms non2xx sockerr nginx mc app orig wrk othr us/req app-us \
        'mc/req: hit miss set'
    if [[ -n $RESULTS && ! -s $RESULTS ]]; then
        printf 'scenario\tconns\tround\trps\tp50_ms\tp99_ms\tnon2xx\tsockerr\tcpu_nginx\tcpu_mc\tcpu_app\tcpu_orig\tcpu_wrk\tcpu_other\tserver_us_per_req\tmc_hit\tmc_miss\tmc_set\tapp_us_per_req\terr_connect\terr_read\terr_write\terr_timeout\ttime_wait_at_start\n' > "$RESULTS"
    fi

    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        ((ROUNDS > 1)) && echo "# round $ROUND of $ROUNDS"
        for s in $SCENARIOS; do
            for c in $conns_ok; do
                G_ORIG=
                setup "$s"
                measure "$s" "$c"
            done
        done
    done
    ((ROUNDS > 1)) && print_medians
    report
}

main "$@"
exit
