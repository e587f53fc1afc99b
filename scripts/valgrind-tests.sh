#!/bin/sh
# valgrind-tests.sh BUILDDIR - reruns the Check unit suites in one process
# (CK_FORK=no) under valgrind; any error or definite leak fails.
set -eu
builddir=${1:-_build/default}
top=$(cd "$(dirname "$0")/.." && pwd)
export top_srcdir="$top" top_builddir="$(cd "$builddir" && pwd)" CK_FORK=no
fail=0
for t in "$builddir"/tests/check_*; do
    [ -x "$t" ] || continue
    case "$t" in *.log|*.trs|*.o) continue ;; esac
    printf 'valgrind %s ... ' "$(basename "$t")"
    if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        "$t" >"$t.valgrind.log" 2>&1; then
        echo ok
    else
        echo FAILED; tail -40 "$t.valgrind.log"; fail=1
    fi
done
exit $fail
