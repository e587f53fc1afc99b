#!/bin/sh
# check-layers.sh - fails when a source file includes a header of a higher
# layer. The layers are the folders of src/, lowest first:
#
#   core < nginx < conf < content < store < server < ctl
#
# A header include/memfill/NAME.h belongs to the layer of src/*/NAME.c;
# a header with no .c of its own is placed by the table below. Headers
# outside include/memfill/ (the system's, libraries', autoconf's config.h)
# are not looked at. Run by `make check`; prints one line per wrong edge.
set -eu
top=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top"

LAYERS="core nginx conf content store server ctl"

# header-only headers: NAME LAYER
HEADER_ONLY="
loglevel core
nodedist nginx
plugin content
"

rank() { # layer -> its position, 0 for an unknown layer
    i=1
    for l in $LAYERS; do
        [ "$l" = "$1" ] && { echo "$i"; return; }
        i=$((i + 1))
    done
    echo 0
}

layer_of_header() { # NAME -> layer, or empty
    for c in src/*/"$1".c; do
        [ -f "$c" ] && { basename "$(dirname "$c")"; return; }
    done
    echo "$HEADER_ONLY" | awk -v n="$1" '$1 == n { print $2 }'
}

bad=0 edges=0 files=0
for dir in src/*/; do
    from=$(basename "$dir")
    rf=$(rank "$from")
    if [ "$rf" -eq 0 ]; then
        echo "src/$from/: not a known layer (expected one of: $LAYERS)"
        bad=$((bad + 1))
        continue
    fi
    for f in "$dir"*.c; do
        [ -f "$f" ] || continue
        files=$((files + 1))
        # the file's own header is looked at too: src/L/x.c includes memfill/x.h
        for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"memfill\/\([a-z0-9_]*\)\.h".*/\1/p' "$f" \
                   "include/memfill/$(basename "$f" .c).h" 2> /dev/null); do
            to=$(layer_of_header "$h")
            edges=$((edges + 1))
            if [ -z "$to" ]; then
                echo "$f: includes memfill/$h.h, which belongs to no layer (add src/LAYER/$h.c or a HEADER_ONLY row)"
                bad=$((bad + 1))
            elif [ "$(rank "$to")" -gt "$rf" ]; then
                echo "$f ($from) includes memfill/$h.h ($to): a lower layer may not include a higher one"
                bad=$((bad + 1))
            fi
        done
    done
done
ls src/*.c > /dev/null 2>&1 && { echo "src/*.c: every source file belongs in a layer folder"; bad=$((bad + 1)); }
echo "layers: $files files, $edges include edges, $bad wrong"
[ "$bad" -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
[ "$bad" -eq 0 ]
