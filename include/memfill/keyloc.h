/* keyloc.h - where nginx reads a raw key: its escaped form, its node, and
 * whether nginx can read it there at all. */
#ifndef MEMFILL_KEYLOC_H
#define MEMFILL_KEYLOC_H

#include <stddef.h>

#include "memfill/buf.h"
#include "memfill/nodesel.h"

enum keyloc_fit {
    KEYLOC_OK = 0,   /* nginx reads the escaped key from the node */
    KEYLOC_EMPTY,    /* empty key (or no node): nginx answers 500 */
    KEYLOC_TOO_LONG, /* escaped above KEY_MAX_ESCAPED: memcached refuses it,
                      * nginx answers 502 */
};

/* Appends key_escape(raw) to esc and sets *node to the node nginx picks
 * for raw (nodesel_pick; -1 when none). Returns how the key fits: nginx
 * can read it back only when the result is KEYLOC_OK. */
enum keyloc_fit keyloc_find(const struct nodesel *sel, const char *raw, size_t len,
                            struct buf *esc, int *node);

#endif
