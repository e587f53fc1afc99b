#!/bin/sh
# install-deps.sh - installs every Debian package memfill's build, tests,
# demo and benchmarks need. Installs only what is missing; safe to re-run.
# Needs root (or sudo) on Debian 12.
set -eu

# libmemcached-dev: only for scripts/bench.sh's reference app (bench/ref_app.c);
# memfill itself speaks memcached's protocol through src/store/mcconn.c.
PACKAGES="build-essential autoconf automake libtool pkg-config
libfcgi-dev libfcgi-bin libmemcached-dev libjansson-dev check
libcurl4-openssl-dev zlib1g-dev libpcre2-dev
memcached spawn-fcgi nginx-extras libnginx-mod-http-ndk
libnginx-mod-http-memc libnginx-mod-http-set-misc libnginx-mod-http-srcache-filter
python3 curl wrk clang valgrind clang-format"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$missing"
$SUDO apt-get update -qq
# Do not start the distribution's nginx or memcached services: memfill's
# scripts start their own, on loopback high ports.
export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
$SUDO apt-get install -y -qq --no-install-recommends $missing
