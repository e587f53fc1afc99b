/* keyloc.c - "raw key, escape, node, at most KEY_MAX_ESCAPED bytes
 * escaped": the one place that says where a key lives, for the store, the
 * purge and memfillctl (doc/nginx.md §2 for the escaping and the limit). */
#include "config.h"

#include "memfill/keyloc.h"
#include "memfill/keyesc.h"

enum keyloc_fit keyloc_find(const struct nodesel *sel, const char *raw, size_t len,
                            struct buf *esc, int *node)
{
    size_t start = esc->len;
    key_escape(raw, len, esc);
    *node = nodesel_pick(sel, raw, len);
    if (len == 0 || *node < 0)
        return KEYLOC_EMPTY;
    if (esc->len - start > KEY_MAX_ESCAPED)
        return KEYLOC_TOO_LONG;
    return KEYLOC_OK;
}
